//! End to end: every annotated submission under `testdata/problems/*/submissions/` is judged by
//! the real `judged run` through the real `runguard`, and must get one of the verdicts of its
//! first-line `@EXPECTED_RESULTS@:` comment.
//!
//! Needs root (runguard switches to the run user and makes cgroups) and a built `runguard`
//! (beside `judged`, or `JUDGED_RUNGUARD`). Skips out loud otherwise; under `CI=true` a skip is
//! a failure. A submission whose language toolchain is not installed is skipped out loud. Every
//! judging must leave its scratch directory empty.
//!
//! Among them are submissions that try to get out of the sandbox: `reads_answer_files.py`
//! looks for the answer files on the filesystem (judged correct if it finds them), and
//! `writes_host_tmp.c` writes a file in /tmp, which must not reach the host's /tmp.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use judged::verdict::{exit_status, Verdict};

mod common;
use common::{judging_prerequisites, skip, stop_mid_run};

/// The verdicts a submission may get, from its `@EXPECTED_RESULTS@:` comment.
fn expected_results(source: &Path) -> Option<Vec<Verdict>> {
    let text = std::fs::read_to_string(source).ok()?;
    let line = text.lines().next()?;
    let (_, list) = line.split_once("@EXPECTED_RESULTS@:")?;
    let verdicts = list
        .split(',')
        .map(|name| {
            Verdict::from_name(name)
                .unwrap_or_else(|| panic!("{}: unknown verdict {name:?}", source.display()))
        })
        .collect();
    Some(verdicts)
}

fn annotated_submissions() -> Vec<(PathBuf, PathBuf, Vec<Verdict>)> {
    let problems = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/problems");
    let mut found = Vec::new();
    for problem in std::fs::read_dir(&problems).unwrap() {
        let problem = problem.unwrap().path();
        let Ok(submissions) = std::fs::read_dir(problem.join("submissions")) else {
            continue;
        };
        for source in submissions {
            let source = source.unwrap().path();
            if let Some(expected) = expected_results(&source) {
                found.push((problem.clone(), source, expected));
            }
        }
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found
}

#[test]
fn every_submission_has_an_expectation_that_parses() {
    let submissions = annotated_submissions();
    assert!(
        submissions.len() >= 20,
        "only {} annotated submissions",
        submissions.len()
    );
}

/// `judged run PROBLEM SOURCE --json` in a scratch directory of its own, which the judging must
/// leave empty.
fn judge(runguard: &Path, problem: &Path, source: &Path) -> std::process::Output {
    let scratch = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_judged"))
        .arg("run")
        .arg(problem)
        .arg(source)
        .arg("--json")
        .arg("--runguard")
        .arg(runguard)
        .arg("--scratch")
        .arg(scratch.path())
        .output()
        .unwrap();
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{}: left {left:?}", source.display());
    output
}

#[test]
fn every_annotated_submission_gets_its_expected_verdict() {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => return skip(&reason),
    };
    let mut failures = Vec::new();
    for (problem, source, expected) in annotated_submissions() {
        let output = judge(&runguard, &problem, &source);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.code() == Some(exit_status::USAGE as i32)
            && stderr.contains("not installed")
        {
            skip(&format!("{}: {}", source.display(), stderr.trim()));
            continue;
        }
        let json: serde_json::Value = match serde_json::from_slice(&output.stdout) {
            Ok(json) => json,
            Err(_) => {
                failures.push(format!("{}: no JSON; stderr: {stderr}", source.display()));
                continue;
            }
        };
        let verdict = json["verdict"].as_str().unwrap_or("?");
        if !expected.iter().any(|v| v.name() == verdict) {
            failures.push(format!(
                "{}: got {verdict}, expected one of {:?}\n{json:#}",
                source.display(),
                expected.iter().map(|v| v.name()).collect::<Vec<_>>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_submissions_tmp_is_private_to_its_run() {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => return skip(&reason),
    };
    // The path writes_host_tmp.c writes to.
    let marker = Path::new("/tmp/judged-escape-marker");
    match std::fs::remove_file(marker) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => panic!("cannot remove `{}': {error}", marker.display()),
    }
    let aplusb = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/problems/aplusb");
    let output = judge(
        &runguard,
        &aplusb,
        &aplusb.join("submissions/writes_host_tmp.c"),
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    // Correct: its write to /tmp succeeded, in the run's own /tmp.
    assert_eq!(json["verdict"], "correct", "{json:#}");
    assert!(
        !marker.exists(),
        "a submission wrote `{}' on the host",
        marker.display()
    );
}

/// SIGTERM while a test case runs: runguard stops the run, no further one starts, the run
/// lanes' cgroups and the scratch directories are removed, and judged exits with 143.
#[test]
fn sigterm_mid_judging_stops_the_runs_and_leaves_nothing() {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => return skip(&reason),
    };
    let aplusb = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/problems/aplusb");
    let scratch = tempfile::tempdir().unwrap();
    let busy_loop = aplusb.join("submissions/busy_loop.c");
    let output = stop_mid_run(
        &[
            OsStr::new("run"),
            OsStr::new("--runguard"),
            runguard.as_os_str(),
            OsStr::new("--scratch"),
            scratch.path().as_os_str(),
            aplusb.as_os_str(),
            busy_loop.as_os_str(),
        ],
        nix::sys::signal::Signal::SIGTERM,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    assert!(output.stdout.is_empty(), "a result was shown: {output:?}");
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "scratch left: {left:?}");
}
