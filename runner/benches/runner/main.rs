//! The runner benchmark: `cargo bench -p runner --bench runner` (or `ci/bench`, which also
//! installs what it needs). Needs root, like runguard itself.
//!
//! 1. Latency of one-shot runs of a static `true`: the release `runguard` binary called as a
//!    DOMjudge judgehost calls it for a test run (chroot, user switch, cgroup memory limit,
//!    DOMjudge's namespaces, meta file), next to a plain fork+exec+wait and `bwrap --unshare-all`
//!    of the same program. The three are run round-robin, so the machine's noise (other builds,
//!    timers, caches) hits all of them alike.
//! 2. Spread of the reported CPU time: a spinner doing a fixed ~200 ms of work, 50 times under
//!    runguard; the same work should be billed the same time.
//! 3. Overshoot of the hard CPU limit: a spinner that never stops, under a 0.2 s hard CPU limit;
//!    how much CPU time it is billed beyond the limit before it is killed.
//!
//! It ends with one `name=value` line per figure and writes the same figures to
//! `target/bench/runner.json`. Environment: `BENCH_ROUNDS` (rounds of step 1, default 1000),
//! `RUNGUARD` (another runguard binary to measure, e.g. DOMjudge's).
//!
//! `cargo test` runs bench targets too, without `--bench`: then only the statistics helpers are
//! checked, so the test suite stays fast.

mod figures;
mod fixture;
mod setting;
mod stats;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use figures::Figures;
use fixture::{Fixture, RUN_GROUP, RUN_USER};

const DEFAULT_ROUNDS: usize = 1000;
/// Rounds run first and thrown away: page cache, dentries and the allocator warm up.
const WARMUP_ROUNDS: usize = 20;
/// CPU work of the spinner whose reported CPU time should not vary from run to run.
const SPIN_WORK: Duration = Duration::from_millis(200);
const SPIN_RUNS: usize = 50;
/// The hard CPU limit of the overshoot runs, as runguard's `--cputime` takes it.
const CPU_HARD_LIMIT: &str = "0.2";
const OVERSHOOT_RUNS: usize = 20;
/// Wall-time limit of every sandboxed run: only a safety net, far above what any run needs.
const WALL_LIMIT: &str = "10:10";
/// CPU-time limit of the runs that must not be killed.
const GENEROUS_CPU_LIMIT: &str = "5:5";
/// The figures of each variant of step 1, after its name: `oneshot_median_ms` ...
const LATENCY_FIGURES: [&str; 3] = ["median_ms", "p99_ms", "runs_per_s"];

fn main() -> Result<()> {
    if !setting::is_bench_run("runner") {
        return Ok(());
    }

    let rounds = setting::count("BENCH_ROUNDS", DEFAULT_ROUNDS)?;
    let runguard = runguard_binary()?;
    let fixture = Fixture::create()?;
    println!("runguard: {}", runguard.display());

    let mut figures = Figures::default();
    compare_latency(&runguard, &fixture, rounds, &mut figures)?;
    measure_cpu_spread(&runguard, &fixture, &mut figures)?;
    measure_cpu_overshoot(&runguard, &fixture, &mut figures)?;

    println!("\ntargets: oneshot_median_ms <= 2, cpu_stdev_pct <= 1, cpu_overshoot_ms <= 10\n");
    figures.print();
    figures.write_json(&setting::target_dir()?.join("bench/runner.json"))
}

/// Step 1: the same static `true` plainly, under runguard and under bwrap, round-robin.
fn compare_latency(
    runguard: &Path,
    fixture: &Fixture,
    rounds: usize,
    figures: &mut Figures,
) -> Result<()> {
    let mut variants = vec![
        Variant::new("plain", quiet(Command::new(fixture.host_path("true")))),
        Variant::new(
            "oneshot",
            runguard_test_run(runguard, fixture, GENEROUS_CPU_LIMIT, &["/true"]),
        ),
    ];
    if bwrap_available() {
        let mut bwrap = Command::new("bwrap");
        bwrap
            .arg("--unshare-all")
            .arg("--ro-bind")
            .arg(fixture.chroot())
            .args(["/", "/true"]);
        variants.push(Variant::new("bwrap", quiet(bwrap)));
    } else {
        println!("note: bwrap is not installed (ci/setup installs it): bwrap figures skipped");
        for figure in LATENCY_FIGURES {
            figures.skip(format!("bwrap_{figure}"));
        }
    }

    println!("\nlatency of a static `true`, {rounds} rounds after {WARMUP_ROUNDS} warm-up:");
    for round in 0..WARMUP_ROUNDS + rounds {
        for variant in &mut variants {
            let elapsed = timed_run(&mut variant.command, Expect::Success)?;
            if round >= WARMUP_ROUNDS {
                variant.samples_ms.push(millis(elapsed));
            }
        }
    }

    println!("  {:<8} {:>11} {:>11} {:>9}", "", "median", "p99", "runs/s");
    for variant in &variants {
        let samples = &variant.samples_ms;
        let median = stats::median(samples);
        let p99 = stats::percentile(samples, 99.0);
        let runs_per_s = samples.len() as f64 / (samples.iter().sum::<f64>() / 1000.0);
        println!(
            "  {:<8} {median:>8.3} ms {p99:>8.3} ms {runs_per_s:>9.0}",
            variant.name
        );
        for (figure, value) in LATENCY_FIGURES.into_iter().zip([median, p99, runs_per_s]) {
            figures.add(format!("{}_{figure}", variant.name), value);
        }
    }
    Ok(())
}

/// Step 2: how much the CPU time reported for the same work varies.
fn measure_cpu_spread(runguard: &Path, fixture: &Fixture, figures: &mut Figures) -> Result<()> {
    let iterations = calibrate_spinner(fixture)?;
    let iterations_arg = iterations.to_string();
    let mut command = runguard_test_run(
        runguard,
        fixture,
        GENEROUS_CPU_LIMIT,
        &["/spin", &iterations_arg],
    );
    let mut cpu_ms = Vec::with_capacity(SPIN_RUNS);
    for _ in 0..SPIN_RUNS {
        timed_run(&mut command, Expect::Success)?;
        cpu_ms.push(read_meta(&fixture.file("program.meta"))?.seconds("cpu-time")? * 1000.0);
    }
    let mean = stats::mean(&cpu_ms);
    let stdev_pct = stats::stdev(&cpu_ms) / mean * 100.0;
    println!(
        "\ncpu time of {iterations} spinner iterations, {SPIN_RUNS} runs under runguard: \
         mean {mean:.1} ms, stdev {stdev_pct:.2} %"
    );
    figures.add("cpu_mean_ms".into(), mean);
    figures.add("cpu_stdev_pct".into(), stdev_pct);
    Ok(())
}

/// The spinner's iteration count that makes about [`SPIN_WORK`] of CPU time on this machine.
/// An unconfined run's wall time stands in for its CPU time: the spinner is a single thread
/// that never sleeps.
fn calibrate_spinner(fixture: &Fixture) -> Result<u64> {
    let mut iterations: u64 = 50_000_000;
    // The spinner is linear in its iterations; a few rescalings settle the estimate.
    for _ in 0..3 {
        let mut command = Command::new(fixture.host_path("spin"));
        command.arg(iterations.to_string());
        let elapsed = timed_run(&mut quiet(command), Expect::Success)?;
        let scale = SPIN_WORK.as_secs_f64() / elapsed.as_secs_f64();
        iterations = (iterations as f64 * scale).max(1.0) as u64;
    }
    Ok(iterations)
}

/// Step 3: CPU time billed beyond the hard CPU limit to a program that never stops.
fn measure_cpu_overshoot(runguard: &Path, fixture: &Fixture, figures: &mut Figures) -> Result<()> {
    let limit = format!("{CPU_HARD_LIMIT}:{CPU_HARD_LIMIT}");
    let limit_s: f64 = CPU_HARD_LIMIT.parse()?;
    let mut command = runguard_test_run(runguard, fixture, &limit, &["/spin", "0"]);
    let mut overshoot_ms = Vec::with_capacity(OVERSHOOT_RUNS);
    for _ in 0..OVERSHOOT_RUNS {
        timed_run(&mut command, Expect::Killed)?;
        let meta = read_meta(&fixture.file("program.meta"))?;
        let time_result = meta.get("time-result")?;
        if time_result != "hard-timelimit" {
            bail!(
                "the endless spinner was not killed by a hard limit: time-result `{time_result}'"
            );
        }
        overshoot_ms.push((meta.seconds("cpu-time")? - limit_s) * 1000.0);
    }
    let median = stats::median(&overshoot_ms);
    let max = stats::percentile(&overshoot_ms, 100.0);
    println!(
        "\nhard cpu limit {CPU_HARD_LIMIT} s, {OVERSHOOT_RUNS} runs: cpu time beyond it \
         median {median:.1} ms, max {max:.1} ms"
    );
    figures.add("cpu_overshoot_ms".into(), median);
    figures.add("cpu_overshoot_max_ms".into(), max);
    Ok(())
}

/// runguard called the way DOMjudge's `testcase_run.sh` calls it for a test run (stdin and
/// stdout are the caller's redirections there, /dev/null here), plus our `--config`.
fn runguard_test_run(
    runguard: &Path,
    fixture: &Fixture,
    cpu_limit: &str,
    program: &[&str],
) -> Command {
    let mut command = Command::new(runguard);
    command
        .arg("--config")
        .arg(fixture.config())
        .arg("-r")
        .arg(fixture.chroot())
        .args(["--nproc=64", "--no-core", "--streamsize=8192"])
        .arg(format!("--user={RUN_USER}"))
        .arg(format!("--group={RUN_GROUP}"))
        .arg(format!("--walltime={WALL_LIMIT}"))
        .arg(format!("--cputime={cpu_limit}"))
        .args(["--memsize=262144", "--filesize=8192"])
        .arg("--stderr")
        .arg(fixture.file("program.err"))
        .arg("--outmeta")
        .arg(fixture.file("program.meta"))
        .arg("--")
        .args(program);
    quiet(command)
}

/// No input, output thrown away; stderr is kept to explain a failure.
fn quiet(mut command: Command) -> Command {
    command.stdin(Stdio::null()).stdout(Stdio::null());
    command
}

/// Which ends of a run are normal.
enum Expect {
    /// Exit status 0.
    Success,
    /// Killed for a limit: any status but runguard's internal error (255).
    Killed,
}

/// Runs `command` to its end; the time from spawn until it is reaped.
fn timed_run(command: &mut Command, expect: Expect) -> Result<Duration> {
    let start = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("cannot start {command:?}"))?;
    let elapsed = start.elapsed();
    let normal = match expect {
        Expect::Success => output.status.success(),
        Expect::Killed => output.status.code() != Some(255),
    };
    if !normal {
        bail!(
            "{command:?} ended with {}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(elapsed)
}

struct Variant {
    /// Prefix of its figures.
    name: &'static str,
    command: Command,
    samples_ms: Vec<f64>,
}

impl Variant {
    fn new(name: &'static str, command: Command) -> Variant {
        Variant {
            name,
            command,
            samples_ms: Vec::new(),
        }
    }
}

fn bwrap_available() -> bool {
    Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// A runguard meta file: `key: value` lines.
struct Meta {
    path: PathBuf,
    values: HashMap<String, String>,
}

fn read_meta(path: &Path) -> Result<Meta> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read runguard's meta file `{}'", path.display()))?;
    let values = text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Ok(Meta {
        path: path.to_owned(),
        values,
    })
}

impl Meta {
    fn get(&self, key: &str) -> Result<&str> {
        match self.values.get(key) {
            Some(value) => Ok(value),
            None => bail!("meta file `{}' has no `{key}'", self.path.display()),
        }
    }

    fn seconds(&self, key: &str) -> Result<f64> {
        let value = self.get(key)?;
        value.parse().with_context(|| {
            format!(
                "meta file `{}': `{key}: {value}' is not seconds",
                self.path.display()
            )
        })
    }
}

/// `RUNGUARD` if set, else the package's own binary, which cargo builds before its benches.
fn runguard_binary() -> Result<PathBuf> {
    let path = match (
        std::env::var_os("RUNGUARD"),
        option_env!("CARGO_BIN_EXE_runguard"),
    ) {
        (Some(path), _) => PathBuf::from(path),
        (None, Some(path)) => PathBuf::from(path),
        (None, None) => bail!("this build of the runner package has no runguard binary to measure"),
    };
    if !path.is_file() {
        bail!("runguard binary `{}' does not exist", path.display());
    }
    Ok(path)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
