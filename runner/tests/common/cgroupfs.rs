//! Finding the cgroups of a test's runs under a cgroup root given as a parameter
//! (`/sys/fs/cgroup` here, a fixture tree in the helpers' own tests), on v1, hybrid and v2.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Our own cgroup path in each hierarchy: the third field of each `/proc/self/cgroup` line.
pub fn own_cgroup_paths(self_cgroup: &str) -> Vec<String> {
    let paths: BTreeSet<String> = self_cgroup
        .lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .map(|path| path.trim_matches('/').to_string())
        .collect();
    paths.into_iter().collect()
}

/// Every existing directory named `parent` that a runner may have made: directly in a
/// hierarchy (`<root>/<hierarchy>/<parent>`, or `<root>/<parent>` on pure v2) or below our own
/// cgroup of that hierarchy (`<root>/<hierarchy>/<own path>/<parent>`).
pub fn parent_dirs(cgroup_root: &Path, own_paths: &[String], parent: &str) -> Vec<PathBuf> {
    let mut hierarchies = vec![cgroup_root.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(cgroup_root) {
        hierarchies.extend(
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir()),
        );
    }
    let mut found = BTreeSet::new();
    for hierarchy in &hierarchies {
        let bases = std::iter::once(hierarchy.clone()).chain(
            own_paths
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| hierarchy.join(p)),
        );
        for base in bases {
            let candidate = base.join(parent);
            if candidate.is_dir() {
                // `cpu,cpuacct` style links name the same directory twice.
                found.insert(candidate.canonicalize().unwrap_or(candidate));
            }
        }
    }
    found.into_iter().collect()
}

/// The sub-cgroups of `dir`: in a cgroup filesystem every subdirectory is a cgroup.
pub fn child_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// Remove the cgroup `dir` and its sub-cgroups, deepest first (cgroupfs only allows rmdir of
/// cgroups without tasks and without children; their control files go with them).
pub fn remove_tree(dir: &Path) -> std::io::Result<()> {
    for child in child_dirs(dir) {
        remove_tree(&child)?;
    }
    std::fs::remove_dir(dir)
}

/// The environment variable naming the cgroup2 group delegated to the judge host, as a judging
/// daemon on a pure v2 host is given it (the VM lane sets `/sys/fs/cgroup/judged`).
pub const DELEGATED_VARIABLE: &str = "JUDGED_CGROUP";

/// The `--cgroup-parent` (relative to each hierarchy's root) of the test cgroup `name`: under
/// the `delegated` group when there is one, where the controllers are already enabled, else
/// at the top of the hierarchies.
pub fn test_parent(cgroup_root: &Path, delegated: Option<&Path>, name: &str) -> PathBuf {
    match delegated {
        None => PathBuf::from(name),
        Some(delegated) => delegated
            .strip_prefix(cgroup_root)
            .unwrap_or_else(|_| {
                panic!(
                    "{DELEGATED_VARIABLE}={} is not below {}: name a cgroup2 group there",
                    delegated.display(),
                    cgroup_root.display()
                )
            })
            .join(name),
    }
}

/// [`test_parent`] on this host: the real cgroup root and `$JUDGED_CGROUP`.
pub fn host_test_parent(name: &str) -> PathBuf {
    let delegated = std::env::var_os(DELEGATED_VARIABLE).filter(|v| !v.is_empty());
    test_parent(
        Path::new(CGROUP_ROOT),
        delegated.as_deref().map(Path::new),
        name,
    )
}

/// Where the hierarchies are mounted on a real host.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
