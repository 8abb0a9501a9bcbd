//! judged: the judge host. `judged run` judges one submission against a problem package;
//! `judged serve` ([`serve`]) is the daemon that judges submissions taken over HTTP.
//!
//! Flow of a judging: [`problem::Problem::load`] reads the package, [`language::Languages`]
//! picks the profile, [`judge::Judge`] compiles and runs every test case through a
//! [`sandbox::Sandbox`] (the `runguard` binary), [`verdict`] decides, [`output`] shows.

pub mod cli;
pub mod default_validator;
pub mod diagnose;
pub mod diagnostics;
pub mod doctor;
pub mod interrupt;
pub mod judge;
pub mod language;
pub mod output;
pub mod problem;
pub mod sandbox;
pub mod serve;
pub mod topology;
pub mod users;
pub mod verdict;
pub mod watch;

/// A path in the repository (`testdata/...`, `profiles/...`), for unit tests.
#[cfg(test)]
pub(crate) fn repo_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}
