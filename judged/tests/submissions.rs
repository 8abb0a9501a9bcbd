//! End to end: every annotated submission under `testdata/problems/*/submissions/` is judged by
//! the real `judged run` through the real `runguard`, and must get one of the verdicts of its
//! first-line `@EXPECTED_RESULTS@:` comment.
//!
//! Needs root (runguard switches to the run user and makes cgroups) and a built `runguard`
//! (beside `judged`, or `JUDGED_RUNGUARD`). Skips out loud otherwise; under `CI=true` a skip is
//! a failure. A submission whose language toolchain is not installed is skipped out loud. Every
//! judging must leave its scratch directory empty.

use std::path::{Path, PathBuf};
use std::process::Command;

use judged::verdict::{exit_status, Verdict};

fn skip(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("skipping is a failure under CI=true: {reason}");
    }
    eprintln!("skipping: {reason}");
}

fn runguard() -> PathBuf {
    match std::env::var_os("JUDGED_RUNGUARD") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_BIN_EXE_judged")).with_file_name("runguard"),
    }
}

fn is_root() -> bool {
    // /proc/self belongs to our effective user.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

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

#[test]
fn every_annotated_submission_gets_its_expected_verdict() {
    if !is_root() {
        return skip("judging needs root (runguard switches users and makes cgroups)");
    }
    let runguard = runguard();
    if !runguard.is_file() {
        return skip(&format!(
            "no runguard binary at `{}' (cargo build -p runner)",
            runguard.display()
        ));
    }
    // A scratch directory of this test's own, which every judging must leave empty.
    let scratch = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (problem, source, expected) in annotated_submissions() {
        let output = Command::new(env!("CARGO_BIN_EXE_judged"))
            .arg("run")
            .arg(&problem)
            .arg(&source)
            .arg("--json")
            .arg("--runguard")
            .arg(&runguard)
            .arg("--scratch")
            .arg(scratch.path())
            .output()
            .unwrap();
        let left: Vec<_> = std::fs::read_dir(scratch.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{}: left {left:?}", source.display());
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
