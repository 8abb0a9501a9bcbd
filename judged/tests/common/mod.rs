//! What the judged integration tests share: privilege checks that skip out loud (and fail
//! under CI=true), and where the runguard binary is.

use std::path::{Path, PathBuf};

pub fn skip(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("skipping is a failure under CI=true: {reason}");
    }
    eprintln!("skipping: {reason}");
}

/// `JUDGED_RUNGUARD`, else the runguard built beside judged.
pub fn runguard() -> PathBuf {
    match std::env::var_os("JUDGED_RUNGUARD") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_BIN_EXE_judged")).with_file_name("runguard"),
    }
}

pub fn is_root() -> bool {
    // /proc/self belongs to our effective user.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// runguard, or why judging (of C submissions) cannot be tested here.
#[allow(dead_code)] // not every test binary judges
pub fn judging_prerequisites() -> Result<PathBuf, String> {
    if !is_root() {
        return Err("judging needs root (runguard switches users and makes cgroups)".into());
    }
    let runguard = runguard();
    if !runguard.is_file() {
        return Err(format!(
            "no runguard binary at `{}' (cargo build -p runner)",
            runguard.display()
        ));
    }
    if !Path::new("/usr/bin/gcc").is_file() {
        return Err("no /usr/bin/gcc for the C submissions (ci/setup installs it)".into());
    }
    Ok(runguard)
}

/// `testdata/kernel/NAME.c` built with gcc into a directory the run user can read (the
/// reproducers of kernel trouble: see testdata/kernel/README.md).
#[allow(dead_code)] // not every test binary runs reproducers
pub fn reproducer(name: &str, extra_flags: &[&str]) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("judged-reproducer-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/kernel")
        .join(format!("{name}.c"));
    let binary = dir.path().join(name);
    let built = std::process::Command::new("gcc")
        .args(["-O2", "-pthread"])
        .args(extra_flags)
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("gcc (ci/setup installs it)");
    assert!(
        built.status.success(),
        "gcc {}: {}",
        source.display(),
        String::from_utf8_lossy(&built.stderr)
    );
    (dir, binary)
}

/// `kernel.task_delayacct` turned on, and back to what it was when dropped.
#[allow(dead_code)] // not every test binary turns it on
pub struct DelayAccounting(String);

#[allow(dead_code)]
const TASK_DELAYACCT: &str = "/proc/sys/kernel/task_delayacct";

#[allow(dead_code)]
impl DelayAccounting {
    pub fn on() -> DelayAccounting {
        let was = std::fs::read_to_string(TASK_DELAYACCT).expect("a kernel with delay accounting");
        std::fs::write(TASK_DELAYACCT, "1").unwrap();
        DelayAccounting(was)
    }
}

impl Drop for DelayAccounting {
    fn drop(&mut self) {
        std::fs::write(TASK_DELAYACCT, self.0.trim()).unwrap();
    }
}

/// `run()` while another thread of this process writes and fsyncs a file outside any run's
/// cgroup: its waits for the disk are D state with fsync on the stack, which must not be
/// counted as a run's. Returns what `run` returned and how often the writer synced.
#[allow(dead_code)] // not every test binary needs it
pub fn while_syncing<T>(run: impl FnOnce() -> T) -> (T, u32) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let writer = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            use std::io::Write as _;
            let mut file = tempfile::tempfile_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            let started = std::time::Instant::now();
            let mut syncs = 0;
            while !done.load(Ordering::Relaxed)
                && started.elapsed() < std::time::Duration::from_secs(20)
            {
                file.write_all(&[7; 64 << 10]).unwrap();
                file.sync_all().unwrap();
                syncs += 1;
            }
            syncs
        })
    };
    let result = run();
    done.store(true, Ordering::Relaxed);
    (result, writer.join().unwrap())
}

/// Whether any of `stacks` (a JSON array of objects whose `stack` is an array of frames like
/// `name+0xoff`; null for none) has a frame that `wanted` picks.
#[allow(dead_code)] // not every test binary reads stacks
pub fn any_frame(stacks: &serde_json::Value, wanted: impl Fn(&str) -> bool) -> bool {
    stacks.as_array().into_iter().flatten().any(|stack| {
        stack["stack"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_str)
            .any(&wanted)
    })
}

/// `run()` with delay accounting on, restored after.
#[allow(dead_code)] // not every test binary turns it on
pub fn with_delay_accounting<T>(run: impl FnOnce() -> T) -> T {
    let _on = DelayAccounting::on();
    run()
}

/// That no stack of `stacks` is an fsync: [`while_syncing`]'s writer synced `syncs` times
/// outside the run, and its waits are not the run's. `shown`: what a failure prints.
#[allow(dead_code)] // not every test binary needs it
pub fn assert_no_fsync_of_others(
    stacks: &serde_json::Value,
    syncs: u32,
    shown: &serde_json::Value,
) {
    assert!(
        !any_frame(stacks, |frame| frame.contains("fsync")),
        "another process's fsync counted as the run's ({syncs} syncs): {shown:#}"
    );
}

/// `judged ARGS` with its output captured: its pid (its cgroups are named by it) and output.
#[allow(dead_code)] // not every test binary runs judged this way
pub fn judged_with_pid<I, S>(args: I) -> (u32, std::process::Output)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let child = spawn_judged(args);
    let pid = child.id();
    (pid, child.wait_with_output().expect("judged ends"))
}

/// `judged ARGS` started with its output piped.
#[allow(dead_code)] // not every test binary runs judged
fn spawn_judged<I, S>(args: I) -> std::process::Child
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    std::process::Command::new(env!("CARGO_BIN_EXE_judged"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("judged starts")
}

/// Whether cgroup directory `name` is one judged process `pid` made under `judged/`: its
/// diagnose parent (`diagnose-PID`) or a run lane (`judged-PID-LANE`).
#[allow(dead_code)] // not every test binary looks for cgroups
fn made_by(name: &str, pid: u32) -> bool {
    name == format!("diagnose-{pid}") || name.starts_with(&format!("judged-{pid}-"))
}

/// The cgroup directories of judged process `pid` left under `judged/` in any hierarchy.
#[allow(dead_code)] // not every test binary runs judged this way
pub fn groups_of(pid: u32) -> Vec<PathBuf> {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    hierarchies
        .flatten()
        .filter_map(|hierarchy| std::fs::read_dir(hierarchy.path().join("judged")).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|entry| entry.file_name().to_str().is_some_and(|n| made_by(n, pid)))
        .map(|entry| entry.path())
        .collect()
}

/// The processes living in a cgroup below one of judged process `pid`'s: its runs'.
#[allow(dead_code)] // not every test binary looks for processes
fn run_processes(pid: u32) -> Vec<u32> {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    processes
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|process| {
            std::fs::read_to_string(format!("/proc/{process}/cgroup")).is_ok_and(|groups| {
                groups
                    .lines()
                    .flat_map(|line| line.split('/'))
                    .any(|name| made_by(name, pid))
            })
        })
        .collect()
}

/// `judged ARGS` sent `signal` once a process of its runs is running, then waited for; its
/// output. Asserts that it ended within 20 s leaving nothing behind: no cgroup of it under
/// `*/judged/`, none of the processes its runs had.
#[allow(dead_code)] // not every test binary runs judged this way
pub fn stop_mid_run<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    signal: nix::sys::signal::Signal,
) -> std::process::Output {
    use std::time::{Duration, Instant};
    let mut child = spawn_judged(args);
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let running = loop {
        let running = run_processes(pid);
        if !running.is_empty() {
            break running;
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "judged ({}) ended or started no run: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let judged = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
    nix::sys::signal::kill(judged, signal).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("judged did not end within 20 s of {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let left: Vec<&u32> = running
        .iter()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        .collect();
    assert!(
        left.is_empty(),
        "processes of the runs left after {signal}: {left:?}"
    );
    let groups = groups_of(pid);
    assert!(groups.is_empty(), "cgroups left after {signal}: {groups:?}");
    output
}

/// Threads that keep every CPU busy and one more waiting (host CPU pressure) until dropped.
#[allow(dead_code)] // not every test binary puts the host under pressure
pub struct CpuPressure {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

#[allow(dead_code)]
impl CpuPressure {
    pub fn start() -> CpuPressure {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (0..=cpus)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        CpuPressure { stop, threads }
    }
}

impl Drop for CpuPressure {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A test case result (the daemon's or `judged run --json`'s) whose host findings hold a
/// `host-pressure`, each finding with the window it came from.
#[allow(dead_code)] // not every test binary watches the host
pub fn assert_host_pressure_with_windows(test: &serde_json::Value) {
    let found = test["host_findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no host_findings: {test:#}"));
    assert!(
        found
            .iter()
            .any(|h| h["finding"]["kind"] == "host-pressure"),
        "{test:#}"
    );
    for host_finding in found {
        let window = &host_finding["window"];
        assert!(window["window"].as_u64().unwrap() >= 1, "{host_finding}");
        assert!(
            window["monotonic_start_s"].as_f64() < window["monotonic_end_s"].as_f64(),
            "{host_finding}"
        );
    }
}
