//! The cgroup layer against the real kernel: needs root and a cgroupfs. Skips out loud when it
//! cannot run, and fails instead when `CI=true`.
//!
//! Each test uses its own parent group `judged-test-<pid>-<test>` (under `$JUDGED_CGROUP` when
//! set, as on a pure v2 judgehost) and removes it at the end, checking that nothing is left. Only single-process children are used: an orphaned grandchild
//! would be reparented to a pid 1 that, on our machines, never reaps it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use runner::cgroup::{CgroupLimits, Hierarchies, Layout, RunCgroup};
use runner::plan::CpuBandwidth;

const MIB: u64 = 1 << 20;

/// The host's hierarchies, or `None` after printing why the test cannot run here.
fn privileged() -> Option<Hierarchies> {
    let found = if !nix::unistd::geteuid().is_root() {
        Err("not root".to_owned())
    } else {
        Hierarchies::detect().map_err(|err| format!("no usable cgroupfs: {err}"))
    };
    match found {
        Ok(hierarchies) => Some(hierarchies),
        Err(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("cannot run a privileged cgroup test: {reason} (CI=true: a skip is a failure)")
        }
        Err(reason) => {
            eprintln!("skipping: {reason}");
            None
        }
    }
}

/// The same host seen without its cgroup2 mount: a pure v1 host (if it has v1 controllers).
fn as_pure_v1() -> Option<Hierarchies> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let without_cgroup2: String = mountinfo
        .lines()
        .filter(|line| !line.contains(" - cgroup2 "))
        .map(|line| format!("{line}\n"))
        .collect();
    Hierarchies::from_mountinfo(&without_cgroup2, Path::new("/")).ok()
}

fn parent_for(test: &str) -> PathBuf {
    common::cgroupfs::host_test_parent(&format!("judged-test-{}-{test}", std::process::id()))
}

fn sleeper() -> Child {
    Command::new("sleep").arg("5").spawn().expect("spawn sleep")
}

/// Poll `condition` for up to 5 s.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kill, reap, remove the run, then its parent groups; assert nothing is left.
fn tear_down(run: RunCgroup, mut child: Child) {
    run.kill_all().unwrap();
    assert_eq!(
        run.pids().unwrap(),
        Vec::<i32>::new(),
        "processes left after kill_all"
    );
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let dirs: Vec<PathBuf> = run.dirs().map(Path::to_path_buf).collect();
    run.remove().unwrap();
    for dir in dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
        let parent = dir.parent().unwrap();
        std::fs::remove_dir(parent).unwrap();
        assert!(!parent.exists(), "{} left behind", parent.display());
    }
}

/// The kernel's view of the limits, in whichever files this host's layout uses.
fn assert_limits_written(run: &RunCgroup, memory: u64, pids: u64) {
    let read = |file: &str| {
        let dir = run.dirs().find(|dir| dir.join(file).exists());
        let dir = dir.unwrap_or_else(|| panic!("no group of the run has {file}"));
        std::fs::read_to_string(dir.join(file))
            .unwrap()
            .trim()
            .to_owned()
    };
    if run.dirs().any(|dir| dir.join("memory.max").exists()) {
        assert_eq!(read("memory.max"), memory.to_string());
        assert_eq!(read("memory.swap.max"), "0");
    } else {
        assert_eq!(read("memory.limit_in_bytes"), memory.to_string());
        assert_eq!(read("memory.memsw.limit_in_bytes"), memory.to_string());
    }
    assert_eq!(read("pids.max"), pids.to_string());
}

fn in_groups_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap()
}

#[test]
fn run_with_all_limits_on_this_host() {
    let Some(hierarchies) = privileged() else {
        return;
    };
    let parent = parent_for("limits");
    let limits = CgroupLimits {
        memory_bytes: Some(64 * MIB),
        pids: Some(8),
        cpuset: Some("0".into()),
        cpuset_mems: Some("0".into()),
        cpu_bandwidth: Some(CpuBandwidth {
            quota_us: 50_000,
            period_us: 100_000,
        }),
    };
    let run = RunCgroup::create(&hierarchies, &parent, "run", &limits).unwrap();
    assert_eq!(
        run.clone_into_fd().is_some(),
        hierarchies.layout() != Layout::V1
    );

    // A shell that burns some CPU after joining, then execs sleep (new memory, charged here).
    let child = Command::new("sh")
        .args([
            "-c",
            "sleep 0.1; i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; exec sleep 5",
        ])
        .spawn()
        .unwrap();
    run.attach(child.id() as i32, false).unwrap();
    // The shell may already have forked its `sleep 0.1` into the group: that one may be listed
    // beside it, nothing else.
    let pids = run.pids().unwrap();
    assert!(pids.contains(&(child.id() as i32)), "{pids:?}");
    assert!(pids.len() <= 2, "{pids:?}");
    assert_limits_written(&run, 64 * MIB, 8);
    let quota = |file: &str| {
        run.dirs()
            .map(|dir| dir.join(file))
            .find(|path| path.exists())
            .map(|path| std::fs::read_to_string(path).unwrap().trim().to_owned())
    };
    match quota("cpu.max") {
        Some(max) => assert_eq!(max, "50000 100000"),
        None => assert_eq!(quota("cpu.cfs_quota_us").as_deref(), Some("50000")),
    }
    let groups = in_groups_of(child.id());
    assert!(
        groups.contains(&format!("{}/run", parent.display())),
        "{groups}"
    );

    eventually("CPU time to be counted", || {
        run.cpu_time().unwrap() > Duration::from_millis(10)
    });
    eventually("memory to be charged", || {
        run.usage().unwrap().memory_peak_bytes > 0
    });
    let usage = run.usage().unwrap();
    assert!(usage.cpu_total > Duration::from_millis(10), "{usage:?}");
    assert!(
        usage.cpu_user + usage.cpu_system > Duration::ZERO,
        "{usage:?}"
    );
    assert_eq!(usage.oom_kills, 0);
    tear_down(run, child);
}

#[test]
fn pure_v1_path_with_cpuacct_and_freezer() {
    let Some(_) = privileged() else {
        return;
    };
    let Some(hierarchies) = as_pure_v1().filter(|h| h.layout() == Layout::V1) else {
        eprintln!("skipping: this host has no v1 memory controller to test the v1 path with");
        return;
    };
    let parent = parent_for("v1");
    let limits = CgroupLimits {
        memory_bytes: Some(64 * MIB),
        pids: Some(8),
        cpuset: None,
        cpuset_mems: None,
        cpu_bandwidth: None,
    };
    let run = RunCgroup::create(&hierarchies, &parent, "run", &limits).unwrap();
    assert!(run.clone_into_fd().is_none());
    assert_limits_written(&run, 64 * MIB, 8);
    let child = sleeper();
    run.attach(child.id() as i32, false).unwrap();
    // The shell may already have forked its `sleep 0.1` into the group: that one may be listed
    // beside it, nothing else.
    let pids = run.pids().unwrap();
    assert!(pids.contains(&(child.id() as i32)), "{pids:?}");
    assert!(pids.len() <= 2, "{pids:?}");
    let usage = run.usage().unwrap();
    assert_eq!(usage.cpu_user + usage.cpu_system, usage.cpu_total);
    tear_down(run, child);
}

/// Prints what create + attach + remove costs here (run with `--nocapture` to see it).
#[test]
fn create_attach_remove_leaves_nothing_over_many_runs() {
    let Some(hierarchies) = privileged() else {
        return;
    };
    let parent = parent_for("churn");
    let limits = CgroupLimits {
        memory_bytes: Some(64 * MIB),
        pids: Some(8),
        cpuset: None,
        cpuset_mems: None,
        cpu_bandwidth: None,
    };
    const RUNS: u32 = 30;
    let (mut create, mut attach, mut remove) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut last_dirs = Vec::new();
    for i in 0..RUNS {
        let mut child = sleeper();
        let start = Instant::now();
        let run = RunCgroup::create(&hierarchies, &parent, &format!("run{i}"), &limits).unwrap();
        create += start.elapsed();
        let start = Instant::now();
        run.attach(child.id() as i32, false).unwrap();
        attach += start.elapsed();
        run.kill_all().unwrap();
        child.wait().unwrap();
        last_dirs = run.dirs().map(Path::to_path_buf).collect();
        let start = Instant::now();
        run.remove().unwrap();
        remove += start.elapsed();
        assert!(last_dirs.iter().all(|dir| !dir.exists()));
    }
    eprintln!(
        "{:?} layout, per run: create {:?}, attach {:?}, remove {:?}",
        hierarchies.layout(),
        create / RUNS,
        attach / RUNS,
        remove / RUNS
    );
    for dir in last_dirs {
        let parent = dir.parent().unwrap();
        std::fs::remove_dir(parent).unwrap();
        assert!(!parent.exists());
    }
}
