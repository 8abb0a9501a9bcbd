//! The `runguard` binary on the paths that end before a run: manual, version and internal
//! errors (exit 255, message on stderr, `internal-error` in the meta file, nothing on stdout).

use std::path::PathBuf;
use std::process::{Command, Output};

fn runguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runguard"))
        .args(args)
        .output()
        .expect("runguard starts")
}

fn scratch_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("runguard-cli-{}-{name}", std::process::id()))
}

#[test]
fn help_and_version_go_to_stdout_with_status_0() {
    for (flag, expected) in [
        ("--help", "Usage: runguard"),
        ("--version", "runguard (judged"),
    ] {
        let output = runguard(&[flag]);
        assert_eq!(output.status.code(), Some(0), "{flag}");
        assert!(
            String::from_utf8_lossy(&output.stdout).starts_with(expected),
            "{flag}"
        );
        assert!(output.stderr.is_empty(), "{flag}");
    }
}

#[test]
fn bad_option_is_an_internal_error_in_the_meta_file() {
    let meta = scratch_file("bad-option.meta");
    let output = runguard(&["-M", meta.to_str().unwrap(), "--memsize=lots", "true"]);
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::remove_file(&meta).unwrap();
    assert_eq!(output.status.code(), Some(255));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("runguard: error: invalid value `lots' for -m/--memsize"),
        "{stderr}"
    );
    assert_eq!(
        text,
        "internal-error: invalid value `lots' for -m/--memsize: expected a whole number >= 1\n"
    );
}

#[test]
fn missing_command_and_refused_user_exit_255() {
    let output = runguard(&[]);
    assert_eq!(output.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no command specified"));

    let meta = scratch_file("refused.meta");
    let json = scratch_file("refused.json");
    let output = runguard(&[
        "-M",
        meta.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "-u",
        "root",
        "true",
    ]);
    let meta_text = std::fs::read_to_string(&meta).unwrap();
    let json_text = std::fs::read_to_string(&json).unwrap();
    std::fs::remove_file(&meta).unwrap();
    std::fs::remove_file(&json).unwrap();
    assert_eq!(output.status.code(), Some(255));
    assert!(
        meta_text.starts_with("internal-error: illegal user specified: 0"),
        "{meta_text}"
    );
    assert!(
        json_text.contains("\"internal_error\":\"illegal user specified: 0"),
        "{json_text}"
    );
}
