//! A `Plan` is the fully resolved, pure description of one run: what to execute, how to confine
//! it and which limits apply. Front ends (the `runguard` CLI, sandbox profiles, the judge) build
//! a `Plan`; `launch::run` carries it out. Nothing here touches the system.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A soft and a hard limit on one clock. The soft limit only marks the result; the hard limit
/// kills the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeLimit {
    pub soft: Duration,
    pub hard: Duration,
}

/// Which clock the caller reports as "the" runtime (`time-used` in the meta file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeKind {
    WallTime,
    #[default]
    CpuTime,
}

/// A CFS bandwidth limit: the run's processes together get `quota_us` of CPU time in every
/// `period_us` (`cpu.max` on v2, `cpu.cfs_quota_us`/`cpu.cfs_period_us` on v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuBandwidth {
    pub quota_us: u64,
    pub period_us: u64,
}

impl CpuBandwidth {
    /// The kernel's default period: 100 ms.
    pub const PERIOD_US: u64 = 100_000;

    /// `fraction` of one CPU per default period, e.g. 0.5 for half a CPU, 2 for two CPUs.
    /// The kernel takes quotas from 1 ms to (about) 2^44 µs: beyond that is an error.
    pub fn of_cpus(fraction: f64) -> Result<CpuBandwidth, String> {
        const MIN_QUOTA_US: f64 = 1_000.0;
        const MAX_CPUS: f64 = 1_024.0;
        if !fraction.is_finite() || fraction <= 0.0 || fraction > MAX_CPUS {
            return Err(format!(
                "expected a number of CPUs above 0 and at most {MAX_CPUS}, like 0.5"
            ));
        }
        let quota_us = (fraction * Self::PERIOD_US as f64).round();
        if quota_us < MIN_QUOTA_US {
            return Err(format!(
                "below the kernel's smallest quota of 1 ms per {} ms period (0.01 CPUs)",
                Self::PERIOD_US / 1000
            ));
        }
        Ok(CpuBandwidth {
            quota_us: quota_us as u64,
            period_us: Self::PERIOD_US,
        })
    }
}

/// Resource limits of a run. `None` means "not limited".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub wall: Option<TimeLimit>,
    pub cpu: Option<TimeLimit>,
    /// Memory of the whole run (cgroup), swap forbidden.
    pub memory_bytes: Option<u64>,
    /// RLIMIT_FSIZE.
    pub file_size_bytes: Option<u64>,
    /// Processes and threads of the whole run (cgroup pids controller).
    pub nproc: Option<u64>,
    /// CPUs the run is pinned to, e.g. `0,2-3` (already validated against the online CPUs).
    pub cpuset: Option<String>,
    /// Memory nodes the run allocates from (`cpuset.mems`), e.g. `0` (already validated
    /// against the host's nodes with memory).
    #[serde(default)]
    pub cpuset_mems: Option<String>,
    /// CFS bandwidth of the whole run (a CPU quota), as a container runtime would set it.
    #[serde(default)]
    pub cpu_bandwidth: Option<CpuBandwidth>,
    /// Each of stdout and stderr is cut after this many bytes; the rest is read and discarded.
    pub stream_bytes: Option<u64>,
    /// Core dump size 0.
    pub no_core: bool,
}

/// The namespaces a run gets its own instance of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Namespaces {
    pub mount: bool,
    pub uts: bool,
    pub ipc: bool,
    pub net: bool,
    pub pid: bool,
    pub user: bool,
    pub cgroup: bool,
    pub time: bool,
}

/// Where one-shot runs find pooled network namespaces and how many may be pinned there
/// (`sys::netns_pool`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsPool {
    pub dir: PathBuf,
    /// At most this many namespaces are pinned; a run that finds every slot taken makes a
    /// namespace of its own, as without a pool.
    pub size: usize,
}

impl Default for Namespaces {
    /// DOMjudge's runguard unshares net, ipc, mount and uts.
    fn default() -> Self {
        Namespaces {
            mount: true,
            uts: true,
            ipc: true,
            net: true,
            pid: false,
            user: false,
            cgroup: false,
            time: false,
        }
    }
}

impl Namespaces {
    pub const NONE: Namespaces = Namespaces {
        mount: false,
        uts: false,
        ipc: false,
        net: false,
        pid: false,
        user: false,
        cgroup: false,
        time: false,
    };

    /// Names as used on the command line and in profiles, in a fixed order.
    pub const NAMES: [&'static str; 8] = [
        "mount", "uts", "ipc", "net", "pid", "user", "cgroup", "time",
    ];

    pub fn get_mut(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "mount" => &mut self.mount,
            "uts" => &mut self.uts,
            "ipc" => &mut self.ipc,
            "net" => &mut self.net,
            "pid" => &mut self.pid,
            "user" => &mut self.user,
            "cgroup" => &mut self.cgroup,
            "time" => &mut self.time,
            _ => return None,
        })
    }
}

/// A filesystem view built inside the run's mount namespace: a read-only root made of bind
/// mounts, with writable places (the work dir, a tmpfs `/tmp`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filesystem {
    /// Directory (created by the runner, removed afterwards) that becomes the root.
    pub new_root: PathBuf,
    pub mounts: Vec<Mount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Mount {
    /// Bind `source` (on the host) at `target` (inside the new root).
    Bind {
        source: PathBuf,
        target: PathBuf,
        #[serde(default)]
        writable: bool,
    },
    /// A fresh tmpfs at `target`, at most `size_bytes` big.
    Tmpfs { target: PathBuf, size_bytes: u64 },
    /// A fresh procfs at `target` (only meaningful with a pid namespace).
    Proc { target: PathBuf },
}

/// Who the command runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
}

/// Where one of the child's output streams goes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum OutputTarget {
    /// Our own stdout / stderr.
    #[default]
    Inherit,
    /// Opened with truncation (kept owner), created with mode 0600 if missing.
    File(PathBuf),
}

/// Everything needed to carry out one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The program to execute (looked up in PATH of the child's environment when it has no
    /// slash, after the chroot) and its arguments (without argv[0]).
    pub command: OsString,
    pub args: Vec<OsString>,
    /// chroot into this directory before the command runs.
    pub root: Option<PathBuf>,
    /// chdir here (after the chroot).
    pub chdir: Option<PathBuf>,
    /// A root filesystem assembled from mounts (sandbox profiles); exclusive with `root`.
    pub filesystem: Option<Filesystem>,
    pub credentials: Option<Credentials>,
    /// The child's complete environment.
    pub env: Vec<(OsString, OsString)>,
    pub limits: Limits,
    pub namespaces: Namespaces,
    /// Path of a compiled seccomp policy to install last (seccompiler JSON); `None`: no filter.
    pub seccomp_policy: Option<PathBuf>,
    pub stdout: OutputTarget,
    pub stderr: OutputTarget,
    /// Parent of the run's cgroups, relative to each hierarchy's root (e.g. `judged`).
    pub cgroup_parent: PathBuf,
    /// On a hard wall-time kill, send SIGUSR1 to this process first (interactive problems).
    pub runpipe_pid: Option<i32>,
    /// Also measure the run's stalls and memory activity (`Report::activity`): a few more
    /// cgroup file reads at exec and at the end.
    #[serde(default)]
    pub measure_activity: bool,
    /// Enter a network namespace of this pool instead of making one (one-shot runs with a
    /// network namespace and no user namespace; see `sys::netns_pool`).
    #[serde(default)]
    pub netns_pool: Option<NetnsPool>,
}

impl Plan {
    /// A plan that runs `command args` with no limits and no namespaces, inheriting the streams.
    pub fn new(command: impl Into<OsString>, args: Vec<OsString>) -> Plan {
        Plan {
            command: command.into(),
            args,
            root: None,
            chdir: None,
            filesystem: None,
            credentials: None,
            env: vec![(OsString::from("PATH"), OsString::from(DEFAULT_PATH))],
            limits: Limits::default(),
            namespaces: Namespaces::NONE,
            seccomp_policy: None,
            stdout: OutputTarget::Inherit,
            stderr: OutputTarget::Inherit,
            cgroup_parent: PathBuf::from(DEFAULT_CGROUP_PARENT),
            runpipe_pid: None,
            measure_activity: false,
            netns_pool: None,
        }
    }
}

pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
pub const DEFAULT_CGROUP_PARENT: &str = "judged";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_bandwidth_of_a_number_of_cpus() {
        let bandwidth = |cpus| CpuBandwidth::of_cpus(cpus).map(|b| (b.quota_us, b.period_us));
        assert_eq!(bandwidth(0.5), Ok((50_000, 100_000)));
        assert_eq!(bandwidth(2.0), Ok((200_000, 100_000)));
        assert_eq!(bandwidth(0.01), Ok((1_000, 100_000)));
        for refused in [0.0, -1.0, 0.009, f64::NAN, f64::INFINITY, 2000.0] {
            assert!(bandwidth(refused).is_err(), "{refused} accepted");
        }
    }
}
