//! cgroups behind one small interface: detection of the host's layout (v1, pure v2, hybrid),
//! a run's set of cgroup directories, its limits and its usage.
//!
//! Theory of operation: [`Hierarchies::detect`] reads the mount table once at start.
//! [`RunCgroup::create`] makes one directory per hierarchy the run needs under a shared parent
//! and writes the limits; the launcher puts the child in (clone3 into
//! [`RunCgroup::clone_into_fd`] where there is a cgroup2 group, then [`RunCgroup::attach`] for
//! the rest), polls [`RunCgroup::cpu_time`], and at the end reads [`RunCgroup::usage`], calls
//! [`RunCgroup::kill_all`], reaps, and [`RunCgroup::remove`]s.
//!
//! On a hybrid host (v1 controllers plus a cgroup2 mount without controllers, like our
//! development machines) the cgroup2 group costs nothing and gives exact CPU time split into
//! user and system (`cpu.stat`), an atomic `cgroup.kill` and `clone3(CLONE_INTO_CGROUP)`;
//! memory limits and peak memory still come from the v1 memory controller.
//!
//! Why our own thin layer rather than the `cgroups-rs` crate (read in kata-containers/cgroups-rs
//! `src/fs/hierarchies.rs`): it hard-codes `/sys/fs/cgroup` (`UNIFIED_MOUNTPOINT`) and reads the
//! real `/proc/self/mountinfo`, so it cannot be pointed at the fixture trees of `testdata/`;
//! and its `auto()` decides v2 only when `/sys/fs/cgroup` itself is cgroup2, otherwise it treats
//! the host as plain v1 and considers only `cgroup` (v1) mounts, so on a hybrid host it cannot
//! use the controller-less cgroup2 mount for cheap CPU time, `cgroup.kill` and clone3.
//!
//! Every path is built from the mount points found in the mountinfo text given to
//! [`Hierarchies::from_mountinfo`], prefixed by its `sys_root`: tests run the same code against
//! `testdata/cgroup/{v1,v2,hybrid}/`.

mod detect;
pub(crate) mod fs;
pub mod parse;
mod run;
mod v1;
mod v2;

#[cfg(test)]
mod fake;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::plan::CpuBandwidth;

pub use detect::Hierarchies;
pub use run::RunCgroup;

/// How the host mounts its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// One v1 hierarchy per controller (or set of co-mounted ones), no cgroup2 mount.
    V1,
    /// v1 controllers plus a cgroup2 mount without controllers (systemd "hybrid").
    Hybrid,
    /// cgroup2 holds the controllers.
    V2,
}

/// Limits enforced through cgroups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupLimits {
    /// Memory of the whole run; swap is forbidden.
    pub memory_bytes: Option<u64>,
    /// Processes and threads of the whole run.
    pub pids: Option<u64>,
    /// CPUs the run may use, in the kernel's list format (`0-1,3`).
    pub cpuset: Option<String>,
    /// Memory nodes the run may allocate from (`cpuset.mems`), in the same list format.
    pub cpuset_mems: Option<String>,
    /// CFS bandwidth (a CPU quota) of the whole run.
    pub cpu_bandwidth: Option<CpuBandwidth>,
}

/// CFS bandwidth throttling counters (`cpu.stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    #[serde(with = "crate::report::seconds")]
    pub throttled_time: Duration,
}

/// What a run's cgroups measured.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    pub cpu_user: Duration,
    pub cpu_system: Duration,
    pub cpu_total: Duration,
    pub memory_peak_bytes: u64,
    /// Processes the kernel's OOM killer killed in the run's memory group.
    pub oom_kills: u64,
    /// Only where the run's group is also a cpu-controller group (v2 with cpu enabled, v1 with
    /// cpu co-mounted with cpuacct, a v1 cpu group made for a CPU quota); `None` elsewhere.
    pub throttling: Option<Throttling>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_time_serializes_as_seconds() {
        let throttling = Throttling {
            periods: 4,
            throttled_periods: 1,
            throttled_time: Duration::from_millis(1500),
        };
        let json = serde_json::to_string(&throttling).unwrap();
        assert_eq!(
            json,
            r#"{"periods":4,"throttled_periods":1,"throttled_time":1.5}"#
        );
        assert_eq!(
            serde_json::from_str::<Throttling>(&json).unwrap(),
            throttling
        );
    }
}
