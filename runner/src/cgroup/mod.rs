//! cgroups behind one small interface: detection of the host's layout (v1, pure v2, hybrid),
//! a run's set of cgroup directories, its limits and its usage.
//!
//! INTERFACE DRAFT: bodies to be written (owned by the cgroup work item).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// How the host mounts its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// One v1 hierarchy per controller, no cgroup2 mount.
    V1,
    /// v1 controllers plus a cgroup2 mount without controllers (systemd "hybrid").
    Hybrid,
    /// cgroup2 only.
    V2,
}

/// The cgroup mounts of a host, found in `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hierarchies {
    pub layout: Layout,
}

impl Hierarchies {
    /// Detect from the text of a mountinfo file; every mount point is taken relative to
    /// `sys_root` (`/` on a real host, a `testdata/` tree in tests).
    pub fn from_mountinfo(_mountinfo: &str, _sys_root: &Path) -> Result<Hierarchies> {
        todo!()
    }

    /// Detect on this host.
    pub fn detect() -> Result<Hierarchies> {
        todo!()
    }
}

/// Limits enforced through cgroups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupLimits {
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
    pub cpuset: Option<String>,
}

/// CFS bandwidth throttling counters (`cpu.stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: Duration,
}

/// What a run's cgroups measured.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    pub cpu_user: Duration,
    pub cpu_system: Duration,
    pub cpu_total: Duration,
    pub memory_peak_bytes: u64,
    pub oom_kills: u64,
    pub throttling: Option<Throttling>,
}

/// The cgroup directories of one run, one per hierarchy used.
#[derive(Debug)]
pub struct RunCgroup {
    pub dirs: Vec<PathBuf>,
}

impl RunCgroup {
    /// Create `parent/name` in every hierarchy the run needs and apply `limits`.
    pub fn create(
        _hierarchies: &Hierarchies,
        _parent: &Path,
        _name: &str,
        _limits: &CgroupLimits,
    ) -> Result<RunCgroup> {
        todo!()
    }
}
