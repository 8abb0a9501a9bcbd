//! Reading and writing cgroupfs files with the path (and the value written) in every error, and
//! the two directory operations whose effect differs between the kernel's cgroupfs and a plain
//! directory tree.

use std::cell::RefCell;
use std::collections::hash_map::{Entry, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::parse::ParseResult;
use crate::error::{Result, SandboxError};
use crate::sys::file::{read_from_start, Shown};

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

/// The counter files of a group, each opened on its first read and then kept open (see
/// `sys::file`): a run reads the same few counters several times (at exec, while polling the
/// CPU limit, at the end), a warm sandbox's group for every run. Close them before the group's
/// directory is removed ([`OpenFiles::close_all`]).
///
/// A warm sandbox's group also keeps the files it writes before every run open
/// ([`OpenFiles::write`]): cgroupfs takes each write(2) whole, whatever the file offset.
#[derive(Debug, Default)]
pub(crate) struct OpenFiles {
    readers: RefCell<HashMap<PathBuf, File>>,
    writers: RefCell<HashMap<PathBuf, File>>,
}

impl OpenFiles {
    /// Read the counter file `path` (shown whole, see [`Shown`]) and parse it, as
    /// [`read_parsed`] does.
    pub(crate) fn read_parsed<T>(
        &self,
        path: &Path,
        parse: impl FnOnce(&str) -> ParseResult<T>,
    ) -> Result<T> {
        parsed(path, &self.read(path, Shown::Whole)?, parse)
    }

    /// Read the member list `path` (`cgroup.procs`, shown one pid at a time) and parse it.
    pub(crate) fn read_parsed_list<T>(
        &self,
        path: &Path,
        parse: impl FnOnce(&str) -> ParseResult<T>,
    ) -> Result<T> {
        parsed(path, &self.read(path, Shown::InRecords)?, parse)
    }

    fn read(&self, path: &Path, shown: Shown) -> Result<String> {
        self.try_read(path, shown)
            .map_err(|err| SandboxError::io("read cgroup file", path, err))
    }

    /// A file the host may lack (PSI files on a kernel booted without it): `None` when it is
    /// missing or cannot be read on this kernel.
    pub(crate) fn read_optional<T>(
        &self,
        path: &Path,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.try_read(path, Shown::Whole) {
            Ok(text) => Ok(parse(&text)),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::Unsupported
                ) =>
            {
                Ok(None)
            }
            Err(err) => Err(SandboxError::io("read cgroup file", path, err)),
        }
    }

    fn try_read(&self, path: &Path, shown: Shown) -> io::Result<String> {
        let mut readers = self.readers.borrow_mut();
        read_from_start(
            open_once(&mut readers, path, |path| File::open(path))?,
            shown,
        )
    }

    /// [`write`] through a descriptor kept open. Only for cgroupfs: a plain file would keep
    /// the tail of a longer earlier value.
    pub(crate) fn write(&self, path: &Path, value: &str) -> Result<()> {
        let mut writers = self.writers.borrow_mut();
        open_once(&mut writers, path, |path| {
            std::fs::OpenOptions::new().write(true).open(path)
        })
        .and_then(|mut file| file.write_all(value.as_bytes()))
        .map_err(|err| {
            let described = io::Error::new(err.kind(), format!("writing `{value}': {err}"));
            SandboxError::io("write cgroup file", path, described)
        })
    }

    pub(crate) fn close_all(&self) {
        self.readers.borrow_mut().clear();
        self.writers.borrow_mut().clear();
    }
}

fn open_once<'a>(
    files: &'a mut HashMap<PathBuf, File>,
    path: &Path,
    open: impl FnOnce(&Path) -> io::Result<File>,
) -> io::Result<&'a File> {
    Ok(match files.entry(path.to_path_buf()) {
        Entry::Occupied(entry) => entry.into_mut(),
        Entry::Vacant(entry) => entry.insert(open(path)?),
    })
}

/// Read `path` through a descriptor of its own and parse it; a parse failure is reported as
/// invalid data in that file. For what an open descriptor would show stale: a v1 hierarchy
/// serves `cgroup.procs` from a pid list cached per open file.
pub(crate) fn read_parsed<T>(path: &Path, parse: impl FnOnce(&str) -> ParseResult<T>) -> Result<T> {
    parsed(path, &read(path)?, parse)
}

fn parsed<T>(path: &Path, text: &str, parse: impl FnOnce(&str) -> ParseResult<T>) -> Result<T> {
    parse(text).map_err(|message| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_kept_open_reads_what_it_holds_now() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.max_usage_in_bytes");
        std::fs::write(&path, "4096\n").unwrap();
        let files = OpenFiles::default();
        let parse = |text: &str| super::super::parse::single_u64(text);
        assert_eq!(files.read_parsed(&path, parse).unwrap(), 4096);
        // Rewritten in place, as the kernel regenerates a counter: the open file sees it.
        std::fs::write(&path, "123456789\n").unwrap();
        assert_eq!(files.read_parsed(&path, parse).unwrap(), 123456789);
        assert_eq!(files.readers.borrow().len(), 1);
    }

    #[test]
    fn a_missing_or_unparsable_counter_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = OpenFiles::default();
        let missing = dir.path().join("cpu.stat");
        let err = files
            .read_parsed(&missing, |_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cpu.stat"), "{err}");
        let garbled = dir.path().join("memory.peak");
        std::fs::write(&garbled, "lots\n").unwrap();
        let err = files
            .read_parsed(&garbled, super::super::parse::single_u64)
            .unwrap_err()
            .to_string();
        assert!(err.contains("memory.peak"), "{err}");
    }
}
