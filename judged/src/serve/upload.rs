//! Unpacking an uploaded problem package (`PUT /problems/{id}`, a `.zip` as Kattis and DOMjudge
//! ship them) without trusting it.
//!
//! An archive is hostile until proven otherwise: every entry's name is checked as plain
//! relative path components (no absolute path, no `..` or `.`, no empty component, no
//! backslash or NUL); only regular files and directories are written (a symlink, device or
//! FIFO refuses the archive); a name given twice refuses it; files are created with
//! `O_EXCL`, so nothing is ever written through an existing path; the sizes the archive
//! declares are checked against `max_unpacked_bytes` before each entry is unpacked and the
//! bytes actually decompressed counted against it (an entry unpacking to more than it
//! declares is refused), and the entry count is checked against `max_entries`. The caller
//! unpacks into a fresh temporary directory and removes it on any error, so a refused archive
//! leaves nothing behind.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The `[problems]` limits of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// The archive itself (the request body).
    pub max_archive_bytes: u64,
    /// All files of the archive once unpacked.
    pub max_unpacked_bytes: u64,
    /// Files and directories in the archive.
    pub max_entries: usize,
}

pub const DEFAULT_LIMITS: UploadLimits = UploadLimits {
    max_archive_bytes: 256 * 1024 * 1024,
    max_unpacked_bytes: 1024 * 1024 * 1024,
    max_entries: 10_000,
};

/// Why an archive was refused (the client's fault) or could not be installed (ours).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the body is not a zip archive: {0}")]
    NotZip(String),
    #[error(
        "the archive has {count} entries, more than this judge's [problems] max_entries \
         ({limit})"
    )]
    TooManyEntries { count: usize, limit: usize },
    #[error(
        "the archive unpacks to more than this judge's [problems] max_unpacked_bytes ({limit} \
         bytes), at entry `{entry}'"
    )]
    TooLarge { entry: String, limit: u64 },
    #[error("entry `{entry}': {why}")]
    BadEntry { entry: String, why: String },
    #[error(
        "no problem.yaml at the archive's top level (nor in its one top-level directory): \
         zip the package directory's contents (problem.yaml, data/, ...)"
    )]
    NoPackage,
    #[error("not a valid problem package: {0}")]
    Invalid(String),
    #[error("problem id: {0}")]
    BadId(String),
    /// Refused in the current state (re-upload of a busy or configured problem).
    #[error("{0}")]
    Conflict(String),
    /// The judge's own failure (disk, database): not the archive's.
    #[error("{0}")]
    Internal(String),
}

impl UploadError {
    fn entry(entry: &str, why: impl Into<String>) -> UploadError {
        UploadError::BadEntry {
            entry: entry.to_owned(),
            why: why.into(),
        }
    }
}

/// `name` as a relative path of plain components, or why it is not one (pure).
pub fn entry_path(name: &str) -> Result<PathBuf, &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.starts_with('/') {
        return Err("absolute path");
    }
    if name.contains('\\') {
        return Err("backslash in the name (use / between directories)");
    }
    if name.contains('\0') {
        return Err("NUL byte in the name");
    }
    // A directory entry ends in one `/`.
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    let mut path = PathBuf::new();
    for component in trimmed.split('/') {
        match component {
            "" => return Err("empty path component (`//')"),
            "." | ".." => return Err("`.' or `..' path component (path traversal)"),
            _ => path.push(component),
        }
    }
    Ok(path)
}

/// The kinds of entry an archive may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File { executable: bool },
    Dir,
}

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// An entry's kind from its Unix mode (when the archive has one) and name, or why it may not
/// be unpacked (pure).
fn kind(mode: Option<u32>, is_dir: bool) -> Result<Kind, &'static str> {
    let executable = mode.is_some_and(|m| m & 0o111 != 0);
    match mode.map(|m| m & S_IFMT) {
        Some(S_IFLNK) => Err("symbolic links are not allowed in a problem package"),
        Some(0) | None if is_dir => Ok(Kind::Dir),
        Some(0) | None => Ok(Kind::File { executable }),
        Some(S_IFDIR) => Ok(Kind::Dir),
        Some(S_IFREG) if !is_dir => Ok(Kind::File { executable }),
        Some(S_IFREG) => Err("a regular file whose name ends in `/'"),
        Some(_) => Err("only regular files and directories are allowed (a device, FIFO or socket)"),
    }
}

/// Unpack `archive` into the existing, empty directory `into`. On error `into` may hold part of
/// it: the caller removes it.
pub fn unpack(archive: &[u8], into: &Path, limits: &UploadLimits) -> Result<(), UploadError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive))
        .map_err(|e| UploadError::NotZip(e.to_string()))?;
    if zip.has_duplicate_names() {
        return Err(UploadError::BadEntry {
            entry: "(central directory)".into(),
            why: "a name is given twice in the archive".into(),
        });
    }
    if zip.len() > limits.max_entries {
        return Err(UploadError::TooManyEntries {
            count: zip.len(),
            limit: limits.max_entries,
        });
    }
    let mut seen = HashSet::new();
    let mut unpacked: u64 = 0;
    for index in 0..zip.len() {
        let mut file = zip
            .by_index(index)
            .map_err(|e| UploadError::NotZip(format!("entry {index}: {e}")))?;
        let name = file
            .name()
            .map_err(|e| UploadError::NotZip(format!("entry {index}: {e}")))?
            .into_owned();
        let relative = entry_path(&name).map_err(|why| UploadError::entry(&name, why))?;
        if !seen.insert(relative.clone()) {
            return Err(UploadError::entry(&name, "given twice in the archive"));
        }
        let kind =
            kind(file.unix_mode(), file.is_dir()).map_err(|why| UploadError::entry(&name, why))?;
        let path = into.join(&relative);
        let io = |what: &str, error: std::io::Error| {
            UploadError::entry(&name, format!("cannot {what}: {error}"))
        };
        let parent = path.parent().expect("an entry is below `into'");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| io("make its directory", e))?;
        match kind {
            Kind::Dir => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&path)
                .map_err(|e| io("make the directory", e))?,
            Kind::File { executable } => {
                let left = limits.max_unpacked_bytes - unpacked;
                let too_large = || UploadError::TooLarge {
                    entry: name.clone(),
                    limit: limits.max_unpacked_bytes,
                };
                // What the archive says first (cheap); then what it really holds (the zip
                // reader also refuses an entry that unpacks to more than it says: kept as a
                // second guard, the limit must hold whatever the reader does).
                if file.size() > left {
                    return Err(too_large());
                }
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if executable { 0o755 } else { 0o644 })
                    .open(&path)
                    .map_err(|e| io("create the file", e))?;
                let written = std::io::copy(&mut (&mut file).take(left + 1), &mut out)
                    .map_err(|e| io("unpack it", e))?;
                if written > left {
                    return Err(too_large());
                }
                out.flush().map_err(|e| io("write it", e))?;
                unpacked += written;
            }
        }
    }
    Ok(())
}

/// The package's directory in the unpacked tree: `root` when it has `problem.yaml`, else its
/// one subdirectory when that has it (a zip of the package directory itself).
pub fn package_root(root: &Path) -> Result<PathBuf, UploadError> {
    if root.join("problem.yaml").is_file() {
        return Ok(root.to_path_buf());
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| UploadError::Internal(format!("cannot read `{}': {e}", root.display())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    match entries.as_slice() {
        [only] if only.is_dir() && only.join("problem.yaml").is_file() => Ok(only.clone()),
        _ => Err(UploadError::NoPackage),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    #[test]
    fn entry_names_are_plain_relative_paths() {
        let good = [
            ("problem.yaml", "problem.yaml"),
            ("data/secret/1.in", "data/secret/1.in"),
            ("data/", "data"),
            ("a..b/.hidden", "a..b/.hidden"),
        ];
        for (name, path) in good {
            assert_eq!(entry_path(name), Ok(PathBuf::from(path)), "{name}");
        }
        let bad = [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("../x", "traversal"),
            ("data/../../x", "traversal"),
            ("./x", "traversal"),
            ("data//x", "empty path component"),
            ("data\\..\\x", "backslash"),
            ("a\0b", "NUL"),
            ("/", "absolute"),
        ];
        for (name, why) in bad {
            let error = entry_path(name).unwrap_err();
            assert!(error.contains(why), "{name:?}: {error}");
        }
    }

    #[test]
    fn only_files_and_directories_are_unpacked() {
        let cases = [
            (None, false, Ok(Kind::File { executable: false })),
            (None, true, Ok(Kind::Dir)),
            (Some(0o100_644), false, Ok(Kind::File { executable: false })),
            (Some(0o100_755), false, Ok(Kind::File { executable: true })),
            (Some(0o040_755), true, Ok(Kind::Dir)),
            (Some(0o040_755), false, Ok(Kind::Dir)),
            (Some(0o000_644), false, Ok(Kind::File { executable: false })),
        ];
        for (mode, is_dir, expected) in cases {
            assert_eq!(kind(mode, is_dir), expected, "{mode:?} {is_dir}");
        }
        for (mode, why) in [
            (0o120_777, "symbolic link"),
            (0o020_644, "device"),
            (0o010_644, "FIFO"),
        ] {
            assert!(
                kind(Some(mode), false).unwrap_err().contains(why),
                "{mode:o}"
            );
        }
    }

    fn zip_of(build: impl FnOnce(&mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>)) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        build(&mut writer);
        writer.finish().unwrap().into_inner()
    }

    fn file(writer: &mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>, name: &str, content: &[u8]) {
        writer
            .start_file(name, SimpleFileOptions::default())
            .unwrap();
        writer.write_all(content).unwrap();
    }

    #[test]
    fn a_package_unpacks_with_its_modes_and_is_found_in_its_top_directory() {
        let archive = zip_of(|w| {
            w.add_directory("p/", SimpleFileOptions::default()).unwrap();
            file(w, "p/problem.yaml", b"name: P\n");
            w.start_file(
                "p/output_validators/v/build",
                SimpleFileOptions::default().unix_permissions(0o755),
            )
            .unwrap();
            w.write_all(b"#!/bin/sh\n").unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        unpack(&archive, dir.path(), &DEFAULT_LIMITS).unwrap();
        let root = package_root(dir.path()).unwrap();
        assert_eq!(root, dir.path().join("p"));
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(root.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("problem.yaml"), 0o644);
        assert_eq!(mode("output_validators/v/build"), 0o755);
        // Nothing that is not a package.
        let archive = zip_of(|w| file(w, "readme.txt", b"hi"));
        let dir = tempfile::tempdir().unwrap();
        unpack(&archive, dir.path(), &DEFAULT_LIMITS).unwrap();
        assert!(matches!(
            package_root(dir.path()),
            Err(UploadError::NoPackage)
        ));
    }

    /// Two entries of one name (a zip writer will not write it: rename the second).
    fn duplicate_names() -> Vec<u8> {
        let archive = zip_of(|w| {
            file(w, "dupAAAA", b"first");
            file(w, "dupBBBB", b"second");
        });
        let (from, to) = (b"dupBBBB", b"dupAAAA");
        let mut patched = archive.clone();
        for at in 0..archive.len() - from.len() {
            if &archive[at..at + from.len()] == from {
                patched[at..at + from.len()].copy_from_slice(to);
            }
        }
        patched
    }

    /// An entry that says it unpacks to 10 bytes and unpacks to `content`.
    fn lying_size(content: &[u8]) -> Vec<u8> {
        let archive = zip_of(|w| {
            w.start_file(
                "liar",
                SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated),
            )
            .unwrap();
            w.write_all(content).unwrap();
        });
        let (real, told) = ((content.len() as u32).to_le_bytes(), 10u32.to_le_bytes());
        let mut patched = archive.clone();
        let mut found = 0;
        for at in 0..archive.len() - 4 {
            if archive[at..at + 4] == real {
                patched[at..at + 4].copy_from_slice(&told);
                found += 1;
            }
        }
        assert_eq!(found, 2, "the local and the central header");
        patched
    }

    /// Each hostile archive is refused with a message naming the entry or the limit.
    #[test]
    fn hostile_archives_are_refused() {
        let limits = UploadLimits {
            max_archive_bytes: 1 << 20,
            max_unpacked_bytes: 100_000,
            max_entries: 5,
        };
        let zeros = vec![0u8; 200_000];
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "traversal",
                zip_of(|w| file(w, "../evil", b"x")),
                "`../evil'",
            ),
            (
                "absolute",
                zip_of(|w| file(w, "/tmp/evil", b"x")),
                "absolute path",
            ),
            (
                "symlink",
                zip_of(|w| {
                    w.add_symlink("data", "/etc", SimpleFileOptions::default())
                        .unwrap()
                }),
                "symbolic links",
            ),
            (
                "bomb",
                zip_of(|w| {
                    w.start_file(
                        "big",
                        SimpleFileOptions::default()
                            .compression_method(zip::CompressionMethod::Deflated),
                    )
                    .unwrap();
                    w.write_all(&zeros).unwrap();
                }),
                "max_unpacked_bytes (100000 bytes)",
            ),
            (
                "many",
                zip_of(|w| {
                    for i in 0..6 {
                        file(w, &format!("f{i}"), b"");
                    }
                }),
                "6 entries",
            ),
            (
                "file over a file's directory",
                zip_of(|w| {
                    file(w, "a", b"");
                    file(w, "a/b", b"");
                }),
                "`a/b': cannot make its directory",
            ),
            (
                "a size it lies about",
                lying_size(&zeros),
                "`liar': cannot unpack it: File is larger than its declared uncompressed size",
            ),
            ("duplicate", duplicate_names(), "given twice"),
            (
                "a file and a directory of one name",
                zip_of(|w| {
                    file(w, "data", b"");
                    w.add_directory("data/", SimpleFileOptions::default())
                        .unwrap();
                }),
                "`data/': given twice",
            ),
            ("not a zip", b"PK\x03\x04 not really".to_vec(), "not a zip"),
        ];
        for (what, archive, needle) in cases {
            let dir = tempfile::tempdir().unwrap();
            let error = unpack(&archive, dir.path(), &limits)
                .unwrap_err()
                .to_string();
            assert!(error.contains(needle), "{what}: {error}");
        }
    }
}
