//! `judged watch`: the host watcher on its own. Every interval it reads what the eBPF programs
//! counted (workqueue latency per work function, lock contention with stacks, fork latency per
//! forking process with its resident set), the host's
//! readings without eBPF (dying cgroups, IPC namespace backlog, PSI), and prints them with the
//! window's findings. Without eBPF it says why once and prints the rest.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use crate::diagnostics::ebpf::Status;
use crate::diagnostics::events;
use crate::diagnostics::hostwatch::{HostReport, HostWatch};
use crate::diagnostics::psi::Woken;
use crate::diagnostics::thresholds::Thresholds;
use crate::diagnostics::Finding;

/// Work functions and lock waits shown per window in the text output.
const TOP_FUNCTIONS: usize = 10;
const TOP_LOCKS: usize = 5;
const TOP_FORKERS: usize = 5;
/// Frames shown per lock wait in the text output (JSON has them all).
const FRAMES_SHOWN: usize = 8;

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Seconds per window (fractions allowed).
    #[arg(long, short, default_value_t = 10.0, value_name = "SECS")]
    pub interval: f64,
    /// Stop after this many windows (default: until Ctrl-C or SIGTERM).
    #[arg(long, short, value_name = "N")]
    pub count: Option<u64>,
    /// One JSON object per window, one per line.
    #[arg(long)]
    pub json: bool,
    /// Thresholds file (default: the embedded profiles/diagnostics.toml).
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
}

pub const WATCH_HELP: &str = "\
Watches this host and prints, every interval, what may disturb the timing of runs:

  workqueue   kernel work items per work function (free_ipc frees IPC namespaces,
              css_killed_work_fn and css_release_work_fn tear down cgroups): items run,
              mean and longest wait for a worker (queue latency), time executing
  locks       kernel lock contention: total and longest wait per lock and waiting call
              stack, the stack symbolized from /proc/kallsyms
  forks       fork/clone calls that copy the caller's address space (not threads, vfork,
              posix_spawn) per calling process: count, mean and longest time from the
              syscall to the child copied, a log2 histogram, the caller's resident set
  host        removed cgroups not yet freed (cgroup2 nr_dying_descendants), IPC namespaces
              alive or waiting to be freed (mqueue inode slab), host PSI \"some\" stall in
              the window, and judged's own cgroup and its ancestors (a container's, a
              slice's) that their CFS quota throttled in the window
  psi         PSI triggers on /proc/pressure/{cpu,io,memory} and on the cgroup2 group of
              judged's runs (judged) where the host has it: the kernel wakes the watch the
              moment some task stalled psi_trigger_*_some_ms within psi_trigger_window_ms,
              so a spike shorter than a window is a host-pressure finding (resource, time)
              of the window it fired in; \"PSI triggers unavailable: REASON\" otherwise
  findings    ipc-ns-teardown, cgroup-lock-contention, workqueue-latency, slow-fork (from the eBPF
              counts), dying-cgroups, host-pressure (from the host readings and the PSI
              triggers), cfs-throttling (judged's own cgroup throttled); thresholds from
              profiles/diagnostics.toml [host] or --thresholds FILE

Examples:
  sudo judged watch                      a report every 10 s until Ctrl-C
  sudo judged watch -i 2 -c 1            one 2 s window
  sudo judged watch --json | jq .findings

eBPF: the workqueue and lock numbers come from BPF programs on the tracepoints
workqueue:workqueue_queue_work/execute_start/execute_end, lock:contention_begin/end and
syscalls:sys_enter_fork/clone/clone3 with sched:sched_process_fork,
compiled into judged at build time with clang (without clang at build time judged has none).
They need root. Where tracefs is not mounted, judged mounts it at /sys/kernel/tracing in a
mount namespace of its loading thread's own, which the host never sees and which goes once
the programs are attached. At start judged probes which attach types the kernel allows (tracepoint,
raw_tracepoint, tp_btf, kprobe, fentry) and prints one line on stderr saying which programs
run, which attach types work, and why anything does not: \"eBPF unavailable: REASON\" when
none runs (not root, built without clang, no BPF, a tracepoint record the programs do not
know); a second line says which PSI triggers are registered and why not the others. The host readings are printed either way. Each window's counts are reset after
reading. Ctrl-C, SIGTERM, SIGHUP or --count end the watch after detaching every program.

Output: a text report per window, or with --json one object per line: window_s, ebpf (the
status above), workqueue[] (function, count, latency_count, latency_total_ns, latency_max_ns,
exec_count, exec_total_ns, exec_max_ns; largest total latency first; null without eBPF),
locks[] (lock, kind, count, total_ns, max_ns, stack[]; largest total first, at most 50),
forks[] (pid, comm, count, total_ns, max_ns, histogram_log2_us[] (entry i: forks of 2^i to
2^(i+1) us), rss_kib at the window's end or null if it exited; longest fork first),
host (dying_cgroups, mqueue_inodes, pressure_some_ms {cpu, io, memory} in the window,
throttled_cgroups[] {group, periods, throttled_periods, throttled_ms}) and
findings[] (kind, summary, evidence, remedy).

Exit status:
  0  the watch ended (Ctrl-C, SIGTERM, SIGHUP, --count)
  2  bad command line or thresholds file";

/// One window as printed.
#[derive(Debug, Serialize)]
pub struct WindowReport<'a> {
    pub window_s: f64,
    pub ebpf: &'a Status,
    pub workqueue: Option<Vec<events::WorkFunction>>,
    pub locks: Option<Vec<events::LockWait>>,
    pub forks: Option<Vec<events::ForkCaller>>,
    pub host: HostReport,
    pub findings: Vec<Finding>,
}

/// Nanoseconds as milliseconds, unrounded (the text shows three decimals).
fn ns_ms(ns: u64) -> f64 {
    Duration::from_nanos(ns).as_secs_f64() * 1000.0
}

/// The text report of one window.
pub fn render(report: &WindowReport<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "== window of {:.1} s", report.window_s);
    match &report.workqueue {
        None => {}
        Some(functions) => {
            let _ = writeln!(
                out,
                "workqueue: {} work functions ran, by total queue latency:",
                functions.len()
            );
            if !functions.is_empty() {
                let _ = writeln!(
                    out,
                    "  {:<32} {:>7} {:>9} {:>9} {:>10}",
                    "FUNCTION", "ITEMS", "MEAN ms", "MAX ms", "EXEC ms"
                );
            }
            for f in functions.iter().take(TOP_FUNCTIONS) {
                let _ = writeln!(
                    out,
                    "  {:<32} {:>7} {:>9.3} {:>9.3} {:>10.3}",
                    f.function,
                    f.count,
                    ns_ms(f.latency_mean_ns()),
                    ns_ms(f.latency_max_ns),
                    ns_ms(f.exec_total_ns)
                );
            }
        }
    }
    section(
        &mut out,
        report.locks.as_deref(),
        "lock contention",
        "by total wait",
        |out, locks| {
            for wait in locks.iter().take(TOP_LOCKS) {
                let _ = writeln!(
                    out,
                    "  {:.3} ms in {} waits (longest {:.3} ms) for {} {}",
                    ns_ms(wait.total_ns),
                    wait.count,
                    ns_ms(wait.max_ns),
                    wait.kind,
                    wait.lock
                );
                for frame in wait.stack.iter().take(FRAMES_SHOWN) {
                    let _ = writeln!(out, "      {frame}");
                }
                if wait.stack.len() > FRAMES_SHOWN {
                    let _ = writeln!(out, "      ...");
                }
            }
        },
    );
    section(
        &mut out,
        report.forks.as_deref(),
        "forks",
        "by longest fork",
        |out, forks| {
            let _ = writeln!(
                out,
                "  {:<8} {:<16} {:>7} {:>9} {:>9} {:>10}",
                "PID", "COMM", "FORKS", "MEAN ms", "MAX ms", "RSS MiB"
            );
            for f in forks.iter().take(TOP_FORKERS) {
                let rss = f
                    .rss_kib
                    .map_or_else(|| "exited".to_owned(), |kib| format!("{}", kib / 1024));
                let _ = writeln!(
                    out,
                    "  {:<8} {:<16} {:>7} {:>9.3} {:>9.3} {:>10}",
                    f.pid,
                    f.comm,
                    f.forks.count,
                    ns_ms(f.forks.mean_ns()),
                    ns_ms(f.forks.max_ns),
                    rss
                );
            }
        },
    );
    let show = |value: Option<u64>| value.map_or_else(|| "?".to_owned(), |v| v.to_string());
    let _ = write!(
        out,
        "host: {} dying cgroups, {} mqueue inodes",
        show(report.host.dying_cgroups),
        show(report.host.mqueue_inodes)
    );
    match &report.host.pressure_some_ms {
        Some(p) => {
            let _ = writeln!(
                out,
                "; PSI some: cpu {:.1} ms, io {:.1} ms, memory {:.1} ms",
                p.cpu, p.io, p.memory
            );
        }
        None => out.push_str("; no PSI\n"),
    }
    for group in &report.host.throttled_cgroups {
        let _ = writeln!(
            out,
            "throttled: {} by its CPU quota in {} of {} periods, {:.1} ms",
            group.group,
            group.throttled_periods,
            group.periods,
            group.throttled_time.as_secs_f64() * 1000.0
        );
    }
    if report.findings.is_empty() {
        out.push_str("findings: none\n");
    } else {
        out.push_str("findings:\n");
        for finding in &report.findings {
            let _ = writeln!(out, "  {}: {}", finding.kind.name(), finding.summary);
            let _ = writeln!(out, "    remedy: {}", finding.remedy);
        }
    }
    out
}

/// One section of the text report: nothing where its program does not run, `NAME: none`
/// when it counted nothing, else `NAME, ORDER:` and what `entries` writes.
fn section<T>(
    out: &mut String,
    items: Option<&[T]>,
    name: &str,
    order: &str,
    entries: impl Fn(&mut String, &[T]),
) {
    match items {
        None => {}
        Some([]) => {
            let _ = writeln!(out, "{name}: none");
        }
        Some(items) => {
            let _ = writeln!(out, "{name}, {order}:");
            entries(out, items);
        }
    }
}

/// Wait until `deadline` (the PSI triggers noted meanwhile); false when a stop signal
/// (SIGINT, SIGTERM, SIGHUP: [`crate::interrupt`]) came first, even while starting: the loop
/// ends and everything is detached on the way out.
fn wait_until(watch: &mut HostWatch, deadline: Instant) -> bool {
    loop {
        if crate::interrupt::received().is_some() {
            return false;
        }
        if let Woken::Deadline = watch.wait(deadline, crate::interrupt::wake_fd()) {
            return true;
        }
    }
}

pub fn execute(args: WatchArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(
        args.interval.is_finite() && args.interval >= 0.1,
        "--interval must be at least 0.1 seconds, not {}",
        args.interval
    );
    let thresholds = match &args.thresholds {
        Some(path) => Thresholds::load(path)?,
        None => Thresholds::default(),
    };
    let interval = Duration::from_secs_f64(args.interval);
    let mut watch = HostWatch::start(thresholds.host);
    eprintln!("judged watch: {}", watch.status().describe());
    eprintln!("judged watch: {}", watch.psi_status().describe());
    if watch.lacks_symbols() {
        eprintln!("judged watch: /proc/kallsyms shows no addresses: kernel addresses stay hex");
    }
    let mut windows = 0;
    while args.count.is_none_or(|count| windows < count) {
        if !wait_until(&mut watch, Instant::now() + interval) {
            break;
        }
        let window = watch.close();
        let report = WindowReport {
            window_s: (window.length().as_secs_f64() * 1000.0).round() / 1000.0,
            ebpf: watch.status(),
            findings: window.findings,
            workqueue: window.events.workqueue,
            locks: window.events.locks,
            forks: window.events.forks,
            host: window.host,
        };
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{}", render(&report));
        }
        windows += 1;
    }
    // Detach every program before exiting.
    drop(watch);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::events::{LockWait, WorkFunction};
    use crate::diagnostics::hostwatch::PressureMs;

    #[test]
    fn a_window_renders_as_text() {
        let status = Status::default();
        let report = WindowReport {
            window_s: 2.0,
            ebpf: &status,
            workqueue: Some(vec![WorkFunction {
                function: "free_ipc".to_owned(),
                count: 200,
                latency_count: 200,
                latency_total_ns: 2_000_000,
                latency_max_ns: 50_000,
                exec_count: 200,
                exec_total_ns: 8_000_000,
                exec_max_ns: 100_000,
            }]),
            locks: Some(vec![LockWait {
                lock: "0xffff888003a1c000".to_owned(),
                kind: "mutex".to_owned(),
                count: 3,
                total_ns: 1_500_000,
                max_ns: 900_000,
                stack: vec![
                    "__mutex_lock+0x7b".to_owned(),
                    "cgroup_mkdir+0x2e".to_owned(),
                ],
            }]),
            forks: Some(vec![events::ForkCaller {
                pid: 4242,
                comm: "forkstorm".to_owned(),
                rss_kib: Some(3_145_728),
                forks: events::Totals {
                    count: 9,
                    total_ns: 1_062_000_000,
                    max_ns: 194_370_000,
                },
                histogram_log2_us: vec![],
            }]),
            host: HostReport {
                dying_cgroups: Some(3),
                mqueue_inodes: None,
                pressure_some_ms: Some(PressureMs::default()),
                throttled_cgroups: vec![],
            },
            findings: vec![],
        };
        let text = render(&report);
        assert!(text.contains("free_ipc"), "{text}");
        assert!(text.contains("0.010"), "mean latency: {text}");
        assert!(
            text.contains("1.500 ms in 3 waits (longest 0.900 ms) for mutex"),
            "{text}"
        );
        assert!(text.contains("      cgroup_mkdir+0x2e"), "{text}");
        assert!(
            text.contains("4242     forkstorm              9   118.000   194.370       3072"),
            "{text}"
        );
        assert!(
            text.contains("host: 3 dying cgroups, ? mqueue inodes"),
            "{text}"
        );
        assert!(text.ends_with("findings: none\n"), "{text}");
    }
}
