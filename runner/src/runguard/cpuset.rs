//! CPU lists in the kernel's syntax (`0,2-3`), as `-P` takes them and as
//! `/sys/devices/system/cpu/online` shows them; lists of memory nodes (`--cpuset-mems`) use the
//! same syntax.

use std::collections::BTreeSet;
use std::path::Path;

use super::{Error, Result};

pub type Cpus = BTreeSet<u32>;

/// Parse a list like `0,2-3` (ranges inclusive, ascending). Whitespace around the whole list
/// (the newline of a sysfs file) is ignored.
pub fn parse_cpu_list(text: &str) -> Result<Cpus, String> {
    let text = text.trim();
    let invalid = || format!("failed to parse cpuset `{text}': expected a list like 0,2-3");
    let number = |part: &str| {
        // u32::from_str would accept a leading `+`.
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        part.parse::<u32>().map_err(|_| invalid())
    };
    let mut cpus = Cpus::new();
    for item in text.split(',') {
        match item.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (number(first)?, number(last)?);
                if first > last {
                    return Err(invalid());
                }
                cpus.extend(first..=last);
            }
            None => {
                cpus.insert(number(item)?);
            }
        }
    }
    Ok(cpus)
}

/// The online CPUs of the host whose sysfs is mounted under `sys_root` (`/` on a real host).
pub fn read_online_cpus(sys_root: &Path) -> Result<Cpus> {
    let path = sys_root.join("sys/devices/system/cpu/online");
    let text =
        std::fs::read_to_string(&path).map_err(|source| Error::io("cannot read", &path, source))?;
    parse_cpu_list(&text).map_err(|why| Error::Config {
        path: path.clone(),
        message: why,
    })
}

/// The NUMA nodes with memory of the host whose sysfs is under `sys_root`: those a cpuset's
/// `cpuset.mems` may name. A kernel without NUMA has no `node` directory: node 0 alone.
pub fn read_memory_nodes(sys_root: &Path) -> Result<Cpus> {
    let path = sys_root.join("sys/devices/system/node/has_memory");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_cpu_list(&text).map_err(|why| Error::Config {
            path: path.clone(),
            message: why,
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if path.parent().is_some_and(Path::exists) {
                Err(Error::io("cannot read", &path, error))
            } else {
                Ok(Cpus::from([0]))
            }
        }
        Err(error) => Err(Error::io("cannot read", &path, error)),
    }
}

/// Check that every CPU of the `-P` list is online (DOMjudge's wording).
pub fn check_pinning(requested: &Cpus, online: &Cpus) -> Result<(), String> {
    match requested.difference(online).next() {
        Some(cpu) => Err(format!(
            "requested pinning on CPU {cpu} which is not online"
        )),
        None => Ok(()),
    }
}

/// Check that every node of the `--cpuset-mems` list has memory.
pub fn check_memory_nodes(requested: &Cpus, with_memory: &Cpus) -> Result<(), String> {
    match requested.difference(with_memory).next() {
        Some(node) => Err(format!(
            "memory node {node} has no memory here (nodes with memory: {})",
            with_memory
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn cpus(list: &[u32]) -> Cpus {
        list.iter().copied().collect()
    }

    fn sys_root(name: &str) -> PathBuf {
        crate::repo_path("testdata/runguard").join(name)
    }

    #[test]
    fn list_syntax() {
        let ok: &[(&str, &[u32])] = &[
            ("0", &[0]),
            ("0-1", &[0, 1]),
            ("0,2-3", &[0, 2, 3]),
            ("3,1", &[1, 3]),
            ("5-5", &[5]),
            ("0-1\n", &[0, 1]),
            ("1,1-2", &[1, 2]),
        ];
        for (text, expected) in ok {
            assert_eq!(parse_cpu_list(text), Ok(cpus(expected)), "{text:?}");
        }
        for text in [
            "", ",", "0,", "a", "1-", "-1", "3-1", "0-1-2", "+1", " 1 , 2", "0x1",
        ] {
            assert!(parse_cpu_list(text).is_err(), "{text:?} should be rejected");
        }
    }

    #[test]
    fn online_cpus_of_fixture_hosts() {
        assert_eq!(
            read_online_cpus(&sys_root("sys-2cpu")).unwrap(),
            cpus(&[0, 1])
        );
        assert_eq!(
            read_online_cpus(&sys_root("sys-sparse")).unwrap(),
            cpus(&[0, 2, 3, 6])
        );
    }

    #[test]
    fn missing_online_file_names_the_path() {
        let message = read_online_cpus(&sys_root("no-such-host"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("no-such-host/sys/devices/system/cpu/online"),
            "{message}"
        );
    }

    #[test]
    fn memory_nodes_of_fixture_hosts() {
        assert_eq!(
            read_memory_nodes(&sys_root("sys-sparse")).unwrap(),
            cpus(&[0, 2])
        );
        // No NUMA in the kernel: one node 0.
        assert_eq!(
            read_memory_nodes(&sys_root("sys-2cpu")).unwrap(),
            cpus(&[0])
        );
        assert_eq!(check_memory_nodes(&cpus(&[2]), &cpus(&[0, 2])), Ok(()));
        assert_eq!(
            check_memory_nodes(&cpus(&[0, 1]), &cpus(&[0, 2])),
            Err("memory node 1 has no memory here (nodes with memory: 0,2)".into())
        );
    }

    #[test]
    fn pinning_only_on_online_cpus() {
        let online = cpus(&[0, 2, 3, 6]);
        assert_eq!(check_pinning(&cpus(&[0, 2, 3]), &online), Ok(()));
        assert_eq!(
            check_pinning(&cpus(&[0, 1, 4]), &online),
            Err("requested pinning on CPU 1 which is not online".into())
        );
    }
}
