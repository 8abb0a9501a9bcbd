//! runguard's command line (runguard-compat.md, "Invocation"): help and version, getopt's
//! rules, and every way to call it wrongly: each is an internal error, exit status 255, the
//! message on stderr and in the meta file's `internal-error` key.

mod common;

use common::fixture::config_file;
use common::testdir::TestDir;
use common::{require_root, require_runguard, Fixture, Invocation};

/// runguard with only a meta file, for option errors that need no privileges.
fn bare(dir: &TestDir) -> Invocation {
    Invocation::new(dir.path()).meta_file(dir.join("meta"))
}

#[test]
fn help_and_version_print_on_stdout_and_exit_0() {
    if !require_runguard() {
        return;
    }
    let dir = TestDir::new("cli-help");
    let help = Invocation::new(dir.path()).arg("--help").run_as_given();
    assert_eq!(help.code(), 0, "{help}");
    let text = help.stdout_text();
    for option in [
        "--walltime",
        "--cputime",
        "--memsize",
        "--streamsize",
        "--outmeta",
    ] {
        assert!(
            text.contains(option),
            "--help does not document {option}:\n{text}"
        );
    }
    let version = Invocation::new(dir.path()).arg("--version").run_as_given();
    assert_eq!(version.code(), 0, "{version}");
    assert!(!version.stdout.is_empty(), "--version printed nothing");
}

#[test]
fn unknown_option_is_an_internal_error_naming_it() {
    if !require_runguard() {
        return;
    }
    let dir = TestDir::new("cli-unknown");
    bare(&dir)
        .args(["--bogus-option", "/bin/true"])
        .run_as_given()
        .assert_internal_error("bogus-option");
}

#[test]
fn missing_option_argument_is_an_internal_error() {
    if !require_runguard() {
        return;
    }
    let dir = TestDir::new("cli-missing-arg");
    bare(&dir)
        .arg("--walltime")
        .run_as_given()
        .assert_internal_error("walltime");
}

#[test]
fn bad_time_syntax_is_an_internal_error_naming_the_value() {
    if !require_runguard() {
        return;
    }
    let dir = TestDir::new("cli-bad-time");
    for option in ["-t", "-C"] {
        for value in ["abc", "1:", ":1", "2:1", "1:2:3", "-1", "nan"] {
            bare(&dir)
                .args([option, value, "/bin/true"])
                .run_as_given()
                .assert_internal_error(value);
        }
    }
}

#[test]
fn bad_numbers_are_internal_errors_naming_the_value() {
    if !require_runguard() {
        return;
    }
    let dir = TestDir::new("cli-bad-number");
    for option in ["-m", "-f", "-p", "-s"] {
        for value in ["12x", "-5", "1.5"] {
            bare(&dir)
                .args([option, value, "/bin/true"])
                .run_as_given()
                .assert_internal_error(value);
        }
    }
}

#[test]
fn no_command_is_an_internal_error() {
    if !require_runguard() {
        return;
    }
    let dir = TestDir::new("cli-no-command");
    bare(&dir)
        .args(["-t", "1"])
        .run_as_given()
        .assert_internal_error("no command specified");
    // DOMjudge's own test calls it without any argument at all.
    let outcome = Invocation::new(dir.path()).run_as_given();
    outcome.assert_internal_error("no command specified");
}

#[test]
fn getopt_stops_at_the_first_non_option() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("cli-getopt-stop");
    let outcome = fx
        .runguard()
        .args(["/bin/echo", "-t", "5", "--walltime=1"])
        .run_as_given();
    outcome.assert_exit(0);
    assert_eq!(outcome.stdout_text(), "-t 5 --walltime=1\n");
    assert_eq!(
        outcome.meta().require("time-used"),
        "cpu-time",
        "-t was parsed as ours"
    );
}

#[test]
fn double_dash_ends_the_options() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("cli-double-dash");
    let outcome = fx.runguard().run(["/bin/echo", "--walltime", "-v"]);
    outcome.assert_exit(0);
    assert_eq!(outcome.stdout_text(), "--walltime -v\n");
}

#[test]
fn long_options_take_equals_or_separate_values() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("cli-long-forms");
    for args in [
        &["--walltime=2"][..],
        &["--walltime", "2"],
        &["-t2"],
        &["-t", "2"],
    ] {
        let outcome = fx.runguard().args(args).run(["/bin/true"]);
        outcome.assert_exit(0);
        assert_eq!(
            outcome.meta().require("time-used"),
            "wall-time",
            "{args:?}{outcome}"
        );
    }
}

#[test]
fn time_used_follows_the_last_of_walltime_and_cputime() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("cli-time-used");
    let cases: [(&[&str], &str); 4] = [
        (&[], "cpu-time"),
        (&["-t", "5"], "wall-time"),
        (&["-t", "5", "-C", "5"], "cpu-time"),
        (&["-C", "5", "-t", "5"], "wall-time"),
    ];
    for (args, expected) in cases {
        let outcome = fx.runguard().args(args).run(["/bin/true"]);
        outcome.assert_exit(0);
        assert_eq!(
            outcome.meta().require("time-used"),
            expected,
            "{args:?}{outcome}"
        );
    }
}

#[test]
fn root_without_a_run_user_is_refused() {
    if !require_root() {
        return;
    }
    // DOMjudge's runguard_test.sh (`test_no_sudo`): as root without -u, nothing runs.
    let fx = Fixture::new("cli-no-user");
    let outcome = Invocation::new(fx.dir())
        .arg("--config")
        .arg(config_file())
        .args(["--cgroup-parent", fx.cgroup_parent()])
        .meta_file(fx.meta_path())
        .run(["/bin/true"]);
    outcome.assert_internal_error("root privileges not dropped");
    fx.assert_clean();
}

#[test]
fn root_is_never_a_valid_run_user() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("cli-user-root");
    for user in ["root", "0"] {
        fx.runguard()
            .args(["-u", user])
            .run(["/bin/true"])
            .assert_internal_error("illegal user");
    }
}

/// A name no account has is refused. The statically linked runguard crashed here (exit 139)
/// while glibc still consulted the NSS modules of nsswitch.conf after /etc/passwd.
#[test]
fn a_user_no_account_has_is_refused() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("cli-user-unknown");
    fx.runguard()
        .args(["-u", "judged-no-such-user"])
        .run(["/bin/true"])
        .assert_internal_error("invalid username or ID specified");
}

#[test]
fn user_outside_the_valid_list_is_illegal() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("cli-user-invalid");
    // `daemon` (uid 1) exists on every Debian system and is not in the test config's list.
    fx.runguard()
        .args(["-u", "daemon", "-g", "daemon"])
        .run(["/bin/true"])
        .assert_internal_error("illegal user");
}

#[test]
fn unknown_user_and_group_are_internal_errors_naming_them() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("cli-unknown-ids");
    fx.runguard()
        .args(["-u", "judged-no-such-user"])
        .run(["/bin/true"])
        .assert_internal_error("judged-no-such-user");
    fx.runguard()
        .args(["-g", "judged-no-such-group"])
        .run(["/bin/true"])
        .assert_internal_error("judged-no-such-group");
}

#[test]
fn cpuset_outside_the_online_cpus_is_an_internal_error() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("cli-cpuset");
    for cpuset in ["4095", "0-4095", "x"] {
        fx.runguard()
            .args(["-P", cpuset])
            .run(["/bin/true"])
            .assert_internal_error(cpuset);
    }
}

#[test]
fn missing_chroot_is_an_internal_error_naming_it() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("cli-missing-root");
    let missing = fx.path("no-such-root");
    fx.runguard()
        .arg("-r")
        .arg(&missing)
        .run(["/bin/true"])
        .assert_internal_error(&missing.display().to_string());
}

#[test]
fn verbose_and_quiet_are_accepted_and_print_nothing_on_stdout() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("cli-verbosity");
    for flag in ["-v", "--verbose", "-q", "--quiet"] {
        let outcome = fx.runguard().arg(flag).run(["/bin/echo", "hello"]);
        outcome.assert_exit(0);
        // Only the child's own stdout ever appears on ours.
        assert_eq!(outcome.stdout_text(), "hello\n", "{flag}{outcome}");
    }
}
