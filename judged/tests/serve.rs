//! End to end: the real `judged serve` binary on a free localhost port with a data directory
//! of its own, driven over HTTP.
//!
//! Without root (runguard given as /bin/true, nothing is judged): config checks and the bad
//! requests. With root and a built runguard (beside judged, or `JUDGED_RUNGUARD`): judgings
//! of the bundled A+B problem (correct, wrong-answer), the SSE stream, metrics, cancel, and
//! crash safety: `kill -9` mid-judging, restart, the judging completes once; SIGTERM hands a
//! running judging back to the queue. Privileged tests skip out loud; under `CI=true` a skip
//! is a failure.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

mod common;
mod daemon;
use common::{
    any_frame, assert_host_pressure_with_windows, judging_prerequisites, skip, CpuPressure,
};
use daemon::{repo, slow_problem, slow_submission, zip_dir, zip_of, Entry, Server};

fn aplusb() -> PathBuf {
    repo().join("testdata/problems/aplusb")
}

fn submission(name: &str) -> String {
    std::fs::read_to_string(aplusb().join("submissions").join(name)).unwrap()
}

/// A data directory, a scratch directory every user can reach, and the config naming them.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(runguard: &Path, problems: &[&Path], extra: &str) -> Site {
        Site::with_sections(runguard, problems, extra, "")
    }

    /// `extra`: top-level keys; `problems_keys`: more `[problems]` keys, then any sections.
    fn with_sections(
        runguard: &Path,
        problems: &[&Path],
        extra: &str,
        problems_keys: &str,
    ) -> Site {
        let dir = tempfile::tempdir().unwrap();
        // The run user must reach the scratch directory below it (data/scratch).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dirs: Vec<String> = problems
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect();
        let config = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\
             runguard = {:?}\nprofiles = {:?}\nmax_source_bytes = 65536\n{extra}\n\
             [problems]\ndirs = [{}]\n{problems_keys}\n",
            runguard.display().to_string(),
            repo().join("profiles").display().to_string(),
            dirs.join(", ")
        );
        std::fs::write(dir.path().join("serve.toml"), config).unwrap();
        Site { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("serve.toml")
    }

    fn database(&self) -> PathBuf {
        self.dir.path().join("data/judged.db")
    }

    fn start(&self) -> Server {
        Server::start(&self.config())
    }

    /// What is in the scratch directory but runguard's config.
    fn scratch_leftovers(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path().join("data/scratch"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with("judged-runguard-"))
            .collect()
    }
}

fn c_submission(name: &str, content: &str) -> Value {
    json!({ "problem": "aplusb", "files": [{ "name": name, "content": content }] })
}

#[test]
fn check_config_names_an_unknown_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, "workers = 1\nwrokers = 2\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_judged"))
        .args(["serve", "--check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("wrokers"), "{stderr}");
    assert!(stderr.contains(&config.display().to_string()), "{stderr}");
}

#[test]
fn check_config_names_a_broken_problem() {
    let site = Site::new(
        Path::new("/bin/true"),
        &[&aplusb(), Path::new("/nonexistent/p")],
        "",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_judged"))
        .args(["serve", "--check-config", "--config"])
        .arg(site.config())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("problem `p'"), "{stderr}");
    // And a good one passes.
    let site = Site::new(Path::new("/bin/true"), &[&aplusb()], "");
    let output = Command::new(env!("CARGO_BIN_EXE_judged"))
        .args(["serve", "--check-config", "--config"])
        .arg(site.config())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("config OK") && stdout.contains("aplusb"),
        "{stdout}"
    );
}

/// Refusals need no judging (runguard is /bin/true): a refused submission is never stored.
#[test]
fn bad_requests_get_4xx_with_a_message() {
    let site = Site::new(Path::new("/bin/true"), &[&aplusb()], "workers = 1");
    let server = site.start();
    let (status, health) = server.get("/health");
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let big = "x".repeat(70_000);
    let cases: Vec<(String, u16, &str)> = vec![
        (
            json!({"problem": "nope", "files": [{"name": "a.c", "content": ""}]}).to_string(),
            400,
            "unknown problem `nope'",
        ),
        (
            json!({"problem": "aplusb", "language": "cobol",
                   "files": [{"name": "a.c", "content": ""}]})
            .to_string(),
            400,
            "unknown language `cobol'",
        ),
        (
            json!({"problem": "aplusb", "files": [{"name": "a.c", "content": big}]}).to_string(),
            413,
            "max_source_bytes",
        ),
        (
            "{\"problem\": \"aplusb\", ".to_owned(),
            400,
            "malformed JSON",
        ),
        (
            json!({"problem": "aplusb", "files": [{"name": "../a.c", "content": ""}]}).to_string(),
            400,
            "files[0].name",
        ),
        (
            json!({"problem": "aplusb"}).to_string(),
            400,
            "missing field `files`",
        ),
    ];
    for (body, expected, needle) in &cases {
        let (status, reply) = server.post("/judgings", body);
        let message = reply["error"].as_str().unwrap_or_default();
        assert_eq!(status, *expected, "{body:.80}: {reply}");
        assert!(
            message.contains(needle),
            "{body:.80}: {message:?} lacks {needle:?}"
        );
    }
    let (status, reply) = server.get("/judgings/12345");
    assert_eq!(status, 404, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("12345"),
        "{reply}"
    );
    let (status, reply) = server.post("/judgings/12345/cancel", "");
    assert_eq!(status, 404, "{reply}");
    let (status, reply) = server.get("/judgings/abc");
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = server.get("/judgings?status=bogus");
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("bogus"),
        "{reply}"
    );
    // Nothing refused was stored.
    let (status, list) = server.get("/judgings");
    assert_eq!(status, 200);
    assert_eq!(list["judgings"].as_array().unwrap().len(), 0, "{list}");
}

#[test]
fn judgings_are_judged_streamed_listed_and_counted() {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => return skip(&reason),
    };
    let site = Site::new(&runguard, &[&aplusb()], "");
    let server = site.start();

    let correct = server.submit(c_submission("correct.c", &submission("correct.c")));
    // Follow it as it is judged: one `test` event per test case, then `final`.
    let events = read_events(&server.url(&format!("/judgings/{correct}/events")));
    let judging = server.wait_final(correct);
    assert_eq!(judging["status"], "done", "{judging}");
    assert_eq!(judging["verdict"], "correct", "{judging}");
    assert_eq!(judging["language"], "c");
    let tests = judging["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 4, "{judging}");
    for test in tests {
        assert_eq!(test["verdict"], "correct", "{test}");
        assert!(test["name"].as_str().unwrap().contains('/'), "{test}");
        assert!(test["cpu_time"].as_f64().is_some(), "{test}");
        assert!(test["memory_bytes"].as_u64().unwrap() > 0, "{test}");
    }
    let test_events = events.iter().filter(|(kind, _)| kind == "test").count();
    assert_eq!(test_events, 4, "{events:?}");
    let (kind, last) = events.last().unwrap();
    assert_eq!(kind, "final", "{events:?}");
    assert_eq!(last["verdict"], "correct", "{last}");
    assert_eq!(last["status"], "done", "{last}");
    // The stream of a finished judging replays it (status events aside: a live stream also
    // tells queued → judging).
    let replay = read_events(&server.url(&format!("/judgings/{correct}/events")));
    let results = |events: &[(String, Value)]| -> Vec<(String, Value)> {
        events
            .iter()
            .filter(|(kind, _)| kind != "status")
            .cloned()
            .collect()
    };
    assert_eq!(results(&replay), results(&events));
    assert_eq!(replay[0].1["status"], "done", "{replay:?}");

    let wrong = server.submit(c_submission("wrong.c", &submission("wrong.c")));
    let judging = server.wait_final(wrong);
    assert_eq!(judging["verdict"], "wrong-answer", "{judging}");
    assert_eq!(
        judging["tests"].as_array().unwrap().last().unwrap()["verdict"],
        "wrong-answer"
    );

    let (status, list) = server.get("/judgings?status=done&limit=10");
    assert_eq!(status, 200);
    let ids: Vec<i64> = list["judgings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [wrong, correct], "{list}");

    let metrics = ureq::get(&server.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for needle in [
        "judged_judgings{status=\"done\"} 2",
        "judged_queue_depth 0",
        "judged_test_case_verdicts_total{verdict=\"correct\"}",
        "judged_test_case_verdicts_total{verdict=\"wrong-answer\"} 1",
        "judged_judging_outcomes_total{verdict=\"correct\"} 1",
        "judged_judging_outcomes_total{verdict=\"wrong-answer\"} 1",
        "judged_run_cpu_seconds_count",
        "judged_run_wall_minus_cpu_seconds_bucket",
        "judged_workers{state=\"idle\"} 1",
    ] {
        assert!(metrics.contains(needle), "no {needle:?} in\n{metrics}");
    }
    let runs: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("judged_test_case_runs_total "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(runs >= 5, "{runs} runs\n{metrics}");
    // A clean stop.
    assert!(server.terminate().success());
}

/// A runguard that writes its arguments, one line per step, to `log`, then is the real one.
fn recording_runguard(dir: &Path, real: &Path, log: &Path) -> PathBuf {
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
        log.display(),
        real.display()
    );
    // Installed by another process: a write descriptor of ours, inherited by a child another
    // test thread forks at that moment, would make its exec fail with ETXTBSY.
    let source = dir.join("runguard.sh");
    std::fs::write(&source, script).unwrap();
    let binary = dir.join("runguard");
    assert!(Command::new("install")
        .args(["-m", "755"])
        .arg(&source)
        .arg(&binary)
        .status()
        .unwrap()
        .success());
    binary
}

/// Workers placed by topology: the judging runs in worker 0, whose CPU and memory node are
/// those `judged topology` plans for this host, and every step of it (compile, test case
/// runs, validator) is pinned there through runguard's --cpuset and --cpuset-mems.
#[test]
fn a_judgings_steps_are_pinned_to_its_workers_cpus_and_node() {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => return skip(&reason),
    };
    let topology = judged::topology::sysfs::read(Path::new("/")).unwrap();
    let plan = judged::topology::place(&topology, &Default::default()).unwrap();
    let (cpus, mems) = (plan.workers[0].cpuset_cpus(), plan.workers[0].cpuset_mems());
    let tools = tempfile::tempdir().unwrap();
    let log = tools.path().join("steps.log");
    let recording = recording_runguard(tools.path(), &runguard, &log);
    let site = Site::new(
        &recording,
        &[&aplusb()],
        "[workers]\nplacement = \"topology\"",
    );
    let server = site.start();

    let (status, workers) = server.get("/workers");
    assert_eq!(status, 200, "{workers}");
    let slots = workers["workers"].as_array().unwrap();
    assert_eq!(slots.len(), plan.workers.len(), "{workers}");
    assert_eq!(slots[0]["index"], 0, "{workers}");
    assert_eq!(slots[0]["cpus"], cpus.as_str(), "{workers}");
    assert_eq!(slots[0]["mems"], mems.as_str(), "{workers}");
    assert_eq!(slots[0]["state"], "idle", "{workers}");

    let id = server.submit(c_submission("correct.c", &submission("correct.c")));
    let judging = server.wait_final(id);
    assert_eq!(judging["verdict"], "correct", "{judging}\n{}", server.log());
    let steps = std::fs::read_to_string(&log).unwrap();
    // A compile, four test case runs, no validator of its own (the default one is judged's).
    assert!(steps.lines().count() >= 5, "{steps}");
    let pinned = format!(" --cpuset {cpus} --cpuset-mems {mems} ");
    for step in steps.lines() {
        assert!(
            step.contains(&pinned),
            "step not pinned ({pinned:?}): {step}"
        );
    }
    let metrics = ureq::get(&server.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let slot = format!("judged_worker_busy{{worker=\"0\",cpus=\"{cpus}\",mems=\"{mems}\"}} 0");
    assert!(metrics.contains(&slot), "no {slot:?} in\n{metrics}");
    assert!(server.terminate().success());
}

/// `[workers] sandbox = "warm"`: the test case runs go through the worker's keeper (its run
/// count grows by one per test case), the verdicts are those of one-shot runs, and the
/// keeper is gone after a clean stop.
#[test]
fn warm_workers_run_test_cases_through_their_keeper() {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => return skip(&reason),
    };
    let keeper = runguard.with_file_name("keeper");
    if !keeper.is_file() {
        return skip(&format!(
            "no keeper at `{}' (cargo build -p runner)",
            keeper.display()
        ));
    }
    let site = Site::new(&runguard, &[&aplusb()], "[workers]\nsandbox = \"warm\"");
    let server = site.start();
    let slot = |server: &Server| server.get("/workers").1["workers"][0].clone();
    assert_eq!(slot(&server)["sandbox"], "warm");
    assert_eq!(slot(&server)["warm_runs"], 0);

    let correct = server.submit(c_submission("correct.c", &submission("correct.c")));
    let judging = server.wait_final(correct);
    assert_eq!(judging["verdict"], "correct", "{judging}\n{}", server.log());
    let tests = judging["tests"].as_array().unwrap().len() as u64;
    let after_one = slot(&server);
    assert_eq!(after_one["warm_runs"], tests, "{after_one}");
    let keeper_pid = after_one["keeper_pid"].as_i64().expect("a keeper runs");
    let comm = std::fs::read_to_string(format!("/proc/{keeper_pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "keeper");

    let wrong = server.submit(c_submission("wrong.c", &submission("wrong.c")));
    let judging = server.wait_final(wrong);
    assert_eq!(judging["verdict"], "wrong-answer", "{judging}");
    let wrong_tests = judging["tests"].as_array().unwrap().len() as u64;
    let after_two = slot(&server);
    assert_eq!(after_two["warm_runs"], tests + wrong_tests, "{after_two}");

    // A warm run's tasks are under the slot's lane too: its D state is the run's.
    let syncing = server.submit(c_submission(
        "fsync_writer.c",
        &submission("fsync_writer.c"),
    ));
    let judging = server.wait_final(syncing);
    assert_eq!(judging["verdict"], "correct", "{judging}");
    assert_slept_on_a_kernel_stack(&judging);
    assert_eq!(
        after_two["keeper_pid"], keeper_pid,
        "the sandbox was reused: {after_two}"
    );
    assert!(server.terminate().success());
    assert!(
        !Path::new(&format!("/proc/{keeper_pid}")).exists(),
        "the keeper outlived the daemon"
    );
}

/// Each test case of `judging` (fsync_writer.c's) has the kernel's account of its run: time
/// in D state, with the stack it slept on.
fn assert_slept_on_a_kernel_stack(judging: &Value) {
    for test in judging["tests"].as_array().unwrap() {
        let kernel = &test["kernel"];
        assert!(
            kernel["dstate_ms"].as_f64().is_some_and(|ms| ms > 0.0),
            "no D state: {kernel:#}"
        );
        let top = &kernel["dstate_top_stacks"][0]["stack"];
        assert!(
            top.as_array().is_some_and(|frames| !frames.is_empty()),
            "no stack: {kernel:#}"
        );
    }
}

/// Two workers judge at once, each in its own run lane: one judging's runs sync to the disk,
/// the other's sleep (interruptibly) meanwhile, and get none of the first one's D state.
#[test]
fn a_judgings_results_carry_each_runs_d_state_time_and_no_other_workers() {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => return skip(&reason),
    };
    let problems = tempfile::tempdir().unwrap();
    let slow = slow_problem(problems.path(), 3);
    let site = Site::new(
        &runguard,
        &[&aplusb(), &slow],
        "all_test_cases = true\n[workers]\nplacement = \"none\"\ncount = 2",
    );
    let server = site.start();
    let sleeping = server.submit(slow_submission(300));
    let syncing = server.submit(c_submission(
        "fsync_writer.c",
        &submission("fsync_writer.c"),
    ));
    let judging = server.wait_final(syncing);
    assert_eq!(judging["verdict"], "correct", "{judging}\n{}", server.log());
    assert_slept_on_a_kernel_stack(&judging);
    let judging = server.wait_final(sleeping);
    assert_eq!(judging["verdict"], "correct", "{judging}\n{}", server.log());
    for test in judging["tests"].as_array().unwrap() {
        let kernel = &test["kernel"];
        assert!(
            !any_frame(&kernel["dstate_top_stacks"], |frame| frame
                .contains("fsync")),
            "the other worker's fsync counted as this run's: {kernel:#}"
        );
        assert!(kernel["dstate_ms"].as_f64().unwrap() < 20.0, "{kernel:#}");
    }
    assert!(server.terminate().success());
}

/// A warm daemon killed with SIGKILL cannot remove its sandboxes' cgroups, nor its run lanes:
/// the next start does (the sandboxes' are listed in the scratch directory).
#[test]
fn a_killed_warm_daemons_cgroups_are_removed_at_the_next_start() {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => return skip(&reason),
    };
    if !runguard.with_file_name("keeper").is_file() {
        return skip("no keeper beside runguard (cargo build -p runner)");
    }
    let site = Site::new(&runguard, &[&aplusb()], "[workers]\nsandbox = \"warm\"");
    let server = site.start();
    let id = server.submit(c_submission("correct.c", &submission("correct.c")));
    assert_eq!(server.wait_final(id)["verdict"], "correct");
    let pid = server.pid();
    server.kill_9();
    let list = site.dir.path().join("data/scratch/warm-worker-0.cgroups");
    let dirs: Vec<PathBuf> = std::fs::read_to_string(&list)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect();
    assert!(!dirs.is_empty(), "no cgroups listed in {}", list.display());
    assert!(dirs.iter().all(|dir| dir.is_dir()), "{dirs:?}");
    // Its slot's run lane, in each hierarchy (hybrid here, v2 in the VM lane).
    let lanes: Vec<PathBuf> = ["unified/judged", "memory/judged", "judged"]
        .iter()
        .map(|parent| {
            Path::new("/sys/fs/cgroup")
                .join(parent)
                .join(format!("judged-{pid}-0"))
        })
        .filter(|lane| lane.is_dir())
        .collect();
    assert!(!lanes.is_empty(), "no run lane of judged {pid}");
    let again = site.start();
    let lanes_left: Vec<&PathBuf> = lanes.iter().filter(|lane| lane.exists()).collect();
    assert!(
        lanes_left.is_empty(),
        "the killed daemon's lanes are left: {lanes_left:?}"
    );
    let left: Vec<&PathBuf> = dirs.iter().filter(|dir| dir.exists()).collect();
    assert!(left.is_empty(), "left: {left:?}\n{}", again.log());
    assert!(again.log().contains("cgroup director"), "{}", again.log());
    assert!(again.terminate().success());
    assert!(!list.exists());
}

/// The SSE events of a stream as (event, data), until it ends.
fn read_events(url: &str) -> Vec<(String, Value)> {
    let agent = ureq::AgentBuilder::new()
        .timeout_read(Duration::from_secs(120))
        .build();
    let reader = BufReader::new(agent.get(url).call().unwrap().into_reader());
    let mut events = Vec::new();
    let mut kind = String::new();
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(name) = line.strip_prefix("event: ") {
            kind = name.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            events.push((kind.clone(), serde_json::from_str(data).unwrap()));
            if kind == "final" {
                break;
            }
        }
    }
    events
}

fn test_results_in_database(database: &Path, id: i64) -> Vec<(String, i64)> {
    let connection = rusqlite::Connection::open(database).unwrap();
    let mut query = connection
        .prepare("SELECT name, attempt FROM test_results WHERE judging = ?1 ORDER BY name")
        .unwrap();
    query
        .query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn status_in_database(database: &Path, id: i64) -> String {
    let connection = rusqlite::Connection::open(database).unwrap();
    connection
        .query_row("SELECT status FROM judgings WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .unwrap()
}

const SLOW_CASES: usize = 6;

#[test]
fn a_judging_interrupted_by_kill_9_completes_once_after_restart() {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => return skip(&reason),
    };
    let problems = tempfile::tempdir().unwrap();
    let slow = slow_problem(problems.path(), SLOW_CASES);
    let site = Site::new(&runguard, &[&slow], "");
    let server = site.start();
    let id = server.submit(slow_submission(500));
    // Killed once it is judging and has finished a test case.
    let judging = server.wait_for(id, 60, |j| {
        j["status"] == "judging" && !j["tests"].as_array().unwrap().is_empty()
    });
    assert_eq!(judging["attempt"], 1);
    server.kill_9();
    assert_eq!(status_in_database(&site.database(), id), "judging");
    assert!(test_results_in_database(&site.database(), id).is_empty());

    let server = site.start();
    for said in [
        "recovered 1 interrupted judging",
        "leftover(s) of an earlier run",
    ] {
        assert!(server.log().contains(said), "{}", server.log());
    }
    let judging = server.wait_final(id);
    assert_eq!(judging["status"], "done", "{judging}");
    assert_eq!(judging["verdict"], "correct", "{judging}");
    assert_eq!(judging["attempt"], 2, "{judging}");
    assert_eq!(judging["tests"].as_array().unwrap().len(), SLOW_CASES);
    let stored = test_results_in_database(&site.database(), id);
    assert_eq!(stored.len(), SLOW_CASES, "{stored:?}");
    assert!(
        stored.iter().all(|(_, attempt)| *attempt == 2),
        "{stored:?}"
    );
    // What the killed daemon left in the scratch directory was removed at the restart.
    assert_eq!(site.scratch_leftovers(), Vec::<String>::new());
    assert!(server.terminate().success());
}

#[test]
fn cancel_and_sigterm_hand_back() {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => return skip(&reason),
    };
    let problems = tempfile::tempdir().unwrap();
    let slow = slow_problem(problems.path(), SLOW_CASES);
    let site = Site::new(&runguard, &[&slow], "workers = 1\nshutdown_grace_secs = 0");
    let server = site.start();
    // One worker: the first runs, the others wait in the queue.
    let running = server.submit(slow_submission(500));
    let queued = server.submit(slow_submission(500));
    let kept = server.submit(slow_submission(500));
    server.wait_for(running, 60, |j| {
        j["status"] == "judging" && !j["tests"].as_array().unwrap().is_empty()
    });
    let (status, reply) = server.post(&format!("/judgings/{queued}/cancel"), "");
    assert_eq!(
        (status, &reply["status"]),
        (200, &json!("cancelled")),
        "{reply}"
    );
    assert_eq!(server.judging(queued)["status"], "cancelled");
    let (status, reply) = server.post(&format!("/judgings/{queued}/cancel"), "");
    assert_eq!(status, 409, "{reply}");
    // A running one stops at its next test case, keeping the ones it judged.
    let (status, reply) = server.post(&format!("/judgings/{running}/cancel"), "");
    assert_eq!(status, 202, "{reply}");
    let judging = server.wait_final(running);
    assert_eq!(judging["status"], "cancelled", "{judging}");
    let judged = judging["tests"].as_array().unwrap().len();
    assert!((1..SLOW_CASES).contains(&judged), "{judging}");

    // SIGTERM with no grace while `kept` runs: it goes back to the queue, unrecorded.
    server.wait_for(kept, 60, |j| j["status"] == "judging");
    let log = server.log_handle();
    assert!(server.terminate().success());
    let log = log.lock().unwrap().clone();
    assert!(log.contains("1 running judging(s) handed back"), "{log}");
    assert_eq!(status_in_database(&site.database(), kept), "queued");
    assert!(test_results_in_database(&site.database(), kept).is_empty());
    let server = site.start();
    let judging = server.wait_final(kept);
    assert_eq!(judging["verdict"], "correct", "{judging}");
    assert_eq!(judging["attempt"], 2, "{judging}");
    assert_eq!(
        test_results_in_database(&site.database(), kept).len(),
        SLOW_CASES
    );
}

/// The ids and origins `GET /problems` lists.
fn problems_listed(server: &Server) -> Vec<(String, String)> {
    let problems = server.problems();
    problems
        .into_iter()
        .map(|(id, origin, _)| (id, origin))
        .collect()
}

fn uploads_dir_entries(site: &Site) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(site.path("data/problems"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Needs no judging: an upload is checked, kept and listed, and survives a restart.
#[test]
fn an_uploaded_problem_is_listed_kept_over_a_restart_and_replaced() {
    let site = Site::new(Path::new("/bin/true"), &[&aplusb()], "");
    let server = site.start();
    let archive = zip_dir(&aplusb());
    let (status, reply) = server.upload("sum", &archive, None);
    assert_eq!(status, 201, "{reply}");
    assert_eq!(
        (&reply["test_cases"], &reply["replaced"]),
        (&json!(4), &json!(false)),
        "{reply}"
    );
    let expected = vec![
        ("aplusb".to_owned(), "config".to_owned()),
        ("sum".to_owned(), "upload".to_owned()),
    ];
    assert_eq!(problems_listed(&server), expected);
    // Submissions to it are taken.
    server.submit(c_submission("a.c", ""));
    let id = server.submit(json!({"problem": "sum", "files": [{"name": "a.c", "content": ""}]}));
    server.wait_final(id);
    assert!(server.terminate().success());
    assert_eq!(uploads_dir_entries(&site), ["sum"]);
    // A zip of the package directory itself (one top-level directory) is taken too.
    let top = tempfile::tempdir().unwrap();
    let copy = top.path().join("sum2");
    std::fs::create_dir(&copy).unwrap();
    std::fs::write(copy.join("problem.yaml"), "limits:\n  time_limit: 1\n").unwrap();
    std::fs::create_dir_all(copy.join("data/secret")).unwrap();
    std::fs::write(copy.join("data/secret/1.in"), "1 2\n").unwrap();
    std::fs::write(copy.join("data/secret/1.ans"), "3\n").unwrap();
    // An archive larger than the submissions' body limit (max_source_bytes 65536 here):
    // uploads have a limit of their own. Bytes that do not compress.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..600_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(copy.join("attachment.bin"), noise).unwrap();

    let server = site.start();
    assert_eq!(problems_listed(&server), expected);
    let (status, reply) = server.upload("sum2", &zip_dir(top.path()), None);
    assert_eq!((status, &reply["test_cases"]), (201, &json!(1)), "{reply}");
    // Re-uploading replaces it (the judgings submitted before are over: runguard is
    // /bin/true here).
    let (status, reply) = server.upload("sum", &zip_dir(&copy), None);
    assert_eq!(
        (status, &reply["replaced"], &reply["test_cases"]),
        (200, &json!(true), &json!(1)),
        "{reply}"
    );
    assert_eq!(uploads_dir_entries(&site), ["sum", "sum2"]);
    assert!(
        server.log_shows("problem `sum' replaced by an upload"),
        "{}",
        server.log()
    );
}

/// Each hostile or broken upload is refused naming what is wrong, and leaves no file.
#[test]
fn hostile_uploads_are_refused_and_leave_nothing() {
    let site = Site::with_sections(
        Path::new("/bin/true"),
        &[&aplusb()],
        "",
        "max_archive_bytes = 100000\nmax_unpacked_bytes = 200000\nmax_entries = 50\n",
    );
    let server = site.start();
    let base = aplusb();
    let outside = std::env::temp_dir().join(format!("judged-upload-evil-{}", std::process::id()));
    let outside_name = outside.display().to_string();
    let zeros = vec![0u8; 300_000];
    let many: Vec<String> = (0..60).map(|i| format!("extra/{i}")).collect();
    let many_entries: Vec<Entry> = many.iter().map(|n| Entry::File(n, b"")).collect();
    let not_a_package = tempfile::tempdir().unwrap();
    std::fs::write(not_a_package.path().join("readme"), "hi").unwrap();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "traversal",
            zip_of(Some(&base), &[Entry::File("../evil.txt", b"x")]),
            400,
            "entry `../evil.txt': `.' or `..' path component",
        ),
        (
            "absolute",
            zip_of(Some(&base), &[Entry::File(&outside_name, b"x")]),
            400,
            "absolute path",
        ),
        (
            "symlink",
            zip_of(Some(&base), &[Entry::Symlink("answers", "/etc")]),
            400,
            "entry `answers': symbolic links",
        ),
        (
            "bomb",
            zip_of(Some(&base), &[Entry::File("big", &zeros)]),
            413,
            "max_unpacked_bytes (200000 bytes), at entry `big'",
        ),
        (
            "many",
            zip_of(Some(&base), &many_entries),
            413,
            "more than this judge's [problems] max_entries (50)",
        ),
        (
            "large",
            vec![b'x'; 150_000],
            413,
            "max_archive_bytes (100000)",
        ),
        ("not a zip", b"hello".to_vec(), 400, "not a zip archive"),
        (
            "no problem.yaml",
            zip_dir(not_a_package.path()),
            422,
            "no problem.yaml",
        ),
        (
            "bad problem.yaml",
            zip_of(
                None,
                &[
                    Entry::File("problem.yaml", b"limits:\n  time_limit: -1\n"),
                    Entry::File("data/secret/1.in", b""),
                    Entry::File("data/secret/1.ans", b""),
                ],
            ),
            422,
            "`problem.yaml': limits.time_limit must be a positive number",
        ),
    ];
    for (what, archive, expected, needle) in &cases {
        let (status, reply) = server.upload("evil", archive, None);
        let message = reply["error"].as_str().unwrap_or_default();
        assert_eq!(status, *expected, "{what}: {reply}");
        assert!(
            message.contains(needle),
            "{what}: {message:?} lacks {needle:?}"
        );
        assert!(!message.contains(".incoming"), "{what}: {message}");
        assert_eq!(uploads_dir_entries(&site), Vec::<String>::new(), "{what}");
    }
    let (status, reply) = server.upload("a%20b", &zip_dir(&base), None);
    assert_eq!(status, 400, "{reply}");
    assert!(reply["error"]
        .as_str()
        .unwrap()
        .contains("`a b' is not a problem id"));
    let (status, reply) = server.upload("aplusb", &zip_dir(&base), None);
    assert_eq!(status, 409, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("[problems] dirs"));
    // Nothing was written anywhere.
    assert!(!outside.exists());
    assert!(!site.path("data/evil.txt").exists());
    assert!(!site.path("data/problems/evil.txt").exists());
    assert_eq!(uploads_dir_entries(&site), Vec::<String>::new());
    assert_eq!(
        problems_listed(&server),
        [("aplusb".to_owned(), "config".to_owned())]
    );
}

#[test]
fn with_tokens_each_route_needs_one_of_its_role() {
    let submit = "submit-0123456789abcdef";
    let admin = "admin-0123456789abcdef";
    let site = Site::with_sections(
        Path::new("/bin/true"),
        &[&aplusb()],
        "",
        "[api]\ntokens_file = \"tokens\"\npublic = [\"health\"]\n",
    );
    std::fs::write(
        site.path("tokens"),
        format!("# role token\nsubmit {submit}\nadmin {admin}\n"),
    )
    .unwrap();
    let server = site.start();
    assert!(
        server.log().contains("bearer tokens required"),
        "{}",
        server.log()
    );
    let archive = zip_dir(&aplusb());
    // (method, path, token, body, status, what the error says)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, &'a [u8], u16, &'a str);
    let cases: &[Case] = &[
        ("GET", "/health", None, b"", 200, ""),
        ("GET", "/metrics", None, b"", 401, "no token"),
        ("GET", "/metrics", Some(submit), b"", 200, ""),
        (
            "GET",
            "/judgings",
            None,
            b"",
            401,
            "Authorization: Bearer TOKEN",
        ),
        (
            "GET",
            "/judgings",
            Some("wrong-0123456789abcdef"),
            b"",
            401,
            "not one of",
        ),
        ("GET", "/judgings", Some(submit), b"", 200, ""),
        ("GET", "/problems", Some(submit), b"", 200, ""),
        (
            "PUT",
            "/problems/sum",
            Some(submit),
            &archive,
            403,
            "needs an admin token",
        ),
        ("PUT", "/problems/sum", None, &archive, 401, "no token"),
        ("PUT", "/problems/sum", Some(admin), &archive, 201, ""),
    ];
    for (method, path, token, body, expected, needle) in cases {
        let (status, reply) = server.request(method, path, *token, body);
        assert_eq!(status, *expected, "{method} {path} {token:?}: {reply}");
        if !needle.is_empty() {
            let message = reply["error"].as_str().unwrap_or_default();
            assert!(message.contains(needle), "{method} {path}: {message:?}");
        }
    }
    let submitted = server.request(
        "POST",
        "/judgings",
        Some(submit),
        json!({"problem": "sum", "files": [{"name": "a.c", "content": ""}]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(submitted.0, 201, "{}", submitted.1);
}

#[test]
fn a_daemon_open_to_the_network_without_tokens_warns() {
    let site = Site::new(Path::new("/bin/true"), &[&aplusb()], "");
    let server = Server::start_with(&site.config(), &["--listen", "0.0.0.0:0"]);
    assert!(
        server.log().contains("warning: listening on 0.0.0.0:")
            && server.log().contains("without [api] tokens_file"),
        "{}",
        server.log()
    );
    drop(server);
    let server = site.start();
    assert!(!server.log().contains("warning"), "{}", server.log());
}

#[test]
fn an_uploaded_problem_is_judged() {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => return skip(&reason),
    };
    let problems = tempfile::tempdir().unwrap();
    let slow = slow_problem(problems.path(), SLOW_CASES);
    let site = Site::new(&runguard, &[&aplusb()], "");
    let server = site.start();
    let (status, reply) = server.upload("slowsum", &zip_dir(&slow), None);
    assert_eq!(status, 201, "{reply}");
    let running = server.submit(slow_submission(300));
    server.wait_for(running, 60, |j| j["status"] == "judging");
    // Not replaced under a running judging.
    let (status, reply) = server.upload("slowsum", &zip_dir(&slow), None);
    assert_eq!(status, 409, "{reply}");
    let judging = server.wait_final(running);
    assert_eq!(judging["verdict"], "correct", "{judging}");
    assert_eq!(judging["tests"].as_array().unwrap().len(), SLOW_CASES);
    // Replaced once idle, and judged on the new package after a restart.
    std::fs::remove_file(slow.join("data/secret/00.in")).unwrap();
    std::fs::remove_file(slow.join("data/secret/00.ans")).unwrap();
    let (status, reply) = server.upload("slowsum", &zip_dir(&slow), None);
    assert_eq!((status, &reply["replaced"]), (200, &json!(true)), "{reply}");
    assert!(server.terminate().success());
    let server = site.start();
    let again = server.submit(slow_submission(0));
    let judging = server.wait_final(again);
    assert_eq!(judging["verdict"], "correct", "{judging}");
    assert_eq!(judging["tests"].as_array().unwrap().len(), SLOW_CASES - 1);
}

/// `[diagnostics]`: the daemon's host watcher closes a window every host_window, `GET /host`
/// shows them (eBPF loaded, windows tiling time); a time limit reached while the host was
/// short of CPU (more spinning threads than CPUs) overlaps windows with `host-pressure`: it is
/// run again, and its result carries the findings with their windows, as the metrics count.
#[test]
fn the_host_watcher_shows_its_windows_and_marks_the_runs_they_disturbed() {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => return skip(&reason),
    };
    let site = Site::with_sections(
        &runguard,
        &[&aplusb()],
        "",
        "[diagnostics]\nhost_window = 0.25",
    );
    let server = site.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let host = loop {
        let (status, host) = server.get("/host?limit=1000");
        assert_eq!(status, 200, "{host}");
        if host["windows"].as_array().unwrap().len() >= 3 {
            break host;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{host}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        (host["enabled"].as_bool(), host["window_s"].as_f64()),
        (Some(true), Some(0.25))
    );
    assert!(
        host["ebpf"]["unavailable"].is_null(),
        "root loads the programs: {host}"
    );
    // This kind of host has PSI (psi=1): the host's triggers at least are registered.
    assert!(
        host["psi_triggers"]["registered"]
            .as_array()
            .unwrap()
            .iter()
            .any(|line| line.as_str().unwrap().starts_with("host cpu: some ")),
        "{host}"
    );
    assert!(
        server
            .log()
            .contains("host watcher, 0.25 s windows: eBPF programs:"),
        "{}",
        server.log()
    );
    let windows = host["windows"].as_array().unwrap();
    for pair in windows.windows(2) {
        assert_eq!(
            pair[0]["window"].as_u64().unwrap() + 1,
            pair[1]["window"].as_u64().unwrap(),
            "{host}"
        );
        assert_eq!(
            pair[0]["monotonic_end_s"], pair[1]["monotonic_start_s"],
            "{host}"
        );
        assert!(
            pair[0]["wall_end"].as_f64() <= pair[1]["wall_end"].as_f64(),
            "{host}"
        );
        assert!(pair[1]["host"].is_object(), "{host}");
    }

    let id = {
        let _pressure = CpuPressure::start();
        let id = server.submit(c_submission("busy_loop.c", &submission("busy_loop.c")));
        server.wait_final(id);
        id
    };
    let judging = server.judging(id);
    assert_eq!(
        judging["verdict"],
        "timelimit",
        "{judging}\n{}",
        server.log()
    );
    let limited = judging["tests"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(limited["verdict"], "timelimit", "{judging}");
    assert_eq!(limited["reruns"], 1, "rerun_disturbed = 1: {judging}");
    assert_host_pressure_with_windows(&limited);
    let metrics = ureq::get(&server.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("judged_host_findings_total{kind=\"host-pressure\"}"),
        "{metrics}"
    );
    assert!(server.terminate().success());
}
