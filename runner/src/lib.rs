//! The sandbox: confines one command and measures it truthfully.
//!
//! Flow of one run: a front end (the `runguard` CLI, a sandbox profile, the judge) resolves a
//! pure [`plan::Plan`]; [`launch::run`] forks a child that confines itself and execs, starts the
//! clocks at exec, pumps output, enforces the limits, kills and reaps everything of the run, and
//! returns a pure [`report::Report`]. A failure of the sandbox itself is a
//! [`error::SandboxError`], never a report.

pub mod cgroup;
pub mod error;
pub mod launch;
pub mod output;
pub mod plan;
pub mod profile;
pub mod report;
pub mod runguard;
pub mod seccomp;
pub mod sys;
pub mod warm;

/// A path in the repository (`testdata/...`, `profiles/...`), for unit tests.
#[cfg(test)]
pub(crate) fn repo_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}
