//! Reading and writing cgroupfs files with the path (and the value written) in every error, and
//! the two directory operations whose effect differs between the kernel's cgroupfs and a plain
//! directory tree.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::parse::ParseResult;
use crate::error::{Result, SandboxError};

/// mkdir and rmdir of a cgroup. The kernel fills a new cgroup directory with its control files
/// and lets rmdir remove a directory that still lists them; tests substitute a fake that does
/// the same in a temporary copy of a `testdata/` tree.
pub(crate) trait CgroupFs {
    fn make_dir(&self, path: &Path) -> io::Result<()>;
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
}

/// The real cgroupfs.
pub(crate) struct Kernel;

impl CgroupFs for Kernel {
    fn make_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }
}

pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|err| SandboxError::io("read cgroup file", path, err))
}

/// Read `path` and parse it; a parse failure is reported as invalid data in that file.
pub(crate) fn read_parsed<T>(path: &Path, parse: impl FnOnce(&str) -> ParseResult<T>) -> Result<T> {
    parse(&read(path)?).map_err(|message| {
        SandboxError::io(
            "read cgroup file",
            path,
            io::Error::new(io::ErrorKind::InvalidData, message),
        )
    })
}

/// Write `value` to an existing control file in one write(2), as cgroupfs requires. Never
/// creates the file: a missing control file means the kernel lacks the feature.
pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    try_write(path, value).map_err(|err| {
        let described = io::Error::new(err.kind(), format!("writing `{value}': {err}"));
        SandboxError::io("write cgroup file", path, described)
    })
}

/// [`write`] without the error context, for callers that handle a missing file themselves.
pub(crate) fn try_write(path: &Path, value: &str) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?
        .write_all(value.as_bytes())
}

/// How long [`CreatedDirs`] retries an rmdir that fails with EBUSY: the last tasks of a killed
/// run may still be leaving the group.
const REMOVE_RETRY: Duration = Duration::from_secs(1);

/// Directories we created, removed (deepest first) on [`CreatedDirs::remove_all`] or, best
/// effort, on drop, so an error path leaves nothing behind.
pub(crate) struct CreatedDirs {
    fs: Box<dyn CgroupFs>,
    dirs: Vec<PathBuf>,
}

impl std::fmt::Debug for CreatedDirs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.dirs).finish()
    }
}

impl CreatedDirs {
    pub(crate) fn new(fs: Box<dyn CgroupFs>) -> CreatedDirs {
        CreatedDirs {
            fs,
            dirs: Vec::new(),
        }
    }

    /// mkdir `path`, which must not exist yet, and take charge of removing it.
    pub(crate) fn make(&mut self, path: PathBuf) -> Result<PathBuf> {
        self.fs
            .make_dir(&path)
            .map_err(|err| SandboxError::io("create cgroup", &path, err))?;
        self.dirs.push(path.clone());
        Ok(path)
    }

    /// mkdir `path` unless it exists; it is not removed with the run (a shared parent).
    pub(crate) fn ensure_parent(&self, path: &Path) -> Result<()> {
        match self.fs.make_dir(path) {
            Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
                Err(SandboxError::io("create parent cgroup", path, err))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(PathBuf::as_path)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// Remove every directory; tries them all and returns the first error.
    pub(crate) fn remove_all(&mut self) -> Result<()> {
        let mut first_error = None;
        while let Some(dir) = self.dirs.pop() {
            if let Err(err) = self.remove_one(&dir) {
                first_error.get_or_insert(SandboxError::io("remove cgroup", dir, err));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn remove_one(&self, dir: &Path) -> io::Result<()> {
        let deadline = Instant::now() + REMOVE_RETRY;
        let mut pause = Duration::from_micros(100);
        loop {
            match self.fs.remove_dir(dir) {
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(err)
                    if err.kind() == io::ErrorKind::ResourceBusy && Instant::now() < deadline =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
                result => return result,
            }
        }
    }
}

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        // Best effort: the caller that cares about the error calls remove_all() itself.
        let _ = self.remove_all();
    }
}
