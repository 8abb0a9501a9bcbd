//! The files runguard reports into: the meta file and the JSON report.
//!
//! Never truncated to size 0 ([`open_as_it_is`] says why): a report is written over the old
//! content and the rest is cut off instead.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{Error, Result};
use crate::output::open_as_it_is;

/// Open a report file, keeping its owner and mode (a missing one is created private).
/// Whatever an earlier run left in it is replaced at once by `unfinished`, so a runguard killed
/// before it reports never leaves an earlier run's report behind.
pub fn open(path: &Path, unfinished: &str) -> Result<File> {
    let (file, length) =
        open_as_it_is(path).map_err(|source| Error::io("cannot open", path, source))?;
    if length > 0 {
        overwrite(&file, unfinished)
            .map_err(|source| Error::io("cannot write to", path, source))?;
    }
    Ok(file)
}

/// Replace the whole content of an opened report file: write, then cut off what is beyond,
/// if anything is (a truncation costs an ext4 journal transaction even to the same size).
pub fn overwrite(file: &File, text: &str) -> io::Result<()> {
    file.write_all_at(text.as_bytes(), 0)?;
    let length = text.len() as u64;
    if file.metadata()?.len() > length {
        file.set_len(length)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use super::*;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("runguard-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_new_report_file_is_private_and_empty() {
        let dir = scratch_dir("create");
        let path = dir.join("new.meta");
        open(&path, "unfinished\n").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(mode, 0o600);
        assert_eq!(text, "");
    }

    #[test]
    fn an_earlier_report_is_replaced_at_open_and_the_mode_kept() {
        let dir = scratch_dir("stale");
        let path = dir.join("old.meta");
        std::fs::write(&path, "left over from an earlier, much longer run\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let file = open(&path, "unfinished\n").unwrap();
        let at_open = std::fs::read_to_string(&path).unwrap();
        overwrite(&file, "new\n").unwrap();
        let at_end = std::fs::read_to_string(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(at_open, "unfinished\n");
        assert_eq!(at_end, "new\n");
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn a_longer_report_replaces_a_shorter_one_whole() {
        let dir = scratch_dir("longer");
        let path = dir.join("short.meta");
        std::fs::write(&path, "x\n").unwrap();
        let file = open(&path, "unfinished\n").unwrap();
        overwrite(&file, "a much longer report\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(text, "a much longer report\n");
    }
}
