//! What judged's diagnostics cost warm runs: `cargo bench -p judged --bench diagnostics` (or
//! `ci/bench`). Needs root, eBPF and the release keeper (`cargo build --release -p runner`).
//!
//! "On" is what the daemon runs: its host watcher (the workqueue, lock and fork programs, PSI
//! triggers and host readings, one window a second, on its own thread: `serve::hostwatch`),
//! one run lane of the per-run tracer (`diagnostics::lanes`: the D-state, exit and page-cache
//! programs and taskstats exit records, with `kernel.task_delayacct=1`), bracketing every run,
//! and the runs' stall and memory activity readings (`Plan::measure_activity`). "Off" is the
//! same warm runs of a static `true` with none of it.
//!
//! 1. Throughput, on against off in the same run: `DIAG_PAIRS` (default 40) pairs of blocks
//!    of `DIAG_BLOCK_RUNS` (default 1 000) runs, in ABBA order (off-on, on-off, ...) so that
//!    the machine's drift hits both alike. Each block starts its own sandbox (and, when on,
//!    its own diagnostics) and warms it up before it is timed. Figures: the median of the
//!    pairs' on/off time-per-run ratios (`slowdown_median`; the target is <= 1.03),
//!    their quartiles and a bootstrap 95 % interval of the median.
//! 2. The diagnostics' own CPU time, a direct and low-noise figure: `DIAG_COST_BLOCKS`
//!    (default 4) more blocks on, with the kernel's BPF run-time statistics enabled (through
//!    a `BPF_ENABLE_STATS` descriptor: off again when it closes, `kernel.bpf_stats_enabled`
//!    untouched): each program's run time, the watcher thread's CPU time and the CPU time
//!    judged spends bracketing the runs, per run and as a fraction of the runs' wall time;
//!    and with the keeper's extra CPU time per run of step 1 (the activity readings are the
//!    keeper's: on's median less off's), the whole cost.
//!
//! Ends with `name=value` lines, also written to `target/bench/diagnostics.json`. `cargo test`
//! runs this target without `--bench`: then only the statistics helpers are checked.

#[allow(dead_code)]
#[path = "../../runner/benches/runner/figures.rs"]
mod figures;
#[allow(dead_code)]
#[path = "../../runner/benches/runner/fixture.rs"]
mod fixture;
#[path = "../../runner/benches/runner/setting.rs"]
mod setting;
#[path = "../../runner/benches/runner/stats.rs"]
mod stats;
#[path = "../../runner/benches/runner/warm_runs.rs"]
mod warm_runs;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use judged::diagnostics::hostwatcher::{HostWatcher, Running, DEFAULT_WINDOW_SECS};
use judged::diagnostics::lanes::{CgroupMounts, RunTracing};
use judged::diagnostics::thresholds::Thresholds;
use judged::serve::hostwatch;
use runner::warm::{Request, Sandbox};

use figures::Figures;
use fixture::Fixture;
use warm_runs::warm_run;

const DEFAULT_PAIRS: usize = 40;
const DEFAULT_BLOCK_RUNS: usize = 1000;
const DEFAULT_COST_BLOCKS: usize = 4;
/// Untimed runs at the start of each block (a new sandbox, new diagnostics).
const WARMUP_RUNS: usize = 20;
/// Resamples of the bootstrap interval of the median ratio.
const BOOTSTRAP_RESAMPLES: usize = 10_000;
const TASK_DELAYACCT: &str = "/proc/sys/kernel/task_delayacct";
/// How long the host watcher may take to load its programs.
const WATCHER_START_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> Result<()> {
    if !setting::is_bench_run("diagnostics") {
        let checks = self_test();
        println!("diagnostics bench: {checks} checks of its own passed");
        return Ok(());
    }
    ensure!(
        nix::unistd::geteuid().is_root(),
        "the diagnostics bench loads BPF programs and runs sandboxes: run it as root (ci/bench)"
    );
    let pairs = setting::count("DIAG_PAIRS", DEFAULT_PAIRS)?;
    let block_runs = setting::count("DIAG_BLOCK_RUNS", DEFAULT_BLOCK_RUNS)?;
    let cost_blocks = setting::count("DIAG_COST_BLOCKS", DEFAULT_COST_BLOCKS)?;
    let keeper = runner::warm::default_keeper_binary();
    ensure!(
        keeper.is_file(),
        "no keeper at `{}': build it with `cargo build --release -p runner' (or set \
         JUDGED_KEEPER)",
        keeper.display()
    );
    let fixture = Fixture::create()?;
    let bench = Bench {
        fixture: &fixture,
        keeper: &keeper,
        block_runs,
    };
    let mut figures = Figures::default();
    let keeper_extra = compare_throughput(&bench, pairs, &mut figures)?;
    measure_cost(&bench, cost_blocks, keeper_extra, &mut figures)?;
    println!("\ntargets: slowdown_median <= 1.03, diagnostics_with_keeper_cpu_fraction <= 0.03\n");
    figures.print();
    figures.write_json(&setting::target_dir()?.join("bench/diagnostics.json"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off = 0,
    On = 1,
}

/// The blocks of pair `pair` in ABBA order: off first in even pairs, on first in odd ones.
fn pair_order(pair: usize) -> [Mode; 2] {
    if pair.is_multiple_of(2) {
        [Mode::Off, Mode::On]
    } else {
        [Mode::On, Mode::Off]
    }
}

struct Bench<'a> {
    fixture: &'a Fixture,
    keeper: &'a Path,
    block_runs: usize,
}

/// One timed block: its runs' wall time and, when on, what the diagnostics spent meanwhile.
struct Block {
    wall: Duration,
    runs: usize,
    /// The keeper's CPU time (all its threads) per run.
    keeper_cpu_per_run: Duration,
    cost: Option<Cost>,
}

impl Block {
    fn per_run(&self) -> f64 {
        self.wall.as_secs_f64() / self.runs as f64
    }
}

impl Bench<'_> {
    /// A new sandbox (with new diagnostics when on), warmed up, then `block_runs` timed runs.
    fn block(&self, mode: Mode) -> Result<Block> {
        let mut diagnostics = match mode {
            Mode::On => Some(Diagnostics::start(vec![self.fixture.host_path("true")])?),
            Mode::Off => None,
        };
        let mut plan = warm_runs::plan(self.fixture, "/true", &[]);
        if let Some(diagnostics) = &diagnostics {
            plan.cgroup_parent = diagnostics.tracing.lane_parent(0).to_path_buf();
            plan.measure_activity = true;
        }
        let request = warm_runs::request(plan);
        let mut sandbox = warm_runs::sandbox_for(&request.plan, self.keeper)?;
        let run = |diagnostics: &mut Option<Diagnostics>, sandbox: &mut Sandbox| match diagnostics {
            Some(diagnostics) => diagnostics.run(sandbox, &request),
            None => warm_run(sandbox, &request).map(drop),
        };
        for _ in 0..WARMUP_RUNS {
            run(&mut diagnostics, &mut sandbox)?;
        }
        let keeper = sandbox
            .keeper_pid()
            .context("the warm sandbox has no keeper")?;
        let keeper_before = process_cpu(keeper)?;
        let before = diagnostics.as_ref().map(Diagnostics::cost).transpose()?;
        let start = Instant::now();
        for _ in 0..self.block_runs {
            run(&mut diagnostics, &mut sandbox)?;
        }
        let wall = start.elapsed();
        let after = diagnostics.as_ref().map(Diagnostics::cost).transpose()?;
        ensure!(
            sandbox.keeper_pid() == Some(keeper),
            "the keeper was rebuilt during a block: its CPU time means nothing"
        );
        let keeper_cpu = process_cpu(keeper)?.saturating_sub(keeper_before);
        sandbox.destroy()?;
        // The lane's directories go with the diagnostics, once the sandbox has left them.
        drop(diagnostics);
        Ok(Block {
            wall,
            runs: self.block_runs,
            keeper_cpu_per_run: keeper_cpu / self.block_runs as u32,
            cost: before
                .zip(after)
                .map(|(before, after)| after.since(&before)),
        })
    }
}

/// Step 1. Returns the keeper's extra CPU time per run with the diagnostics on (median on
/// less median off): the runs' activity readings, made in the keeper.
fn compare_throughput(bench: &Bench, pairs: usize, figures: &mut Figures) -> Result<Duration> {
    println!(
        "warm runs of a static `true`, diagnostics on/off: {pairs} ABBA pairs of {} runs",
        bench.block_runs
    );
    let mut ratios = Vec::with_capacity(pairs);
    let mut per_run: [Vec<f64>; 2] = Default::default();
    let mut keeper_cpu: [Vec<f64>; 2] = Default::default();
    let started = Instant::now();
    for pair in 0..pairs {
        let mut times = [0.0; 2];
        for mode in pair_order(pair) {
            let block = bench.block(mode)?;
            let slot = mode as usize;
            times[slot] = block.per_run();
            per_run[slot].push(block.per_run() * 1e3);
            keeper_cpu[slot].push(block.keeper_cpu_per_run.as_secs_f64() * 1e6);
        }
        let ratio = times[Mode::On as usize] / times[Mode::Off as usize];
        println!(
            "  pair {pair:>3}: off {:.3} ms, on {:.3} ms per run: {ratio:.3}",
            times[0] * 1e3,
            times[1] * 1e3
        );
        ratios.push(ratio);
    }
    let (low, high) = bootstrap_median_interval(&ratios, BOOTSTRAP_RESAMPLES, 0.95);
    let median = stats::median(&ratios);
    println!(
        "  took {:.0} s; on/off time per run: median {median:.4}, quartiles {:.4}..{:.4}, \
         95 % interval of the median {low:.4}..{high:.4}",
        started.elapsed().as_secs_f64(),
        stats::percentile(&ratios, 25.0),
        stats::percentile(&ratios, 75.0),
    );
    figures.add("pairs".into(), pairs as f64);
    figures.add("block_runs".into(), bench.block_runs as f64);
    for (mode, name) in [(Mode::Off, "off"), (Mode::On, "on")] {
        let slot = mode as usize;
        figures.add(
            format!("{name}_ms_per_run_median"),
            stats::median(&per_run[slot]),
        );
        figures.add(
            format!("{name}_keeper_cpu_us_per_run_median"),
            stats::median(&keeper_cpu[slot]),
        );
    }
    figures.add("slowdown_median".into(), median);
    figures.add("slowdown_p25".into(), stats::percentile(&ratios, 25.0));
    figures.add("slowdown_p75".into(), stats::percentile(&ratios, 75.0));
    figures.add("slowdown_ci95_low".into(), low);
    figures.add("slowdown_ci95_high".into(), high);
    let keeper_extra_us = stats::median(&keeper_cpu[Mode::On as usize])
        - stats::median(&keeper_cpu[Mode::Off as usize]);
    Ok(Duration::from_secs_f64(keeper_extra_us.max(0.0) / 1e6))
}

/// Step 2. `keeper_extra`: step 1's extra keeper CPU time per run, added for the total.
fn measure_cost(
    bench: &Bench,
    blocks: usize,
    keeper_extra: Duration,
    figures: &mut Figures,
) -> Result<()> {
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .context("cannot enable the kernel's BPF run-time statistics (BPF_ENABLE_STATS)")?;
    let mut total = Cost::default();
    let mut wall = Duration::ZERO;
    let mut runs = 0;
    for _ in 0..blocks {
        let block = bench.block(Mode::On)?;
        total.add(&block.cost.context("a block on measured no cost")?);
        wall += block.wall;
        runs += block.runs;
    }
    let per_run_us = |time: Duration| time.as_secs_f64() * 1e6 / runs as f64;
    println!(
        "\nthe diagnostics' own CPU time over {blocks} blocks on ({runs} runs, {:.1} s), per run:",
        wall.as_secs_f64()
    );
    for (name, program) in &total.programs {
        println!(
            "  {name:<16} {:>7.2} us in {:>6.2} calls",
            per_run_us(program.time),
            program.calls as f64 / runs as f64
        );
        figures.add(format!("bpf_{name}_us_per_run"), per_run_us(program.time));
        figures.add(
            format!("bpf_{name}_calls_per_run"),
            program.calls as f64 / runs as f64,
        );
    }
    // Each of the two intervals timed per run holds about one reading of the clock itself.
    let clock = clock_reading_cost();
    total.bracketing = total.bracketing.saturating_sub(clock * 2 * runs as u32);
    println!(
        "  (run bracketing less 2 clock readings of {:.2} us per run)",
        clock.as_secs_f64() * 1e6
    );
    let bpf = total.bpf_time();
    let all = bpf + total.watcher_thread + total.bracketing;
    let keeper = keeper_extra * runs as u32;
    for (name, time) in [
        ("bpf programs", bpf),
        ("watcher thread", total.watcher_thread),
        ("run bracketing", total.bracketing),
        ("all of judged's", all),
        ("keeper (step 1)", keeper),
        ("with the keeper", all + keeper),
    ] {
        println!(
            "  {name:<16} {:>7.2} us, {:.3} % of the runs' wall time",
            per_run_us(time),
            time.as_secs_f64() / wall.as_secs_f64() * 100.0
        );
    }
    figures.add("bpf_us_per_run".into(), per_run_us(bpf));
    figures.add(
        "watcher_thread_us_per_run".into(),
        per_run_us(total.watcher_thread),
    );
    figures.add("bracketing_us_per_run".into(), per_run_us(total.bracketing));
    figures.add("clock_reading_us".into(), clock.as_secs_f64() * 1e6);
    figures.add("diagnostics_cpu_us_per_run".into(), per_run_us(all));
    figures.add(
        "diagnostics_cpu_fraction".into(),
        all.as_secs_f64() / wall.as_secs_f64(),
    );
    figures.add(
        "keeper_activity_us_per_run".into(),
        keeper_extra.as_secs_f64() * 1e6,
    );
    figures.add(
        "diagnostics_with_keeper_cpu_fraction".into(),
        (all + keeper).as_secs_f64() / wall.as_secs_f64(),
    );
    Ok(())
}

/// One BPF program's run time and calls (summed over programs of the same name).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct ProgramCost {
    time: Duration,
    calls: u64,
}

/// CPU time the diagnostics have spent: their BPF programs by name, the host watcher's
/// thread, and this thread's in [`RunTracing::begin`] and [`RunTracing::finish`].
#[derive(Debug, Clone, Default, PartialEq)]
struct Cost {
    programs: BTreeMap<String, ProgramCost>,
    watcher_thread: Duration,
    bracketing: Duration,
}

impl Cost {
    /// What was spent between `earlier` and this.
    fn since(&self, earlier: &Cost) -> Cost {
        let programs = self
            .programs
            .iter()
            .map(|(name, now)| {
                let then = earlier.programs.get(name).copied().unwrap_or_default();
                let spent = ProgramCost {
                    time: now.time.saturating_sub(then.time),
                    calls: now.calls.saturating_sub(then.calls),
                };
                (name.clone(), spent)
            })
            .collect();
        Cost {
            programs,
            watcher_thread: self.watcher_thread.saturating_sub(earlier.watcher_thread),
            bracketing: self.bracketing.saturating_sub(earlier.bracketing),
        }
    }

    fn add(&mut self, other: &Cost) {
        for (name, cost) in &other.programs {
            let sum = self.programs.entry(name.clone()).or_default();
            sum.time += cost.time;
            sum.calls += cost.calls;
        }
        self.watcher_thread += other.watcher_thread;
        self.bracketing += other.bracketing;
    }

    fn bpf_time(&self) -> Duration {
        self.programs.values().map(|p| p.time).sum()
    }
}

/// Everything judged's daemon runs for its warm runs' diagnostics (see the module's text),
/// for one run lane. Dropping it stops the watcher and detaches every program.
struct Diagnostics {
    tracing: RunTracing,
    watcher: Option<Running>,
    code: Vec<PathBuf>,
    /// This thread's CPU time in `begin` and `finish` so far.
    bracketing: Duration,
    _delay_accounting: Sysctl,
}

impl Diagnostics {
    fn start(code: Vec<PathBuf>) -> Result<Diagnostics> {
        // The tracer listens for exit records only where delay accounting is on at its start.
        let delay_accounting = Sysctl::set(TASK_DELAYACCT, "1")?;
        let host = hostwatch::watcher(Duration::from_secs_f64(DEFAULT_WINDOW_SECS));
        let running = hostwatch::start(&host, Thresholds::default().host, Default::default())
            .context("cannot start the host watcher's thread")?;
        let tracing = RunTracing::for_process(
            CgroupMounts::read().map_err(anyhow::Error::msg)?,
            Path::new(runner::plan::DEFAULT_CGROUP_PARENT),
            1,
        );
        let diagnostics = Diagnostics {
            tracing,
            watcher: Some(running),
            code,
            bracketing: Duration::ZERO,
            _delay_accounting: delay_accounting,
        };
        if let Some(reason) = diagnostics.tracing.dstate_unavailable() {
            bail!("the per-run tracer cannot run here, nothing to measure: {reason}");
        }
        wait_for_watcher(&host)?;
        Ok(diagnostics)
    }

    /// A warm run bracketed as the judge brackets a test case run; every per-run
    /// measurement must have worked.
    fn run(&mut self, sandbox: &mut Sandbox, request: &Request) -> Result<()> {
        let begun = thread_cpu();
        self.tracing.begin(0, &self.code);
        let ran = thread_cpu();
        let result = warm_run(sandbox, request);
        let returned = thread_cpu();
        let kernel = self.tracing.finish(0);
        self.bracketing += (ran - begun) + (thread_cpu() - returned);
        result?;
        for (what, reason) in [
            ("D-state time", kernel.dstate_unavailable),
            ("delays", kernel.delays_unavailable),
            ("code pages", kernel.code_pages_unavailable),
        ] {
            if let Some(reason) = reason {
                bail!(
                    "a run's {what} were not measured, so the diagnostics are not all on: {reason}"
                );
            }
        }
        Ok(())
    }

    /// What the diagnostics have spent since they started.
    fn cost(&self) -> Result<Cost> {
        let thread = self
            .watcher
            .as_ref()
            .and_then(Running::thread)
            .context("the watcher has stopped")?;
        Ok(Cost {
            programs: own_programs()?,
            watcher_thread: task_cpu(thread)?,
            bracketing: self.bracketing,
        })
    }
}

/// Wait until the watcher has loaded its programs; an error if none runs.
fn wait_for_watcher(host: &HostWatcher) -> Result<()> {
    let deadline = Instant::now() + WATCHER_START_TIMEOUT;
    loop {
        if let Some(status) = host.view(0).ebpf {
            if let Some(reason) = status.unavailable {
                bail!("the host watcher's eBPF programs cannot run here: {reason}");
            }
            if let Some(failed) = status.programs.iter().find(|p| !p.works) {
                bail!(
                    "the host watcher's program `{}' did not start: {}",
                    failed.name,
                    failed.error.as_deref().unwrap_or("no reason given")
                );
            }
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the host watcher did not start within {} s",
            WATCHER_START_TIMEOUT.as_secs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `/proc/sys` value set for as long as this lives, then put back.
struct Sysctl {
    path: &'static str,
    was: String,
}

impl Sysctl {
    fn set(path: &'static str, value: &str) -> Result<Sysctl> {
        let was = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        std::fs::write(path, value).with_context(|| format!("cannot write {value} to {path}"))?;
        Ok(Sysctl {
            path,
            was: was.trim().to_owned(),
        })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Err(error) = std::fs::write(self.path, &self.was) {
            eprintln!(
                "diagnostics bench: cannot put {} back to {}: {error}",
                self.path, self.was
            );
        }
    }
}

/// The run time and calls of the BPF programs this process holds, by name.
fn own_programs() -> Result<BTreeMap<String, ProgramCost>> {
    let ids = own_program_ids()?;
    let mut programs = BTreeMap::<String, ProgramCost>::new();
    for info in aya::programs::loaded_programs() {
        let info = info.context("cannot read the kernel's list of BPF programs")?;
        if !ids.contains(&info.id()) {
            continue;
        }
        let name = info.name_as_str().unwrap_or("unnamed").to_owned();
        let cost = programs.entry(name).or_default();
        cost.time += info.run_time();
        cost.calls += info.run_count();
    }
    Ok(programs)
}

/// The ids of the BPF programs whose descriptors this process holds (`/proc/self/fdinfo`).
fn own_program_ids() -> Result<HashSet<u32>> {
    let mut ids = HashSet::new();
    let fds = std::fs::read_dir("/proc/self/fd").context("cannot list /proc/self/fd")?;
    for fd in fds.flatten() {
        let is_program = std::fs::read_link(fd.path())
            .is_ok_and(|target| target.as_os_str() == "anon_inode:bpf-prog");
        if !is_program {
            continue;
        }
        // A descriptor closed meanwhile has no fdinfo: it is no program of ours any more.
        let Ok(info) = std::fs::read_to_string(Path::new("/proc/self/fdinfo").join(fd.file_name()))
        else {
            continue;
        };
        ids.extend(fdinfo_program_id(&info));
    }
    Ok(ids)
}

/// The `prog_id` of a BPF program descriptor's fdinfo.
fn fdinfo_program_id(fdinfo: &str) -> Option<u32> {
    fdinfo
        .lines()
        .find_map(|line| line.strip_prefix("prog_id:"))
        .and_then(|id| id.trim().parse().ok())
}

/// The first field of a `schedstat` file: time spent on a CPU, in nanoseconds.
fn schedstat_cpu(schedstat: &str) -> Option<Duration> {
    schedstat
        .split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .map(Duration::from_nanos)
}

fn read_schedstat(path: &Path) -> Result<Duration> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}'", path.display()))?;
    schedstat_cpu(&text).with_context(|| format!("no CPU time in `{}'", path.display()))
}

/// The CPU time of one of our threads.
fn task_cpu(thread: &std::thread::Thread) -> Result<Duration> {
    // Found by name: /proc/self/task/TID/comm is what the thread was named.
    let name = thread.name().context("the watcher's thread has no name")?;
    let tasks = std::fs::read_dir("/proc/self/task").context("cannot list /proc/self/task")?;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // comm keeps 15 bytes of the name.
        if !comm.trim_end().is_empty() && name.starts_with(comm.trim_end()) {
            return read_schedstat(&task.path().join("schedstat"));
        }
    }
    bail!("no task of this process is the thread `{name}'")
}

/// The CPU time of all the threads of process `pid`.
fn process_cpu(pid: i32) -> Result<Duration> {
    let dir = PathBuf::from(format!("/proc/{pid}/task"));
    let tasks =
        std::fs::read_dir(&dir).with_context(|| format!("cannot list `{}'", dir.display()))?;
    let mut total = Duration::ZERO;
    for task in tasks.flatten() {
        total += read_schedstat(&task.path().join("schedstat"))?;
    }
    Ok(total)
}

/// What one [`thread_cpu`] reading costs (a system call: no vDSO for CPU-time clocks).
fn clock_reading_cost() -> Duration {
    const READINGS: u32 = 20_000;
    let start = thread_cpu();
    for _ in 0..READINGS {
        std::hint::black_box(thread_cpu());
    }
    (thread_cpu() - start) / READINGS
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .expect("CLOCK_THREAD_CPUTIME_ID is always readable")
}

/// A bootstrap interval of the median of `samples` at `confidence` (e.g. 0.95): the median
/// of `resamples` resamples with replacement, its percentiles either side. Deterministic:
/// the resampling uses a fixed seed.
fn bootstrap_median_interval(samples: &[f64], resamples: usize, confidence: f64) -> (f64, f64) {
    let mut random = SplitMix64(0x5eed_d1a6_0000_0006);
    let medians: Vec<f64> = (0..resamples)
        .map(|_| {
            let resample: Vec<f64> = samples
                .iter()
                .map(|_| samples[random.below(samples.len())])
                .collect();
            stats::median(&resample)
        })
        .collect();
    let tail = (1.0 - confidence) / 2.0 * 100.0;
    (
        stats::percentile(&medians, tail),
        stats::percentile(&medians, 100.0 - tail),
    )
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small, well-mixed generator, enough to resample.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `bound` (> 0); the modulo bias is negligible for small bounds.
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// Checks of this bench's own logic, against values worked out by hand (`cargo test` runs
/// bench targets without a harness: a failed check panics and fails it).
fn self_test() -> usize {
    let mut checks = 0;
    let mut check = |what: &str, ok: bool| {
        assert!(ok, "diagnostics bench self-test `{what}' failed");
        checks += 1;
    };
    let orders: Vec<[Mode; 2]> = (0..4).map(pair_order).collect();
    check(
        "pairs alternate ABBA",
        orders
            == [
                [Mode::Off, Mode::On],
                [Mode::On, Mode::Off],
                [Mode::Off, Mode::On],
                [Mode::On, Mode::Off],
            ],
    );
    check(
        "the bootstrap interval of equal samples is that value",
        bootstrap_median_interval(&[1.02; 9], 200, 0.95) == (1.02, 1.02),
    );
    let spread: Vec<f64> = (0..41).map(|i| 1.0 + f64::from(i) / 1000.0).collect();
    let (low, high) = bootstrap_median_interval(&spread, 2000, 0.95);
    check(
        "the bootstrap interval holds the median and is narrower than the samples",
        low < 1.020 && 1.020 < high && low > 1.005 && high < 1.035,
    );
    let mut random = SplitMix64(1);
    let draws: Vec<usize> = (0..1000).map(|_| random.below(4)).collect();
    check(
        "resampling draws every index below the bound",
        (0..4).all(|i| draws.iter().filter(|&&d| d == i).count() > 200)
            && draws.iter().all(|&d| d < 4),
    );
    let earlier = Cost {
        programs: BTreeMap::from([(
            "sched_switch".to_owned(),
            ProgramCost {
                time: Duration::from_micros(10),
                calls: 5,
            },
        )]),
        watcher_thread: Duration::from_millis(1),
        bracketing: Duration::from_millis(2),
    };
    let later = Cost {
        programs: BTreeMap::from([
            (
                "sched_switch".to_owned(),
                ProgramCost {
                    time: Duration::from_micros(25),
                    calls: 8,
                },
            ),
            (
                "contention_begi".to_owned(),
                ProgramCost {
                    time: Duration::from_micros(4),
                    calls: 2,
                },
            ),
        ]),
        watcher_thread: Duration::from_millis(3),
        bracketing: Duration::from_millis(7),
    };
    let spent = later.since(&earlier);
    check(
        "a cost since an earlier one is the difference, a new program counted whole",
        spent.programs["sched_switch"].time == Duration::from_micros(15)
            && spent.programs["sched_switch"].calls == 3
            && spent.programs["contention_begi"].calls == 2
            && spent.watcher_thread == Duration::from_millis(2)
            && spent.bracketing == Duration::from_millis(5)
            && spent.bpf_time() == Duration::from_micros(19),
    );
    let mut sum = spent.clone();
    sum.add(&spent);
    check(
        "costs add up",
        sum.bpf_time() == Duration::from_micros(38) && sum.bracketing == Duration::from_millis(10),
    );
    let fdinfo = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\nlink_type:\tperf\n\
                  prog_type:\t5\nprog_jited:\t1\nprog_tag:\t3b185187f1855c4c\nmemlock:\t4096\n\
                  prog_id:\t412\nrun_time_ns:\t0\nrun_cnt:\t0\n";
    check(
        "a program's id is read from its fdinfo",
        fdinfo_program_id(fdinfo) == Some(412) && fdinfo_program_id("pos:\t0\n").is_none(),
    );
    check(
        "a schedstat's first field is the CPU time",
        schedstat_cpu("123456789 2000 17\n") == Some(Duration::from_nanos(123_456_789))
            && schedstat_cpu("").is_none(),
    );
    checks
}
