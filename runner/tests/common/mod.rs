//! Shared helpers of the runguard black-box tests (`tests/runguard_*.rs`).
//!
//! The tests drive the real `runguard` binary as DOMjudge does and check what it promises in
//! `runguard-compat.md`: exit status, meta file, output files, and that nothing of a run is left
//! behind (processes, zombies, cgroups). The pieces:
//!
//! * [`privilege`]: the gate of privileged tests (skip out loud, fail under `CI=true`);
//! * [`programs`]: the C test and hostile programs of `testdata/programs`, built once per run;
//! * [`fixture`]: one test's own temp dir, cgroup parent and process tag, and the leftover checks;
//! * [`invocation`]: building a runguard command line, running it with a watchdog, its outcome;
//! * [`keyvalues`], [`procfs`], [`cgroupfs`]: pure readers, unit-tested in `runguard_helpers.rs`.

// Each test binary includes this module and uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod cgroupfs;
pub mod fixture;
pub mod invocation;
pub mod keyvalues;
pub mod privilege;
pub mod procfs;
pub mod programs;
pub mod testdir;

pub use fixture::Fixture;
pub use invocation::{Invocation, Outcome};
pub use keyvalues::KeyValues;
pub use privilege::{require_root, require_runguard};
pub use programs::program;

/// The run user of the privileged tests: an unprivileged user every Debian system has, made a
/// valid run user by the test config (`valid_users`), so the tests create no users.
pub const RUN_USER: &str = "nobody";
pub const RUN_GROUP: &str = "nogroup";
pub const RUN_UID: u32 = 65534;
pub const RUN_GID: u32 = 65534;

/// runguard's exit status on an internal error.
pub const INTERNAL_ERROR_STATUS: i32 = 255;
