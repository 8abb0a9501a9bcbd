//! A pool of empty network namespaces for one-shot runs, pinned in a directory.
//!
//! Why: creating a network namespace is the most expensive step of a one-shot run's setup
//! (~0.85 ms here: loopback device, sysctl tables, per-protocol state), and tearing it down
//! queues more work behind the kernel's `cleanup_net`. A run that only needs *no network* can
//! as well enter an empty namespace made earlier: setns(2) costs microseconds.
//!
//! Why reuse is safe: a pooled namespace is owned by the initial user namespace, so the runs'
//! processes (unprivileged, every capability dropped) cannot change it: the loopback stays
//! down, no address, route, rule or sysctl can be added. What a run can create there (sockets,
//! abstract Unix names) belongs to its processes, which are all killed before the run's slot is
//! given back. Runs in a user namespace of their own are not given a pooled namespace (they
//! could not enter it, and one made inside their user namespace would be theirs to change).
//!
//! Layout: `DIR/net-N` is a bind mount of a namespace (like `ip netns add` makes under
//! `/run/netns`), `DIR/net-N.lock` the lock a run holds (flock) while it uses slot N. A slot
//! whose `net-N` is not a pinned network namespace (first use, after a reboot) is pinned anew.
//! The pins stay after runguard exits: they are the pool. [`clear`] (`runguard
//! --clear-netns-pool`) unpins those no run holds.

use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{Result, SandboxError};
use crate::plan::NetnsPool;

/// `NS_GET_NSTYPE` of ioctl_ns(2): `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// One pooled namespace, held by a run: the slot is locked until this is dropped, which the
/// run does once every process of it is dead.
#[derive(Debug)]
pub struct PooledNetns {
    namespace: OwnedFd,
    _lock: Flock<File>,
}

impl PooledNetns {
    /// For setns(2) in the child (the descriptor is close-on-exec).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.namespace.as_fd()
    }
}

/// Lock a free slot of `pool` and return its namespace, pinning a new one in it if needed.
/// `None`: every slot is in use.
///
/// The caller must be single-threaded: pinning enters the new namespace for a moment.
pub fn take(pool: &NetnsPool) -> Result<Option<PooledNetns>> {
    prepare_dir(&pool.dir)?;
    for slot in 0..pool.size {
        let lock_path = pool.dir.join(format!("net-{slot}.lock"));
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&lock_path)
            .map_err(|e| SandboxError::io("cannot open the netns pool lock", &lock_path, e))?;
        let lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, Errno::EWOULDBLOCK)) => continue,
            Err((_, e)) => return Err(SandboxError::sys("flock(netns pool slot)", e)),
        };
        let pin = pool.dir.join(format!("net-{slot}"));
        let namespace = match open_network_namespace(&pin)? {
            Some(namespace) => namespace,
            None => {
                pin_new_namespace(&pin)?;
                open_network_namespace(&pin)?.ok_or_else(|| {
                    SandboxError::Config(format!(
                        "netns pool: `{}' is not a network namespace after pinning one there",
                        pin.display()
                    ))
                })?
            }
        };
        return Ok(Some(PooledNetns {
            namespace,
            _lock: lock,
        }));
    }
    Ok(None)
}

/// What [`clear`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cleared {
    /// Namespaces unpinned (their slots' files removed).
    pub unpinned: usize,
    /// Slots a run holds now, left alone.
    pub in_use: usize,
}

/// Unpin every pooled namespace of `pool` that no run holds, and remove its slot's files. A
/// run that takes a slot meanwhile pins a namespace of its own there, as on first use.
pub fn clear(pool: &NetnsPool) -> Result<Cleared> {
    let mut cleared = Cleared::default();
    let entries = match fs::read_dir(&pool.dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(cleared),
        Err(e) => return Err(SandboxError::io("cannot list the netns pool", &pool.dir, e)),
    };
    for entry in entries {
        let entry =
            entry.map_err(|e| SandboxError::io("cannot list the netns pool", &pool.dir, e))?;
        let name = entry.file_name();
        let Some(slot) = name.to_str().and_then(|name| name.strip_suffix(".lock")) else {
            continue;
        };
        let lock_path = entry.path();
        let lock_file = File::open(&lock_path)
            .map_err(|e| SandboxError::io("cannot open the netns pool lock", &lock_path, e))?;
        let _lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, Errno::EWOULDBLOCK)) => {
                cleared.in_use += 1;
                continue;
            }
            Err((_, e)) => return Err(SandboxError::sys("flock(netns pool slot)", e)),
        };
        let pin = pool.dir.join(slot);
        // Every pin stacked there: a pool made by an older runguard may have two.
        while umount2(&pin, MntFlags::MNT_DETACH).is_ok() {
            cleared.unpinned += 1;
        }
        for path in [&pin, &lock_path] {
            match fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(SandboxError::io("cannot remove", path, e))
                }
                _ => {}
            }
        }
    }
    Ok(cleared)
}

/// The directory must be ours alone: whoever can write it could swap a pin for a namespace
/// with a network in it.
fn prepare_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| SandboxError::io("cannot create the netns pool directory", dir, e))?;
    let metadata = fs::metadata(dir)
        .map_err(|e| SandboxError::io("cannot stat the netns pool directory", dir, e))?;
    if metadata.uid() != nix::unistd::geteuid().as_raw() || metadata.mode() & 0o022 != 0 {
        return Err(SandboxError::Config(format!(
            "netns pool directory `{}' must be owned by us and writable by no one else \
                 (mode {:o}, owner uid {}): fix it, or set netns_pool_size = 0 in the config",
            dir.display(),
            metadata.mode() & 0o7777,
            metadata.uid()
        )));
    }
    Ok(())
}

/// The network namespace pinned at `path`, or `None` when there is none (missing file, or a
/// plain file whose mount is gone).
fn open_network_namespace(path: &Path) -> Result<Option<OwnedFd>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SandboxError::io("cannot open the pooled netns", path, e)),
    };
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns a value.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
    Ok((kind == libc::CLONE_NEWNET).then(|| file.into()))
}

/// Make a new network namespace and bind-mount it at `pin`, staying in our own.
fn pin_new_namespace(pin: &Path) -> Result<()> {
    File::create(pin).map_err(|e| SandboxError::io("cannot create the netns pin", pin, e))?;
    let ours = File::open("/proc/self/ns/net")
        .map_err(|e| SandboxError::io("cannot open our netns", "/proc/self/ns/net", e))?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| SandboxError::sys("unshare(CLONE_NEWNET)", e))?;
    let pinned = mount(
        Some("/proc/self/ns/net"),
        pin,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    );
    // Back to our namespace whatever happened: the runner's own sockets must not change.
    setns(ours.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| SandboxError::sys("setns(our netns)", e))?;
    pinned.map_err(|e| SandboxError::sys("mount(bind netns pin)", e))
}
