//! The DOMjudge-compatible `runguard` front end (contract: `docs/runguard-compat.md`).
//!
//! Flow: [`cli::parse`] turns argv into [`cli::Options`] exactly as DOMjudge's getopt does;
//! [`config::Config`] says which users and chroot directories are allowed; [`resolve::resolve`]
//! checks the options against the config and the host (users, groups, online CPUs) and produces a
//! pure [`crate::plan::Plan`] plus the [`meta::MetaSettings`] that shape the output;
//! `launch::run` carries out the plan; [`meta::render`] and [`json::render`] turn the report into
//! the meta file and the JSON report. Only [`host`] touches the system.

pub mod cli;
pub mod config;
pub mod cpuset;
pub mod help;
pub mod host;
pub mod json;
pub mod meta;
pub mod report_file;
pub mod resolve;
pub mod warnings;

use std::io;
use std::path::PathBuf;

/// A failure of the front end: the run was never started. runguard reports it like a sandbox
/// failure (`internal-error`, exit 255).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line: unknown option, missing or bad value, no command.
    #[error("{0}")]
    Usage(String),
    /// The configuration file is unreadable or invalid.
    #[error("config file `{path}': {message}")]
    Config { path: PathBuf, message: String },
    /// The options ask for something runguard refuses: a user not allowed, a root outside the
    /// chroot prefixes, a command left running as root.
    #[error("{0}")]
    Refused(String),
    /// The source is shown by the error chain (`{:#}`), not repeated here.
    #[error("{what} `{path}'")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
