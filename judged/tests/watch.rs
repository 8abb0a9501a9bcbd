//! `judged watch` end to end with its eBPF programs. Needs root (BPF programs, tracefs);
//! skips out loud otherwise, and under `CI=true` a skip is a failure.
//!
//! While the watch runs, ~200 IPC namespaces are created and dropped (`unshare --ipc true`).
//! Kernels ≥ 6.3 free them in batches (one `free_ipc` work item frees every namespace dropped
//! since the last one ran, in about one RCU grace period), so the test asserts that free_ipc
//! items are counted and timed, not one item per namespace, and not a finding.
//!
//! Forks are timed per calling process: `testdata/kernel/forkstorm.c` from 3 GiB is
//! `slow-fork`, the same program from 10 MiB is counted and is not.

use std::io::{BufRead, BufReader, Read};
use std::process::{ChildStderr, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

#[allow(dead_code)]
mod common;
use common::{is_root, reproducer, skip};

/// One watch at a time: the last test checks that no program of ours is left loaded.
static SERIAL: Mutex<()> = Mutex::new(());

/// The watch tests' turn, or `None` (after a printed skip) where they cannot run.
fn serial_watch() -> Option<std::sync::MutexGuard<'static, ()>> {
    let turn = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    can_watch().then_some(turn)
}

fn can_watch() -> bool {
    if !is_root() {
        skip("judged watch needs root to load BPF programs");
        return false;
    }
    if Command::new("unshare").arg("--version").output().is_err() {
        skip("no unshare(1) to make IPC namespaces");
        return false;
    }
    true
}

/// `judged watch --json ARGS` started, once its programs are attached (or failed): it, its
/// stderr, and the status line read from it.
fn start_watch(args: &[&str]) -> (std::process::Child, BufReader<ChildStderr>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_judged"))
        .args(["watch", "--json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr_reader = BufReader::new(child.stderr.take().unwrap());
    let mut status = String::new();
    stderr_reader.read_line(&mut status).unwrap();
    (child, stderr_reader, status)
}

/// `judged watch --json ARGS` while `churn` namespaces are made; its lines and stderr.
fn watch(args: &[&str], churn: usize) -> (Vec<Value>, String) {
    let (child, mut stderr_reader, mut stderr) = start_watch(args);
    let started = Instant::now();
    for _ in 0..churn {
        let status = Command::new("unshare")
            .args(["--ipc", "true"])
            .status()
            .unwrap();
        assert!(status.success(), "unshare --ipc true: {status}");
        if started.elapsed() > Duration::from_millis(1500) {
            break;
        }
    }
    let output = child.wait_with_output().unwrap();
    stderr_reader.read_to_string(&mut stderr).unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "judged watch failed: {stderr}"
    );
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    (lines, stderr)
}

/// A child process killed (and reaped) when dropped, so that a failed assertion leaves
/// nothing running.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `forkstorm MIB 30` started, once it has touched its memory; its pid.
fn forkstorm(binary: &std::path::Path, mib: u32) -> (Killed, u32) {
    let mut child = Command::new(binary)
        .args([&mib.to_string(), "30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let pid = ready
        .strip_prefix("ready ")
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("forkstorm said {ready:?}"));
    (Killed(child), pid)
}

#[test]
fn forks_from_a_large_process_are_slow_fork_and_from_a_small_one_not() {
    let Some(_serial) = serial_watch() else {
        return;
    };
    let (_dir, binary) = reproducer("forkstorm", &[]);
    // Both fork until killed: alive at the window's end, when their resident sets are read.
    let (large, large_pid) = forkstorm(&binary, 3072);
    let (small, small_pid) = forkstorm(&binary, 10);
    let (watch, _stderr, status) = start_watch(&["--interval", "2", "--count", "1"]);
    assert!(status.contains("fork yes"), "{status}");
    let output = watch.wait_with_output().unwrap();
    drop((large, small));
    assert_eq!(output.status.code(), Some(0), "judged watch failed");
    let line: Value = serde_json::from_slice(&output.stdout).unwrap();
    let forks = line["forks"].as_array().expect("fork counts");
    let caller = |pid: u32| {
        forks
            .iter()
            .find(|f| f["pid"] == pid)
            .unwrap_or_else(|| panic!("no forks counted for {pid}: {forks:#?}"))
    };
    let mean_ms = |f: &Value| f["total_ns"].as_f64().unwrap() / f["count"].as_f64().unwrap() / 1e6;
    let (large_forks, small_forks) = (caller(large_pid), caller(small_pid));
    eprintln!(
        "fork mean: {:.3} ms from 3 GiB ({} forks), {:.3} ms from 10 MiB ({} forks)",
        mean_ms(large_forks),
        large_forks["count"],
        mean_ms(small_forks),
        small_forks["count"]
    );
    assert!(
        large_forks["rss_kib"].as_u64().unwrap() >= 3 << 20,
        "{large_forks}"
    );
    let slow: Vec<&Value> = line["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "slow-fork")
        .collect();
    assert_eq!(slow.len(), 1, "one slow-fork finding: {line:#}");
    let evidence = &slow[0]["evidence"];
    assert_eq!(evidence["pid"], large_pid, "{line:#}");
    assert!(
        evidence["rss_mib"].as_f64().unwrap() >= 3072.0,
        "{evidence}"
    );
    let others = evidence["other_slow_callers"].as_array().unwrap();
    assert!(
        !others
            .iter()
            .any(|o| o.as_str().unwrap().contains(&format!("({small_pid})"))),
        "the small process is called slow: {evidence}"
    );
}

fn programs_run(line: &Value) -> bool {
    line["ebpf"]["unavailable"].is_null()
}

#[test]
fn free_ipc_work_items_are_counted_while_namespaces_churn() {
    let Some(_serial) = serial_watch() else {
        return;
    };
    let (lines, stderr) = watch(&["--interval", "1", "--count", "2"], 200);
    assert_eq!(lines.len(), 2, "one line per window: {stderr}");
    assert!(programs_run(&lines[0]), "eBPF unavailable: {stderr}");
    assert!(stderr.contains("workqueue yes"), "{stderr}");
    let free_ipc: Vec<&Value> = lines
        .iter()
        .flat_map(|line| line["workqueue"].as_array().expect("workqueue counts"))
        .filter(|f| f["function"] == "free_ipc")
        .collect();
    let items: u64 = free_ipc.iter().map(|f| f["count"].as_u64().unwrap()).sum();
    let exec_ns: u64 = free_ipc
        .iter()
        .map(|f| f["exec_total_ns"].as_u64().unwrap())
        .sum();
    assert!(items >= 1, "no free_ipc items counted: {lines:#?}");
    assert!(
        exec_ns > 0,
        "free_ipc items without execution time: {free_ipc:#?}"
    );
    for line in &lines {
        for key in ["window_s", "host", "findings", "locks"] {
            assert!(!line[key].is_null(), "no {key}: {line}");
        }
    }
}

#[test]
fn lock_contention_is_a_list_with_stacks() {
    let Some(_serial) = serial_watch() else {
        return;
    };
    let (lines, stderr) = watch(&["--interval", "1", "--count", "1"], 50);
    assert!(programs_run(&lines[0]), "eBPF unavailable: {stderr}");
    let locks = lines[0]["locks"].as_array().expect("a list of lock waits");
    for wait in locks {
        for key in ["lock", "kind", "count", "total_ns", "max_ns", "stack"] {
            assert!(!wait[key].is_null(), "lock wait without {key}: {wait}");
        }
        assert!(wait["count"].as_u64().unwrap() >= 1);
    }
}

#[test]
fn each_stop_signal_ends_the_watch_and_detaches() {
    use nix::sys::signal::Signal;
    let Some(_serial) = serial_watch() else {
        return;
    };
    // SIGHUP after 0.2 s: while it starts (attaches), when a signal must wait for it.
    for (signal, after) in [
        (Signal::SIGINT, 1500),
        (Signal::SIGTERM, 1500),
        (Signal::SIGHUP, 200),
    ] {
        end_watch_with(signal, Duration::from_millis(after));
    }
}

fn end_watch_with(signal: nix::sys::signal::Signal, after: Duration) {
    let child = Command::new(env!("CARGO_BIN_EXE_judged"))
        .args(["watch", "--interval", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, signal).unwrap();
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{signal} did not end it"
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{signal}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Its programs are gone: no BPF program of ours is attached any more.
    let attached = Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        !attached.contains("workqueue_execute_start")
            && !attached.contains("contention_begin")
            && !attached.contains("sched_process_fork"),
        "programs still loaded after exit: {attached}"
    );
}

/// judged mounts a missing tracefs only in its loading thread's own mount namespace: the
/// namespace it was started in never shows it, neither while the programs are attached nor
/// after a watch killed with SIGKILL at any moment of its start (a mount of its own there
/// would stay for good).
#[test]
fn tracefs_mounted_when_missing_is_never_seen_outside_not_even_after_a_kill() {
    let Some(_serial) = serial_watch() else {
        return;
    };
    // In a private mount namespace of its own, so the host's tracefs is never touched.
    let script = format!(
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing 2>/dev/null; \
         judged={judged}; \
         for delay in 0.02 0.05 0.1 0.2 0.4; do \
           $judged watch --interval 0.3 --count 1 >/dev/null 2>&1 & killed=$!; \
           sleep $delay; kill -9 $killed; wait $killed; \
           if grep -q tracefs /proc/self/mountinfo; then \
             echo \"tracefs left by a watch killed after $delay s\" >&2; exit 1; fi; \
         done; \
         $judged watch --json --interval 0.3 --count 1 & watch=$!; \
         while [ \"$(cut -d' ' -f3 /proc/$watch/stat 2>/dev/null)\" = S ] || \
               [ \"$(cut -d' ' -f3 /proc/$watch/stat 2>/dev/null)\" = R ]; do \
           if grep -q tracefs /proc/self/mountinfo; then \
             echo 'tracefs seen while the watch ran' >&2; exit 1; fi; \
           sleep 0.01; \
         done; \
         wait $watch || exit 1; \
         ! grep -q tracefs /proc/self/mountinfo",
        judged = env!("CARGO_BIN_EXE_judged")
    );
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "tracefs left mounted or watch failed: {stderr}"
    );
    let line: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(programs_run(&line), "{stderr}");
    assert_eq!(line["ebpf"]["mounted_tracefs"], true, "{line}");
}

/// A cgroup with a CFS quota of half a CPU (v1 `cpu` hierarchy, else cgroup2 with the cpu
/// controller), removed when dropped once its processes are gone.
struct QuotaGroup(std::path::PathBuf);

impl QuotaGroup {
    fn make() -> Option<QuotaGroup> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let point = |line: &str| line.split_whitespace().nth(4).map(std::path::PathBuf::from);
        let v1 = mountinfo.lines().find(|line| {
            line.split(" - ").nth(1).is_some_and(|fs| {
                fs.starts_with("cgroup ") && fs.split([' ', ',']).any(|option| option == "cpu")
            })
        });
        let name = format!("judged-test-throttle-{}", std::process::id());
        if let Some(mount) = v1.and_then(point) {
            let dir = mount.join(name);
            std::fs::create_dir(&dir).ok()?;
            std::fs::write(dir.join("cpu.cfs_period_us"), "100000").ok()?;
            std::fs::write(dir.join("cpu.cfs_quota_us"), "50000").ok()?;
            return Some(QuotaGroup(dir));
        }
        let v2 = mountinfo
            .lines()
            .find(|line| {
                line.split(" - ")
                    .nth(1)
                    .is_some_and(|fs| fs.starts_with("cgroup2 "))
            })
            .and_then(point)?;
        std::fs::write(v2.join("cgroup.subtree_control"), "+cpu").ok()?;
        let dir = v2.join(name);
        std::fs::create_dir(&dir).ok()?;
        std::fs::write(dir.join("cpu.max"), "50000 100000").ok()?;
        Some(QuotaGroup(dir))
    }

    /// `sh -c SCRIPT` started inside the group.
    fn spawn(&self, script: &str) -> std::process::Child {
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && {script}",
                self.0.display()
            ))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

impl Drop for QuotaGroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: cannot remove {}", self.0.display());
    }
}

#[test]
fn a_watch_in_a_cgroup_its_quota_throttles_says_cfs_throttling() {
    let Some(_serial) = serial_watch() else {
        return;
    };
    let Some(group) = QuotaGroup::make() else {
        skip("no cgroup with the cpu controller to put a CPU quota on");
        return;
    };
    // A busy loop spends the group's half CPU every period; the watch shares the group, as a
    // judgehost's processes share their container's quota.
    let burner = Killed(group.spawn("exec sh -c 'while :; do :; done'"));
    let watch = group.spawn(&format!(
        "exec {} watch --json --interval 1 --count 2",
        env!("CARGO_BIN_EXE_judged")
    ));
    let output = watch.wait_with_output().unwrap();
    drop(burner);
    assert_eq!(
        output.status.code(),
        Some(0),
        "judged watch failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let name = group.0.file_name().unwrap().to_string_lossy().into_owned();
    let windows: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let throttled = windows.iter().find(|window| {
        window["findings"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["kind"] == "cfs-throttling"))
    });
    let window = throttled.unwrap_or_else(|| panic!("no cfs-throttling finding: {windows:#?}"));
    let groups = window["host"]["throttled_cgroups"].as_array().unwrap();
    assert!(
        groups
            .iter()
            .any(|g| g["group"].as_str().is_some_and(|g| g.ends_with(&name))
                && g["throttled_periods"].as_u64() > Some(0)),
        "{groups:#?}"
    );
}
