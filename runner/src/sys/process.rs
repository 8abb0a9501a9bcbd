//! Creating, watching and reaping the processes of a run.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::plan::Namespaces;

/// `struct clone_args` of clone3(2) (kernel ABI, version 2 with `cgroup`). Not in the `libc`
/// crate for glibc targets.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Namespaces that must be created at clone time rather than by the child itself: a new pid
/// namespace only applies to children of the caller, and a new user namespace must exist before
/// the parent can write its id maps (the child cannot map ids of the parent namespace).
pub fn clone_time_namespace_flags(namespaces: &Namespaces) -> u64 {
    let mut flags = 0;
    if namespaces.pid {
        flags |= libc::CLONE_NEWPID as u64;
    }
    if namespaces.user {
        flags |= libc::CLONE_NEWUSER as u64;
    }
    flags
}

/// The new process, seen from the parent.
pub struct Forked {
    pub pid: Pid,
    /// Readable when the process has exited.
    pub pidfd: OwnedFd,
    /// Whether the process was born inside the cgroup given to [`fork_child`].
    pub in_cgroup: bool,
}

/// Fork with clone3(2): `namespace_flags` applied at birth, a pidfd, and, when `cgroup` is
/// given, born directly inside that cgroup2 directory (no migration, which is what costs on
/// cgroup v1). Falls back to a plain clone3 without the cgroup when the kernel refuses it.
///
/// Returns `None` in the child. The caller must be single-threaded.
pub fn fork_child(
    namespace_flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
) -> nix::Result<Option<Forked>> {
    if let Some(cgroup) = cgroup {
        match clone3(
            namespace_flags | CLONE_INTO_CGROUP,
            Some(cgroup.as_raw_fd()),
        ) {
            // Kernels before 5.7 or cgroups that refuse the flag: migrate by hand instead.
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP | Errno::E2BIG) => {}
            other => {
                return other.map(|forked| {
                    forked.map(|f| Forked {
                        in_cgroup: true,
                        ..f
                    })
                })
            }
        }
    }
    clone3(namespace_flags, None)
}

fn clone3(flags: u64, cgroup: Option<RawFd>) -> nix::Result<Option<Forked>> {
    let mut pidfd: RawFd = -1;
    let args = CloneArgs {
        flags: flags | CLONE_PIDFD,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.map_or(0, |fd| fd as u64),
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed; without CLONE_VM the child gets a
    // copy of our address space, like fork(2). The caller is single-threaded, so no lock can be
    // held by a thread that does not exist in the child.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => Ok(Some(Forked {
            pid: Pid::from_raw(pid as i32),
            // SAFETY: the kernel stored a new pidfd that nobody else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
            in_cgroup: false,
        })),
    }
}

/// Make this process the reaper of every orphan of its descendants, so that a double-forked or
/// setsid'd process of a run is reaped by us and not left a zombie (pid 1 of these machines
/// does not reap).
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Reap every child and orphan that has exited, without blocking. Returns the status of `main`
/// if it was among them.
pub fn reap_exited(main: Pid) -> Option<WaitStatus> {
    let mut main_status = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return main_status,
            Ok(status) if status.pid() == Some(main) => main_status = Some(status),
            Ok(_) => {}
        }
    }
}

/// Block until every child and orphan of ours is gone (they must have been killed).
pub fn reap_all() {
    while waitpid(None, Some(WaitPidFlag::__WALL)).is_ok() {}
}

/// Write an identity map of all ids for a child in a new user namespace: inside, ids mean what
/// they mean outside, but capabilities are only held over the child's own namespaces.
pub fn write_identity_id_maps(pid: Pid) -> std::io::Result<()> {
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{map}"), "0 0 4294967295\n")?;
    }
    Ok(())
}

/// Send `signal` to one process, ignoring one that is already gone.
pub fn signal_process(pid: Pid, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(pid, signal);
}
