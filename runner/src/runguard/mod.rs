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
pub mod resolve;
pub mod warnings;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

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

/// Open a file we report into (meta file, JSON report). The caller (through sudo) usually creates
/// it beforehand: truncating keeps its owner; a missing one is created readable by us only.
pub fn create_output_file(path: &Path) -> Result<File> {
    crate::output::open_output_file(path).map_err(|source| Error::io("cannot open", path, source))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("runguard-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn output_file_is_created_private() {
        let dir = scratch_dir("create");
        let path = dir.join("new.meta");
        create_output_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn output_file_is_truncated_and_keeps_its_mode() {
        let dir = scratch_dir("truncate");
        let path = dir.join("old.meta");
        std::fs::write(&path, "left over from an earlier run\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        create_output_file(&path)
            .unwrap()
            .write_all(b"new\n")
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(text, "new\n");
        assert_eq!(mode, 0o644);
    }
}
