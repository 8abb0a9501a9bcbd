//! What the keeper of a warm sandbox asks of the kernel beyond a run: its protocol descriptors,
//! its OOM score, and the removal of the IPC objects a run left behind.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

use crate::sys::file::{read_from_start, Shown};

/// Move the protocol off descriptors 0 and 1 (returned, close-on-exec) and put `/dev/null`
/// there: runs inherit descriptor 0 when they are given no input, and must not read requests.
pub fn take_protocol_stdio() -> io::Result<(File, File)> {
    let input = duplicate_cloexec(0)?;
    let output = duplicate_cloexec(1)?;
    detach_stdio()?;
    Ok((File::from(input), File::from(output)))
}

/// Put `/dev/null` on descriptors 0 and 1, which runs given no input or output inherit.
pub fn detach_stdio() -> io::Result<()> {
    let null = File::options().read(true).write(true).open("/dev/null")?;
    for target in [0, 1] {
        // SAFETY: dup2 onto 0/1 replaces our stdin/stdout, which the caller no longer needs.
        if unsafe { libc::dup2(null.as_raw_fd(), target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn duplicate_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC creates a new descriptor; no memory is involved.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Keep the OOM killer off the keeper, which shares the v1 memory group of its runs, where we
/// may: lowering the score needs CAP_SYS_RESOURCE. Without it the runs raise their own score
/// instead (`sys::child`), which is enough inside the shared group.
pub fn shield_from_oom_killer() -> io::Result<()> {
    match std::fs::write("/proc/self/oom_score_adj", "-1000") {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Ok(()),
        other => other,
    }
}

/// The System V IPC objects of our IPC namespace, as the `/proc/sysvipc` tables list them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SysvObjects {
    pub shared_memory: Vec<i32>,
    pub message_queues: Vec<i32>,
    pub semaphores: Vec<i32>,
}

/// The `/proc/sysvipc` tables of our IPC namespace, opened once: a table shows the objects of
/// the IPC namespace of whoever opened it, so open it inside the sandbox's.
#[derive(Debug)]
pub struct SysvTables {
    shared_memory: File,
    message_queues: File,
    semaphores: File,
}

impl SysvTables {
    /// Open the tables under `proc_sysvipc` (`/proc/sysvipc`).
    pub fn open(proc_sysvipc: &Path) -> io::Result<SysvTables> {
        let open = |table: &str| File::open(proc_sysvipc.join(table));
        Ok(SysvTables {
            shared_memory: open("shm")?,
            message_queues: open("msg")?,
            semaphores: open("sem")?,
        })
    }

    /// The objects that exist now.
    pub fn list(&self) -> io::Result<SysvObjects> {
        let ids = |table: &File| {
            Ok::<_, io::Error>(ids_of_table(&read_from_start(table, Shown::InRecords)?))
        };
        Ok(SysvObjects {
            shared_memory: ids(&self.shared_memory)?,
            message_queues: ids(&self.message_queues)?,
            semaphores: ids(&self.semaphores)?,
        })
    }
}

impl SysvObjects {
    pub fn is_empty(&self) -> bool {
        self.shared_memory.is_empty()
            && self.message_queues.is_empty()
            && self.semaphores.is_empty()
    }

    /// IPC_RMID each object (one already gone is fine).
    pub fn remove(&self) -> nix::Result<()> {
        let removed = |ret: libc::c_int| match ret {
            0 => Ok(()),
            _ => match Errno::last() {
                Errno::EINVAL | Errno::EIDRM => Ok(()),
                errno => Err(errno),
            },
        };
        for &id in &self.shared_memory {
            // SAFETY: IPC_RMID reads no buffer; a null one is allowed.
            removed(unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) })?;
        }
        for &id in &self.message_queues {
            // SAFETY: as above.
            removed(unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) })?;
        }
        for &id in &self.semaphores {
            // SAFETY: IPC_RMID takes no fourth argument.
            removed(unsafe { libc::semctl(id, 0, libc::IPC_RMID) })?;
        }
        Ok(())
    }
}

/// The ids (second column) of a `/proc/sysvipc/*` table, below its header line.
fn ids_of_table(table: &str) -> Vec<i32> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

/// Mount the POSIX message queue filesystem of our IPC namespace at `dir` (in our private mount
/// namespace), so that the queues a run made can be listed and unlinked.
pub fn mount_mqueue(dir: &Path) -> nix::Result<()> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("mqueue"), dir, Some("mqueue"), flags, None::<&str>)
}

/// Detach the mount at `dir` (ours, in our private mount namespace).
pub fn unmount(dir: &Path) -> nix::Result<()> {
    nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ids_below_the_header() {
        let table = "       key      shmid perms       size  cpid  lpid nattch\n\
                     0x00000000          7   600       4096  1234  1234      0\n\
                     0x0000002a      32769   644       8192  1234  1234      1\n";
        assert_eq!(ids_of_table(table), [7, 32769]);
        assert_eq!(ids_of_table("key msqid\n"), Vec::<i32>::new());
    }
}
