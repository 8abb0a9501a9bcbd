//! Parsers of the procfs and cgroupfs files the diagnostics read. Pure: each takes the file's
//! text; the readers that open files take the directory as a parameter.

use std::path::{Path, PathBuf};
use std::time::Duration;

use runner::report::Stalls;
use serde::Serialize;

/// Stall time of PSI's "some" lines: the time at least one task was waiting for a CPU, for IO,
/// or in memory reclaim (cumulative totals, or the difference of two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Pressure {
    #[serde(with = "runner::report::seconds")]
    pub cpu: Duration,
    #[serde(with = "runner::report::seconds")]
    pub io: Duration,
    #[serde(with = "runner::report::seconds")]
    pub memory: Duration,
}

impl Pressure {
    /// The host's pressure: `proc/pressure/{cpu,io,memory}` under `root`. `None` without PSI.
    pub fn read_host(root: &Path) -> Option<Pressure> {
        let dir = root.join("proc/pressure");
        Pressure::read_files(|resource| dir.join(resource))
    }

    /// A cgroup2 group's pressure: `{cpu,io,memory}.pressure` in `dir` (its subtree included).
    pub fn read_cgroup(dir: &Path) -> Option<Pressure> {
        Pressure::read_files(|resource| dir.join(format!("{resource}.pressure")))
    }

    fn read_files(path_of: impl Fn(&str) -> PathBuf) -> Option<Pressure> {
        let total = |resource: &str| {
            let text = std::fs::read_to_string(path_of(resource)).ok()?;
            psi_some_total(&text)
        };
        Some(Pressure {
            cpu: total("cpu")?,
            io: total("io")?,
            memory: total("memory")?,
        })
    }

    /// What accumulated from `earlier` to `self`.
    pub fn since(&self, earlier: &Pressure) -> Pressure {
        Pressure {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            io: self.io.saturating_sub(earlier.io),
            memory: self.memory.saturating_sub(earlier.memory),
        }
    }
}

pub use runner::cgroup::parse::psi_some_total;

/// A run's stalls as runguard measured them (`--activity`).
impl From<Stalls> for Pressure {
    fn from(stalls: Stalls) -> Pressure {
        Pressure {
            cpu: stalls.cpu,
            io: stalls.io,
            memory: stalls.memory,
        }
    }
}

/// Active objects of slab cache `name` in the text of `/proc/slabinfo`.
pub fn slab_active_objects(slabinfo: &str, name: &str) -> Option<u64> {
    slabinfo.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next()? == name).then(|| fields.next()?.parse().ok())?
    })
}

/// The value of `key` in a file of `key value` lines (`memory.stat`, `cgroup.stat`).
pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok())?
    })
}

/// The resident set in KiB from the text of `/proc/PID/statm` (pages: size, resident, ...),
/// with pages of `page_kib` KiB.
pub fn statm_rss_kib(statm: &str, page_kib: u64) -> Option<u64> {
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_kib)
}

/// One line of `/proc/self/mountinfo`: where, what, and the filesystem's own options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub point: PathBuf,
    pub fstype: String,
    pub super_options: Vec<String>,
}

/// The mounts of a mountinfo text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let point = before.split_whitespace().nth(4)?;
            let mut after = after.split_whitespace();
            let fstype = after.next()?.to_owned();
            let _source = after.next()?;
            let super_options = after
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::to_owned)
                .collect();
            Some(Mount {
                point: PathBuf::from(unescape_octal(point)),
                fstype,
                super_options,
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash in paths as `\040`-style octal.
fn unescape_octal(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_since_saturates() {
        let later = Pressure {
            cpu: Duration::from_millis(30),
            io: Duration::from_millis(5),
            memory: Duration::ZERO,
        };
        let earlier = Pressure {
            cpu: Duration::from_millis(10),
            io: Duration::from_millis(9),
            memory: Duration::ZERO,
        };
        assert_eq!(later.since(&earlier).cpu, Duration::from_millis(20));
        assert_eq!(later.since(&earlier).io, Duration::ZERO);
    }

    #[test]
    fn slab_active_objects_of_a_named_cache() {
        let text = "slabinfo - version: 2.1\n\
            # name            <active_objs> <num_objs> <objsize> ...\n\
            mqueue_inode_cache     34     34    960   17    4 : tunables    0    0    0\n\
            kmalloc-8   100 200 8 512 1 : tunables 0 0 0\n";
        assert_eq!(slab_active_objects(text, "mqueue_inode_cache"), Some(34));
        assert_eq!(slab_active_objects(text, "kmalloc-8"), Some(100));
        assert_eq!(slab_active_objects(text, "mqueue"), None);
    }

    #[test]
    fn keyed_value_matches_whole_keys() {
        let text = "pgmajfault 3\ntotal_pgmajfault 19686\nnr_dying_descendants 7\n";
        assert_eq!(keyed_value(text, "total_pgmajfault"), Some(19686));
        assert_eq!(keyed_value(text, "pgmajfault"), Some(3));
        assert_eq!(keyed_value(text, "nr_dying"), None);
    }

    #[test]
    fn statm_gives_the_resident_set() {
        assert_eq!(
            statm_rss_kib("788097 786571 323 1 0 786710 0\n", 4),
            Some(3_146_284)
        );
        assert_eq!(statm_rss_kib("788097", 4), None);
        assert_eq!(statm_rss_kib("", 4), None);
    }

    #[test]
    fn mountinfo_gives_point_type_and_super_options() {
        let text =
            "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,favordynmods\n\
                    50 27 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw\n\
                    garbage\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0].point, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(mounts[0].fstype, "cgroup2");
        assert!(mounts[0].super_options.iter().any(|o| o == "favordynmods"));
        assert_eq!(mounts[1].point, Path::new("/mnt/with space"));
    }
}
