//! The daemon benchmark: `cargo bench -p judged --bench serve` (or `ci/bench`). Needs root and
//! the release `runguard` beside the release `judged` (`cargo build --release -p runner`).
//!
//! The trivial correct C submission of `testdata/problems/aplusb` on a generated problem of
//! `BENCH_SERVE_CASES` (default 10) test cases:
//!
//! 1. `judged run --jobs 1` of it, `BENCH_SERVE_ROUNDS` (default 15) times: the latency of a
//!    judging without the daemon (one test case at a time, as a daemon worker judges).
//! 2. The same judging through a `judged serve` with its workers placed by topology (one per
//!    free core) on a temporary data dir, their test case runs one-shot or, with
//!    `BENCH_SERVE_SANDBOX=warm`, in each worker's warm sandbox: submitted and polled until done, one at a time (the latency, so the API's added
//!    cost is the difference of the medians), then `BENCH_SERVE_BATCH` (default 30) submitted
//!    at once (judgings per second until the last is done).
//!
//! Ends with `name=value` lines, also in `target/bench/serve.json`: `run_median_ms`,
//! `api_median_ms`, `api_added_ms`, `api_judgings_per_s`, `api_workers` (what `GET /health`
//! says the daemon has); `api_warm` is 1 with warm workers.
//!
//! `cargo test` runs this target without `--bench`: then it only checks the generated problem
//! loads, so the test suite stays fast.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use judged::problem::Problem;
use serde_json::{json, Value};

mod common;
use common::{correct_submission, generate_problem, report, runguard_beside};

/// How often a submitted judging is polled.
const POLL: Duration = Duration::from_millis(5);
/// Longest a judging may take before the benchmark gives up.
const JUDGING_TIMEOUT: Duration = Duration::from_secs(120);

fn main() -> Result<()> {
    let cases = setting("BENCH_SERVE_CASES", 10)?;
    let rounds = setting("BENCH_SERVE_ROUNDS", 15)?;
    let batch = setting("BENCH_SERVE_BATCH", 30)?;
    let problem = generate_problem(cases)?;
    if !std::env::args().any(|arg| arg == "--bench") {
        let loaded = Problem::load(problem.path())?;
        ensure!(
            loaded.test_cases.len() == cases,
            "generated problem incomplete"
        );
        println!("serve bench: not run by `cargo bench`: checked the generated problem only");
        return Ok(());
    }
    let judged = PathBuf::from(env!("CARGO_BIN_EXE_judged"));
    let runguard = runguard_beside(&judged)?;
    let submission = correct_submission();
    let source = std::fs::read_to_string(&submission)
        .with_context(|| format!("cannot read `{}'", submission.display()))?;

    println!("{cases} test cases; `judged run --jobs 1`, {rounds} rounds:");
    let mut run_ms = Vec::new();
    for _ in 0..rounds {
        run_ms.push(judge_once(&judged, problem.path(), &submission, cases)?);
    }
    let run_median = median(&mut run_ms);
    println!("  median {run_median:.1} ms");

    let sandbox = std::env::var("BENCH_SERVE_SANDBOX").unwrap_or_else(|_| "oneshot".into());
    ensure!(
        ["oneshot", "warm"].contains(&sandbox.as_str()),
        "BENCH_SERVE_SANDBOX must be oneshot or warm, not `{sandbox}'"
    );
    let daemon = Daemon::start(&judged, &runguard, problem.path(), &sandbox)?;
    let workers = daemon.workers()?;
    let body = json!({
        "problem": problem_id(problem.path())?,
        "language": "c",
        "files": [{ "name": "sum.c", "content": source }],
    })
    .to_string();
    println!(
        "`judged serve` with {workers} {sandbox} worker(s), one judging at a time, {rounds} rounds:"
    );
    let mut api_ms = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        let id = daemon.submit(&body)?;
        daemon.wait_done(id, cases)?;
        api_ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let api_median = median(&mut api_ms);
    println!("  median {api_median:.1} ms");

    println!("{batch} judgings submitted at once:");
    let start = Instant::now();
    let ids = (0..batch)
        .map(|_| daemon.submit(&body))
        .collect::<Result<Vec<_>>>()?;
    for id in ids {
        daemon.wait_done(id, cases)?;
    }
    let batch_seconds = start.elapsed().as_secs_f64();
    println!("  {batch_seconds:.2} s");

    let figures = [
        ("run_median_ms", run_median),
        ("api_median_ms", api_median),
        ("api_added_ms", api_median - run_median),
        ("api_judgings_per_s", batch as f64 / batch_seconds),
        ("api_workers", workers as f64),
        ("api_warm", f64::from(u8::from(sandbox == "warm"))),
    ];
    report(&judged, "serve", &figures)
}

/// Milliseconds of one `judged run --jobs 1 --json` that must judge all `cases` correct.
fn judge_once(judged: &Path, problem: &Path, submission: &Path, cases: usize) -> Result<f64> {
    let start = Instant::now();
    let output = Command::new(judged)
        .arg("run")
        .arg(problem)
        .arg(submission)
        .args(["--jobs", "1", "--json"])
        .output()
        .with_context(|| format!("cannot run `{}'", judged.display()))?;
    let elapsed = start.elapsed().as_secs_f64() * 1000.0;
    let json: Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "judged run printed no JSON: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let judged_cases = json["tests"].as_array().map_or(0, Vec::len);
    if json["verdict"] != "correct" || judged_cases != cases {
        bail!("expected `correct' on {cases} test cases: {json:#}");
    }
    Ok(elapsed)
}

/// A `judged serve` on a temporary data dir, killed and waited for when dropped.
struct Daemon {
    child: Child,
    base: String,
    _site: tempfile::TempDir,
}

impl Daemon {
    fn start(judged: &Path, runguard: &Path, problem: &Path, sandbox: &str) -> Result<Daemon> {
        let site = tempfile::Builder::new()
            .prefix("judged-serve-bench-")
            .tempdir()?;
        // The run user must reach the scratch directory below it.
        std::fs::set_permissions(
            site.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        let config = site.path().join("serve.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\
                 runguard = {:?}\nprofiles = {:?}\n[workers]\nsandbox = {sandbox:?}\n\
                 [problems]\ndirs = [{:?}]\n",
                runguard.display().to_string(),
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../profiles")
                    .display()
                    .to_string(),
                problem.display().to_string(),
            ),
        )?;
        let mut child = Command::new(judged)
            .args(["serve", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{}' serve", judged.display()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (address_sender, address) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, rest)) = line.split_once("listening on http://") {
                    let _ =
                        address_sender.send(Ok(rest.split_whitespace().next().map(str::to_owned)));
                } else if line.contains("error") {
                    let _ = address_sender.send(Err(line));
                }
            }
        });
        let address = match address.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(Some(address))) => address,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("judged serve did not start: {other:?}");
            }
        };
        Ok(Daemon {
            child,
            base: format!("http://{address}"),
            _site: site,
        })
    }

    /// How many workers the daemon has (`GET /health`).
    fn workers(&self) -> Result<usize> {
        let health: Value = serde_json::from_str(
            &ureq::get(&format!("{}/health", self.base))
                .call()
                .context("GET /health")?
                .into_string()?,
        )?;
        health["workers"]
            .as_u64()
            .map(|n| n as usize)
            .context("no workers in the reply to GET /health")
    }

    fn submit(&self, body: &str) -> Result<i64> {
        let reply: Value = serde_json::from_str(
            &ureq::post(&format!("{}/judgings", self.base))
                .set("Content-Type", "application/json")
                .send_string(body)
                .context("POST /judgings")?
                .into_string()?,
        )?;
        reply["id"]
            .as_i64()
            .context("no id in the reply to POST /judgings")
    }

    /// Poll until judging `id` is done; it must be correct on `cases` test cases.
    fn wait_done(&self, id: i64, cases: usize) -> Result<()> {
        let deadline = Instant::now() + JUDGING_TIMEOUT;
        loop {
            let judging: Value = serde_json::from_str(
                &ureq::get(&format!("{}/judgings/{id}", self.base))
                    .call()
                    .with_context(|| format!("GET /judgings/{id}"))?
                    .into_string()?,
            )?;
            match judging["status"].as_str() {
                Some("done") => {
                    let judged_cases = judging["tests"].as_array().map_or(0, Vec::len);
                    ensure!(
                        judging["verdict"] == "correct" && judged_cases == cases,
                        "judging {id}: {judging:#}"
                    );
                    return Ok(());
                }
                Some("queued" | "judging") if Instant::now() < deadline => std::thread::sleep(POLL),
                _ => bail!("judging {id} did not end well: {judging:#}"),
            }
        }
    }
}

impl Drop for Daemon {
    /// SIGTERM (a clean stop removes warm sandboxes' cgroups, which a SIGKILL would leave),
    /// SIGKILL after 10 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A problem's id in the daemon: its directory's name.
fn problem_id(problem: &Path) -> Result<String> {
    problem
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .context("the problem directory has no name")
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn setting(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(value) => match value.parse() {
            Ok(count) if count >= 1 => Ok(count),
            _ => bail!("{name}=`{value}' is not a count >= 1"),
        },
        Err(_) => Ok(default),
    }
}
