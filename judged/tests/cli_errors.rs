//! Bad input to `judged run`: each is refused before anything runs, with exit status 2 and a
//! message that names the thing at fault. Needs no privileges.

use std::path::{Path, PathBuf};
use std::process::Command;

use judged::verdict::exit_status;

fn testdata(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(path)
}

/// Run `judged run ARGS`; its stderr, after checking it exited with the usage status.
fn refused(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_judged"))
        .arg("run")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit_status::USAGE)),
        "judged run {args:?}: {stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing judged, nothing printed");
    stderr
}

fn correct_c() -> String {
    testdata("problems/aplusb/submissions/correct.c")
        .display()
        .to_string()
}

fn aplusb() -> String {
    testdata("problems/aplusb").display().to_string()
}

#[test]
fn missing_problem_directory_is_named() {
    let stderr = refused(&["/nonexistent/problem", &correct_c()]);
    assert!(
        stderr.contains("`/nonexistent/problem' is not a directory"),
        "{stderr}"
    );
}

#[test]
fn missing_source_is_named() {
    let stderr = refused(&[&aplusb(), "/nonexistent/solution.c"]);
    assert!(
        stderr.contains("source file `/nonexistent/solution.c' not found"),
        "{stderr}"
    );
}

#[test]
fn unknown_language_is_named_with_the_known_ones() {
    let stderr = refused(&[&aplusb(), &correct_c(), "--language", "cobol"]);
    assert!(
        stderr.contains("unknown language `cobol'") && stderr.contains("python3"),
        "{stderr}"
    );
}

#[test]
fn undetectable_language_asks_for_language() {
    let source = tempfile::Builder::new().suffix(".xyz").tempfile().unwrap();
    let stderr = refused(&[&aplusb(), &source.path().display().to_string()]);
    assert!(stderr.contains("--language"), "{stderr}");
}

#[test]
fn missing_runguard_is_named() {
    // A profile whose whole toolchain is /bin/sh, so the check does not depend on compilers.
    let languages = tempfile::tempdir().unwrap();
    std::fs::write(
        languages.path().join("sh.toml"),
        "name = \"sh\"\nextensions = [\"sh\"]\ntime_factor = 1.0\n\
         [run]\ncommand = [\"/bin/sh\", \"{build}/{main_file}\"]\n",
    )
    .unwrap();
    let source = tempfile::Builder::new().suffix(".sh").tempfile().unwrap();
    let stderr = refused(&[
        &aplusb(),
        &source.path().display().to_string(),
        "--languages",
        &languages.path().display().to_string(),
        "--user",
        "nobody",
        "--runguard",
        "/nonexistent/runguard",
    ]);
    assert!(
        stderr.contains("runguard not found at `/nonexistent/runguard'"),
        "{stderr}"
    );
}

#[test]
fn bad_cpuset_is_named() {
    let stderr = refused(&[&aplusb(), &correct_c(), "--cpuset", "1-x"]);
    assert!(
        stderr.contains("'--cpuset <LIST>'") && stderr.contains("`1-x'"),
        "{stderr}"
    );
}

/// `--host-window` out of its range or not a number, or with `--no-host-watch`.
#[test]
fn bad_host_watcher_options_are_named() {
    let (problem, source) = (aplusb(), correct_c());
    let table: [(&[&str], &[&str]); 3] = [
        (
            &["--host-window", "0.01"],
            &["'--host-window <SECONDS>'", "from 0.1 to 60"],
        ),
        (
            &["--host-window", "1s"],
            &["`1s' is not a number of seconds"],
        ),
        (
            &["--no-host-watch", "--host-window", "2"],
            &["'--no-host-watch'", "'--host-window <SECONDS>'"],
        ),
    ];
    for (options, named) in table {
        let args: Vec<&str> = [problem.as_str(), source.as_str()]
            .into_iter()
            .chain(options.iter().copied())
            .collect();
        let stderr = refused(&args);
        for name in named {
            assert!(stderr.contains(name), "{options:?}: {stderr}");
        }
    }
}
