//! Warm sandboxes under churn: `cargo bench -p runner --bench churn`, or in the Linux 6.1 VM
//! through `ci/vm/churn` (next to the same loops of one-shot runguard runs). Needs root.
//!
//! `CHURN_LOOPS` (default 4) threads, each driving a warm sandbox of its own, each make
//! `CHURN_RUNS` (default 200) runs of a static `true` with the confinement of
//! `ci/vm/guest/churn`'s one-shot runs, which is DOMjudge's: a chroot holding the program, user
//! nobody, a 64 MiB memory limit, the default namespaces (mount, uts, ipc, net). The sandboxes
//! are built before the clock starts. Per `CHURN_BLOCK` (default 50) runs in order of
//! completion it prints the runs/s and the mean and 90th percentile of wall-time minus
//! cpu-time (the run's time off CPU) and of setup-time, from each run's `Report`: the table of
//! `ci/vm/guest/churn`, its lines prefixed `churn-warm:`; then a line with the totals.
//!
//! Environment: `CHURN_TRUE`, a static program run as `/true code 0` (the VM's
//! `testdata/programs/exitwith`: the guest has no compiler; default: `testdata/bench/true.c`
//! built here with `gcc -static`), copied into a chroot of its own under the temp dir;
//! `CHURN_CGROUP_PARENT` (default `judged/churn`; on a pure v2 host it must lie below the
//! delegated group); `JUDGED_KEEPER`, the keeper binary (default: the one cargo built).
//!
//! `cargo test` runs this target without `--bench`: then only its helpers are checked.

// Shared with the other benches; only the chroot of `Fixture` is used here.
#[allow(dead_code)]
#[path = "runner/fixture.rs"]
mod fixture;
#[allow(dead_code)]
#[path = "runner/setting.rs"]
mod setting;
#[path = "runner/stats.rs"]
mod stats;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use runner::plan::{Credentials, Namespaces, OutputTarget, Plan, DEFAULT_CGROUP_PARENT};
use runner::report::{Report, Termination};
use runner::warm::{Request, Sandbox, SandboxSpec};

use fixture::Fixture;

const DEFAULT_LOOPS: usize = 4;
const DEFAULT_RUNS: usize = 200;
const DEFAULT_BLOCK: usize = 50;
/// `nobody`/`nogroup` on Debian and in the VM's guest.
const RUN_UID: u32 = 65534;
const RUN_GID: u32 = 65534;
/// runguard's `-m 65536` (KiB) of the one-shot loops.
const MEMORY_LIMIT: u64 = 64 << 20;
/// The keeper binary's variable (`runner::warm`'s `KEEPER_VARIABLE`).
const KEEPER_VARIABLE: &str = "JUDGED_KEEPER";
/// Errors printed in full; the rest are only counted.
const ERRORS_SHOWN: usize = 5;

fn main() -> Result<()> {
    if !setting::is_bench_run("churn") {
        let checks = self_test();
        println!("churn bench: checked the block table ({checks} checks passed)");
        return Ok(());
    }
    let loops = setting::count("CHURN_LOOPS", DEFAULT_LOOPS)?;
    let runs = setting::count("CHURN_RUNS", DEFAULT_RUNS)?;
    let block = setting::count("CHURN_BLOCK", DEFAULT_BLOCK)?;
    let parent = std::env::var("CHURN_CGROUP_PARENT")
        .unwrap_or_else(|_| format!("{DEFAULT_CGROUP_PARENT}/churn"));
    let keeper = std::env::var_os(KEEPER_VARIABLE).map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_keeper")),
        PathBuf::from,
    );
    let root = Root::create()?;

    let plan = plan(&root.dir(), &parent);
    println!(
        "churn-warm: {loops} warm sandboxes x {runs} runs of a static true, chroot, -u nobody, \
         64 MiB, default namespaces, cgroup parent {parent}"
    );
    let built = Instant::now();
    let mut sandboxes = (0..loops)
        .map(|_| Sandbox::create(SandboxSpec::of_plan(&plan, None), &keeper))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "cannot build the warm sandboxes (keeper {})",
                keeper.display()
            )
        })?;
    println!(
        "churn-warm: built {loops} sandboxes in {:.1} ms",
        millis(built.elapsed())
    );
    let request = Request {
        plan,
        stdin: None,
        files: Vec::new(),
    };

    let start = Instant::now();
    let outcomes = std::thread::scope(|scope| {
        let workers: Vec<_> = sandboxes
            .iter_mut()
            .map(|sandbox| {
                let request = &request;
                scope.spawn(move || {
                    (0..runs)
                        .map(|_| {
                            let outcome = sandbox.run(request);
                            (start.elapsed(), outcome)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a churn thread panicked"))
            .collect::<Vec<_>>()
    });
    let took = start.elapsed();
    for sandbox in sandboxes {
        sandbox.destroy()?;
    }

    // Loops that end early leave the last blocks to fewer loops: say when each ended.
    let ends: Vec<String> = outcomes
        .iter()
        .filter_map(|runs| runs.last())
        .map(|(at, _)| format!("{:.1}", at.as_secs_f64()))
        .collect();
    let mut done = Vec::new();
    let mut failed = 0;
    for (at, outcome) in outcomes.into_iter().flatten() {
        match outcome.map_err(anyhow::Error::from).and_then(exited_0) {
            Ok(report) => done.push(Run::of(at, &report)),
            Err(e) => {
                if failed < ERRORS_SHOWN {
                    eprintln!("churn-warm: a run failed: {e:#}");
                }
                failed += 1;
            }
        }
    }
    print_table(&mut done, block);
    print_summary(&done, took, failed);
    println!("churn-warm: the loops ended at {} s", ends.join(" "));
    if failed > 0 {
        bail!("{failed} of {} warm runs failed", loops * runs);
    }
    Ok(())
}

/// The plan of every run: `/true code 0` as the one-shot loops run it.
fn plan(root: &Path, parent: &str) -> Plan {
    let mut plan = Plan::new("/true", vec!["code".into(), "0".into()]);
    plan.root = Some(root.to_path_buf());
    plan.namespaces = Namespaces::default();
    plan.credentials = Some(Credentials {
        uid: RUN_UID,
        gid: RUN_GID,
    });
    plan.limits.memory_bytes = Some(MEMORY_LIMIT);
    plan.stdout = OutputTarget::File("/dev/null".into());
    plan.stderr = OutputTarget::File("/dev/null".into());
    plan.cgroup_parent = PathBuf::from(parent);
    plan
}

fn exited_0(report: Report) -> Result<Report> {
    match report.termination {
        Termination::Exited(0) => Ok(report),
        other => bail!("the run ended with {other:?}"),
    }
}

/// The chroot of the runs, holding `/true`: the bench fixture's, or one of our own holding a
/// copy of `$CHURN_TRUE`. Removed when dropped.
enum Root {
    Fixture(Fixture),
    Copy(PathBuf),
}

impl Root {
    fn create() -> Result<Root> {
        let Some(program) = std::env::var_os("CHURN_TRUE") else {
            return Ok(Root::Fixture(Fixture::create()?));
        };
        let dir = std::env::temp_dir().join(format!("judged-churn-{}", std::process::id()));
        // Owns the directory from here on, so a failure below still removes it.
        let root = Root::Copy(dir.clone());
        fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}'", dir.display()))?;
        fs::copy(&program, dir.join("true")).with_context(|| {
            format!("cannot copy CHURN_TRUE=`{}'", Path::new(&program).display())
        })?;
        Ok(root)
    }

    fn dir(&self) -> PathBuf {
        match self {
            Root::Fixture(fixture) => fixture.chroot(),
            Root::Copy(dir) => dir.clone(),
        }
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        if let Root::Copy(dir) = self {
            if let Err(err) = fs::remove_dir_all(&*dir) {
                eprintln!("warning: cannot remove `{}': {err}", dir.display());
            }
        }
    }
}

/// One finished run: when it completed (since the loops started) and its times in ms.
#[derive(Debug, Clone, Copy)]
struct Run {
    done: Duration,
    off_cpu_ms: f64,
    setup_ms: f64,
}

impl Run {
    fn of(done: Duration, report: &Report) -> Run {
        Run {
            done,
            // Signed: the CPU clock may run a hair past the wall clock.
            off_cpu_ms: millis(report.wall_time) - millis(report.cpu_time),
            setup_ms: millis(report.setup_time),
        }
    }
}

/// One line of the table: runs `first..=last` (1-based, in order of completion).
#[derive(Debug, PartialEq)]
struct Block {
    first: usize,
    last: usize,
    runs_per_s: f64,
    off_cpu_mean: f64,
    off_cpu_p90: f64,
    setup_mean: f64,
    setup_p90: f64,
}

/// The runs in order of completion, cut into blocks of `size` (the last one may be shorter);
/// a block's rate counts from the previous block's last completion (the first: the start).
fn blocks(runs: &mut [Run], size: usize) -> Vec<Block> {
    runs.sort_by_key(|run| run.done);
    let mut since = Duration::ZERO;
    runs.chunks(size)
        .enumerate()
        .map(|(index, chunk)| {
            let end = chunk[chunk.len() - 1].done;
            let took = (end - since).as_secs_f64().max(1e-6);
            since = end;
            let off: Vec<f64> = chunk.iter().map(|run| run.off_cpu_ms).collect();
            let setup: Vec<f64> = chunk.iter().map(|run| run.setup_ms).collect();
            Block {
                first: index * size + 1,
                last: index * size + chunk.len(),
                runs_per_s: chunk.len() as f64 / took,
                off_cpu_mean: stats::mean(&off),
                off_cpu_p90: stats::percentile(&off, 90.0),
                setup_mean: stats::mean(&setup),
                setup_p90: stats::percentile(&setup, 90.0),
            }
        })
        .collect()
}

/// The table, laid out as `ci/vm/guest/churn` prints it.
fn print_table(runs: &mut [Run], size: usize) {
    println!(
        "churn-warm: {:<11} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "runs", "runs/s", "off-cpu ms", "p90", "setup ms", "p90"
    );
    for block in blocks(runs, size) {
        println!(
            "churn-warm: {:>5}-{:<5} {:>8.1} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            block.first,
            block.last,
            block.runs_per_s,
            block.off_cpu_mean,
            block.off_cpu_p90,
            block.setup_mean,
            block.setup_p90
        );
    }
}

fn print_summary(runs: &[Run], took: Duration, failed: usize) {
    let seconds = took.as_secs_f64();
    print!(
        "churn-warm: {} runs in {seconds:.1} s: {:.1} runs/s overall",
        runs.len(),
        runs.len() as f64 / seconds
    );
    if !runs.is_empty() {
        let off: Vec<f64> = runs.iter().map(|run| run.off_cpu_ms).collect();
        let setup: Vec<f64> = runs.iter().map(|run| run.setup_ms).collect();
        print!(
            "; off-cpu mean {:.2} ms, p90 {:.2} ms; setup mean {:.2} ms, p90 {:.2} ms",
            stats::mean(&off),
            stats::percentile(&off, 90.0),
            stats::mean(&setup),
            stats::percentile(&setup, 90.0)
        );
    }
    if failed > 0 {
        print!(", {failed} runs failed");
    }
    println!();
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Checks `blocks` against a table worked out by hand (`cargo test` runs this target without
/// the libtest harness, so this is called from `main`); a failed check panics.
fn self_test() -> usize {
    let run = |done_ms: u64, off_cpu_ms: f64, setup_ms: f64| Run {
        done: Duration::from_millis(done_ms),
        off_cpu_ms,
        setup_ms,
    };
    // Out of order, as the threads hand them back; five runs in blocks of two.
    let mut runs = [
        run(3000, 5.0, 0.5),
        run(500, 1.0, 0.1),
        run(4000, 7.0, 0.7),
        run(1000, 3.0, 0.3),
        run(6000, -0.5, 0.9),
    ];
    let table = blocks(&mut runs, 2);
    let expected = [
        // 2 runs by 1 s; off-cpu 1 and 3: mean 2, p90 the larger.
        Block {
            first: 1,
            last: 2,
            runs_per_s: 2.0,
            off_cpu_mean: 2.0,
            off_cpu_p90: 3.0,
            setup_mean: 0.2,
            setup_p90: 0.3,
        },
        // 2 runs in the 3 s after the first block's last.
        Block {
            first: 3,
            last: 4,
            runs_per_s: 2.0 / 3.0,
            off_cpu_mean: 6.0,
            off_cpu_p90: 7.0,
            setup_mean: 0.6,
            setup_p90: 0.7,
        },
        // The short last block, 1 run in 2 s, a negative off-cpu time kept as it is.
        Block {
            first: 5,
            last: 5,
            runs_per_s: 0.5,
            off_cpu_mean: -0.5,
            off_cpu_p90: -0.5,
            setup_mean: 0.9,
            setup_p90: 0.9,
        },
    ];
    assert_eq!(table.len(), expected.len(), "churn self-test: block count");
    let mut checks = 1;
    for (got, want) in table.iter().zip(&expected) {
        assert_eq!((got.first, got.last), (want.first, want.last));
        let figures = |b: &Block| {
            [
                b.runs_per_s,
                b.off_cpu_mean,
                b.off_cpu_p90,
                b.setup_mean,
                b.setup_p90,
            ]
        };
        for (g, w) in figures(got).into_iter().zip(figures(want)) {
            assert!(
                (g - w).abs() < 1e-9,
                "churn self-test: block {}-{}: got {got:?}, expected {want:?}",
                want.first,
                want.last
            );
            checks += 1;
        }
        checks += 1;
    }
    checks
}
