//! `judged diagnose` end to end through the real `runguard`. Needs root (runguard switches to
//! the run user and makes cgroups) and a built `runguard` (beside `judged`, or
//! `JUDGED_RUNGUARD`); skips out loud otherwise, and under `CI=true` a skip is a failure.
//!
//! The host may be busy (other builds, other tests), so the tests assert only what is
//! physically true of the run whatever the load: findings about the host may appear.

use serde_json::Value;

mod common;
use common::{
    any_frame, assert_no_fsync_of_others, groups_of, is_root, judged_with_pid, reproducer,
    runguard, skip, stop_mid_run, while_syncing, with_delay_accounting,
};

/// Held by the tests that load the disk (thrash's page faults, the fsync writer) and by the
/// one asserting a run undisturbed: run at once, the others' IO makes `/bin/true` wait for
/// its own pages, a real `dstate-io` that is not the one being tested.
static DISK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn disk_turn() -> std::sync::MutexGuard<'static, ()> {
    DISK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether this process may run diagnose (root); a printed skip otherwise.
fn can_diagnose() -> bool {
    let root = is_root();
    if !root {
        skip("diagnose needs root (runguard switches users and makes cgroups)");
    }
    root
}

/// The reproducer `testdata/kernel/NAME.c` built, where diagnose can run it.
fn root_reproducer(name: &str) -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    can_diagnose().then(|| reproducer(name, &[]))
}

/// `judged diagnose --json ARGS`, or `None` after a printed skip.
fn diagnose(args: &[&str]) -> Option<Value> {
    if !can_diagnose() {
        return None;
    }
    let runguard = runguard();
    if !runguard.is_file() {
        skip(&format!(
            "no runguard binary at `{}' (cargo build -p runner)",
            runguard.display()
        ));
        return None;
    }
    let runguard = runguard.display().to_string();
    let (pid, output) = judged_with_pid(
        ["diagnose", "--json", "--runguard", &runguard]
            .into_iter()
            .chain(args.iter().copied()),
    );
    assert_cgroups_removed(pid);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "diagnose failed ({}): {stderr}",
        output.status
    );
    let json: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}); stderr: {stderr}"));
    let findings = json["findings"].as_array().expect("a findings array");
    assert_eq!(
        output.status.code() == Some(1),
        !findings.is_empty(),
        "exit status 1 exactly when there are findings"
    );
    for finding in findings {
        for key in ["kind", "summary", "evidence", "remedy"] {
            assert!(!finding[key].is_null(), "finding without {key}: {finding}");
        }
    }
    Some(json)
}

fn kinds(json: &Value) -> Vec<String> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// The run's D-state time (eBPF) and its total in milliseconds; it must have been measured.
fn dstate(json: &Value) -> (&Value, f64) {
    let dstate = &json["dstate"];
    assert!(
        dstate.is_object(),
        "no D-state time: {}",
        json["dstate_unavailable"]
    );
    (dstate, dstate["total_ns"].as_f64().unwrap() / 1e6)
}

/// The cgroup parent of the `judged` process `pid` is gone from every hierarchy.
fn assert_cgroups_removed(pid: u32) {
    let left = groups_of(pid);
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Stopped by a signal mid-run, diagnose stops the run, removes its cgroup parent in every
/// hierarchy and exits with 128 + the signal.
#[test]
fn a_stop_signal_mid_run_stops_it_and_leaves_nothing() {
    use nix::sys::signal::Signal;
    if !can_diagnose() {
        return;
    }
    let runguard = runguard().display().to_string();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        let output = stop_mid_run(
            &[
                "diagnose",
                "--runguard",
                &runguard,
                "--",
                "/bin/sleep",
                "60",
            ],
            signal,
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(128 + signal as i32),
            "{signal}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("stopped by {signal}")),
            "{signal}: {stderr}"
        );
    }
}

#[test]
fn true_gives_no_finding_about_the_run() {
    let _disk = disk_turn();
    let Some(json) = diagnose(&["--", "/bin/true"]) else {
        return;
    };
    assert_eq!(json["report"]["termination"]["exited"], 0);
    // /bin/true neither sleeps, reads, nor allocates enough for any of these; findings about
    // the host (its pressure, a slow setup under load) may appear on a busy machine.
    let about_the_run = [
        "wall-cpu-drift",
        "runqueue-delay",
        "dstate-io",
        "memcg-reclaim",
        "page-cache-thrash",
        "cfs-throttling",
    ];
    let found = kinds(&json);
    assert!(
        found.iter().all(|k| !about_the_run.contains(&k.as_str())),
        "{found:?}\n{json:#}"
    );
    if !found.is_empty() {
        eprintln!("host findings: {found:?}");
    }
    assert!(
        json["sample"]["stalls"].is_object(),
        "run PSI read: {json:#}"
    );
    // Its code (true, ld.so, libc) was watched, and stayed in the page cache.
    let code = &json["code_pages"];
    assert!(code["files_watched"].as_u64() >= Some(2), "{code:#}");
    assert_eq!(code["evicted_pages"], 0, "{code:#}");
}

#[test]
fn two_busy_tasks_on_one_cpu_wait_for_each_other_without_a_finding_for_it() {
    let busy = "busy() { i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; }; busy & busy; wait";
    let Some(json) = diagnose(&["--cpuset", "0", "--", "/bin/sh", "-c", busy]) else {
        return;
    };
    let wall = json["sample"]["wall"].as_f64().unwrap();
    let cpu = json["sample"]["cpu"].as_f64().unwrap();
    let cpu_stall = json["sample"]["stalls"]["cpu"].as_f64().unwrap();
    assert_eq!(json["sample"]["allowed_cpus"], 1);
    // Pinned to one CPU, the two tasks cannot use more than it.
    assert!(cpu <= wall * 1.02 + 0.005, "cpu {cpu} > wall {wall}");
    // Both runnable on one CPU: one of them is always waiting while they overlap.
    assert!(
        cpu_stall >= 0.5 * wall,
        "cpu stall {cpu_stall} of wall {wall}"
    );
    // Waiting for each other is not a disturbance: a runqueue delay or drift finding needs
    // CPU time that something else took from the run's CPU.
    let taken_by_others_ms = (wall - cpu) * 1000.0;
    let found = kinds(&json);
    if taken_by_others_ms < 20.0 {
        assert!(
            !found
                .iter()
                .any(|k| k == "runqueue-delay" || k == "wall-cpu-drift"),
            "{found:?}\n{json:#}"
        );
    }
}

#[test]
fn fibtest_under_a_cpu_quota_is_found_throttled_not_delayed_by_others() {
    let Some((_dir, fibtest)) = root_reproducer("fibtest") else {
        return;
    };
    let Some(json) = diagnose(&["--cpu-quota", "0.5", "--", fibtest.to_str().unwrap(), "1"]) else {
        return;
    };
    assert_eq!(json["report"]["termination"]["exited"], 0, "{json:#}");
    let found = kinds(&json);
    assert!(
        found.iter().any(|k| k == "cfs-throttling"),
        "{found:?}\n{json:#}"
    );
    let throttled = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "cfs-throttling")
        .unwrap();
    // The fast thread alone wants a whole CPU: every period of a 0.5 CPU quota runs out.
    assert!(
        throttled["evidence"]["throttled_periods"].as_u64().unwrap() >= 5,
        "{throttled:#}"
    );
    // Its CPU stall is the quota's doing: only what the throttling does not explain may be
    // called waiting for other work (a busy host can add some).
    let throttled_ms = throttled["evidence"]["throttled_ms"].as_f64().unwrap();
    let cpu_stall_ms = json["sample"]["stalls"]["cpu"].as_f64().unwrap() * 1000.0;
    if let Some(delay) = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "runqueue-delay")
    {
        let waited_ms = delay["evidence"]["runqueue_wait_ms"].as_f64().unwrap();
        assert!(
            waited_ms <= cpu_stall_ms - throttled_ms + 0.5,
            "throttling counted as waiting for others: {delay:#}\n{json:#}"
        );
    }
}

/// `testdata/kernel/thrash.c` for a second under a 64 MiB limit: 32 MiB held of it leaves
/// ~30 MiB for the binary's 64 MiB of data.
fn diagnose_thrash() -> Option<Value> {
    let (_dir, thrash) = root_reproducer("thrash")?;
    diagnose(&[
        "--memsize",
        "65536",
        "--",
        thrash.to_str().unwrap(),
        "1",
        "32",
    ])
}

#[test]
fn a_binary_larger_than_its_memory_limit_leaves_is_found_thrashing_its_page_cache() {
    let _disk = disk_turn();
    let Some(json) = diagnose_thrash() else {
        return;
    };
    assert_eq!(json["report"]["termination"]["exited"], 0, "{json:#}");
    let found = kinds(&json);
    assert!(
        found.iter().any(|k| k == "page-cache-thrash"),
        "{found:?}\n{json:#}"
    );
    assert!(
        json["sample"]["memory"]["file_refaults"].as_u64().unwrap() > 10_000,
        "{json:#}"
    );
    // What thrashed was the program's own binary: its pages, evicted and read in again.
    let code = &json["code_pages"];
    assert!(code["evicted_pages"].as_u64().unwrap() > 1000, "{code:#}");
    assert!(
        code["files"][0]["path"]
            .as_str()
            .is_some_and(|path| path.ends_with("/thrash")),
        "{code:#}"
    );
    let thrash = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "page-cache-thrash")
        .unwrap();
    assert!(
        thrash["evidence"]["code_pages_evicted"].as_u64().unwrap() > 1000,
        "{thrash:#}"
    );
    // Faulting its evicted pages back in, the run sleeps in D state on the page reads.
    let (dstate, total_ms) = dstate(&json);
    let stacks = dstate["stacks"].as_array().unwrap();
    let top = &stacks[..stacks.len().min(3)];
    eprintln!(
        "D state {total_ms:.1} ms; top stack {:.1} ms: {}",
        top[0]["total_ns"].as_f64().unwrap() / 1e6,
        top[0]["stack"]
    );
    assert!(total_ms > 0.0, "{dstate:#}");
    let page_io = |frame: &str| {
        ["filemap", "folio", "io_schedule"]
            .iter()
            .any(|name| frame.contains(name))
    };
    assert!(
        any_frame(&Value::from(top.to_vec()), page_io),
        "no page-cache or IO wait among the top stacks: {dstate:#}"
    );
    if let Some(io) = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "dstate-io")
    {
        assert!(
            io["evidence"]["dstate_top_stacks"].is_array(),
            "dstate-io without its stacks: {io:#}"
        );
    }
}

#[test]
fn d_state_is_counted_for_the_runs_tasks_only() {
    let _disk = disk_turn();
    // While the run sleeps, this test process writes and fsyncs a file outside the run's
    // cgroup: its waits for the disk are D state with fsync on the stack, and must not be
    // counted as the run's. (The run's own D state, such as exec faulting in a page of
    // /bin/sleep that the busy host evicted, is the run's and may be counted.)
    let (json, syncs) = while_syncing(|| diagnose(&["--", "/bin/sleep", "0.5"]));
    let Some(json) = json else {
        return;
    };
    assert!(syncs > 0, "the writer never synced");
    let (dstate, _) = dstate(&json);
    assert_no_fsync_of_others(&dstate["stacks"], syncs, dstate);
}

#[test]
fn an_io_bound_run_has_block_io_delays_where_delay_accounting_is_on() {
    let _disk = disk_turn();
    let json = with_delay_accounting(diagnose_thrash);
    let Some(json) = json else {
        return;
    };
    let delays = &json["delays"];
    assert!(
        delays.is_object(),
        "no delays: {}",
        json["delays_unavailable"]
    );
    eprintln!("delays: {delays}");
    assert!(delays["tasks"].as_u64().unwrap() >= 1, "{delays}");
    // Faulting its evicted pages back in from the disk, the run waits for block IO.
    assert!(delays["blkio_delay_ns"].as_u64().unwrap() > 0, "{delays}");
}
