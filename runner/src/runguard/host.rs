//! Everything `resolve` needs to know about the machine, behind one trait so the resolution is
//! tested against a fake host. [`System`] is the real one: the only place the front end asks
//! the system (user database, ids, environment, paths, sysfs).

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};

use super::cpuset::{read_memory_nodes, read_online_cpus, Cpus};
use super::Result;

pub trait Host {
    fn uid_of_user(&self, name: &str) -> Option<u32>;
    fn name_of_uid(&self, uid: u32) -> Option<String>;
    fn gid_of_group(&self, name: &str) -> Option<u32>;
    fn real_uid(&self) -> u32;
    fn effective_uid(&self) -> u32;
    fn real_gid(&self) -> u32;
    /// Our own environment, in order.
    fn environment(&self) -> Vec<(OsString, OsString)>;
    /// The path with symlinks resolved; an error if it does not exist.
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;
    fn online_cpus(&self) -> Result<Cpus>;
    /// The NUMA nodes with memory (what `cpuset.mems` may hold).
    fn memory_nodes(&self) -> Result<Cpus>;
}

/// This machine. `sys_root` is where sysfs is found (`/`).
pub struct System {
    pub sys_root: PathBuf,
}

impl Default for System {
    fn default() -> Self {
        System {
            sys_root: PathBuf::from("/"),
        }
    }
}

/// Users and groups are looked up in `/etc/passwd` and `/etc/group` only, whatever
/// `/etc/nsswitch.conf` says. The runguard that judgehosts install is linked statically (it
/// starts in half the time, `ci/static-runguard`), and a static glibc cannot load the NSS
/// modules of the system's shared one (`systemd`, `ldap`: it crashes in them). Run users are
/// local accounts (DOMjudge's install makes them with `useradd`). The dynamic build does the
/// same, so that the tests see the shipped behaviour.
fn local_accounts_only() {
    static CONFIGURED: std::sync::Once = std::sync::Once::new();
    CONFIGURED.call_once(|| {
        extern "C" {
            // glibc's own override of nsswitch.conf for one database (<nss.h>).
            fn __nss_configure_lookup(
                database: *const std::ffi::c_char,
                services: *const std::ffi::c_char,
            ) -> std::ffi::c_int;
        }
        for database in [c"passwd", c"group"] {
            // SAFETY: both are NUL-terminated strings that outlive the call; glibc copies them.
            // It fails only for an unknown database name, and these two exist.
            unsafe { __nss_configure_lookup(database.as_ptr(), c"files".as_ptr()) };
        }
    });
}

impl Host for System {
    // A failing lookup counts as "no such user", as in DOMjudge (getpwnam returning NULL).
    fn uid_of_user(&self, name: &str) -> Option<u32> {
        local_accounts_only();
        User::from_name(name)
            .ok()
            .flatten()
            .map(|user| user.uid.as_raw())
    }

    fn name_of_uid(&self, uid: u32) -> Option<String> {
        local_accounts_only();
        User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|user| user.name)
    }

    fn gid_of_group(&self, name: &str) -> Option<u32> {
        local_accounts_only();
        Group::from_name(name)
            .ok()
            .flatten()
            .map(|group| group.gid.as_raw())
    }

    fn real_uid(&self) -> u32 {
        Uid::current().as_raw()
    }

    fn effective_uid(&self) -> u32 {
        Uid::effective().as_raw()
    }

    fn real_gid(&self) -> u32 {
        Gid::current().as_raw()
    }

    fn environment(&self) -> Vec<(OsString, OsString)> {
        std::env::vars_os().collect()
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }

    fn online_cpus(&self) -> Result<Cpus> {
        read_online_cpus(&self.sys_root)
    }

    fn memory_nodes(&self) -> Result<Cpus> {
        read_memory_nodes(&self.sys_root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalize_resolves_every_symlink_and_refuses_a_missing_path() {
        let dir = std::env::temp_dir().join(format!("runguard-host-{}", std::process::id()));
        let real = dir.join("real/chroot");
        std::fs::create_dir_all(&real).unwrap();
        std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
        let system = System::default();
        let resolved = system.canonicalize(&dir.join("link/./chroot"));
        let missing = system.canonicalize(&dir.join("link/none"));
        let expected = std::fs::canonicalize(&real).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(resolved.unwrap(), expected);
        assert_eq!(missing.unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
