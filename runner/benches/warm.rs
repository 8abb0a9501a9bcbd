//! The warm sandbox benchmark: `cargo bench -p runner --bench warm` (or `ci/bench`). Needs root.
//!
//! 1. Latency of a static `true`, round-robin so that the machine's noise hits all alike: a
//!    plain fork+exec+wait, a one-shot release `runguard` run as DOMjudge makes it, and a run in
//!    a warm sandbox with the same confinement (chroot, user switch, DOMjudge's namespaces,
//!    memory, process, file-size, stream and time limits), and the same warm run with the
//!    diagnostics' measurements on (`Plan::measure_activity`: stalls and memory activity).
//! 2. Parallel: one warm sandbox per core, each driven by its own thread; total runs/s.
//! 3. A long series (`WARM_LONG_RUNS`, default 100 000) in one sandbox: throughput and the
//!    keeper's resident memory per tenth of the series.
//! 4. Spread of the CPU time reported for a spinner doing ~200 ms of work, in a warm sandbox.
//!
//! Ends with `name=value` lines, also written to `target/bench/warm.json`. `BENCH_ROUNDS`
//! changes the rounds of step 1 (default 1000). `cargo test` runs this target without
//! `--bench`: then only the statistics helpers are checked.

// Shared with the runner bench, which uses all of it.
#[allow(dead_code)]
#[path = "runner/figures.rs"]
mod figures;
#[path = "runner/fixture.rs"]
mod fixture;
#[path = "runner/setting.rs"]
mod setting;
#[path = "runner/stats.rs"]
mod stats;
#[path = "runner/warm_runs.rs"]
mod warm_runs;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use runner::plan::Plan;
use runner::warm::Sandbox;

use figures::Figures;
use fixture::{Fixture, RUN_GROUP, RUN_USER};
use warm_runs::{plan, request, warm_run};

const DEFAULT_ROUNDS: usize = 1000;
const WARMUP_ROUNDS: usize = 20;
const PARALLEL_RUNS_PER_SANDBOX: usize = 5000;
const DEFAULT_LONG_RUNS: usize = 100_000;
const SPIN_WORK: Duration = Duration::from_millis(200);
const SPIN_RUNS: usize = 50;

fn main() -> Result<()> {
    if !setting::is_bench_run("warm") {
        return Ok(());
    }
    let rounds = setting::count("BENCH_ROUNDS", DEFAULT_ROUNDS)?;
    let long_runs = setting::count("WARM_LONG_RUNS", DEFAULT_LONG_RUNS)?;
    let fixture = Fixture::create()?;
    let mut figures = Figures::default();

    compare_latency(&fixture, rounds, &mut figures)?;
    measure_parallel(&fixture, &mut figures)?;
    measure_long_series(&fixture, long_runs, &mut figures)?;
    measure_cpu_spread(&fixture, &mut figures)?;

    println!(
        "\ntargets: warm_vs_plain >= 0.75, long_run_last_vs_first >= 0.95, keeper memory flat, \
         cpu_stdev_pct <= 1, warm_activity_vs_off >= 0.97\n"
    );
    figures.print();
    figures.write_json(&setting::target_dir()?.join("bench/warm.json"))
}

fn sandbox_for(plan: &Plan) -> Result<Sandbox> {
    warm_runs::sandbox_for(plan, Path::new(env!("CARGO_BIN_EXE_keeper")))
}

/// A command run to its end with no input and output thrown away: the time until reaped.
fn timed_status(command: &mut Command) -> Result<Duration> {
    let start = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("cannot start {command:?}"))?;
    let elapsed = start.elapsed();
    if !status.success() {
        bail!("{command:?} ended with {status}");
    }
    Ok(elapsed)
}

fn quiet(mut command: Command) -> Command {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// The same arguments as the runner bench's one-shot runs.
fn oneshot_command(fixture: &Fixture) -> Result<Command> {
    let runguard = option_env!("CARGO_BIN_EXE_runguard")
        .map(PathBuf::from)
        .context("this build has no runguard binary")?;
    let mut command = Command::new(runguard);
    command
        .arg("--config")
        .arg(fixture.config())
        .arg("-r")
        .arg(fixture.chroot())
        .args(["--nproc=64", "--no-core", "--streamsize=8192"])
        .arg(format!("--user={RUN_USER}"))
        .arg(format!("--group={RUN_GROUP}"))
        .args(["--walltime=10:10", "--cputime=5:5"])
        .args(["--memsize=262144", "--filesize=8192"])
        .arg("--outmeta")
        .arg(fixture.file("program.meta"))
        .args(["--", "/true"]);
    Ok(quiet(command))
}

/// Step 1.
fn compare_latency(fixture: &Fixture, rounds: usize, figures: &mut Figures) -> Result<()> {
    let mut plain = quiet(Command::new(fixture.host_path("true")));
    let mut oneshot = oneshot_command(fixture)?;
    let warm_plan = plan(fixture, "/true", &[]);
    let mut sandbox = sandbox_for(&warm_plan)?;
    // The same run with the diagnostics' measurements on (stalls, memory activity), in the
    // same sandbox.
    let measured_request = request(Plan {
        measure_activity: true,
        ..warm_plan.clone()
    });
    let warm_request = request(warm_plan);

    let mut samples: [Vec<f64>; 4] = Default::default();
    println!("latency of a static `true`, {rounds} rounds after {WARMUP_ROUNDS} warm-up:");
    for round in 0..WARMUP_ROUNDS + rounds {
        let times = [
            timed_status(&mut plain)?,
            timed_status(&mut oneshot)?,
            warm_run(&mut sandbox, &warm_request)?.0,
            warm_run(&mut sandbox, &measured_request)?.0,
        ];
        if round >= WARMUP_ROUNDS {
            for (series, time) in samples.iter_mut().zip(times) {
                series.push(millis(time));
            }
        }
    }
    sandbox.destroy()?;

    println!("  {:<8} {:>11} {:>11} {:>9}", "", "median", "p99", "runs/s");
    let mut rates = Vec::new();
    let names = ["plain", "oneshot", "warm", "warm_activity"];
    for (name, series) in names.into_iter().zip(&samples) {
        let median = stats::median(series);
        let p99 = stats::percentile(series, 99.0);
        let runs_per_s = series.len() as f64 / (series.iter().sum::<f64>() / 1000.0);
        println!("  {name:<8} {median:>8.3} ms {p99:>8.3} ms {runs_per_s:>9.0}");
        figures.add(format!("{name}_median_ms"), median);
        figures.add(format!("{name}_p99_ms"), p99);
        figures.add(format!("{name}_runs_per_s"), runs_per_s);
        rates.push(runs_per_s);
    }
    figures.add("warm_vs_plain".into(), rates[2] / rates[0]);
    // Issue target: diagnostics on cost at most 3 % of warm throughput.
    figures.add("warm_activity_vs_off".into(), rates[3] / rates[2]);
    Ok(())
}

/// Step 2: one sandbox per core, each driven by its own thread.
fn measure_parallel(fixture: &Fixture, figures: &mut Figures) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let warm_plan = plan(fixture, "/true", &[]);
    let mut sandboxes = (0..cores)
        .map(|_| sandbox_for(&warm_plan))
        .collect::<Result<Vec<_>>>()?;
    let warm_request = request(warm_plan);
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = sandboxes
            .iter_mut()
            .map(|sandbox| {
                let warm_request = &warm_request;
                scope.spawn(move || -> Result<()> {
                    for _ in 0..PARALLEL_RUNS_PER_SANDBOX {
                        warm_run(sandbox, warm_request)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("a bench thread panicked")?;
        }
        Ok(())
    })?;
    let runs_per_s = (cores * PARALLEL_RUNS_PER_SANDBOX) as f64 / start.elapsed().as_secs_f64();
    for sandbox in sandboxes {
        sandbox.destroy()?;
    }
    println!(
        "\n{cores} warm sandboxes in parallel, {PARALLEL_RUNS_PER_SANDBOX} runs each: \
         {runs_per_s:.0} runs/s"
    );
    figures.add("warm_parallel_sandboxes".into(), cores as f64);
    figures.add("warm_parallel_runs_per_s".into(), runs_per_s);
    Ok(())
}

/// Step 3: throughput and keeper memory over a long series in one sandbox.
fn measure_long_series(fixture: &Fixture, runs: usize, figures: &mut Figures) -> Result<()> {
    let warm_plan = plan(fixture, "/true", &[]);
    let mut sandbox = sandbox_for(&warm_plan)?;
    let warm_request = request(warm_plan);
    let keeper = sandbox.keeper_pid().context("no keeper")?;
    let tenth = (runs / 10).max(1);
    println!("\n{runs} warm runs in one sandbox, per tenth: runs/s, keeper RSS");
    let mut rates = Vec::new();
    let mut rss = Vec::new();
    let series_start = Instant::now();
    for part in 0..10 {
        let start = Instant::now();
        for _ in 0..tenth {
            warm_run(&mut sandbox, &warm_request)?;
        }
        let rate = tenth as f64 / start.elapsed().as_secs_f64();
        let kib = resident_kib(keeper)?;
        println!("  {part}: {rate:>7.0} runs/s, {kib} KiB");
        rates.push(rate);
        rss.push(kib as f64);
    }
    let total = series_start.elapsed();
    if sandbox.keeper_pid() != Some(keeper) {
        bail!("the keeper was rebuilt during the long series: its memory figures mean nothing");
    }
    sandbox.destroy()?;
    println!("  took {:.1} s", total.as_secs_f64());
    figures.add("long_runs".into(), (tenth * 10) as f64);
    figures.add("long_run_seconds".into(), total.as_secs_f64());
    figures.add("long_run_last_vs_first".into(), rates[9] / rates[0]);
    figures.add("keeper_rss_first_kib".into(), rss[0]);
    figures.add("keeper_rss_last_kib".into(), rss[9]);
    Ok(())
}

/// VmRSS of a process, in KiB.
fn resident_kib(pid: i32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read the status of the keeper {pid}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in the keeper's status")
}

/// Step 4: the spinner, calibrated by the CPU time its warm runs are billed.
fn measure_cpu_spread(fixture: &Fixture, figures: &mut Figures) -> Result<()> {
    let spin_plan = |iterations: u64| request(plan(fixture, "/spin", &[iterations.to_string()]));
    let mut sandbox = sandbox_for(&spin_plan(1).plan)?;
    let mut iterations: u64 = 50_000_000;
    for _ in 0..3 {
        let (_, report) = warm_run(&mut sandbox, &spin_plan(iterations))?;
        let scale = SPIN_WORK.as_secs_f64() / report.cpu_time.as_secs_f64().max(1e-3);
        iterations = (iterations as f64 * scale).max(1.0) as u64;
    }
    let spin = spin_plan(iterations);
    let mut cpu_ms = Vec::with_capacity(SPIN_RUNS);
    for _ in 0..SPIN_RUNS {
        let (_, report) = warm_run(&mut sandbox, &spin)?;
        cpu_ms.push(millis(report.cpu_time));
    }
    sandbox.destroy()?;
    // The same work run plainly, measured by the kernel's rusage: the spread the machine itself
    // gives (a virtual machine's steal and frequency changes), which no sandbox can beat.
    let mut plain = quiet(Command::new(fixture.host_path("spin")));
    plain.arg(iterations.to_string());
    let mut plain_cpu_ms = Vec::with_capacity(SPIN_RUNS);
    for _ in 0..SPIN_RUNS {
        let before = children_cpu_time()?;
        timed_status(&mut plain)?;
        plain_cpu_ms.push(millis(children_cpu_time()? - before));
    }
    for (prefix, samples) in [("", &cpu_ms), ("plain_", &plain_cpu_ms)] {
        let mean = stats::mean(samples);
        let stdev_pct = stats::stdev(samples) / mean * 100.0;
        println!(
            "\ncpu time of {iterations} spinner iterations, {SPIN_RUNS} {} runs: mean {mean:.1} \
             ms, stdev {stdev_pct:.2} %",
            if prefix.is_empty() { "warm" } else { "plain" }
        );
        figures.add(format!("{prefix}cpu_mean_ms"), mean);
        figures.add(format!("{prefix}cpu_stdev_pct"), stdev_pct);
    }
    Ok(())
}

/// User + system time of our reaped children so far.
fn children_cpu_time() -> Result<Duration> {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    let time = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    Ok(time(usage.user_time()) + time(usage.system_time()))
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
