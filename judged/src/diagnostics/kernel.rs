//! The running kernel's version and what it tells about known timing pathologies.

use std::path::Path;

/// `major.minor` of a kernel release string (`6.18.44-fc-v669`, `6.1.0-28-amd64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
}

impl KernelVersion {
    pub fn parse(release: &str) -> Option<KernelVersion> {
        let mut numbers = release.trim().split(['.', '-']);
        Some(KernelVersion {
            major: numbers.next()?.parse().ok()?,
            minor: numbers.next()?.parse().ok()?,
        })
    }

    /// `proc/sys/kernel/osrelease` under `root`.
    pub fn read(root: &Path) -> Option<KernelVersion> {
        let release = std::fs::read_to_string(root.join("proc/sys/kernel/osrelease")).ok()?;
        KernelVersion::parse(&release)
    }
}

impl std::fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The first kernel that frees IPC namespaces without one RCU grace period each.
pub const IPC_TEARDOWN_FIXED: KernelVersion = KernelVersion { major: 6, minor: 3 };

/// Whether the kernel serialises IPC namespace teardown (one RCU grace period per namespace,
/// while cgroup and shrinker locks are held long under churn): the failure that made judge
/// hosts report wall time far above CPU time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpcTeardown {
    Serialised,
    Batched,
}

/// Decide from the kernel's symbols when they are readable (backports show there: the fix
/// added `mnt_make_shortterm`, used by the mqueue teardown `mq_put_mnt`), else from the version.
pub fn ipc_teardown(version: Option<KernelVersion>, kallsyms: Option<&str>) -> Option<IpcTeardown> {
    if let Some(symbols) = kallsyms {
        let has = |name: &str| {
            symbols
                .lines()
                .any(|line| line.split_whitespace().nth(2) == Some(name))
        };
        if has("mnt_make_shortterm") {
            return Some(IpcTeardown::Batched);
        }
        if has("mq_put_mnt") {
            return Some(IpcTeardown::Serialised);
        }
    }
    version.map(|version| {
        if version < IPC_TEARDOWN_FIXED {
            IpcTeardown::Serialised
        } else {
            IpcTeardown::Batched
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        let debian = KernelVersion::parse("6.1.0-28-amd64\n").unwrap();
        let here = KernelVersion::parse("6.18.44-fc-v669").unwrap();
        assert_eq!(debian, KernelVersion { major: 6, minor: 1 });
        assert!(debian < IPC_TEARDOWN_FIXED && IPC_TEARDOWN_FIXED < here);
        assert_eq!(KernelVersion::parse("junk"), None);
    }

    #[test]
    fn symbols_decide_before_the_version() {
        let old = KernelVersion::parse("6.1.0").unwrap();
        let new = KernelVersion::parse("6.8.0").unwrap();
        let fixed = "ffffffff816f29e0 T mnt_make_shortterm\nffffffff81000000 t mq_put_mnt\n";
        let affected = "ffffffff81000000 t mq_put_mnt\n";
        let table = [
            (Some(old), None, Some(IpcTeardown::Serialised)),
            (Some(new), None, Some(IpcTeardown::Batched)),
            (Some(old), Some(fixed), Some(IpcTeardown::Batched)),
            (Some(new), Some(affected), Some(IpcTeardown::Serialised)),
            (Some(new), Some(""), Some(IpcTeardown::Batched)),
            (None, None, None),
        ];
        for (version, symbols, expected) in table {
            assert_eq!(
                ipc_teardown(version, symbols),
                expected,
                "{version:?} {symbols:?}"
            );
        }
    }
}
