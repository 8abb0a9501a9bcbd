//! The problems a daemon judges: those of `[problems] dirs` (fixed at start) and those
//! uploaded (`PUT /problems/{id}`), kept in `DATA_DIR/problems/ID/` and registered again at
//! each start.
//!
//! An upload is unpacked ([`super::upload`]) into a fresh `DATA_DIR/problems/.incoming-*`
//! directory, loaded with the same [`Problem::load`] as `judged run` uses, and only then moved
//! into place with one `rename` (a re-upload: one `renameat2(RENAME_EXCHANGE)`, the old
//! version then removed with the temporary directory). Any failure removes the temporary
//! directory; a daemon killed mid-upload leaves an `.incoming-*` that the next start removes.
//!
//! Re-uploading a problem replaces it only while no judging of it is queued or being judged,
//! on any host of the store: otherwise it is refused (409), so a judging always runs against
//! the one package it was submitted for. Problems of `[problems] dirs` cannot be replaced by
//! an upload.
//!
//! With a store shared by several hosts (PostgreSQL), an upload is also published there
//! ([`Store::publish_problem`]: the archive and a version, checked and numbered in one
//! transaction), and every host installs the versions it lacks ([`Problems::sync`]) at start
//! and when the store tells of one (`NOTIFY`), from the same archive through the same checks.
//! Each package directory keeps its version in `.judged-version`. A judging submitted to a
//! host within moments of a re-upload elsewhere may be judged on the previous version by a
//! host that has not installed the new one yet.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::store::{Publish, Store};
use super::upload::{self, UploadError, UploadLimits};
use crate::problem::Problem;

/// Where a problem came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `[problems] dirs` or `--problem`.
    Config,
    /// `PUT /problems/{id}`.
    Upload,
}

#[derive(Debug, Clone)]
pub struct Registered {
    pub problem: Arc<Problem>,
    pub origin: Origin,
    /// The published version of an upload (0: none, e.g. on SQLite or from the config).
    pub version: i64,
}

/// In an uploaded package's directory: its published version.
const VERSION_FILE: &str = ".judged-version";

/// An upload unpacked and checked, not yet in place.
struct Prepared {
    /// Removed on drop, with whatever it still holds (the old version after a swap).
    incoming: tempfile::TempDir,
    root: PathBuf,
}

/// A problem's id as a URL path segment and directory name: ASCII letters, digits, `-_.`,
/// not starting with `.` (pure).
pub fn check_id(id: &str) -> Result<(), String> {
    let plain = !id.is_empty()
        && !id.starts_with('.')
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if plain {
        Ok(())
    } else {
        Err(format!(
            "`{id}' is not a problem id (1 to 100 ASCII letters, digits, `-', `_' or `.', not \
             starting with `.')"
        ))
    }
}

const INCOMING: &str = ".incoming-";

pub struct Problems {
    entries: RwLock<BTreeMap<String, Registered>>,
    /// `DATA_DIR/problems` (`None`: uploads off, e.g. in unit tests).
    uploads: Option<PathBuf>,
    limits: UploadLimits,
    /// One upload installs at a time.
    installing: Mutex<()>,
}

impl Problems {
    /// The problems of the config, without uploads.
    pub fn fixed(configured: impl IntoIterator<Item = (String, Problem)>) -> Problems {
        let entries = configured
            .into_iter()
            .map(|(id, problem)| {
                let registered = Registered {
                    problem: Arc::new(problem),
                    origin: Origin::Config,
                    version: 0,
                };
                (id, registered)
            })
            .collect();
        Problems {
            entries: RwLock::new(entries),
            uploads: None,
            limits: upload::DEFAULT_LIMITS,
            installing: Mutex::new(()),
        }
    }

    /// Take uploads into `dir` (made if missing), registering those kept there by earlier
    /// runs and removing what an interrupted upload left. Run with the data directory locked.
    pub fn with_uploads(mut self, dir: &Path, limits: UploadLimits) -> anyhow::Result<Problems> {
        use anyhow::Context;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot make the problems directory `{}'", dir.display()))?;
        let mut entries = self.entries.write().expect("not poisoned");
        let listing =
            std::fs::read_dir(dir).with_context(|| format!("cannot read `{}'", dir.display()))?;
        let mut found: Vec<(String, PathBuf)> = Vec::new();
        for entry in listing {
            let entry = entry.with_context(|| format!("cannot read `{}'", dir.display()))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(INCOMING) {
                std::fs::remove_dir_all(&path).with_context(|| {
                    format!("cannot remove the interrupted upload `{}'", path.display())
                })?;
                eprintln!(
                    "judged serve: removed `{}', left by an interrupted upload",
                    path.display()
                );
                continue;
            }
            found.push((name, path));
        }
        found.sort();
        for (id, path) in found {
            check_id(&id)
                .map_err(|message| anyhow::anyhow!("`{}': {message}; remove it", path.display()))?;
            if let Some(other) = entries.get(&id) {
                anyhow::bail!(
                    "problem `{id}' is both in the config (`{}') and uploaded (`{}'): remove \
                     one of them",
                    other.problem.dir.display(),
                    path.display()
                );
            }
            let problem = Problem::load(&path)
                .with_context(|| format!("uploaded problem `{id}' (`{}')", path.display()))?;
            let version = std::fs::read_to_string(path.join(VERSION_FILE))
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or(0);
            entries.insert(
                id,
                Registered {
                    problem: Arc::new(problem),
                    origin: Origin::Upload,
                    version,
                },
            );
        }
        drop(entries);
        self.uploads = Some(dir.to_path_buf());
        self.limits = limits;
        Ok(self)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Problem>> {
        self.read().get(id).map(|r| r.problem.clone())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.read().contains_key(id)
    }

    /// Every problem, by id.
    pub fn all(&self) -> BTreeMap<String, Registered> {
        self.read().clone()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn limits(&self) -> &UploadLimits {
        &self.limits
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Registered>> {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Unpack, check, publish and register the archive as problem `id` (blocking: disk and
    /// store). Whether it replaced an earlier upload.
    pub fn install(
        &self,
        id: &str,
        archive: &[u8],
        store: &dyn Store,
        host: &str,
    ) -> Result<(Arc<Problem>, bool), UploadError> {
        let _one = self.one_at_a_time();
        let prepared = self.prepare(id, archive)?;
        let mut entries = self.write();
        let replaced = entries.contains_key(id);
        // Under the write lock: no judging of it can be claimed and start meanwhile here.
        let version = match store
            .publish_problem(id, archive, host)
            .map_err(|e| UploadError::Internal(format!("{e:#}")))?
        {
            Publish::Busy(busy) => {
                return Err(UploadError::Conflict(format!(
                    "problem `{id}' has {busy} judging(s) queued or being judged: upload it \
                     again when they are done (or cancel them)"
                )))
            }
            Publish::Published { version } => version,
        };
        let problem = self.put_in_place(&mut entries, id, prepared, version.unwrap_or(0))?;
        Ok((problem, replaced))
    }

    /// Install every problem the store has published in a version newer than this host's
    /// (another host's uploads); what cannot be installed is told on stderr and left for the
    /// next time. How many were installed.
    pub fn sync(&self, store: &dyn Store) -> usize {
        let versions = match store.problem_versions() {
            Ok(versions) => versions,
            Err(error) => {
                eprintln!("judged serve: cannot read the published problems: {error:#}");
                return 0;
            }
        };
        let mut installed = 0;
        for (id, version) in versions {
            let _one = self.one_at_a_time();
            match self.read().get(&id) {
                Some(known) if known.origin == Origin::Config => {
                    eprintln!(
                        "judged serve: problem `{id}' published by another host is one of \
                         [problems] dirs here: keeping this host's"
                    );
                    continue;
                }
                Some(known) if known.version >= version => continue,
                _ => {}
            }
            let result = store
                .problem_archive(&id)
                .map_err(|e| UploadError::Internal(format!("{e:#}")))
                .and_then(|archive| {
                    let (version, archive) = archive
                        .ok_or_else(|| UploadError::Internal("no longer published".into()))?;
                    let prepared = self.prepare(&id, &archive)?;
                    let mut entries = self.write();
                    self.put_in_place(&mut entries, &id, prepared, version)
                        .map(|problem| (version, problem))
                });
            match result {
                Ok((version, problem)) => {
                    installed += 1;
                    eprintln!(
                        "judged serve: installed problem `{id}' version {version}, published by \
                         another host ({} test case(s))",
                        problem.test_cases.len()
                    );
                }
                Err(error) => {
                    eprintln!("judged serve: cannot install published problem `{id}': {error}")
                }
            }
        }
        installed
    }

    fn one_at_a_time(&self) -> std::sync::MutexGuard<'_, ()> {
        self.installing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Registered>> {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn uploads_dir(&self) -> Result<&Path, UploadError> {
        self.uploads
            .as_deref()
            .ok_or_else(|| UploadError::Internal("this daemon takes no uploads".into()))
    }

    /// Unpack and check `archive` in a fresh directory beside the uploads.
    fn prepare(&self, id: &str, archive: &[u8]) -> Result<Prepared, UploadError> {
        check_id(id).map_err(UploadError::BadId)?;
        let uploads = self.uploads_dir()?;
        if self
            .read()
            .get(id)
            .is_some_and(|r| r.origin == Origin::Config)
        {
            return Err(UploadError::Conflict(format!(
                "problem `{id}' comes from [problems] dirs of the config: an upload cannot \
                 replace it (upload it under another id)"
            )));
        }
        let incoming = tempfile::Builder::new()
            .prefix(INCOMING)
            .tempdir_in(uploads)
            .map_err(io_error(format!(
                "cannot make a directory in `{}'",
                uploads.display()
            )))?;
        upload::unpack(archive, incoming.path(), &self.limits)?;
        let root = upload::package_root(incoming.path())?;
        // The loader's messages name files below the temporary directory: show them as the
        // archive's paths.
        Problem::load(&root).map_err(|error| {
            let shown = format!("{:#}", anyhow::Error::new(error));
            let prefix = format!("{}/", root.display());
            UploadError::Invalid(shown.replace(&prefix, ""))
        })?;
        Ok(Prepared { incoming, root })
    }

    /// Move a prepared package into place as `id` (its version written beside it) and
    /// register it.
    fn put_in_place(
        &self,
        entries: &mut BTreeMap<String, Registered>,
        id: &str,
        prepared: Prepared,
        version: i64,
    ) -> Result<Arc<Problem>, UploadError> {
        let uploads = self.uploads_dir()?;
        let Prepared { incoming, root } = prepared;
        let target = uploads.join(id);
        std::fs::write(root.join(VERSION_FILE), format!("{version}\n"))
            .map_err(io_error(format!("cannot write `{VERSION_FILE}'")))?;
        if target.exists() {
            // The old version goes to where the new one was, and is removed with `incoming`.
            nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &root,
                nix::fcntl::AT_FDCWD,
                &target,
                nix::fcntl::RenameFlags::RENAME_EXCHANGE,
            )
            .map_err(|e| io_error(format!("cannot swap `{}' in", target.display()))(e.into()))?;
        } else {
            std::fs::rename(&root, &target)
                .map_err(io_error(format!("cannot move `{}' in", target.display())))?;
        }
        drop(incoming);
        // The rename survives a power cut once the directory is synced.
        std::fs::File::open(uploads)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error(format!("cannot sync `{}'", uploads.display())))?;
        let problem = Problem::load(&target)
            .map(Arc::new)
            .map_err(|e| UploadError::Internal(format!("{:#}", anyhow::Error::new(e))))?;
        entries.insert(
            id.to_owned(),
            Registered {
                problem: problem.clone(),
                origin: Origin::Upload,
                version,
            },
        );
        Ok(problem)
    }
}

/// An I/O failure of the judge's own, with what it was doing.
fn io_error(what: String) -> impl FnOnce(std::io::Error) -> UploadError {
    move |error| UploadError::Internal(format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_ids_are_url_and_file_safe() {
        for good in ["aplusb", "A-B_c.2", "x"] {
            assert_eq!(check_id(good), Ok(()), "{good}");
        }
        let long = "a".repeat(101);
        for bad in ["", ".incoming-x", "..", "a/b", "a b", "é", long.as_str()] {
            assert!(
                check_id(bad).unwrap_err().contains("not a problem id"),
                "{bad}"
            );
        }
    }
}
