//! `judged diagnose -- COMMAND`: one run through `runguard` with every per-run diagnostic,
//! then its report and findings.
//!
//! judged never forks a run itself: runguard does, under a cgroup parent of our own
//! (`judged/diagnose-<pid>` in every hierarchy). A parent's PSI and memory statistics include
//! its removed children, so after runguard has removed the run's cgroups the parent still
//! holds the run's stalls and refaults; we read them, then remove the parent. We make the
//! parent's cgroup2 directory ourselves before the run, as the one lane of a [`RunTracing`],
//! so that the eBPF D-state tracer can be pointed at it: it counts the tasks below it, in the
//! kernel. `judged run` and the daemon measure each test case run the same way.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use runner::report::Report;
use serde::Serialize;

use crate::diagnostics::code_files::{code_files, program_on_host};
use crate::diagnostics::host::{self, HostSample, KernelFacts};
use crate::diagnostics::kernel::{self, KernelVersion};
use crate::diagnostics::lanes::{ms, CgroupMounts, KernelRun, RunTracing};
use crate::diagnostics::procfs::{self, Pressure};
use crate::diagnostics::run::{self, MemoryActivity, RunSample};
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

Own code: with eBPF, the pages of COMMAND's executable, its ELF interpreter and the
libraries it needs (DT_NEEDED) that the kernel evicted from the page cache while it ran, and
those read in (filemap:mm_filemap_delete_from_page_cache and mm_filemap_add_to_page_cache,
counted for those files only): code_pages in JSON; past code_pages_evicted_min they make (or
add evidence to) a page-cache-thrash finding: the program was re-reading its own binary.

Workqueue, lock and fork latency are host-wide: judged watch.

Exit status:
  0  no finding
  1  at least one finding
  2  diagnose itself failed (bad command line, runguard failed)
  128+N  stopped by signal N (SIGTERM 143, SIGINT 130, SIGHUP 129): the run was stopped and
     its cgroups removed";

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
    /// D-state time and delays (`dstate`, `delays` and why not, in JSON).
    #[serde(flatten)]
    pub kernel: KernelRun,
    pub findings: Vec<Finding>,
}

/// The run's cgroup parent, diagnose's one lane: its PSI and memory statistics include the
/// run's removed groups.
struct DiagnoseParent<'a> {
    tracing: &'a RunTracing,
}

impl DiagnoseParent<'_> {
    fn stalls(&self) -> Option<Pressure> {
        let unified = self.tracing.mounts().unified.as_ref()?;
        Pressure::read_cgroup(&self.tracing.lane_dir(0, unified))
    }

    fn memory_activity(&self) -> Option<MemoryActivity> {
        let (mount, v1) = self.tracing.mounts().memory.as_ref()?;
        let stat =
            std::fs::read_to_string(self.tracing.lane_dir(0, mount).join("memory.stat")).ok()?;
        // A v1 group's own counters leave out its children; the `total_` ones include them.
        let prefix = if *v1 { "total_" } else { "" };
        let value = |key: &str| procfs::keyed_value(&stat, &format!("{prefix}{key}"));
        Some(MemoryActivity {
            major_faults: value("pgmajfault")?,
            file_refaults: value("workingset_refault_file")?,
        })
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
    let mounts = CgroupMounts::read().map_err(anyhow::Error::msg)?;
    let kernel = KernelFacts {
        version: KernelVersion::read(root),
        ipc_teardown: kernel::ipc_teardown(
            KernelVersion::read(root),
            std::fs::read_to_string("/proc/kallsyms").ok().as_deref(),
        ),
    };
    let relative = PathBuf::from(format!("judged/diagnose-{}", std::process::id()));
    if let Some(stale) = mounts
        .all
        .iter()
        .map(|m| m.join(&relative))
        .find(|d| d.exists())
    {
        anyhow::bail!(
            "cgroup `{}' exists already: remove it (rmdir) and retry",
            stale.display()
        );
    }
    let tracing = RunTracing::start(mounts, vec![relative]);
    let parent = DiagnoseParent { tracing: &tracing };

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
        .arg(tracing.lane_parent(0))
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

    let unified = tracing.mounts().unified.clone();
    let host_before = HostSample::read(root, unified.as_deref());
    let started = Instant::now();
    let code = args
        .command
        .first()
        .and_then(|command| {
            let here = std::env::current_dir().ok()?;
            program_on_host(command, &here, &here, runner::plan::DEFAULT_PATH)
        })
        .map(|program| code_files(Path::new("/"), &program))
        .unwrap_or_default();
    tracing.begin(0, &code);
    let output = crate::interrupt::output(&mut runguard_command);
    let kernel_run = tracing.finish(0);
    let output = output.with_context(|| format!("runguard `{}'", runguard.display()))?;
    // Stopped: runguard stopped the run and removed its groups; `tracing` and `scratch`
    // remove ours as they go.
    crate::interrupt::check()?;
    let window = started.elapsed();
    let host_after = HostSample::read(root, unified.as_deref());
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
    drop(tracing);
    let mut findings = run::classify(&sample, &thresholds.run);
    kernel_run.explain(&mut findings, &thresholds.run);
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
        kernel: kernel_run,
        findings,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&diagnosis)?);
    } else {
        print!("{}", show(&diagnosis));
    }
    Ok(u8::from(!diagnosis.findings.is_empty()))
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
    for (label, text) in diagnosis.kernel.show() {
        line(label, text);
    }
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
}
