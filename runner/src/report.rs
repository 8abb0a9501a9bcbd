//! The outcome of one run as plain data. Written as runguard's meta file (`runguard::meta`)
//! and as JSON (`--json`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cgroup::{Layout, Throttling};

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Termination {
    Exited(i32),
    Signaled(i32),
}

impl Termination {
    /// runguard's convention: the exit status, or 128 + the signal number.
    pub fn exit_code(self) -> i32 {
        match self {
            Termination::Exited(code) => code,
            Termination::Signaled(signal) => 128 + signal,
        }
    }
}

/// Which limits the run hit. Soft bits are decided after the run; hard bits when we killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TimeResult {
    pub wall_soft: bool,
    pub wall_hard: bool,
    pub cpu_soft: bool,
    pub cpu_hard: bool,
}

impl TimeResult {
    pub fn any_hard(&self) -> bool {
        self.wall_hard || self.cpu_hard
    }
}

/// Bytes the child wrote on one stream and whether we cut them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamStats {
    /// Everything the child wrote, discarded bytes included.
    pub bytes: u64,
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub termination: Termination,
    /// From exec to the last process of the run gone (monotonic clock).
    #[serde(with = "seconds")]
    pub wall_time: Duration,
    /// CPU time of all processes and threads of the run, from exec on.
    #[serde(with = "seconds")]
    pub user_time: Duration,
    #[serde(with = "seconds")]
    pub sys_time: Duration,
    #[serde(with = "seconds")]
    pub cpu_time: Duration,
    /// From fork to exec: our own setup of the child (cgroups, namespaces, chroot, ids...),
    /// not billed to the program.
    #[serde(with = "seconds")]
    pub setup_time: Duration,
    /// Peak memory of the run's cgroup.
    pub memory_bytes: u64,
    pub time_result: TimeResult,
    pub stdout: StreamStats,
    pub stderr: StreamStats,
    /// Processes the kernel's OOM killer killed inside the run's cgroup.
    pub oom_kills: u64,
    /// CFS bandwidth throttling of the run's cgroup, where the host has it.
    pub throttling: Option<Throttling>,
    pub cgroup_layout: Layout,
    /// A signal that made *us* stop the run early (SIGTERM), as runguard reports it.
    pub runner_signal: Option<i32>,
}

/// Durations appear in JSON as seconds (a float), the unit of the meta file.
pub mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}
