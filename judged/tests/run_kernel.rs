//! The kernel's account of each test case run in `judged run --json`: D-state time per kernel
//! stack (eBPF, filtered to the run's lane) and, where delay accounting is on, taskstats
//! delays; and the host watcher's findings over the runs. Needs root, a built `runguard` and
//! gcc; skips out loud otherwise, and under `CI=true` a skip is a failure.

use std::ffi::OsStr;
use std::path::Path;

use serde_json::Value;

mod common;
use common::{
    any_frame, assert_host_pressure_with_windows, assert_no_fsync_of_others, judged_with_pid,
    judging_prerequisites, skip, while_syncing, with_delay_accounting, CpuPressure,
};

/// The tests here load the disk or the CPUs, or measure a run that the load would disturb: one
/// at a time.
static DISK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn disk_turn() -> std::sync::MutexGuard<'static, ()> {
    DISK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `judged run aplusb SUBMISSION --json --all --jobs 2 EXTRA...`, or `None` after a printed
/// skip. Checks that the lanes' cgroup directories are gone afterwards.
fn judge(submission: &str, extra: &[&str]) -> Option<Value> {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => {
            skip(&reason);
            return None;
        }
    };
    let aplusb = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/problems/aplusb");
    let scratch = tempfile::tempdir().unwrap();
    let source = aplusb.join("submissions").join(submission);
    let (pid, output) = judged_with_pid(
        [
            OsStr::new("run"),
            aplusb.as_os_str(),
            source.as_os_str(),
            OsStr::new("--json"),
            OsStr::new("--all"),
            OsStr::new("--jobs"),
            OsStr::new("2"),
            OsStr::new("--runguard"),
            runguard.as_os_str(),
            OsStr::new("--scratch"),
            scratch.path().as_os_str(),
        ]
        .into_iter()
        .chain(extra.iter().map(OsStr::new)),
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    for mount in [
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup",
    ] {
        for lane in 0..2 {
            let dir = Path::new(mount).join(format!("judged/judged-{pid}-{lane}"));
            assert!(!dir.exists(), "lane `{}' left behind", dir.display());
        }
    }
    Some(json)
}

/// Each test case's kernel part, after checking D state was measured.
fn kernels(json: &Value) -> Vec<&Value> {
    let tests = json["tests"].as_array().unwrap();
    assert!(!tests.is_empty(), "{json:#}");
    tests
        .iter()
        .map(|test| {
            let kernel = &test["kernel"];
            assert!(
                kernel["dstate_ms"].is_number(),
                "D state not measured: {}",
                kernel["dstate_unavailable"]
            );
            kernel
        })
        .collect()
}

#[test]
fn a_run_that_syncs_to_the_disk_shows_its_d_state_time_with_the_waiting_stack() {
    let _disk = disk_turn();
    let Some(json) = judge("fsync_writer.c", &[]) else {
        return;
    };
    assert_eq!(json["verdict"], "correct", "{json:#}");
    for kernel in kernels(&json) {
        let ms = kernel["dstate_ms"].as_f64().unwrap();
        assert!(ms > 0.0, "{kernel:#}");
        let stacks = kernel["dstate_top_stacks"].as_array().unwrap();
        eprintln!("D state {ms:.1} ms; top stack: {}", stacks[0]["stack"]);
        assert!(stacks.len() <= 3, "{kernel:#}");
        // fdatasync waits for the writeback it started (or the journal's commit).
        let syncing = |frame: &str| {
            ["sync", "writeback", "jbd2", "io_schedule", "folio"]
                .iter()
                .any(|name| frame.contains(name))
        };
        assert!(
            any_frame(&kernel["dstate_top_stacks"], syncing),
            "no sync or writeback wait among the top stacks: {kernel:#}"
        );
    }
}

#[test]
fn a_clean_cpu_bound_run_shows_next_to_no_d_state_while_the_host_syncs() {
    let _disk = disk_turn();
    let (json, syncs) = while_syncing(|| judge("correct.c", &[]));
    let Some(json) = json else {
        return;
    };
    assert!(syncs > 0, "the writer never synced");
    assert_eq!(json["verdict"], "correct", "{json:#}");
    for kernel in kernels(&json) {
        // At most a page of the program read back in, on a busy host.
        let ms = kernel["dstate_ms"].as_f64().unwrap();
        assert!(ms < 20.0, "{kernel:#}");
        assert_no_fsync_of_others(&kernel["dstate_top_stacks"], syncs, kernel);
        // The program's code, found in the run's working directory, was watched.
        let code = &kernel["code_pages"];
        assert!(code["files_watched"].as_u64() >= Some(1), "{kernel:#}");
    }
}

#[test]
fn a_run_that_syncs_to_the_disk_has_block_io_delays_where_delay_accounting_is_on() {
    let _disk = disk_turn();
    let json = with_delay_accounting(|| judge("fsync_writer.c", &[]));
    let Some(json) = json else {
        return;
    };
    for kernel in kernels(&json) {
        let delays = &kernel["delays"];
        assert!(
            delays.is_object(),
            "no delays: {}",
            kernel["delays_unavailable"]
        );
        // The run's one task, which waited for its writes to reach the disk.
        assert_eq!(delays["tasks"], 1, "{delays}");
        assert!(delays["blkio_delay_ns"].as_u64().unwrap() > 0, "{delays}");
    }
}

/// A time limit reached while the host was short of CPU (more spinning threads than CPUs)
/// overlaps host watcher windows with `host-pressure`: it is run again, and its result carries
/// the findings with their windows.
#[test]
fn a_time_limit_under_host_cpu_pressure_is_run_again_with_its_host_finding() {
    let _turn = disk_turn();
    let json = {
        let _pressure = CpuPressure::start();
        judge("busy_loop.c", &["--host-window", "0.25"])
    };
    let Some(json) = json else {
        return;
    };
    let watch = &json["host_watch"];
    assert_eq!(watch["window_s"], 0.25, "{json:#}");
    assert!(
        watch["ebpf"]
            .as_str()
            .unwrap()
            .starts_with("eBPF programs:"),
        "root loads the programs: {watch}"
    );
    assert_eq!(json["verdict"], "timelimit", "{json:#}");
    let tests = json["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 4, "--all: {json:#}");
    for test in tests {
        assert_eq!(test["verdict"], "timelimit", "{test:#}");
        assert_eq!(test["reruns"], 1, "--rerun-disturbed 1: {test:#}");
        assert_host_pressure_with_windows(test);
    }
}

#[test]
fn no_host_watch_turns_the_host_watcher_off() {
    let Some(json) = judge("correct.c", &["--no-host-watch"]) else {
        return;
    };
    assert_eq!(json["verdict"], "correct", "{json:#}");
    assert!(json["host_watch"].is_null(), "{json:#}");
}
