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
//! Uploads are kept by the host that received them: with a PostgreSQL store shared by several
//! hosts, upload the package to each host (a host that lacks it and claims a judging of it
//! records that judging `failed`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::store::Store;
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
            entries.insert(
                id,
                Registered {
                    problem: Arc::new(problem),
                    origin: Origin::Upload,
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

    /// Unpack, check and register the archive as problem `id` (blocking: disk and store).
    /// Whether it replaced an earlier upload.
    pub fn install(
        &self,
        id: &str,
        archive: &[u8],
        store: &dyn Store,
    ) -> Result<(Arc<Problem>, bool), UploadError> {
        check_id(id).map_err(UploadError::BadId)?;
        let Some(uploads) = &self.uploads else {
            return Err(UploadError::Internal("this daemon takes no uploads".into()));
        };
        let internal =
            |what: String| move |e: std::io::Error| UploadError::Internal(format!("{what}: {e}"));
        let _one = self
            .installing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
            .map_err(internal(format!(
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
        let target = uploads.join(id);
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let replaced = entries.contains_key(id);
        if replaced {
            // Held under the write lock: no judging of it can be claimed and start meanwhile.
            let unfinished = store
                .unfinished(id)
                .map_err(|e| UploadError::Internal(format!("{e:#}")))?;
            if unfinished > 0 {
                return Err(UploadError::Conflict(format!(
                    "problem `{id}' has {unfinished} judging(s) queued or being judged: upload \
                     it again when they are done (or cancel them)"
                )));
            }
            // The old version goes to where the new one was, and is removed with `incoming`.
            nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &root,
                nix::fcntl::AT_FDCWD,
                &target,
                nix::fcntl::RenameFlags::RENAME_EXCHANGE,
            )
            .map_err(|e| internal(format!("cannot swap `{}' in", target.display()))(e.into()))?;
        } else {
            std::fs::rename(&root, &target)
                .map_err(internal(format!("cannot move `{}' in", target.display())))?;
        }
        // The rename survives a power cut once the directory is synced.
        std::fs::File::open(uploads)
            .and_then(|dir| dir.sync_all())
            .map_err(internal(format!("cannot sync `{}'", uploads.display())))?;
        let problem = Problem::load(&target)
            .map(Arc::new)
            .map_err(|e| UploadError::Internal(format!("{:#}", anyhow::Error::new(e))))?;
        entries.insert(
            id.to_owned(),
            Registered {
                problem: problem.clone(),
                origin: Origin::Upload,
            },
        );
        Ok((problem, replaced))
    }
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
