//! Reading the host topology from sysfs under a root (`/` on the host, a `testdata/topology/`
//! tree in tests). The only part of `topology` that touches the filesystem.
//!
//! Files read, relative to the root:
//!
//! * `sys/devices/system/cpu/online`, and `present` when it exists (else the present CPUs are
//!   the online ones);
//! * per online CPU N, `sys/devices/system/cpu/cpuN/topology/`: `physical_package_id`,
//!   `core_id`, and `core_cpus_list` (Linux ≥ 5.3) or else `thread_siblings_list`. An offline
//!   CPU has no `topology` directory and is not read;
//! * `sys/devices/system/node/online` and per online node `nodeN/cpulist`. Without
//!   `node/online` the kernel has no NUMA (`CONFIG_NUMA=n`): one node 0 with every CPU.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::cpulist::{format_cpu_list, parse_cpu_list, Cpus};
use super::{Core, Node, Topology};

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read `{path}': {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}': bad CPU list `{text}': {reason}")]
    CpuList {
        path: PathBuf,
        text: String,
        reason: String,
    },
    #[error("`{path}': `{text}' is not a number")]
    Number { path: PathBuf, text: String },
    #[error("`{path}' lists no CPU: is --root a sysfs tree?")]
    NoCpu { path: PathBuf },
    #[error(
        "CPU {cpu} is online but `{dir}' does not exist: --root must hold a whole sysfs tree \
         (or the CPU went offline while being read: run again)"
    )]
    NoTopology { cpu: u32, dir: PathBuf },
    #[error(
        "`{path}' puts CPU {cpu} in a core with CPUs {siblings}, which disagrees with the \
         sibling list of CPU {other}: the tree under --root is inconsistent"
    )]
    Siblings {
        path: PathBuf,
        cpu: u32,
        siblings: String,
        other: u32,
    },
    #[error("CPU {cpu} is online but in no online node's cpulist under `{dir}'")]
    NoNode { cpu: u32, dir: PathBuf },
}

/// The topology of the host whose sysfs is under `root`.
pub fn read(root: &Path) -> Result<Topology, TopologyError> {
    let cpu_dir = root.join("sys/devices/system/cpu");
    let online_path = cpu_dir.join("online");
    let online = read_list(&online_path)?;
    if online.is_empty() {
        return Err(TopologyError::NoCpu { path: online_path });
    }
    let present = match read_optional_list(&cpu_dir.join("present"))? {
        Some(present) => present.union(&online).copied().collect(),
        None => online.clone(),
    };
    let nodes = read_nodes(root, &online)?;
    let node_of: BTreeMap<u32, u32> = nodes
        .iter()
        .flat_map(|node| node.cpus.iter().map(move |&cpu| (cpu, node.id)))
        .collect();

    // Cores are told apart by their sibling lists: core_id is only unique within a package
    // (and has gaps), the list of CPUs sharing the core is what the kernel means by a core.
    let mut cores: BTreeMap<u32, Core> = BTreeMap::new();
    let mut core_of: BTreeMap<u32, u32> = BTreeMap::new();
    for &cpu in &online {
        let dir = cpu_dir.join(format!("cpu{cpu}/topology"));
        if !dir.is_dir() {
            return Err(TopologyError::NoTopology { cpu, dir });
        }
        let socket = read_number(&dir.join("physical_package_id"))?;
        let core_id = read_number(&dir.join("core_id"))?;
        let siblings_path = match dir.join("core_cpus_list") {
            path if path.exists() => path,
            _ => dir.join("thread_siblings_list"),
        };
        let mut siblings: Cpus = read_list(&siblings_path)?
            .intersection(&online)
            .copied()
            .collect();
        siblings.insert(cpu);
        let first = *siblings.first().expect("holds cpu");
        let inconsistent = |other: u32| TopologyError::Siblings {
            path: siblings_path.clone(),
            cpu,
            siblings: format_cpu_list(&siblings),
            other,
        };
        // Every CPU of a core must name the same siblings, and a CPU is in one core only.
        if let Some(core) = cores.get(&first) {
            if core.cpus != siblings {
                return Err(inconsistent(first));
            }
            continue;
        }
        if let Some(&other) = siblings.iter().find_map(|s| core_of.get(s)) {
            return Err(inconsistent(other));
        }
        let Some(&node) = node_of.get(&first) else {
            return Err(TopologyError::NoNode {
                cpu: first,
                dir: root.join("sys/devices/system/node"),
            });
        };
        core_of.extend(siblings.iter().map(|&s| (s, first)));
        cores.insert(
            first,
            Core {
                socket,
                core_id,
                node,
                cpus: siblings,
            },
        );
    }
    Ok(Topology {
        online,
        present,
        cores: cores.into_values().collect(),
        nodes,
    })
}

/// The online nodes with their online CPUs; one node 0 with every online CPU without NUMA.
fn read_nodes(root: &Path, online: &Cpus) -> Result<Vec<Node>, TopologyError> {
    let node_dir = root.join("sys/devices/system/node");
    let Some(ids) = read_optional_list(&node_dir.join("online"))? else {
        return Ok(vec![Node {
            id: 0,
            cpus: online.clone(),
        }]);
    };
    ids.into_iter()
        .map(|id| {
            let cpus = read_list(&node_dir.join(format!("node{id}/cpulist")))?;
            Ok(Node {
                id,
                cpus: cpus.intersection(online).copied().collect(),
            })
        })
        .collect()
}

fn read_text(path: &Path) -> Result<String, TopologyError> {
    std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_list(path: &Path, text: &str) -> Result<Cpus, TopologyError> {
    parse_cpu_list(text).map_err(|reason| TopologyError::CpuList {
        path: path.to_path_buf(),
        text: text.trim().to_owned(),
        reason,
    })
}

fn read_list(path: &Path) -> Result<Cpus, TopologyError> {
    parse_list(path, &read_text(path)?)
}

/// A CPU list file that a kernel may not have: `None` when it does not exist.
fn read_optional_list(path: &Path) -> Result<Option<Cpus>, TopologyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_list(path, &text).map(Some),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TopologyError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn read_number(path: &Path) -> Result<u32, TopologyError> {
    let text = read_text(path)?;
    let text = text.trim();
    // physical_package_id is -1 on some virtual machines and embedded boards: one package.
    if text == "-1" {
        return Ok(0);
    }
    text.parse().map_err(|_| TopologyError::Number {
        path: path.to_path_buf(),
        text: text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Changes to a tree: (path under `sys/devices/system/`, contents, or `None` to remove
    /// the file).
    type Changes = &'static [(&'static str, Option<&'static str>)];

    /// A two-core host without SMT, with `changes` applied.
    fn host(changes: Changes) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut files: BTreeMap<String, Option<String>> = [
            ("cpu/online", "0-1"),
            ("cpu/cpu0/topology/physical_package_id", "0"),
            ("cpu/cpu0/topology/core_id", "0"),
            ("cpu/cpu0/topology/core_cpus_list", "0"),
            ("cpu/cpu1/topology/physical_package_id", "0"),
            ("cpu/cpu1/topology/core_id", "1"),
            ("cpu/cpu1/topology/core_cpus_list", "1"),
            ("node/online", "0"),
            ("node/node0/cpulist", "0-1"),
        ]
        .iter()
        .map(|(path, text)| (path.to_string(), Some(format!("{text}\n"))))
        .collect();
        for (path, text) in changes {
            files.insert(path.to_string(), text.map(str::to_owned));
        }
        for (path, text) in files {
            let path = dir.path().join("sys/devices/system").join(path);
            if let Some(text) = text {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
        }
        dir
    }

    #[test]
    fn the_plain_host_reads() {
        let dir = host(&[]);
        let topology = read(dir.path()).unwrap();
        assert_eq!(topology.cores.len(), 2);
        assert_eq!(
            topology.present, topology.online,
            "no present file: the online CPUs"
        );
    }

    #[test]
    fn unusual_but_valid_trees() {
        // (what, changes, cores, nodes)
        let cases: &[(&str, Changes, usize, usize)] = &[
            (
                "no NUMA",
                &[("node/online", None), ("node/node0/cpulist", None)],
                2,
                1,
            ),
            (
                "a kernel before core_cpus_list",
                &[
                    ("cpu/cpu0/topology/core_cpus_list", None),
                    ("cpu/cpu0/topology/thread_siblings_list", Some("0")),
                    ("cpu/cpu1/topology/core_cpus_list", None),
                    ("cpu/cpu1/topology/thread_siblings_list", Some("1")),
                ],
                2,
                1,
            ),
            (
                "a VM with physical_package_id -1",
                &[("cpu/cpu1/topology/physical_package_id", Some("-1"))],
                2,
                1,
            ),
            (
                "a node with memory and no CPU",
                &[
                    ("node/online", Some("0-1")),
                    ("node/node1/cpulist", Some("")),
                ],
                2,
                2,
            ),
            (
                "a sibling list naming an offline CPU",
                &[
                    ("cpu/online", Some("0")),
                    ("cpu/present", Some("0-1")),
                    ("cpu/cpu0/topology/core_cpus_list", Some("0-1")),
                ],
                1,
                1,
            ),
        ];
        for (what, changes, cores, nodes) in cases {
            let dir = host(changes);
            let topology = read(dir.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(topology.cores.len(), *cores, "{what}: cores");
            assert_eq!(topology.nodes.len(), *nodes, "{what}: nodes");
        }
    }

    #[test]
    fn bad_trees_are_refused_naming_the_file_and_the_text() {
        // (changes, the error says, all of these)
        let cases: &[(Changes, &[&str])] = &[
            (
                &[("cpu/online", Some("0-1,x"))],
                &[
                    "cpu/online': bad CPU list `0-1,x'",
                    "`x' is not a CPU number",
                ],
            ),
            (&[("cpu/online", None)], &["cannot read `", "cpu/online'"]),
            (&[("cpu/online", Some(""))], &["cpu/online' lists no CPU"]),
            (
                &[("cpu/cpu1/topology/core_id", Some("one"))],
                &["cpu1/topology/core_id': `one' is not a number"],
            ),
            (
                &[("node/node0/cpulist", Some("1-0"))],
                &["node0/cpulist': bad CPU list `1-0'", "descending"],
            ),
            (
                &[
                    ("cpu/cpu1/topology/physical_package_id", None),
                    ("cpu/cpu1/topology/core_id", None),
                    ("cpu/cpu1/topology/core_cpus_list", None),
                ],
                &["CPU 1 is online but `", "cpu1/topology' does not exist"],
            ),
            (
                &[("cpu/cpu1/topology/core_cpus_list", None)],
                &["cannot read `", "cpu1/topology/thread_siblings_list'"],
            ),
            (
                &[("cpu/cpu0/topology/core_cpus_list", Some("0-1"))],
                &["puts CPU 1 in a core with CPUs 1", "sibling list of CPU 0"],
            ),
            (
                &[("node/node0/cpulist", Some("0"))],
                &["CPU 1 is online but in no online node's cpulist"],
            ),
        ];
        for (changes, says) in cases {
            let dir = host(changes);
            let error = read(dir.path())
                .expect_err(&format!("{changes:?}"))
                .to_string();
            for needle in *says {
                assert!(error.contains(needle), "{changes:?}: {error}");
            }
        }
    }
}
