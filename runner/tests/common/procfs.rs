//! Reading processes from a procfs tree given as a root (`/proc` here, a fixture tree in the
//! helpers' own tests): who is left after a run, and which zombies nobody reaps.

use std::path::Path;

/// What `/proc/<pid>/stat` says about one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: i32,
    pub comm: String,
    /// `R`, `S`, `D`, `Z`, `T`, ...
    pub state: char,
    pub ppid: i32,
}

impl ProcessInfo {
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// Parse the text of `/proc/<pid>/stat`. The command name sits in parentheses and may itself
/// contain spaces and `)`, so the fields after it are found from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcessInfo> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_string();
    let mut rest = text[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(ProcessInfo {
        pid,
        comm,
        state,
        ppid,
    })
}

/// Whether a NUL-separated environment block holds exactly the entry `KEY=VALUE`.
pub fn environ_contains(environ: &[u8], entry: &str) -> bool {
    environ.split(|&b| b == 0).any(|e| e == entry.as_bytes())
}

/// Every process of the tree; processes that vanish while we read are left out.
pub fn processes(proc_root: &Path) -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            name.to_str()?.parse::<i32>().ok()?;
            let stat = std::fs::read_to_string(proc_root.join(&name).join("stat")).ok()?;
            parse_stat(&stat)
        })
        .collect()
}

/// Live processes whose environment holds `entry` (the tag a test gives its runs). Zombies
/// have no environment left; see [`orphan_zombies`].
pub fn processes_with_env(proc_root: &Path, entry: &str) -> Vec<ProcessInfo> {
    processes(proc_root)
        .into_iter()
        .filter(|p| {
            std::fs::read(proc_root.join(p.pid.to_string()).join("environ"))
                .is_ok_and(|environ| environ_contains(&environ, entry))
        })
        .collect()
}

/// Zombies whose parent is pid 1. Here pid 1 never reaps them (see machine.md), so each is a
/// process some runner failed to reap, kept for good.
pub fn orphan_zombies(proc_root: &Path) -> Vec<ProcessInfo> {
    processes(proc_root)
        .into_iter()
        .filter(|p| p.is_zombie() && p.ppid == 1)
        .collect()
}

/// Open file descriptors of the process whose procfs dir is `process_dir` (e.g. `/proc/self`).
pub fn open_fd_count(process_dir: &Path) -> usize {
    std::fs::read_dir(process_dir.join("fd"))
        .map(|entries| entries.count())
        .unwrap_or_else(|e| panic!("reading {}/fd: {e}", process_dir.display()))
}

/// Mounts seen by the process whose procfs dir is `process_dir`.
pub fn mount_count(process_dir: &Path) -> usize {
    std::fs::read_to_string(process_dir.join("mountinfo"))
        .map(|text| text.lines().count())
        .unwrap_or_else(|e| panic!("reading {}/mountinfo: {e}", process_dir.display()))
}
