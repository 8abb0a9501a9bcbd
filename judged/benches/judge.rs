//! The judging benchmark: `cargo bench -p judged --bench judge` (or `ci/bench`). Needs root and
//! the release `runguard` beside the release `judged` (`cargo build --release -p runner`).
//!
//! A problem with 1 000 tiny test cases (`a b` → `a+b`) is generated in a temporary directory
//! (not kept in the repository: 2 000 files), and the trivial correct C submission of
//! `testdata/problems/aplusb` is judged on it by the release `judged run --json`, end to end:
//! compile, 1 000 sandboxed runs, 1 000 validations. The same submission on a 1-case version
//! of the problem gives the fixed cost (start, compile, clean-up), so the cost per test case can
//! be told apart from it.
//!
//! It ends with one `name=value` line per figure and writes them to `target/bench/judge.json`:
//! `judge_cases_per_s` (test cases over the whole judging's wall time), `judge_wall_s`,
//! `judge_fixed_s` and `judge_per_case_ms` ((whole − fixed) / 999). `BENCH_CASES=N` changes the
//! number of test cases.
//!
//! `cargo test` runs bench targets too, without `--bench`: then only the generated problem is
//! checked (it loads, with every test case), so the test suite stays fast.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use judged::problem::Problem;

mod common;
use common::{correct_submission, generate_problem, report, runguard_beside};

const DEFAULT_CASES: usize = 1000;

fn main() -> Result<()> {
    let cases = cases()?;
    if !std::env::args().any(|arg| arg == "--bench") {
        let problem = generate_problem(cases)?;
        let loaded = Problem::load(problem.path())?;
        ensure!(
            loaded.test_cases.len() == cases,
            "the generated problem has {} test cases, not {cases}",
            loaded.test_cases.len()
        );
        println!("judge bench: not run by `cargo bench`: checked the generated problem only");
        return Ok(());
    }

    let judged = PathBuf::from(env!("CARGO_BIN_EXE_judged"));
    runguard_beside(&judged)?;
    let submission = correct_submission();
    println!("judged: {}", judged.display());

    let fixed = judge(&judged, &generate_problem(1)?, &submission, 1)?;
    let whole = judge(&judged, &generate_problem(cases)?, &submission, cases)?;
    let figures = [
        ("judge_cases_per_s", cases as f64 / whole),
        ("judge_wall_s", whole),
        ("judge_fixed_s", fixed),
        (
            "judge_per_case_ms",
            (whole - fixed) * 1000.0 / (cases - 1) as f64,
        ),
    ];
    report(&judged, "judge", &figures)
}

/// The wall time, in seconds, of judging `submission` on `problem`, which must come out correct
/// on all `cases` test cases.
fn judge(
    judged: &Path,
    problem: &tempfile::TempDir,
    submission: &Path,
    cases: usize,
) -> Result<f64> {
    let start = Instant::now();
    let output = Command::new(judged)
        .arg("run")
        .arg(problem.path())
        .arg(submission)
        .arg("--json")
        .output()
        .with_context(|| format!("cannot run `{}'", judged.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("judged printed no JSON ({}): {stderr}", output.status))?;
    let judged_cases = json["tests"].as_array().map_or(0, Vec::len);
    if json["verdict"] != "correct" || judged_cases != cases {
        bail!(
            "expected `correct' on {cases} test cases, got `{}' on {judged_cases}: {json:#}",
            json["verdict"]
        );
    }
    println!("{cases} test case(s): {seconds:.3} s");
    Ok(seconds)
}

fn cases() -> Result<usize> {
    match std::env::var("BENCH_CASES") {
        Ok(value) => match value.parse() {
            // One more than the 1-case judging that measures the fixed cost.
            Ok(cases) if cases >= 2 => Ok(cases),
            _ => bail!("BENCH_CASES=`{value}' is not a number of test cases >= 2"),
        },
        Err(_) => Ok(DEFAULT_CASES),
    }
}
