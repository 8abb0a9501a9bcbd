//! What only cgroup v1 hierarchies need: cpuset initialisation, memory+swap limits, CPU time
//! from cpuacct, peak memory and OOM kills from the memory controller, the freezer.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::fs::{read, try_write, write, OpenFiles};
use super::parse::{self, CpuStat, FlatKeyed};
use super::Throttling;
use crate::error::{Result, SandboxError};
use crate::plan::CpuBandwidth;

/// A new v1 cpuset group starts with empty `cpuset.cpus` and `cpuset.mems`, and no task can
/// join it until both are set: copy them from the parent where empty. Called top-down, so the
/// parent is already filled in.
pub(crate) fn inherit_cpuset(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let path = dir.join(file);
        if read(&path)?.trim().is_empty() {
            let inherited = read(&parent.join(file))?;
            write(&path, inherited.trim())?;
        }
    }
    Ok(())
}

/// Limit memory and forbid swap. `memory.memsw.limit_in_bytes` (memory + swap) may never be
/// below `memory.limit_in_bytes`, so the memory limit goes first; equal values mean no swap.
pub(crate) fn limit_memory(dir: &Path, bytes: u64) -> Result<()> {
    let value = bytes.to_string();
    write(&dir.join("memory.limit_in_bytes"), &value)?;
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    match try_write(&memsw, &value) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Err(SandboxError::Config(format!(
            "cannot forbid swap: `{}' is missing (swap accounting is off); boot the kernel \
             with swapaccount=1",
            memsw.display()
        ))),
        Err(err) => Err(SandboxError::io("write cgroup file", memsw, err)),
        Ok(()) => Ok(()),
    }
}

/// CFS bandwidth: the period first (a new group's quota is unlimited, so any period is valid).
pub(crate) fn limit_cpu(dir: &Path, bandwidth: CpuBandwidth) -> Result<()> {
    write(
        &dir.join("cpu.cfs_period_us"),
        &bandwidth.period_us.to_string(),
    )?;
    write(
        &dir.join("cpu.cfs_quota_us"),
        &bandwidth.quota_us.to_string(),
    )
}

/// Throttling counters of a v1 cpu group (`cpu.stat`).
pub(crate) fn throttling(files: &OpenFiles, dir: &Path) -> Result<Option<Throttling>> {
    files.read_parsed(&dir.join("cpu.stat"), |text| {
        parse::throttling(&FlatKeyed::parse(text)?)
    })
}

/// Total CPU time: `cpuacct.usage`, exact, in nanoseconds.
pub(crate) fn cpu_time(files: &OpenFiles, dir: &Path) -> Result<Duration> {
    files
        .read_parsed(&dir.join("cpuacct.usage"), parse::single_u64)
        .map(Duration::from_nanos)
}

/// CPU time split into user and system by `cpuacct.stat`; throttling from `cpu.stat` when the
/// cpu controller is co-mounted with cpuacct (`cpu,cpuacct`), so the group is also a cpu group.
pub(crate) fn cpu_usage(files: &OpenFiles, dir: &Path, has_cpu_stat: bool) -> Result<CpuStat> {
    let usage = cpu_time(files, dir)?;
    let (user, system) = files.read_parsed(&dir.join("cpuacct.stat"), |text| {
        let ticks = FlatKeyed::parse(text)?;
        let (user, system) = (ticks.require("user")?, ticks.require("system")?);
        Ok(parse::split_cpu_total(usage, user, system))
    })?;
    let throttling = if has_cpu_stat {
        throttling(files, dir)?
    } else {
        None
    };
    Ok(CpuStat {
        usage,
        user,
        system,
        throttling,
    })
}

/// Peak memory (swap is forbidden, so memory alone is the whole).
pub(crate) fn memory_peak(files: &OpenFiles, dir: &Path) -> Result<u64> {
    files.read_parsed(&dir.join("memory.max_usage_in_bytes"), parse::single_u64)
}

/// Memory charged to the group now.
pub(crate) fn memory_usage(files: &OpenFiles, dir: &Path) -> Result<u64> {
    files.read_parsed(&dir.join("memory.usage_in_bytes"), parse::single_u64)
}

pub(crate) fn oom_kills(files: &OpenFiles, dir: &Path) -> Result<u64> {
    files.read_parsed(&dir.join("memory.oom_control"), |text| {
        FlatKeyed::parse(text)?.require("oom_kill")
    })
}

/// How long a freeze may take before we give up on it (a task stuck in an uninterruptible
/// sleep can keep the group FREEZING).
const FREEZE_TIMEOUT: Duration = Duration::from_secs(1);

/// Freeze the group, so that nothing in it can fork while we kill. Returns false, with the
/// group thawed again, when it did not reach FROZEN in time.
pub(crate) fn freeze(dir: &Path) -> Result<bool> {
    let state = dir.join("freezer.state");
    write(&state, "FROZEN")?;
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    while read(&state)?.trim() != "FROZEN" {
        if Instant::now() >= deadline {
            thaw(dir)?;
            return Ok(false);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(true)
}

/// Thaw the group: killed frozen tasks die only once thawed.
pub(crate) fn thaw(dir: &Path) -> Result<()> {
    write(&dir.join("freezer.state"), "THAWED")
}
