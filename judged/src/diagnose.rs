//! `judged diagnose -- COMMAND`: one run through `runguard` with every per-run diagnostic,
//! then its report and findings.
//!
//! judged never forks a run itself: runguard does, under a cgroup parent of our own
//! (`judged/diagnose-<pid>` in every hierarchy). A parent's PSI and memory statistics include
//! its removed children, so after runguard has removed the run's cgroups the parent still
//! holds the run's stalls and refaults; we read them, then remove the parent. We make the
//! parent's cgroup2 directory ourselves before the run, so that the eBPF D-state tracer
//! ([`RunTracer`]) can be pointed at it: it counts the tasks below it, in the kernel.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use runner::report::Report;
use serde::Serialize;

use crate::diagnostics::ebpf::RunTracer;
use crate::diagnostics::events::{self, DState, RunEvents};
use crate::diagnostics::host::{self, HostSample, KernelFacts};
use crate::diagnostics::kallsyms::{base_name, Symbols};
use crate::diagnostics::kernel::{self, KernelVersion};
use crate::diagnostics::procfs::{self, Mount, Pressure};
use crate::diagnostics::run::{self, MemoryActivity, RunSample};
use crate::diagnostics::taskstats::{self, Delays, ExitListener};
use crate::diagnostics::thresholds::Thresholds;
use crate::diagnostics::Finding;
use crate::sandbox::locate_runguard;
use crate::users;

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Memory limit of the run in kB (runguard's -m).
    #[arg(long, short = 'm', value_name = "KB")]
    pub memsize: Option<u64>,
    /// Pin the run to these CPUs, like `0,2-3` (runguard's -P).
    #[arg(long, short = 'P', value_name = "LIST")]
    pub cpuset: Option<String>,
    /// A CFS CPU quota for the whole run, in CPUs per 100 ms period, like 0.5 (runguard's
    /// --cpu-quota): reproduces a container's CPU limit.
    #[arg(long, value_name = "CPUS")]
    pub cpu_quota: Option<f64>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Thresholds file (default: the embedded profiles/diagnostics.toml).
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
    /// The runguard binary (default: beside judged).
    #[arg(long, env = "JUDGED_RUNGUARD")]
    pub runguard: Option<PathBuf>,
    /// The unprivileged user the command runs as (default: domjudge-run if it exists, else
    /// nobody).
    #[arg(long, env = "JUDGED_RUN_USER")]
    pub user: Option<String>,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub const DIAGNOSE_HELP: &str = "\
Runs COMMAND once through runguard (as the run user, output discarded) and reports its times,
the stalls of its cgroup (PSI: waiting for a CPU, for IO, in memory reclaim), its memory
cgroup's major faults and refaults, CFS throttling, and the host's pressure, IPC namespace
backlog and dying cgroups before and after. Findings name a kind (wall-cpu-drift,
runqueue-delay, dstate-io, memcg-reclaim, page-cache-thrash, cfs-throttling, slow-setup,
ipc-ns-teardown, dying-cgroups, host-pressure), the cause, the evidence and the remedy.

--cpu-quota CPUS runs COMMAND under a CFS bandwidth limit (CPUS of CPU time per 100 ms), as
a container with a CPU limit would; runguard refuses a value it cannot set, naming it.

D state: with eBPF (root, a cgroup2 mount, judged built with clang) the time the run's tasks
slept uninterruptibly is summed per kernel stack (sched:sched_switch and sched:sched_wakeup,
filtered in the kernel to the run's cgroup2 group); the total and the top stacks are shown,
and the top 3 go into a dstate-io finding's evidence (dstate_ms, dstate_top_stacks). Without
eBPF the report says why (dstate_unavailable in JSON) and the rest is unchanged.

Delays: where delay accounting is on (kernel.task_delayacct=1; judged doctor checks it) the
block IO, swap-in, reclaim and thrashing delays of the run's tasks, summed from the kernel's
taskstats exit records (generic netlink), the run's tasks told by the eBPF tracer; without
either, delays_unavailable in JSON says why.

Workqueue, lock and fork latency are host-wide: judged watch.

Exit status:
  0  no finding
  1  at least one finding
  2  diagnose itself failed (bad command line, runguard failed)";

/// Everything `diagnose` learnt, as shown with `--json`.
#[derive(Debug, Serialize)]
pub struct Diagnosis {
    pub command: Vec<String>,
    pub report: Report,
    pub sample: RunSample,
    pub host_before: HostSample,
    pub host_after: HostSample,
    #[serde(with = "runner::report::seconds")]
    pub window: Duration,
    /// D-state time of the run's tasks per kernel stack (eBPF); `None` without it.
    pub dstate: Option<DState>,
    /// Why there is no D-state time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dstate_unavailable: Option<String>,
    /// Delay accounting of the run's tasks, summed from their taskstats exit records.
    pub delays: Option<Delays>,
    /// Why there are no delays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delays_unavailable: Option<String>,
    pub findings: Vec<Finding>,
}

/// The cgroup mounts diagnose reads: the cgroup2 one (PSI) and the one holding memory.
struct CgroupMounts {
    all: Vec<PathBuf>,
    unified: Option<PathBuf>,
    /// The memory controller's mount and whether it is v1 (`total_` keys in memory.stat).
    memory: Option<(PathBuf, bool)>,
}

impl CgroupMounts {
    fn from_mounts(mounts: &[Mount]) -> CgroupMounts {
        let cgroup = |m: &&Mount| m.fstype == "cgroup" || m.fstype == "cgroup2";
        let unified = mounts
            .iter()
            .find(|m| m.fstype == "cgroup2")
            .map(|m| m.point.clone());
        let v1_memory = mounts
            .iter()
            .find(|m| m.fstype == "cgroup" && m.super_options.iter().any(|o| o == "memory"));
        let memory = match (v1_memory, &unified) {
            (Some(mount), _) => Some((mount.point.clone(), true)),
            (None, Some(unified)) => Some((unified.clone(), false)),
            (None, None) => None,
        };
        CgroupMounts {
            all: mounts
                .iter()
                .filter(cgroup)
                .map(|m| m.point.clone())
                .collect(),
            unified,
            memory,
        }
    }
}

/// The run's cgroup parent in every hierarchy; removed when dropped (runguard removes the
/// run's own groups, the parent is ours).
struct DiagnoseParent<'a> {
    relative: PathBuf,
    mounts: &'a CgroupMounts,
}

impl DiagnoseParent<'_> {
    fn dir_in(&self, mount: &Path) -> PathBuf {
        mount.join(&self.relative)
    }

    fn stalls(&self) -> Option<Pressure> {
        Pressure::read_cgroup(&self.dir_in(self.mounts.unified.as_ref()?))
    }

    fn memory_activity(&self) -> Option<MemoryActivity> {
        let (mount, v1) = self.mounts.memory.as_ref()?;
        let stat = std::fs::read_to_string(self.dir_in(mount).join("memory.stat")).ok()?;
        // A v1 group's own counters leave out its children; the `total_` ones include them.
        let prefix = if *v1 { "total_" } else { "" };
        let value = |key: &str| procfs::keyed_value(&stat, &format!("{prefix}{key}"));
        Some(MemoryActivity {
            major_faults: value("pgmajfault")?,
            file_refaults: value("workingset_refault_file")?,
        })
    }
}

impl Drop for DiagnoseParent<'_> {
    fn drop(&mut self) {
        for mount in &self.mounts.all {
            let dir = self.dir_in(mount);
            if dir.is_dir() {
                if let Err(error) = std::fs::remove_dir(&dir) {
                    eprintln!("judged: cannot remove cgroup `{}': {error}", dir.display());
                }
            }
        }
    }
}

/// How many CPUs a list like `0,2-3` names.
pub fn count_cpus(list: &str) -> anyhow::Result<u32> {
    crate::topology::cpulist::parse_cpu_list(list)
        .map(|cpus| cpus.len() as u32)
        .map_err(|why| anyhow::anyhow!("--cpuset `{list}': {why}"))
}

pub fn execute(args: DiagnoseArgs) -> anyhow::Result<u8> {
    let thresholds = Thresholds::load_or_default(args.thresholds.as_deref())?;
    let allowed_cpus = match &args.cpuset {
        Some(list) => count_cpus(list)?,
        None => std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
    };
    let runguard = locate_runguard(args.runguard.as_deref())?;
    let (user, note) = users::resolve(args.user.as_deref(), Path::new("/"))?;
    if let Some(note) = note {
        eprintln!("{note}");
    }

    let root = Path::new("/");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo")?;
    let mounts = CgroupMounts::from_mounts(&procfs::parse_mountinfo(&mountinfo));
    let kernel = KernelFacts {
        version: KernelVersion::read(root),
        ipc_teardown: kernel::ipc_teardown(
            KernelVersion::read(root),
            std::fs::read_to_string("/proc/kallsyms").ok().as_deref(),
        ),
    };
    let parent = DiagnoseParent {
        relative: PathBuf::from(format!("judged/diagnose-{}", std::process::id())),
        mounts: &mounts,
    };
    if let Some(stale) = mounts
        .all
        .iter()
        .map(|m| parent.dir_in(m))
        .find(|d| d.exists())
    {
        anyhow::bail!(
            "cgroup `{}' exists already: remove it (rmdir) and retry",
            stale.display()
        );
    }

    let tracer = start_tracer(&parent);
    let delay_accounting =
        std::fs::read_to_string("/proc/sys/kernel/task_delayacct").is_ok_and(|v| v.trim() == "1");
    let exits = std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .map_err(|e| format!("cannot read /sys/devices/system/cpu/possible: {e}"))
        .and_then(|cpus| ExitListener::start(&cpus));

    let scratch = tempfile::tempdir().context("cannot make a scratch directory")?;
    let config = scratch.path().join("runguard.toml");
    // runguard accepts only configured run users; this run's user is the one we resolved.
    std::fs::write(&config, format!("valid_users = [{:?}]\n", user.name))
        .with_context(|| format!("cannot write `{}'", config.display()))?;
    let report_path = scratch.path().join("report.json");
    let mut runguard_command = Command::new(&runguard);
    runguard_command
        .arg("--config")
        .arg(&config)
        .args(["--user", &user.name, "--group", &user.gid.to_string()])
        .arg("--cgroup-parent")
        .arg(&parent.relative)
        .arg("--json")
        .arg(&report_path)
        .arg("--stdout")
        .arg(scratch.path().join("stdout"))
        .arg("--stderr")
        .arg(scratch.path().join("stderr"));
    if let Some(kb) = args.memsize {
        runguard_command.args(["--memsize", &kb.to_string()]);
    }
    if let Some(list) = &args.cpuset {
        runguard_command.args(["--cpuset", list]);
    }
    if let Some(cpus) = args.cpu_quota {
        runguard_command.arg(format!("--cpu-quota={cpus}"));
    }
    runguard_command
        .arg("--")
        .args(&args.command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());

    let host_before = HostSample::read(root, mounts.unified.as_deref());
    let started = Instant::now();
    let output = runguard_command
        .output()
        .with_context(|| format!("cannot start `{}'", runguard.display()))?;
    let window = started.elapsed();
    let host_after = HostSample::read(root, mounts.unified.as_deref());
    let events = tracer.and_then(|t| t.finish(&Symbols::read_host()));
    let (delays, delays_unavailable) = match run_delays(exits, &events, delay_accounting) {
        Ok(delays) => (Some(delays), None),
        Err(reason) => (None, Some(reason)),
    };
    let (dstate, dstate_unavailable) = match events {
        Ok(events) => (Some(events.dstate), None),
        Err(reason) => (None, Some(reason)),
    };
    anyhow::ensure!(
        output.status.code().is_some_and(|code| code != 255),
        "runguard failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let report: Report = serde_json::from_slice(
        &std::fs::read(&report_path)
            .with_context(|| format!("runguard wrote no report `{}'", report_path.display()))?,
    )
    .with_context(|| format!("runguard's report `{}'", report_path.display()))?;

    let sample = RunSample {
        wall: report.wall_time,
        cpu: report.cpu_time,
        setup: report.setup_time,
        allowed_cpus,
        throttling: report.throttling,
        stalls: parent.stalls(),
        memory: parent.memory_activity(),
    };
    drop(parent);
    let mut findings = run::classify(&sample, &thresholds.run);
    if let Some(dstate) = &dstate {
        events::explain_dstate(&mut findings, dstate);
    }
    findings.extend(host::classify(
        &host_before,
        &host_after,
        window,
        sample.stalls,
        kernel,
        &thresholds.host,
    ));
    let diagnosis = Diagnosis {
        command: args.command,
        report,
        sample,
        host_before,
        host_after,
        window,
        dstate,
        dstate_unavailable,
        delays,
        delays_unavailable,
        findings,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&diagnosis)?);
    } else {
        print!("{}", show(&diagnosis));
    }
    Ok(u8::from(!diagnosis.findings.is_empty()))
}

/// The D-state tracer on the parent's cgroup2 group, which it makes for the purpose (runguard
/// makes the run's groups below it); why not, when it cannot run.
fn start_tracer(parent: &DiagnoseParent<'_>) -> Result<RunTracer, String> {
    let unified = parent
        .mounts
        .unified
        .as_ref()
        .ok_or("no cgroup2 mount to filter the run's tasks by")?;
    let group = parent.dir_in(unified);
    std::fs::create_dir_all(&group)
        .map_err(|e| format!("cannot make cgroup `{}': {e}", group.display()))?;
    RunTracer::start(&group)
}

/// The run's delays: its tasks' exit records (the tracer knows which tasks were the run's).
fn run_delays(
    exits: Result<ExitListener, String>,
    events: &Result<RunEvents, String>,
    delay_accounting: bool,
) -> Result<Delays, String> {
    if !delay_accounting {
        return Err(
            "delay accounting is off (sysctl -w kernel.task_delayacct=1 turns it on)".to_owned(),
        );
    }
    let exits = exits.map_err(|e| format!("no taskstats exit records: {e}"))?;
    let events = events
        .as_ref()
        .map_err(|e| format!("the run's tasks are told by eBPF, which is unavailable: {e}"))?;
    Ok(taskstats::sum_of(&exits.drain(), &events.exited))
}

/// Stacks and frames of the D-state time shown in the text report (JSON has them all).
const DSTATE_STACKS_SHOWN: usize = 3;
const DSTATE_FRAMES_SHOWN: usize = 6;

/// The frames that say what a task in D state waited for: the scheduler's own come first.
fn waiting_frames(stack: &[String]) -> impl Iterator<Item = &String> {
    stack
        .iter()
        .skip_while(|f| matches!(base_name(f), "__schedule" | "schedule"))
        .take(DSTATE_FRAMES_SHOWN)
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

fn or_unknown<T>(value: Option<T>, show: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "not available".to_owned(), show)
}

/// The report for people.
pub fn show(diagnosis: &Diagnosis) -> String {
    let report = &diagnosis.report;
    let sample = &diagnosis.sample;
    let mut out = String::new();
    let mut line = |label: &str, text: String| {
        let _ = writeln!(out, "{label:<14}{text}");
    };
    line("command", diagnosis.command.join(" "));
    line("ended", format!("{:?}", report.termination));
    line(
        "time",
        format!(
            "wall {}, CPU {} (user {}, system {}), wall − CPU {}, setup {}",
            ms(report.wall_time),
            ms(report.cpu_time),
            ms(report.user_time),
            ms(report.sys_time),
            ms(report.wall_time.saturating_sub(report.cpu_time)),
            ms(report.setup_time)
        ),
    );
    line(
        "run stalls",
        or_unknown(sample.stalls, |p| {
            format!(
                "waiting for a CPU {}, for IO {}, in memory reclaim {} (PSI some)",
                ms(p.cpu),
                ms(p.io),
                ms(p.memory)
            )
        }),
    );
    line(
        "memory",
        format!(
            "peak {} KiB, {}",
            report.memory_bytes / 1024,
            or_unknown(sample.memory, |m| format!(
                "{} major faults, {} file refaults",
                m.major_faults, m.file_refaults
            ))
        ),
    );
    line(
        "throttling",
        or_unknown(report.throttling, |t| {
            format!(
                "{} of {} periods, {}",
                t.throttled_periods,
                t.periods,
                ms(t.throttled_time)
            )
        }),
    );
    let before = &diagnosis.host_before;
    let after = &diagnosis.host_after;
    line(
        "host",
        format!(
            "over {}: pressure {}; mqueue inodes {}; dying cgroups {}",
            ms(diagnosis.window),
            or_unknown(before.pressure.zip(after.pressure), |(b, a)| {
                let p = a.since(&b);
                format!(
                    "CPU {}, IO {}, memory {}",
                    ms(p.cpu),
                    ms(p.io),
                    ms(p.memory)
                )
            }),
            or_unknown(before.mqueue_inodes.zip(after.mqueue_inodes), |(b, a)| {
                format!("{b} → {a}")
            }),
            or_unknown(before.dying_cgroups.zip(after.dying_cgroups), |(b, a)| {
                format!("{b} → {a}")
            }),
        ),
    );
    match (&diagnosis.dstate, &diagnosis.dstate_unavailable) {
        (Some(dstate), _) => {
            let by_stack = if dstate.stacks.is_empty() {
                ""
            } else {
                ", by stack:"
            };
            line(
                "D state",
                format!(
                    "{} in {} sleeps{by_stack}",
                    ms(Duration::from_nanos(dstate.total_ns)),
                    dstate.count
                ),
            );
            for stack in dstate.stacks.iter().take(DSTATE_STACKS_SHOWN) {
                let frames: Vec<&str> = waiting_frames(&stack.stack).map(String::as_str).collect();
                let took = ms(Duration::from_nanos(stack.sleeps.total_ns));
                line(
                    "",
                    format!("  {took} in {}: {}", stack.sleeps.count, frames.join(" < ")),
                );
            }
        }
        (None, reason) => line(
            "D state",
            format!("not measured ({})", reason.as_deref().unwrap_or("no eBPF")),
        ),
    }
    let delay = |ns: u64, count: u64| format!("{} ({count})", ms(Duration::from_nanos(ns)));
    line(
        "delays",
        match (&diagnosis.delays, &diagnosis.delays_unavailable) {
            (Some(d), _) => format!(
                "block IO {}, swap-in {}, reclaim {}, thrashing {} over {} tasks (taskstats)",
                delay(d.blkio_delay_ns, d.blkio_count),
                delay(d.swapin_delay_ns, d.swapin_count),
                delay(d.freepages_delay_ns, d.freepages_count),
                delay(d.thrashing_delay_ns, d.thrashing_count),
                d.tasks
            ),
            (None, reason) => format!(
                "not measured ({})",
                reason.as_deref().unwrap_or("no taskstats")
            ),
        },
    );
    if diagnosis.findings.is_empty() {
        out.push_str("findings      none\n");
    }
    for finding in &diagnosis.findings {
        let _ = writeln!(out, "\n{}: {}", finding.kind.name(), finding.summary);
        let evidence: Vec<String> = finding
            .evidence
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        let _ = writeln!(out, "  evidence: {}", evidence.join(" "));
        let _ = writeln!(out, "  remedy:   {}", finding.remedy);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse_with_the_command_after_the_double_dash() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "judged",
            "diagnose",
            "--memsize",
            "65536",
            "--cpuset",
            "0",
            "--cpu-quota",
            "0.5",
            "--json",
            "--",
            "/bin/sh",
            "-c",
            "true",
        ])
        .unwrap();
        let crate::cli::Command::Diagnose(args) = cli.command else {
            panic!("not parsed as diagnose");
        };
        assert_eq!(args.memsize, Some(65536));
        assert_eq!(args.cpuset.as_deref(), Some("0"));
        assert_eq!(args.cpu_quota, Some(0.5));
        assert!(args.json);
        assert_eq!(args.command, ["/bin/sh", "-c", "true"]);
        let no_command = crate::cli::Cli::try_parse_from(["judged", "diagnose", "--json"]);
        assert!(no_command.is_err());
    }

    #[test]
    fn cpu_lists_count() {
        assert_eq!(count_cpus("0").unwrap(), 1);
        assert_eq!(count_cpus("0,2-3").unwrap(), 3);
        assert!(count_cpus("3-1").is_err());
        assert!(count_cpus("x")
            .unwrap_err()
            .to_string()
            .contains("--cpuset"));
    }

    #[test]
    fn memory_comes_from_v1_on_hybrid_and_from_cgroup2_on_v2() {
        let hybrid = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let mounts = CgroupMounts::from_mounts(&procfs::parse_mountinfo(hybrid));
        assert_eq!(mounts.memory, Some(("/sys/fs/cgroup/memory".into(), true)));
        assert_eq!(mounts.unified, Some("/sys/fs/cgroup/unified".into()));
        assert_eq!(mounts.all.len(), 2);
        let v2 = "25 24 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let mounts = CgroupMounts::from_mounts(&procfs::parse_mountinfo(v2));
        assert_eq!(mounts.memory, Some(("/sys/fs/cgroup".into(), false)));
    }
}
