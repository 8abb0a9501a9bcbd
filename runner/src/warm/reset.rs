//! Between two runs of a sandbox: nothing the previous run made may be seen by the next.
//! Its processes are already gone (`launch` kills and reaps the whole run); what is left is what
//! it wrote: files in the writable places, System V IPC objects, POSIX message queues.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::plan::Mount;
use crate::sys::keeper::{mount_mqueue, SysvTables};
use crate::warm::protocol::SandboxSpec;

const PROC_SYSVIPC: &str = "/proc/sysvipc";

/// What a sandbox must clear after each run.
pub struct Reset {
    /// Directories emptied (the work dir, the tmpfs mounts as the keeper sees them).
    emptied: Vec<PathBuf>,
    /// Only in a private IPC namespace: outside it, the objects are the host's.
    sysv_ipc: Option<SysvTables>,
    /// Where our IPC namespace's message queues are mounted, in the keeper's mount namespace.
    mqueue: Option<PathBuf>,
}

impl Reset {
    /// For a sandbox built from `spec`, by a keeper already in its namespaces. `mqueue_dir` is
    /// an empty directory for the message queue mount (used with private mount and IPC
    /// namespaces only).
    pub fn new(spec: &SandboxSpec, mqueue_dir: &Path) -> io::Result<Reset> {
        let mut emptied: Vec<PathBuf> = spec.work_dir.iter().cloned().collect();
        if let Some(filesystem) = &spec.filesystem {
            for mount in &filesystem.mounts {
                if let Mount::Tmpfs { target, .. } = mount {
                    emptied.push(
                        filesystem
                            .new_root
                            .join(target.strip_prefix("/").unwrap_or(target)),
                    );
                }
            }
        }
        let private_ipc = spec.namespaces.ipc && spec.namespaces.mount;
        let mqueue = if private_ipc {
            fs::create_dir_all(mqueue_dir)?;
            mount_mqueue(mqueue_dir).map_err(io::Error::from)?;
            Some(mqueue_dir.to_path_buf())
        } else {
            None
        };
        let sysv_ipc = if spec.namespaces.ipc {
            Some(SysvTables::open(Path::new(PROC_SYSVIPC))?)
        } else {
            None
        };
        Ok(Reset {
            emptied,
            sysv_ipc,
            mqueue,
        })
    }

    pub fn has_mqueue_mount(&self) -> bool {
        self.mqueue.is_some()
    }

    /// Clear everything; an error means the sandbox can no longer promise isolation.
    pub fn run(&self) -> Result<(), String> {
        for dir in &self.emptied {
            empty_dir(dir).map_err(|e| format!("cannot empty `{}': {e}", dir.display()))?;
        }
        if let Some(tables) = &self.sysv_ipc {
            let objects = tables
                .list()
                .map_err(|e| format!("cannot list `{PROC_SYSVIPC}': {e}"))?;
            objects
                .remove()
                .map_err(|e| format!("cannot remove System V IPC objects: {e}"))?;
        }
        if let Some(dir) = &self.mqueue {
            empty_dir(dir).map_err(|e| format!("cannot remove message queues: {e}"))?;
        }
        Ok(())
    }
}

/// Remove everything inside `dir`, keeping `dir` (a mount point, or the bound work dir).
fn empty_dir(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
