//! What only the cgroup2 hierarchy needs: controller delegation, memory+swap limits, CPU time
//! from `cpu.stat`, peak memory and OOM kills, `cgroup.kill`.

use std::io;
use std::path::Path;
use std::time::Duration;

use super::fs::{read, try_write, write, OpenFiles};
use super::parse::{self, CpuStat, FlatKeyed};
use crate::error::{Result, SandboxError};
use crate::plan::CpuBandwidth;

/// Fail early, with a clear message, when the hierarchy at `mount` cannot give a controller
/// (e.g. a container whose delegated subtree lacks it).
pub(crate) fn check_available(mount: &Path, controllers: &[&str]) -> Result<()> {
    let path = mount.join("cgroup.controllers");
    let text = read(&path)?;
    let available = parse::controllers(&text);
    match controllers.iter().find(|c| !available.contains(c)) {
        Some(missing) => Err(SandboxError::Config(format!(
            "the `{missing}' controller is not available in `{}' (it lists `{}'): enable it \
             in the parent cgroup's cgroup.subtree_control or run on a host that delegates it",
            path.display(),
            text.trim()
        ))),
        None => Ok(()),
    }
}

/// Enable `controllers` for the children of `level` where not enabled yet. Called top-down
/// from the mount root, since a group can enable only what its parent enabled for it.
pub(crate) fn enable_controllers(level: &Path, controllers: &[&str]) -> Result<()> {
    let path = level.join("cgroup.subtree_control");
    let text = read(&path)?;
    let enabled = parse::controllers(&text);
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| !enabled.contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    write(&path, &missing.join(" "))
}

/// Limit memory and forbid swap.
pub(crate) fn limit_memory(dir: &Path, bytes: u64) -> Result<()> {
    write(&dir.join("memory.max"), &bytes.to_string())?;
    let swap = dir.join("memory.swap.max");
    match try_write(&swap, "0") {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Err(SandboxError::Config(format!(
            "cannot forbid swap: `{}' is missing (swap accounting is off); boot the kernel \
             with swapaccount=1 or a kernel with CONFIG_MEMCG_SWAP",
            swap.display()
        ))),
        Err(err) => Err(SandboxError::io("write cgroup file", swap, err)),
        Ok(()) => Ok(()),
    }
}

/// CFS bandwidth: `cpu.max` holds "QUOTA PERIOD" in microseconds.
pub(crate) fn limit_cpu(dir: &Path, bandwidth: CpuBandwidth) -> Result<()> {
    write(
        &dir.join("cpu.max"),
        &format!("{} {}", bandwidth.quota_us, bandwidth.period_us),
    )
}

/// `cpu.stat`: present in every cgroup2 group, even without the cpu controller.
pub(crate) fn cpu_usage(files: &OpenFiles, dir: &Path) -> Result<CpuStat> {
    files.read_parsed(&dir.join("cpu.stat"), CpuStat::parse)
}

/// `memory.peak` (Linux >= 5.19).
pub(crate) fn memory_peak(files: &OpenFiles, dir: &Path) -> Result<u64> {
    files.read_parsed(&dir.join("memory.peak"), parse::single_u64)
}

pub(crate) fn memory_current(files: &OpenFiles, dir: &Path) -> Result<u64> {
    files.read_parsed(&dir.join("memory.current"), parse::single_u64)
}

pub(crate) fn oom_kills(files: &OpenFiles, dir: &Path) -> Result<u64> {
    files.read_parsed(&dir.join("memory.events"), |text| {
        FlatKeyed::parse(text)?.require("oom_kill")
    })
}

/// SIGKILL every process of the group at once, forks in flight included (Linux >= 5.14).
/// Returns false when the kernel has no `cgroup.kill`.
pub(crate) fn kill(dir: &Path) -> Result<bool> {
    let path = dir.join("cgroup.kill");
    match try_write(&path, "1") {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(SandboxError::io("write cgroup file", path, err)),
        Ok(()) => Ok(true),
    }
}

/// CPU time as [`cpu_usage`] gives it, for the cheap poll.
pub(crate) fn cpu_time(files: &OpenFiles, dir: &Path) -> Result<Duration> {
    cpu_usage(files, dir).map(|stat| stat.usage)
}
