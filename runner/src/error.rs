//! "The sandbox failed" is a different type from "the program failed": a program failure is a
//! normal `Report`; a `SandboxError` means we could not carry out or measure the run.

use std::path::PathBuf;

/// A failure of the sandbox itself. runguard reports it as `internal-error` and exits 255.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A step of the child's setup between fork and exec failed (the message names the step).
    #[error("{0}")]
    Setup(String),
    // The cause is part of the message and deliberately not a `source`: printed with `{:#}`
    // it would appear twice.
    #[error("{what} `{path}': {error}")]
    Io {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{call}: {error}")]
    Sys {
        call: &'static str,
        error: nix::Error,
    },
    #[error("{0}")]
    Config(String),
}

impl SandboxError {
    pub fn io(what: &'static str, path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        SandboxError::Io {
            what,
            path: path.into(),
            error,
        }
    }

    pub fn sys(call: &'static str, error: nix::Error) -> Self {
        SandboxError::Sys { call, error }
    }
}

pub type Result<T, E = SandboxError> = std::result::Result<T, E>;
