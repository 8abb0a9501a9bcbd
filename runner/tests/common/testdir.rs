//! A temporary directory of one test, removed with everything in it when dropped.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// A new empty directory under the system temp dir, mode 0777 (not sticky): the run user
    /// creates files in it and root (the test) removes them afterwards.
    pub fn new(label: &str) -> TestDir {
        let path = std::env::temp_dir().join(unique_name(label));
        std::fs::create_dir(&path)
            .unwrap_or_else(|e| panic!("creating test dir {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
            .unwrap_or_else(|e| panic!("chmod 0777 {}: {e}", path.display()));
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("warning: removing test dir {}: {e}", self.path.display());
        }
    }
}

/// `judged-test-<label>-<pid>-<n>`: unique within the machine for this process's lifetime.
pub fn unique_name(label: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("judged-test-{label}-{}-{n}", std::process::id())
}
