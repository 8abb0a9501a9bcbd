//! The child's side of a run: it confines itself in one linear sequence, then execs.
//!
//! Theory of operation. The parent forks us with clone3 (born in the run's cgroup2 group on v2
//! and hybrid hosts, and already in a new pid or user namespace when those are asked for). We
//! then, in this order:
//!
//! 1. restore the signal state a fresh program expects (the parent blocks stop signals, and the
//!    Rust runtime ignores SIGPIPE: both would leak into the program through exec);
//! 2. make sure we die with the parent (PR_SET_PDEATHSIG), so nothing outlives a crashed runner;
//! 3. unshare the remaining namespaces (entering a pooled network namespace instead of making
//!    one where the parent gives us one: `sys::netns_pool`) and build the filesystem view (bind
//!    mounts + pivot_root, or a plain chroot) while the parent moves us into the v1 cgroups in
//!    parallel. In a warm sandbox ([`Confinement::Inherited`]) the keeper did the unsharing and
//!    the assembling once for all its runs ([`build_sandbox`]): we only chroot into the
//!    assembled root;
//! 4. join the v1 cgroups ourselves, or wait for the parent's "go": from here on we are inside
//!    every cgroup of the run, so the rest of the setup and the program are accounted to it;
//! 5. unshare the cgroup namespace (it roots at the cgroup we are now in);
//! 6. set rlimits and lay out descriptors 0-2; every other descriptor is made close-on-exec;
//! 7. drop the capability bounding set while we still hold CAP_SETPCAP, then switch groups and
//!    user (ids before no_new_privs, which would not stop setuid but documents intent);
//! 8. set no_new_privs, which also allows an unprivileged seccomp filter;
//! 9. with a pid namespace, we are its init: fork the program and stay to reap and report;
//! 10. install the seccomp filter last, so that none of our own setup calls are filtered;
//! 11. exec. The report descriptor is close-on-exec: the parent sees EOF at exec and starts the
//!     clocks then. Any failure before is written on it as one message naming the step.
//!
//! A run that needs nothing from the parent before its exec (no user namespace to map ids of,
//! no pid namespace) is spawned sharing the parent's memory instead of a copy of it
//! (`process::spawn_sharing_memory`, CLONE_VM | CLONE_VFORK): the parent is suspended until we
//! exec or exit, so there is no "go" to wait for in step 4, and we join the v1 cgroups through
//! descriptors the parent opened for us. Everything here must then leave that memory fit for
//! the parent to resume in: allocating is fine (the parent is single-threaded and suspended),
//! leaving is `_exit`.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::statvfs::{statvfs, FsFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{
    chdir, chroot, fork, pivot_root, setgroups, setresgid, setresuid, ForkResult, Gid, Pid, Uid,
};

use crate::plan::{Credentials, Filesystem, Mount, Namespaces};

/// Who creates the run's mount/uts/ipc/net/time namespaces and its filesystem view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confinement {
    /// One-shot: the child unshares them and builds the root itself.
    Own,
    /// Warm sandbox: the parent (the keeper) already lives in them and assembled the root at
    /// `filesystem.new_root` without entering it; the child only chroots there.
    Inherited,
}

/// Everything the child needs, prepared by the parent before the fork.
pub struct ChildSpec {
    pub confinement: Confinement,
    pub namespaces: Namespaces,
    pub filesystem: Option<Filesystem>,
    pub root: Option<PathBuf>,
    pub chdir: Option<PathBuf>,
    pub credentials: Option<Credentials>,
    pub file_size_bytes: Option<u64>,
    pub no_core: bool,
    pub seccomp: Vec<seccompiler::BpfProgram>,
    /// Signals the parent ignores, to reset to their default (`signals::ignored`).
    pub ignored_signals: &'static [Signal],
    /// Paths to try in order (PATH search already expanded, relative to the final root).
    pub exec_candidates: Vec<CString>,
    /// The command as given, for messages.
    pub command_name: String,
    pub argv: ExecStrings,
    pub envp: ExecStrings,
    /// A pooled network namespace to enter instead of unsharing one (close-on-exec).
    pub netns: Option<RawFd>,
    /// To become descriptor 0; `None`: keep the parent's.
    pub stdin: Option<RawFd>,
    /// Write ends of the output pipes, to become descriptors 1 and 2.
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// Read end of the parent's "go" pipe; `None`: the parent has nothing to do for us
    /// before our exec (we share its memory: it is suspended until then).
    pub go: Option<RawFd>,
    /// `cgroup.procs` of the run's groups we were not born in, to join ourselves (only without
    /// a "go", when the parent cannot move us).
    pub join: Vec<RawFd>,
    /// Write end (close-on-exec) of the report pipe: EOF at exec, or a failure message.
    pub report: RawFd,
    /// Write end (close-on-exec) of the status pipe: as pid-namespace init, we send the
    /// program's wait status here.
    pub status: RawFd,
}

/// An argv or envp as execve(2) takes it: the strings and the null-terminated array of
/// pointers to them, both made before the fork. So the child allocates nothing at its exec:
/// a child sharing the parent's memory would leave that allocation in the parent's heap for
/// good (one per run, which a keeper's long series showed).
pub struct ExecStrings {
    /// Owns what `pointers` points to (only that: never read); a `CString`'s bytes stay put
    /// when the Vec moves.
    _strings: Vec<CString>,
    pointers: Vec<*const libc::c_char>,
}

impl ExecStrings {
    pub fn new(strings: Vec<CString>) -> ExecStrings {
        let pointers = strings
            .iter()
            .map(|string| string.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        ExecStrings {
            _strings: strings,
            pointers,
        }
    }

    fn as_ptr(&self) -> *const *const libc::c_char {
        self.pointers.as_ptr()
    }
}

/// A failed setup step: what we were doing and why it failed.
struct StepError(String);

impl StepError {
    fn new(step: impl Into<String>, error: impl std::fmt::Display) -> StepError {
        StepError(format!("{}: {error}", step.into()))
    }
}

/// Exit status of a child whose setup failed (the parent reads the reason from the report pipe).
const SETUP_FAILED: i32 = 127;

/// Confine this process as `spec` says and exec the program. Never returns.
pub fn confine_and_exec(spec: &ChildSpec) -> ! {
    let error = match confine(spec) {
        Ok(never) => match never {},
        Err(error) => error,
    };
    // SAFETY: `spec.report` is the open write end of the report pipe, owned by this process.
    let mut report = unsafe { fs::File::from_raw_fd(spec.report) };
    let _ = report.write_all(error.0.as_bytes());
    // A child sharing the parent's memory would otherwise leave the message in its heap.
    drop(error);
    // SAFETY: _exit ends the process without running the parent's atexit handlers or
    // destructors, which belong to the parent's copy of the state.
    unsafe { libc::_exit(SETUP_FAILED) }
}

fn confine(spec: &ChildSpec) -> Result<std::convert::Infallible, StepError> {
    // 1. A clean signal state.
    reset_signals(spec.ignored_signals)
        .map_err(|e| StepError::new("cannot reset signal handlers", e))?;
    // 2. Die with the parent.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| StepError::new("cannot set parent death signal", e))?;

    // 3. Namespaces and the filesystem view.
    match (spec.confinement, spec.filesystem.as_ref()) {
        (Confinement::Own, filesystem) => {
            enter_namespaces(&spec.namespaces, spec.netns)?;
            if let Some(filesystem) = filesystem {
                assemble_root(filesystem)?;
                pivot_into(&filesystem.new_root)?;
            } else if let Some(root) = &spec.root {
                change_root(root)?;
            }
        }
        (Confinement::Inherited, filesystem) => {
            // The keeper shares the run's v1 memory group: an OOM there must pick a process of
            // the run, never the keeper. The keeper lowers its own score where it may (that
            // needs CAP_SYS_RESOURCE, which these hosts lack); raising ours to the maximum
            // needs no privilege and works either way. Within the run the order is unchanged.
            fs::write("/proc/self/oom_score_adj", "1000")
                .map_err(|e| StepError::new("cannot reset oom_score_adj", e))?;
            // The keeper's root stays reachable from the keeper only; with every capability
            // dropped below, the program cannot chroot its way out.
            if let Some(root) = filesystem.map(|f| &f.new_root).or(spec.root.as_ref()) {
                change_root(root)?;
            }
        }
    }
    if let Some(dir) = &spec.chdir {
        chdir(dir).map_err(|e| {
            StepError::new(format!("cannot chdir to `{}' in chroot", dir.display()), e)
        })?;
    }

    // 4. Be in every cgroup of the run: join the ones we were not born in, or wait until the
    //    parent has put us there.
    for &procs in &spec.join {
        // "0" is the writer itself, in v1 and v2 alike.
        nix::unistd::write(borrow(procs), b"0")
            .map_err(|e| StepError::new("cannot join the run's cgroup", e))?;
    }
    if let Some(go) = spec.go {
        let mut byte = [0u8; 1];
        match nix::unistd::read(borrow(go), &mut byte) {
            Ok(1) => {}
            // The parent gave up on us: end quietly, it reports its own error.
            // SAFETY: see confine_and_exec.
            _ => unsafe { libc::_exit(SETUP_FAILED) },
        }
    }

    // 5. The cgroup namespace roots at the run's cgroup.
    if spec.namespaces.cgroup {
        unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| StepError::new("cannot create the cgroup namespace", e))?;
    }

    // 6. Limits and descriptors.
    set_rlimits(spec)?;
    if let Some(stdin) = spec.stdin {
        // SAFETY: dup2 onto 0 replaces our stdin; `stdin` is an open descriptor of the parent.
        if unsafe { libc::dup2(stdin, 0) } < 0 {
            return Err(StepError::new("cannot redirect input", Errno::last()));
        }
    }
    for (from, to) in [(spec.stdout, 1), (spec.stderr, 2)] {
        // SAFETY: dup2 onto 1/2 replaces our stdout/stderr; `from` is an open pipe end.
        if unsafe { libc::dup2(from, to) } < 0 {
            return Err(StepError::new("cannot redirect output", Errno::last()));
        }
    }
    // SAFETY: marks descriptors close-on-exec; no memory is involved.
    if unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    } < 0
    {
        return Err(StepError::new("cannot close descriptors", Errno::last()));
    }

    // 7. Capabilities and ids.
    drop_capabilities(spec.confinement, spec.credentials.is_some())?;
    if let Some(credentials) = spec.credentials {
        switch_ids(credentials)?;
    }

    // 8. No way back to privileges.
    nix::sys::prctl::set_no_new_privs()
        .map_err(|e| StepError::new("cannot set no_new_privs", e))?;

    // 9. As init of a pid namespace, the program is our child: it is not pid 1.
    if spec.namespaces.pid {
        run_as_init(spec);
    }

    // 10. seccomp, last.
    for program in &spec.seccomp {
        seccompiler::apply_filter(program)
            .map_err(|e| StepError::new("cannot install the seccomp filter", e))?;
    }

    // 11. exec.
    Err(exec(spec))
}

/// The keeper of a warm sandbox, once for all its runs: unshare the namespaces of
/// `namespaces` that are not created per run, and assemble `filesystem` (if any) at its
/// `new_root` without entering it (the keeper needs the host's `/proc` and cgroup mounts).
/// Runs then start with [`Confinement::Inherited`].
pub fn build_sandbox(
    namespaces: &Namespaces,
    filesystem: Option<&Filesystem>,
) -> Result<(), String> {
    enter_namespaces(namespaces, None).map_err(|e| e.0)?;
    if let Some(filesystem) = filesystem {
        assemble_root(filesystem).map_err(|e| e.0)?;
    }
    Ok(())
}

/// Unshare the namespaces made after the fork (but the network one when `netns`, a pooled
/// one, is given: we enter that); a new mount namespace is made private.
fn enter_namespaces(namespaces: &Namespaces, netns: Option<RawFd>) -> Result<(), StepError> {
    let mut flags = early_unshare_flags(namespaces);
    if let Some(netns) = netns {
        nix::sched::setns(borrow(netns), CloneFlags::CLONE_NEWNET)
            .map_err(|e| StepError::new("cannot enter the pooled network namespace", e))?;
        flags.remove(CloneFlags::CLONE_NEWNET);
    }
    unshare(flags).map_err(|e| StepError::new("cannot create namespaces", e))?;
    if namespaces.mount {
        // Our mounts must not propagate back to the host.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| StepError::new("cannot make the mount namespace private", e))?;
    }
    Ok(())
}

fn change_root(root: &Path) -> Result<(), StepError> {
    chroot(root)
        .map_err(|e| StepError::new(format!("cannot change root to `{}'", root.display()), e))?;
    chdir("/").map_err(|e| StepError::new("cannot chdir to `/' in chroot", e))
}

fn borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: used only for descriptors the spec guarantees open for the whole setup.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

fn early_unshare_flags(namespaces: &Namespaces) -> CloneFlags {
    let mut flags = CloneFlags::empty();
    for (on, flag) in [
        (namespaces.mount, CloneFlags::CLONE_NEWNS),
        (namespaces.uts, CloneFlags::CLONE_NEWUTS),
        (namespaces.ipc, CloneFlags::CLONE_NEWIPC),
        (namespaces.net, CloneFlags::CLONE_NEWNET),
        // The program enters the new time namespace at exec.
        (
            namespaces.time,
            CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
        ),
    ] {
        if on {
            flags |= flag;
        }
    }
    flags
}

/// Unblock everything and give the parent's ignored signals their default action; exec
/// resets the caught ones itself.
fn reset_signals(ignored: &[Signal]) -> nix::Result<()> {
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for &signal in ignored {
        // SAFETY: installing SIG_DFL runs no code of ours.
        unsafe { sigaction(signal, &default) }?;
    }
    Ok(())
}

/// Assemble the read-only root of `filesystem` in our mount namespace, at its `new_root`.
fn assemble_root(filesystem: &Filesystem) -> Result<(), StepError> {
    let root = &filesystem.new_root;
    let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=0755,size=1m"),
    )
    .map_err(|e| {
        StepError::new(
            format!("cannot mount the new root at `{}'", root.display()),
            e,
        )
    })?;
    for entry in &filesystem.mounts {
        mount_entry(root, entry)?;
    }
    // The skeleton holding the mount points is read-only too.
    mount(
        None::<&str>,
        root,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | tmpfs_flags,
        None::<&str>,
    )
    .map_err(|e| StepError::new("cannot make the new root read-only", e))
}

/// Make the assembled `root` ours alone: the host's tree is detached, not just out of sight.
fn pivot_into(root: &Path) -> Result<(), StepError> {
    chdir(root).map_err(|e| StepError::new("cannot enter the new root", e))?;
    // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only ours.
    pivot_root(".", ".").map_err(|e| StepError::new("cannot pivot_root", e))?;
    umount2(".", MntFlags::MNT_DETACH)
        .map_err(|e| StepError::new("cannot detach the old root", e))?;
    chdir("/").map_err(|e| StepError::new("cannot chdir to `/'", e))
}

fn mount_entry(root: &Path, entry: &Mount) -> Result<(), StepError> {
    let inside = |target: &Path| root.join(target.strip_prefix("/").unwrap_or(target));
    match entry {
        Mount::Bind {
            source,
            target,
            writable,
        } => {
            let target = inside(target);
            let step = || {
                format!(
                    "cannot bind `{}' at `{}'",
                    source.display(),
                    target.display()
                )
            };
            make_mount_point(&target, source.is_dir()).map_err(|e| StepError::new(step(), e))?;
            mount(
                Some(source.as_path()),
                &target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| StepError::new(step(), e))?;
            if !writable {
                // A read-only remount must keep the flags the source mount already has (in a
                // user namespace they are locked and dropping them fails).
                let kept = statvfs(&target)
                    .map(|stat| kept_mount_flags(stat.flags()))
                    .unwrap_or(MsFlags::empty());
                mount(
                    None::<&str>,
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | kept,
                    None::<&str>,
                )
                .map_err(|e| {
                    StepError::new(format!("cannot make `{}' read-only", target.display()), e)
                })?;
            }
        }
        Mount::Tmpfs { target, size_bytes } => {
            let target = inside(target);
            let step = || format!("cannot mount a tmpfs at `{}'", target.display());
            make_mount_point(&target, true).map_err(|e| StepError::new(step(), e))?;
            let options = format!("mode=1777,size={size_bytes}");
            mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(options.as_str()),
            )
            .map_err(|e| StepError::new(step(), e))?;
        }
        Mount::Proc { target } => {
            let target = inside(target);
            let step = || format!("cannot mount proc at `{}'", target.display());
            make_mount_point(&target, true).map_err(|e| StepError::new(step(), e))?;
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount(Some("proc"), &target, Some("proc"), flags, None::<&str>)
                .map_err(|e| StepError::new(step(), e))?;
        }
    }
    Ok(())
}

fn make_mount_point(target: &Path, directory: bool) -> std::io::Result<()> {
    if directory {
        return fs::create_dir_all(target);
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(target)
        .map(drop)
}

fn kept_mount_flags(flags: FsFlags) -> MsFlags {
    let mut kept = MsFlags::empty();
    for (has, flag) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if flags.contains(has) {
            kept |= flag;
        }
    }
    kept
}

fn set_rlimits(spec: &ChildSpec) -> Result<(), StepError> {
    let limit = |resource, value: u64, name: &str| {
        // Without CAP_SYS_RESOURCE a hard limit cannot be raised: never ask for more.
        let (_, hard) = nix::sys::resource::getrlimit(resource).unwrap_or((u64::MAX, u64::MAX));
        let value = value.min(hard);
        setrlimit(resource, value, value)
            .map_err(|e| StepError::new(format!("cannot set {name} limit"), e))
    };
    if let Some(bytes) = spec.file_size_bytes {
        limit(Resource::RLIMIT_FSIZE, bytes, "file size")?;
    }
    if spec.no_core {
        limit(Resource::RLIMIT_CORE, 0, "core size")?;
    }
    // As DOMjudge's runguard: the stack is bounded by the memory limit alone.
    limit(Resource::RLIMIT_STACK, u64::MAX, "stack size")?;
    Ok(())
}

fn drop_capabilities(confinement: Confinement, switching_user: bool) -> Result<(), StepError> {
    let step = |e: caps::errors::CapsError| StepError::new("cannot drop capabilities", e);
    // A warm sandbox's keeper emptied its bounding set when it built the sandbox.
    if confinement == Confinement::Own {
        drop_bounding_set().map_err(step)?;
    }
    caps::clear(None, caps::CapSet::Ambient).map_err(step)?;
    caps::clear(None, caps::CapSet::Inheritable).map_err(step)?;
    if !switching_user {
        // setuid to a non-root user clears these by itself; otherwise do it now.
        caps::clear(None, caps::CapSet::Effective).map_err(step)?;
        caps::clear(None, caps::CapSet::Permitted).map_err(step)?;
    }
    Ok(())
}

/// Empty the capability bounding set (it only shrinks, with CAP_SETPCAP). Only capabilities
/// still in it are dropped: each drop commits new credentials, a read does not. A warm
/// sandbox's keeper empties its own set once and its runs inherit it, sparing each run 41
/// drops and 41 reads.
pub fn drop_bounding_set() -> Result<(), caps::errors::CapsError> {
    for capability in caps::read(None, caps::CapSet::Bounding)? {
        caps::drop(None, caps::CapSet::Bounding, capability)?;
    }
    Ok(())
}

fn switch_ids(credentials: Credentials) -> Result<(), StepError> {
    let gid = Gid::from_raw(credentials.gid);
    let uid = Uid::from_raw(credentials.uid);
    setgroups(&[]).map_err(|e| StepError::new("cannot clear supplementary groups", e))?;
    setresgid(gid, gid, gid)
        .map_err(|e| StepError::new(format!("cannot set group id to {gid}"), e))?;
    setresuid(uid, uid, uid)
        .map_err(|e| StepError::new(format!("cannot set user id to {uid}"), e))?;
    if nix::unistd::geteuid().is_root() || nix::unistd::getuid().is_root() {
        return Err(StepError("root privileges not dropped".into()));
    }
    Ok(())
}

/// As pid 1 of the run's pid namespace: fork the program, reap everything, send the program's
/// wait status to the parent. Never returns in the init; returns in the program's process.
fn run_as_init(spec: &ChildSpec) {
    // SAFETY: we are single-threaded (the runner never starts threads before forking us).
    match unsafe { fork() } {
        Ok(ForkResult::Child) => return,
        Ok(ForkResult::Parent { child }) => {
            // Only the program's exec may close the report pipe.
            // SAFETY: we own this descriptor and do not use it again.
            drop(unsafe { OwnedFd::from_raw_fd(spec.report) });
            let status = reap_until(child);
            // SAFETY: the status pipe's write end is ours; 4 bytes fit any pipe buffer.
            let mut pipe = unsafe { fs::File::from_raw_fd(spec.status) };
            let _ = pipe.write_all(&status.to_ne_bytes());
        }
        Err(e) => {
            let _ = nix::unistd::write(
                borrow(spec.report),
                format!("cannot fork the program: {e}").as_bytes(),
            );
        }
    }
    // SAFETY: see confine_and_exec.
    unsafe { libc::_exit(0) }
}

/// Reap every process of the namespace until `program` has exited; its raw wait status.
fn reap_until(program: Pid) -> i32 {
    loop {
        match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == program => return code << 8,
            Ok(WaitStatus::Signaled(pid, signal, core)) if pid == program => {
                return signal as i32 | if core { 0x80 } else { 0 }
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return 0x7f00,
        }
    }
}

fn exec(spec: &ChildSpec) -> StepError {
    let mut error = Errno::ENOENT;
    for candidate in &spec.exec_candidates {
        // SAFETY: every pointer is to a NUL-terminated string of `spec`, each array ends with
        // a null pointer, and `spec` outlives the call; execve returns only on failure.
        unsafe { libc::execve(candidate.as_ptr(), spec.argv.as_ptr(), spec.envp.as_ptr()) };
        let e = Errno::last();
        // Like execvp: a candidate that is missing or not ours to run lets the next one try.
        if !matches!(e, Errno::ENOENT | Errno::ENOTDIR | Errno::EACCES) || error == Errno::ENOENT {
            error = e;
        }
        if !matches!(e, Errno::ENOENT | Errno::ENOTDIR | Errno::EACCES) {
            break;
        }
    }
    StepError::new(format!("cannot start `{}'", spec.command_name), error)
}
