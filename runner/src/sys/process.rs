//! Creating, watching and reaping the processes of a run.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::plan::Namespaces;
use crate::sys::child::ChildSpec;

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

/// How many CPUs we may run on (our affinity mask); 1 if it cannot be read.
pub fn affinity_cpus() -> u32 {
    nix::sched::sched_getaffinity(Pid::from_raw(0)).map_or(1, |set| {
        (0..nix::sched::CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .count() as u32
    })
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

/// Start a child that borrows our memory until it execs, born inside the cgroup2 directory
/// `cgroup` when given: clone3 with `CLONE_VM | CLONE_VFORK`, as posix_spawn does with clone. No page
/// table is copied and no page is copied on write afterwards, which is most of what a fork
/// costs a keeper. The child confines itself as `spec` says and execs
/// ([`confine_and_exec`](crate::sys::child::confine_and_exec)) on a stack of its own; we are
/// suspended until it has exec'd or exited, so it must need nothing from us before its exec
/// (no id maps, no pid namespace init that stays; other cgroups it joins itself).
///
/// `Err(ENOSYS)` where this is not built (only x86_64 has the trampoline), and the kernel's
/// error for a cgroup it refuses to clone into: the caller then forks with [`fork_child`].
/// The caller must be single-threaded.
pub fn spawn_sharing_memory(
    namespace_flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
    spec: &ChildSpec,
) -> nix::Result<Forked> {
    let stack = shared_spawn::stack()?;
    let mut pidfd: RawFd = -1;
    let into_cgroup = if cgroup.is_some() {
        CLONE_INTO_CGROUP
    } else {
        0
    };
    let args = CloneArgs {
        flags: namespace_flags
            | CLONE_PIDFD
            | into_cgroup
            | libc::CLONE_VM as u64
            | libc::CLONE_VFORK as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.base as u64,
        stack_size: stack.size as u64,
        cgroup: cgroup.map_or(0, |fd| fd.as_raw_fd() as u64),
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args whose stack is the reserved child stack, unused by
    // anyone else while `stack` (a lock) is held; the child runs `child_entry` on it and never
    // returns into our frames, and we are suspended until it execs or exits, so nothing else
    // touches the memory it borrows meanwhile. The caller is single-threaded, so the child
    // cannot find a lock (of the allocator, say) held by another thread.
    let pid = unsafe { shared_spawn::clone3_on_stack(&args, spec) }?;
    drop(stack);
    Ok(Forked {
        pid: Pid::from_raw(pid),
        // SAFETY: the kernel stored a new pidfd that nobody else owns.
        pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        in_cgroup: cgroup.is_some(),
    })
}

/// The machinery of [`spawn_sharing_memory`]: the child's stack and the clone3 trampoline.
mod shared_spawn {
    use std::ffi::c_void;
    use std::num::NonZeroUsize;
    use std::sync::{Mutex, MutexGuard};

    use nix::errno::Errno;
    use nix::sys::mman::{mmap_anonymous, mprotect, MapFlags, ProtFlags};

    use super::CloneArgs;
    use crate::sys::child::{confine_and_exec, ChildSpec};

    /// Room for the child's setup (Rust frames, seccomp, an error message) with margin.
    const STACK_BYTES: usize = 256 * 1024;
    /// An inaccessible page below the stack, so an overflow faults instead of writing over
    /// whatever was mapped there.
    const GUARD_BYTES: usize = 4096;

    pub struct Stack {
        pub base: *mut c_void,
        pub size: usize,
    }

    // SAFETY: the mapping is process-wide and only ever used under the mutex.
    unsafe impl Send for Stack {}

    /// One stack, mapped at the first spawn and kept: a child runs on it only while we are
    /// suspended, and the lock keeps two threads from ever sharing it.
    static STACK: Mutex<Option<Stack>> = Mutex::new(None);

    pub struct StackGuard(MutexGuard<'static, Option<Stack>>);

    impl std::ops::Deref for StackGuard {
        type Target = Stack;
        fn deref(&self) -> &Stack {
            self.0
                .as_ref()
                .expect("mapped before the guard is handed out")
        }
    }

    pub fn stack() -> nix::Result<StackGuard> {
        let mut slot = STACK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            let length = NonZeroUsize::new(GUARD_BYTES + STACK_BYTES).expect("non-zero");
            // SAFETY: a fresh anonymous mapping aliases nothing.
            let mapping = unsafe {
                mmap_anonymous(
                    None,
                    length,
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                    MapFlags::MAP_PRIVATE | MapFlags::MAP_STACK,
                )
            }?;
            // SAFETY: the first page of our own mapping, which nothing uses yet.
            unsafe { mprotect(mapping, GUARD_BYTES, ProtFlags::PROT_NONE) }?;
            // SAFETY: GUARD_BYTES lies inside the mapping.
            let base = unsafe { mapping.as_ptr().byte_add(GUARD_BYTES) };
            *slot = Some(Stack {
                base,
                size: STACK_BYTES,
            });
        }
        Ok(StackGuard(slot))
    }

    /// What the child runs first, on its own stack.
    extern "C" fn child_entry(spec: *const ChildSpec) -> ! {
        // SAFETY: `spec` is the parent's `&ChildSpec`, alive while the parent is suspended.
        confine_and_exec(unsafe { &*spec })
    }

    /// clone3 whose child calls `child_entry(spec)`. A child with its own stack resumes from
    /// the syscall on that stack with no frame to return to, so the switch to Rust code must
    /// be done in assembly, as glibc's clone does.
    ///
    /// # Safety
    /// `args` must be a valid clone_args with CLONE_VFORK and a stack that nothing else uses.
    #[cfg(target_arch = "x86_64")]
    pub unsafe fn clone3_on_stack(args: &CloneArgs, spec: &ChildSpec) -> nix::Result<i32> {
        let ret: i64;
        // SAFETY: the caller's contract. In the parent the asm is one syscall. In the child
        // (rax = 0) the stack pointer is the top of the new stack, 16-byte aligned as the
        // call expects; child_entry never returns (ud2 would trap if it did).
        unsafe {
            std::arch::asm!(
                "syscall",
                "test rax, rax",
                "jnz 2f",
                "mov rdi, r12",
                "call r13",
                "ud2",
                "2:",
                inlateout("rax") libc::SYS_clone3 => ret,
                in("rdi") args as *const CloneArgs,
                in("rsi") std::mem::size_of::<CloneArgs>(),
                in("r12") spec as *const ChildSpec,
                in("r13") child_entry as extern "C" fn(*const ChildSpec) -> !,
                lateout("rcx") _,
                lateout("r11") _,
            );
        }
        match ret {
            error if error < 0 => Err(Errno::from_raw(-error as i32)),
            pid => Ok(pid as i32),
        }
    }

    /// Without the trampoline the caller forks instead.
    ///
    /// # Safety
    /// Always safe; `unsafe` to match the x86_64 version.
    #[cfg(not(target_arch = "x86_64"))]
    pub unsafe fn clone3_on_stack(_args: &CloneArgs, _spec: &ChildSpec) -> nix::Result<i32> {
        Err(Errno::ENOSYS)
    }
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
