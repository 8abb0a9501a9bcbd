//! Page-cache evictions of a run's own code: the pages of its executable and libraries
//! ([`code_files`](super::code_files)) that the kernel dropped from the page cache while it
//! ran, and the pages read in meanwhile. A program that spends its time in D state under a
//! tight memory limit is often re-reading its own binary; the cgroup's refault counter says
//! that something thrashed, these counts say it was the program's code.
//!
//! The counts come from `pagecache.bpf.c` ([`PageCacheTracer`]), host-wide per file: whoever
//! evicted the pages (the run's memory cgroup, the host's reclaim), the run lost them. A file
//! is watched while some run uses it (runs of several lanes may share a compiler or an
//! interpreter) and its counts are read at each run's start and end. A file no run uses stays
//! watched until [`IDLE_FILES_KEPT`] others are idle too: a warm worker's next test case runs
//! the same code, whose counts are then one map read away instead of a watch and an unwatch
//! per run.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::ebpf::raw::{RawFileKey, RawFilePages};
use super::ebpf::PageCacheTracer;
use super::thresholds::RunThresholds;
use super::{Finding, Kind};

/// Files of a run named in its evidence and report.
const FILES_SHOWN: usize = 5;
/// Files that no run uses kept watched (a map entry each), the least recently used dropped.
pub const IDLE_FILES_KEPT: usize = 32;

/// A run's code pages: evicted and read in while it ran, in all and per file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CodePages {
    pub evicted_pages: u64,
    pub read_pages: u64,
    /// How many files were watched (the executable, its interpreter and libraries).
    pub files_watched: usize,
    /// The files with pages evicted or read, most evicted first, at most [`FILES_SHOWN`].
    pub files: Vec<FilePages>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilePages {
    pub path: String,
    pub evicted_pages: u64,
    pub read_pages: u64,
}

/// A run's files and their counts at its start.
#[derive(Debug, Default)]
pub struct RunCode {
    files: Vec<(PathBuf, RawFileKey, RawFilePages)>,
}

/// Which files are watched: those runs use, and how many runs each, and the idle ones.
#[derive(Debug, Default)]
struct Watched {
    runs_per_file: HashMap<RawFileKey, usize>,
    /// Watched files no run uses, least recently used first.
    idle: VecDeque<RawFileKey>,
}

impl Watched {
    /// Whether `file` is watched already.
    fn has(&self, file: RawFileKey) -> bool {
        self.runs_per_file.contains_key(&file) || self.idle.contains(&file)
    }

    /// A run of `file` begins (the file is watched).
    fn begin(&mut self, file: RawFileKey) {
        self.idle.retain(|idle| *idle != file);
        *self.runs_per_file.entry(file).or_default() += 1;
    }

    /// A run of `file` is over: the file to stop watching, if one is now past the idle ones
    /// kept.
    fn finish(&mut self, file: RawFileKey) -> Option<RawFileKey> {
        let runs = self.runs_per_file.get_mut(&file)?;
        *runs -= 1;
        if *runs > 0 {
            return None;
        }
        self.runs_per_file.remove(&file);
        self.idle.push_back(file);
        if self.idle.len() > IDLE_FILES_KEPT {
            self.idle.pop_front()
        } else {
            None
        }
    }
}

/// The page-cache tracer and which files it watches.
pub struct CodePageWatch {
    tracer: Result<PageCacheTracer, String>,
    watched: Watched,
}

impl CodePageWatch {
    pub fn start() -> CodePageWatch {
        CodePageWatch {
            tracer: PageCacheTracer::start(),
            watched: Watched::default(),
        }
    }

    /// A run of `files` starts: watch them, note their counts. Files that cannot be read or
    /// watched are left out (the run's account says how many were watched).
    pub fn begin(&mut self, files: &[PathBuf]) -> RunCode {
        let Ok(tracer) = &mut self.tracer else {
            return RunCode::default();
        };
        let mut run = RunCode::default();
        for path in files {
            let Ok(metadata) = std::fs::metadata(path) else {
                continue;
            };
            let key = file_key(metadata.dev(), metadata.ino());
            if run.files.iter().any(|(_, known, _)| *known == key)
                || (!self.watched.has(key) && tracer.watch(key).is_err())
            {
                continue;
            }
            self.watched.begin(key);
            let start = tracer.pages(key).unwrap_or_default();
            run.files.push((path.clone(), key, start));
        }
        run
    }

    /// The run is over: what its files lost and gained since its start. The least recently
    /// used of the files no run uses beyond [`IDLE_FILES_KEPT`] is no longer watched.
    pub fn finish(&mut self, run: RunCode) -> Result<CodePages, String> {
        let tracer = self.tracer.as_mut().map_err(|e| e.clone())?;
        let mut files = Vec::new();
        for (path, key, start) in &run.files {
            let now = tracer.pages(*key).unwrap_or(*start);
            files.push(FilePages {
                path: path.display().to_string(),
                evicted_pages: now.evicted.saturating_sub(start.evicted),
                read_pages: now.added.saturating_sub(start.added),
            });
            if let Some(stale) = self.watched.finish(*key) {
                // Best effort: a file left watched only costs a map entry.
                let _ = tracer.unwatch(stale);
            }
        }
        Ok(CodePages::of(files))
    }
}

impl CodePages {
    /// The totals of `files`, and the files that lost or gained pages, most evicted first.
    fn of(mut files: Vec<FilePages>) -> CodePages {
        let files_watched = files.len();
        let evicted_pages = files.iter().map(|f| f.evicted_pages).sum();
        let read_pages = files.iter().map(|f| f.read_pages).sum();
        files.retain(|f| f.evicted_pages > 0 || f.read_pages > 0);
        files.sort_by_key(|f| std::cmp::Reverse((f.evicted_pages, f.read_pages)));
        files.truncate(FILES_SHOWN);
        CodePages {
            evicted_pages,
            read_pages,
            files_watched,
            files,
        }
    }

    /// Put the eviction of the run's code into its `page-cache-thrash` finding (made if the
    /// refault counts did not make one) when at least `code_pages_evicted_min` pages went.
    pub fn explain(&self, findings: &mut Vec<Finding>, t: &RunThresholds) {
        if self.evicted_pages < t.code_pages_evicted_min {
            return;
        }
        let index = match findings
            .iter()
            .position(|f| f.kind == Kind::PageCacheThrash)
        {
            Some(index) => index,
            None => {
                findings.push(Finding::new(
                    Kind::PageCacheThrash,
                    format!(
                        "the kernel evicted {} pages of the run's own executable and libraries \
                         while it ran, and {} pages of them were read in",
                        self.evicted_pages, self.read_pages
                    ),
                    "the page cache is too small for the runs: run fewer jobs at once, keep \
                     executables and test data on tmpfs, or add memory",
                ));
                findings.len() - 1
            }
        };
        let files: Vec<serde_json::Value> = self
            .files
            .iter()
            .map(|f| serde_json::to_value(f).expect("plain data serializes"))
            .collect();
        let evidence = &mut findings[index].evidence;
        evidence.insert("code_pages_evicted".to_owned(), self.evicted_pages.into());
        evidence.insert("code_pages_read".to_owned(), self.read_pages.into());
        evidence.insert("code_files".to_owned(), files.into());
    }

    /// One line of a text report: `None` when nothing of the code went.
    pub fn show(&self) -> Option<String> {
        (self.evicted_pages > 0).then(|| {
            let worst = self
                .files
                .first()
                .map(|f| format!(", most of {}", file_name(&f.path)))
                .unwrap_or_default();
            format!(
                "{} pages evicted, {} read in, of {} files{worst}",
                self.evicted_pages, self.read_pages, self.files_watched
            )
        })
    }
}

fn file_name(path: &str) -> &str {
    Path::new(path)
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or(path)
}

/// A file as the filemap tracepoints name it: the kernel's device number (major << 20 |
/// minor, where user space's `st_dev` packs them differently) and the inode number.
pub fn file_key(st_dev: u64, ino: u64) -> RawFileKey {
    let (major, minor) = (nix::libc::major(st_dev), nix::libc::minor(st_dev));
    RawFileKey {
        ino,
        dev: (major << 20) | minor,
        pad: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::thresholds::Thresholds;

    fn file(path: &str, evicted_pages: u64, read_pages: u64) -> FilePages {
        FilePages {
            path: path.into(),
            evicted_pages,
            read_pages,
        }
    }

    #[test]
    fn files_stay_watched_while_idle_until_more_than_the_kept_ones_are() {
        let key = |ino| file_key(0, ino);
        let mut watched = Watched::default();
        // Two lanes run the same compiler; one ends, the other still uses it.
        watched.begin(key(1));
        watched.begin(key(1));
        assert_eq!(watched.finish(key(1)), None);
        assert_eq!(watched.finish(key(1)), None);
        assert!(watched.has(key(1)), "idle, and kept watched");
        // The same file's next run finds it watched and takes it out of the idle ones.
        watched.begin(key(1));
        assert_eq!(watched.idle.len(), 0);
        assert_eq!(watched.finish(key(1)), None);
        for ino in 2..=IDLE_FILES_KEPT as u64 {
            watched.begin(key(ino));
            assert_eq!(watched.finish(key(ino)), None, "file {ino}");
        }
        // One more idle file than kept: the least recently used one goes.
        let newest = key(IDLE_FILES_KEPT as u64 + 1);
        watched.begin(newest);
        assert_eq!(watched.finish(newest), Some(key(1)));
        assert!(!watched.has(key(1)) && watched.has(newest));
        assert_eq!(watched.finish(key(99)), None, "a file no run began");
    }

    #[test]
    fn device_numbers_are_spelled_as_the_kernel_does() {
        // /dev/vda1 is 254:1: user space packs it as 0xfe01, the kernel as 254 << 20 | 1.
        let key = file_key(nix::libc::makedev(254, 1), 42);
        assert_eq!((key.dev, key.ino), ((254 << 20) | 1, 42));
        let key = file_key(nix::libc::makedev(259, 70_000), 7);
        assert_eq!(key.dev, (259 << 20) | 70_000);
    }

    #[test]
    fn the_files_that_lost_pages_come_first_and_untouched_ones_only_count() {
        let pages = CodePages::of(vec![
            file("/usr/lib/x86_64-linux-gnu/libc.so.6", 3, 3),
            file("/work/a.out", 900, 880),
            file("/lib64/ld-linux-x86-64.so.2", 0, 0),
        ]);
        assert_eq!((pages.evicted_pages, pages.read_pages), (903, 883));
        assert_eq!(pages.files_watched, 3);
        let paths: Vec<&str> = pages.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/work/a.out", "/usr/lib/x86_64-linux-gnu/libc.so.6"]
        );
        assert_eq!(
            pages.show().unwrap(),
            "903 pages evicted, 883 read in, of 3 files, most of a.out"
        );
    }

    #[test]
    fn evicted_code_explains_or_makes_a_page_cache_thrash_finding() {
        let t = Thresholds::default().run;
        let lost = CodePages::of(vec![file("/work/a.out", t.code_pages_evicted_min, 10)]);
        let mut findings = Vec::new();
        lost.explain(&mut findings, &t);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].kind, Kind::PageCacheThrash);
        assert!(
            findings[0].summary.contains("own executable"),
            "{:?}",
            findings[0]
        );
        assert_eq!(findings[0].evidence["code_files"][0]["path"], "/work/a.out");
        // With a finding from the refaults already there, it gains the evidence only.
        let mut findings = vec![Finding::new(Kind::PageCacheThrash, "refaults".into(), "r")];
        lost.explain(&mut findings, &t);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].summary, "refaults");
        assert_eq!(
            findings[0].evidence["code_pages_evicted"],
            t.code_pages_evicted_min
        );
        // Below the threshold: nothing.
        let few = CodePages::of(vec![file("/work/a.out", t.code_pages_evicted_min - 1, 0)]);
        let mut findings = Vec::new();
        few.explain(&mut findings, &t);
        assert!(findings.is_empty());
        assert_eq!(CodePages::default().show(), None);
    }
}
