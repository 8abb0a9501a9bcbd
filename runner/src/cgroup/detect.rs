//! Where the host mounts its cgroups, from the text of `/proc/self/mountinfo`.

use std::path::{Path, PathBuf};

use super::parse::ParseResult;
use super::Layout;
use crate::error::{Result, SandboxError};
use crate::sys::file::{read_from_start, Shown};

/// cgroup v1 controller names as they appear among a `cgroup` mount's super options. Anything
/// else there (`rw`, `name=systemd`, `xattr`, `release_agent=...`) is not a controller.
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// The cgroup mounts of a host.
#[derive(Debug, Clone, PartialEq)]
pub struct Hierarchies {
    layout: Layout,
    /// v1 hierarchies that bind at least one controller (named-only ones like `name=systemd` are
    /// left out), one per set of co-mounted controllers.
    v1: Vec<V1Hierarchy>,
    /// The cgroup2 mount, if any.
    unified: Option<PathBuf>,
}

/// One v1 hierarchy: where it is mounted and which controllers it binds (`cpu,cpuacct`...).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct V1Hierarchy {
    pub(crate) path: PathBuf,
    pub(crate) controllers: Vec<String>,
}

impl V1Hierarchy {
    pub(crate) fn binds(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

impl Hierarchies {
    /// Detect from the text of a mountinfo file; every mount point is taken relative to
    /// `sys_root` (`/` on a real host, a `testdata/` tree in tests). Pure: reads no file.
    ///
    /// The layout follows the memory controller, which every run needs: bound to a v1
    /// hierarchy it makes the host v1 (hybrid when a cgroup2 mount exists too); otherwise the
    /// cgroup2 mount makes it v2, even if some other controller (say `net_cls`) is bound to v1.
    pub fn from_mountinfo(mountinfo: &str, sys_root: &Path) -> Result<Hierarchies> {
        let mut entries = Vec::new();
        for (number, line) in mountinfo.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let entry = MountEntry::parse(line).map_err(|message| {
                SandboxError::Config(format!("mountinfo line {}: {message}", number + 1))
            })?;
            entries.push(entry);
        }
        // A hierarchy may be mounted several times (bind mounts of a sub-directory, as container
        // runtimes do): prefer the mount that shows its whole tree.
        entries.sort_by_key(|entry| entry.root != "/");

        let mut v1: Vec<V1Hierarchy> = Vec::new();
        let mut unified = None;
        for entry in entries {
            let path = under_root(sys_root, &entry.mount_point);
            match entry.fs_type.as_str() {
                "cgroup2" if unified.is_none() => unified = Some(path),
                "cgroup" => {
                    let controllers: Vec<String> = entry
                        .super_options
                        .into_iter()
                        .filter(|option| V1_CONTROLLERS.contains(&option.as_str()))
                        .collect();
                    let seen = controllers
                        .iter()
                        .any(|c| v1.iter().any(|hierarchy| hierarchy.binds(c)));
                    if !controllers.is_empty() && !seen {
                        v1.push(V1Hierarchy { path, controllers });
                    }
                }
                _ => {}
            }
        }

        let memory_on_v1 = v1.iter().any(|hierarchy| hierarchy.binds("memory"));
        let layout =
            match (memory_on_v1, unified.is_some()) {
                (true, true) => Layout::Hybrid,
                (true, false) => Layout::V1,
                (false, true) => Layout::V2,
                (false, false) => return Err(SandboxError::Config(
                    "no cgroup2 mount and no cgroup v1 hierarchy with the memory controller in \
                     mountinfo: mount one (e.g. `mount -t cgroup2 none /sys/fs/cgroup`)"
                        .into(),
                )),
            };
        Ok(Hierarchies {
            layout,
            v1,
            unified,
        })
    }

    /// Detect on this host.
    pub fn detect() -> Result<Hierarchies> {
        let path = Path::new("/proc/self/mountinfo");
        // In page-sized reads: the kernel walks the mount list anew for every read, and
        // read_to_string starts with a 32-byte one.
        let mountinfo = std::fs::File::open(path)
            .and_then(|file| read_from_start(&file, Shown::InRecords))
            .map_err(|err| SandboxError::io("read mount table", path, err))?;
        Hierarchies::from_mountinfo(&mountinfo, Path::new("/"))
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The v1 hierarchy binding `controller`.
    pub(crate) fn v1(&self, controller: &str) -> Option<&V1Hierarchy> {
        self.v1.iter().find(|hierarchy| hierarchy.binds(controller))
    }

    pub(crate) fn unified(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// Every cgroup mount point we know of.
    pub(crate) fn mounts(&self) -> impl Iterator<Item = &Path> {
        let v1 = self.v1.iter().map(|hierarchy| hierarchy.path.as_path());
        v1.chain(self.unified())
    }
}

/// `mount_point` (absolute, as mountinfo gives it) seen from `sys_root`.
fn under_root(sys_root: &Path, mount_point: &Path) -> PathBuf {
    sys_root.join(mount_point.strip_prefix("/").unwrap_or(mount_point))
}

/// The fields of one mountinfo line that we use (see proc(5)).
#[derive(Debug, PartialEq)]
struct MountEntry {
    /// The directory of the filesystem shown at the mount point (`/` unless a bind mount).
    root: String,
    mount_point: PathBuf,
    fs_type: String,
    super_options: Vec<String>,
}

impl MountEntry {
    /// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`:
    /// id, parent id, device, root, mount point, mount options, optional fields up to `-`,
    /// filesystem type, source, super options.
    fn parse(line: &str) -> ParseResult<MountEntry> {
        let mut fields = line.split(' ');
        let mut fixed = fields.by_ref().take(6);
        let (Some(_id), Some(_parent), Some(_device), Some(root), Some(mount_point), Some(_opts)) = (
            fixed.next(),
            fixed.next(),
            fixed.next(),
            fixed.next(),
            fixed.next(),
            fixed.next(),
        ) else {
            return Err(format!("fewer than 6 fields: `{line}'"));
        };
        if !fields.by_ref().any(|field| field == "-") {
            return Err(format!("no `-' separator: `{line}'"));
        }
        let (Some(fs_type), Some(_source), Some(super_options)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("fewer than 3 fields after `-': `{line}'"));
        };
        Ok(MountEntry {
            root: unescape(root),
            mount_point: PathBuf::from(unescape(mount_point)),
            fs_type: fs_type.to_owned(),
            super_options: super_options.split(',').map(str::to_owned).collect(),
        })
    }
}

/// The kernel writes space, tab, newline and backslash in paths as `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match escape
            .and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok())
        {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(layout: &str) -> Hierarchies {
        let tree = crate::repo_path("testdata/cgroup").join(layout);
        let mountinfo = std::fs::read_to_string(tree.join("mountinfo")).unwrap();
        Hierarchies::from_mountinfo(&mountinfo, Path::new("/fake")).unwrap()
    }

    #[test]
    fn hybrid_host_has_v1_controllers_and_a_controllerless_cgroup2() {
        let h = fixture("hybrid");
        assert_eq!(h.layout(), Layout::Hybrid);
        assert_eq!(h.unified(), Some(Path::new("/fake/sys/fs/cgroup/unified")));
        assert_eq!(
            h.v1("memory").unwrap().path,
            Path::new("/fake/sys/fs/cgroup/memory")
        );
        assert_eq!(
            h.v1("cpuacct").unwrap().path,
            Path::new("/fake/sys/fs/cgroup/cpuacct")
        );
        // name=systemd binds no controller and is not a hierarchy we use.
        assert!(h
            .v1
            .iter()
            .all(|hierarchy| !hierarchy.path.ends_with("systemd")));
    }

    #[test]
    fn v1_host_with_co_mounted_controllers() {
        let h = fixture("v1");
        assert_eq!(h.layout(), Layout::V1);
        assert_eq!(h.unified(), None);
        let cpuacct = h.v1("cpuacct").unwrap();
        assert_eq!(cpuacct.path, Path::new("/fake/sys/fs/cgroup/cpu,cpuacct"));
        assert!(cpuacct.binds("cpu"));
        assert_eq!(h.v1("cpu"), Some(cpuacct));
        assert!(h.v1("freezer").is_some());
    }

    #[test]
    fn v2_host() {
        let h = fixture("v2");
        assert_eq!(h.layout(), Layout::V2);
        assert_eq!(h.unified(), Some(Path::new("/fake/sys/fs/cgroup")));
        assert!(h.v1.is_empty());
    }

    #[test]
    fn unusual_mountinfo_prefers_whole_hierarchies_and_unescapes_paths() {
        // A container's view: each hierarchy also bind-mounted from a sub-directory (root field
        // not `/`), listed first; a mount point with a space; a named-only v1 hierarchy; a v1
        // net_cls hierarchy on an otherwise v2 host does not make it v1.
        let mountinfo = "\
100 99 0:40 /docker/abc /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
101 99 0:40 / /host\\040cgroup rw,nosuid shared:4 master:1 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
102 99 0:41 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
103 99 0:42 / /run/net_cls rw - cgroup none rw,net_cls,release_agent=/bin/true
104 99 0:5 / /proc rw - proc proc rw
";
        let h = Hierarchies::from_mountinfo(mountinfo, Path::new("/")).unwrap();
        assert_eq!(h.layout(), Layout::V2);
        assert_eq!(h.unified(), Some(Path::new("/host cgroup")));
        assert_eq!(h.v1.len(), 1);
        assert_eq!(h.v1("net_cls").unwrap().controllers, ["net_cls"]);
    }

    #[test]
    fn bind_mounted_v1_subtree_is_used_when_it_is_all_there_is() {
        let mountinfo = "\
50 40 0:30 /lxc/c1 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
51 40 0:31 /lxc/c1 /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
";
        let h = Hierarchies::from_mountinfo(mountinfo, Path::new("/")).unwrap();
        assert_eq!(h.layout(), Layout::V1);
        assert_eq!(
            h.v1("memory").unwrap().path,
            Path::new("/sys/fs/cgroup/memory")
        );
    }

    #[test]
    fn no_usable_cgroup_mount_is_an_error_saying_what_to_mount() {
        let mountinfo = "40 30 0:41 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n";
        let err = Hierarchies::from_mountinfo(mountinfo, Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("mount -t cgroup2"), "{err}");
    }

    #[test]
    fn malformed_mountinfo_line_is_reported_with_its_number() {
        let err = Hierarchies::from_mountinfo("1 2 3\n", Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn unescape_octal() {
        assert_eq!(unescape(r"/a\040b\134c\011"), "/a b\\c\t");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
    }
}
