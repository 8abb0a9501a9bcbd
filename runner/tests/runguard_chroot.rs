//! chroot (-r) and chdir (-d): the command is resolved inside the root, -d applies after the
//! chroot and only with it, and a root outside the configured prefix is refused.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::fixture::write_config;
use common::{program, require_root, Fixture, KeyValues};

/// A nearly empty root in the fixture: `/probe` (static) and an empty `/exists`.
fn almost_empty_root(fx: &Fixture) -> PathBuf {
    let root = fx.path("root");
    std::fs::create_dir_all(root.join("exists")).unwrap();
    std::fs::copy(program("probe"), root.join("probe")).unwrap();
    for dir in [&root, &root.join("exists")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    root
}

fn cwd_seen(outcome: &common::Outcome) -> String {
    outcome.assert_exit(0);
    let probe = KeyValues::parse(&outcome.stdout_text(), '=').unwrap();
    probe.require("cwd").to_string()
}

#[test]
fn command_is_resolved_inside_the_chroot() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("chroot-run");
    let root = almost_empty_root(&fx);
    let outcome = fx.runguard().arg("-r").arg(&root).run(["/probe"]);
    assert_eq!(cwd_seen(&outcome), "/");
}

#[test]
fn chdir_applies_inside_the_chroot() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("chroot-chdir");
    let root = almost_empty_root(&fx);
    for dir in ["exists", "/exists"] {
        let outcome = fx
            .runguard()
            .arg("-r")
            .arg(&root)
            .args(["-d", dir])
            .run(["/probe"]);
        assert_eq!(cwd_seen(&outcome), "/exists", "-d {dir}");
    }
}

#[test]
fn chdir_to_a_missing_dir_in_the_chroot_is_an_internal_error() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("chroot-chdir-missing");
    let root = almost_empty_root(&fx);
    fx.runguard()
        .arg("-r")
        .arg(&root)
        .args(["-d", "doesnotexist"])
        .run(["/probe"])
        .assert_internal_error("cannot chdir to `doesnotexist' in chroot");
    fx.assert_clean();
}

#[test]
fn root_outside_the_chroot_prefix_is_an_invalid_root() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("chroot-prefix");
    let root = almost_empty_root(&fx);
    let allowed = fx.path("allowed");
    std::fs::create_dir(&allowed).unwrap();
    let config = fx.path("narrow.toml");
    write_config(&config, &allowed);
    fx.runguard_with_config(&config)
        .arg("-r")
        .arg(&root)
        .run(["/probe"])
        .assert_internal_error("invalid root");
}

#[test]
fn chdir_without_chroot_has_no_effect() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("chroot-chdir-alone");
    let outcome = fx.runguard().args(["-d", "/"]).run([program("probe")]);
    let expected = fx.dir().canonicalize().unwrap();
    assert_eq!(cwd_seen(&outcome), expected.display().to_string());
}
