//! runguard's clocks and time limits (runguard-compat.md, "Meta file" and "Where we
//! deliberately do better"): the timing windows of DOMjudge's own test, soft and hard limits on
//! both clocks, the exact hard CPU limit with one and with several threads, `setup-time`, and
//! what runguard does when it is signalled itself.
//!
//! The tests of this file run one at a time: each measures time, and two CPU burners on a
//! two-core machine would disturb each other's windows.

mod common;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::{program, require_root, Fixture};

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn sleep_one_second_reports_wall_time_1_00x() {
    if !require_root() {
        return;
    }
    let _serial = one_at_a_time();
    let fx = Fixture::new("time-sleep-1");
    let outcome = fx.runguard().args(["-t", "2"]).run(["/bin/sleep", "1"]);
    outcome.assert_exit(0);
    let meta = outcome.meta();
    let wall = meta.seconds("wall-time");
    println!("sleep 1: wall-time {wall:.3} s");
    // The clock starts at exec: none of our setup is billed (DOMjudge's test wants 1.0xx).
    // sleep's own start (exec, loading, libc) is its wall time too: ~1 ms here, but ~17 ms
    // of CPU under the VM lane's emulation, where a fixed 20 ms window flaked.
    let cpu = meta.seconds("cpu-time");
    assert!(
        (1.0..1.02 + cpu).contains(&wall),
        "wall-time {wall}{outcome}"
    );
    assert!(cpu < 0.05, "{outcome}");
    assert_eq!(meta.require("time-used"), "wall-time");
    assert_eq!(meta.require("time-result"), "");
    assert_eq!(
        meta.get("signal"),
        None,
        "signal only when runguard was signalled"
    );
}

#[test]
fn hard_wall_kill_reports_the_true_time() {
    if !require_root() {
        return;
    }
    let _serial = one_at_a_time();
    let fx = Fixture::new("time-wall-hard");
    let outcome = fx.runguard().args(["-t", "1:1.4"]).run(["/bin/sleep", "5"]);
    outcome.assert_ran();
    let meta = outcome.meta();
    let wall = meta.seconds("wall-time");
    println!(
        "hard wall limit 1.4 s: wall-time {wall:.3} s, runguard took {:?}",
        outcome.elapsed
    );
    assert!((1.4..=1.5).contains(&wall), "wall-time {wall}{outcome}");
    assert_eq!(meta.require("time-result"), "hard-timelimit");
    // runguard-compat: `signal: 14` when the hard wall limit fired (DOMjudge's SIGALRM).
    assert_eq!(meta.require("signal"), "14", "{outcome}");
    assert!(outcome.code() > 128, "killed, so 128 + signal{outcome}");
    assert!(outcome.elapsed < Duration::from_millis(2500), "{outcome}");
    fx.assert_clean();
}

#[test]
fn soft_wall_limit_marks_without_killing() {
    if !require_root() {
        return;
    }
    let _serial = one_at_a_time();
    let fx = Fixture::new("time-wall-soft");
    let outcome = fx.runguard().args(["-t", "0.5:3"]).run(["/bin/sleep", "1"]);
    outcome.assert_exit(0);
    let meta = outcome.meta();
    assert_eq!(meta.require("time-result"), "soft-timelimit");
    assert!(meta.seconds("wall-time") >= 1.0, "{outcome}");
}

#[test]
fn soft_cpu_limit_marks_without_killing() {
    if !require_root() {
        return;
    }
    let _serial = one_at_a_time();
    let fx = Fixture::new("time-cpu-soft");
    let spin = [program("spin").into_os_string(), "0.5".into(), "1".into()];
    let outcome = fx.runguard().args(["-C", "0.2:3"]).run(spin.clone());
    outcome.assert_exit(0);
    assert_eq!(outcome.meta().require("time-used"), "cpu-time");
    assert_eq!(outcome.meta().require("time-result"), "soft-timelimit");

    // The result reports the soft bits of the clock named by time-used only.
    let outcome = fx.runguard().args(["-C", "0.2:3", "-t", "10"]).run(spin);
    outcome.assert_exit(0);
    assert_eq!(outcome.meta().require("time-used"), "wall-time");
    assert_eq!(outcome.meta().require("time-result"), "", "{outcome}");
}

/// Burn CPU in `threads` threads under a hard CPU limit of `limit` seconds and check that the
/// run was killed within 50 ms of CPU time past it (the contract aims at a few milliseconds;
/// the printed overshoot shows how close it is).
fn assert_exact_hard_cpu_kill(label: &str, limit: f64, threads: &str) {
    let _serial = one_at_a_time();
    let fx = Fixture::new(label);
    let outcome = fx
        .runguard()
        .args(["-t", "10", "-C", &limit.to_string()])
        .run([program("spin").as_os_str(), "-1".as_ref(), threads.as_ref()]);
    outcome.assert_ran();
    let meta = outcome.meta();
    let cpu = meta.seconds("cpu-time");
    let overshoot = cpu - limit;
    println!("hard CPU limit {limit} s, {threads} thread(s): cpu-time {cpu:.3} s, overshoot {overshoot:+.3} s");
    assert_eq!(meta.require("time-result"), "hard-timelimit", "{outcome}");
    assert!(outcome.code() > 128, "{outcome}");
    assert!(
        overshoot >= -0.005,
        "killed before the limit: {overshoot}{outcome}"
    );
    assert!(
        overshoot < 0.05,
        "killed {overshoot} s past the limit{outcome}"
    );
    fx.assert_clean();
}

#[test]
fn hard_cpu_limit_kills_one_thread_just_past_the_limit() {
    if !require_root() {
        return;
    }
    assert_exact_hard_cpu_kill("time-cpu-hard-1", 0.5, "1");
}

#[test]
fn hard_cpu_limit_counts_all_threads_and_kills_just_past_the_limit() {
    if !require_root() {
        return;
    }
    assert_exact_hard_cpu_kill("time-cpu-hard-4", 1.0, "4");
}

#[test]
fn any_hard_limit_reports_hard_timelimit() {
    if !require_root() {
        return;
    }
    let _serial = one_at_a_time();
    let fx = Fixture::new("time-hard-any");
    // time-used is wall-time (-t last), but the CPU hard limit fired.
    let outcome = fx.runguard().args(["-C", "0.3", "-t", "10"]).run([
        program("spin").as_os_str(),
        "-1".as_ref(),
        "1".as_ref(),
    ]);
    outcome.assert_ran();
    assert_eq!(outcome.meta().require("time-used"), "wall-time");
    assert_eq!(
        outcome.meta().require("time-result"),
        "hard-timelimit",
        "{outcome}"
    );
    fx.assert_clean();
}

#[test]
fn setup_time_is_reported_apart_from_the_run() {
    if !require_root() {
        return;
    }
    let _serial = one_at_a_time();
    let fx = Fixture::new("time-setup");
    let outcome = fx
        .runguard()
        .json_file(fx.path("report.json"))
        .run(["/bin/true"]);
    outcome.assert_exit(0);
    let setup = outcome.meta().seconds("setup-time");
    println!("setup-time {setup:.4} s");
    assert!((0.0..1.0).contains(&setup), "setup-time {setup}{outcome}");
    let reported = outcome.report().setup_time.as_secs_f64();
    assert!(
        (reported - setup).abs() < 0.0015,
        "JSON {reported} vs meta {setup}"
    );
}

#[test]
fn sigterm_to_runguard_ends_the_run_and_reports_signal_15() {
    if !require_root() {
        return;
    }
    let _serial = one_at_a_time();
    let fx = Fixture::new("time-sigterm");
    let running = fx.runguard().args(["-t", "20"]).spawn(["/bin/sleep", "10"]);
    std::thread::sleep(Duration::from_millis(500));
    kill(Pid::from_raw(running.pid()), Signal::SIGTERM).expect("signalling runguard");
    let outcome = running.finish();
    assert!(outcome.elapsed < Duration::from_secs(3), "{outcome}");
    assert_eq!(outcome.meta().require("signal"), "15", "{outcome}");
    assert_eq!(outcome.meta().get("internal-error"), None, "{outcome}");
    assert!(outcome.code() > 128, "{outcome}");
    fx.assert_clean();
}

/// A stand-in for DOMjudge's runpipe: a process that SIGUSR1 kills (its default action).
fn runpipe_stand_in() -> std::process::Child {
    std::process::Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .expect("starting /bin/sleep")
}

/// Wait up to `timeout` for `child` to end; kill it if it does not.
fn wait_briefly(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("waiting for the stand-in") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn runpipe_pid_gets_sigusr1_on_a_hard_wall_kill_only() {
    if !require_root() {
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    let _serial = one_at_a_time();
    let fx = Fixture::new("time-runpipe");
    let config = common::fixture::config_file();

    // -U must be accepted right after the program name, before the other options.
    let mut runpipe = runpipe_stand_in();
    let outcome = common::Invocation::new(fx.dir())
        .args(["-U".to_string(), runpipe.id().to_string()])
        .args(fx.standard_args(config))
        .meta_file(fx.meta_path())
        .args(["-t", "0.3"])
        .run(["/bin/sleep", "5"]);
    outcome.assert_ran();
    assert_eq!(outcome.meta().require("time-result"), "hard-timelimit");
    let status = wait_briefly(&mut runpipe, Duration::from_secs(2));
    assert_eq!(
        status.and_then(|s| s.signal()),
        Some(Signal::SIGUSR1 as i32),
        "{outcome}"
    );

    // A run that ends by itself leaves the runpipe alone.
    let mut runpipe = runpipe_stand_in();
    let outcome = fx
        .runguard()
        .args(["--runpipepid".to_string(), runpipe.id().to_string()])
        .args(["-t", "5"])
        .run(["/bin/true"]);
    outcome.assert_exit(0);
    let status = wait_briefly(&mut runpipe, Duration::from_millis(300));
    assert_eq!(status, None, "runpipe signalled after a normal exit");
    fx.assert_clean();
}
