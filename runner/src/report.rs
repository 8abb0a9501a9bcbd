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
    /// What else the run's cgroups saw, from exec on, when the plan asked for it
    /// (`Plan::measure_activity`, runguard `--diagnostics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<Activity>,
}

/// Stalls and memory activity of a run's cgroups, from exec to the end: what explains a wall
/// time far above the CPU time. A part is `None` where the host does not measure it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Activity {
    /// PSI "some" of the run's cgroup2 group (v2 and hybrid hosts booted with PSI).
    pub stalls: Option<Stalls>,
    /// From the run's memory group's `memory.stat`.
    pub memory: Option<MemoryActivity>,
}

/// Time in which some task of the run was stalled, per resource (PSI "some" totals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stalls {
    /// Waiting for a CPU (runnable, not running; a CPU quota's throttling included).
    #[serde(with = "seconds")]
    pub cpu: Duration,
    /// Waiting for block IO.
    #[serde(with = "seconds")]
    pub io: Duration,
    /// In memory reclaim, or refaulting pages evicted while needed.
    #[serde(with = "seconds")]
    pub memory: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryActivity {
    pub major_faults: u64,
    /// File pages faulted back in after the kernel had evicted them (`workingset_refault_file`).
    pub file_refaults: u64,
}

impl Activity {
    /// What happened between `earlier` and `self` (counters only grow).
    pub fn since(&self, earlier: &Activity) -> Activity {
        let stalls = match (self.stalls, earlier.stalls) {
            (Some(now), Some(then)) => Some(Stalls {
                cpu: now.cpu.saturating_sub(then.cpu),
                io: now.io.saturating_sub(then.io),
                memory: now.memory.saturating_sub(then.memory),
            }),
            _ => None,
        };
        let memory = match (self.memory, earlier.memory) {
            (Some(now), Some(then)) => Some(MemoryActivity {
                major_faults: now.major_faults.saturating_sub(then.major_faults),
                file_refaults: now.file_refaults.saturating_sub(then.file_refaults),
            }),
            _ => None,
        };
        Activity { stalls, memory }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_since_an_earlier_reading_saturates_and_needs_both() {
        let stalls = |ms| Stalls {
            cpu: Duration::from_millis(ms),
            io: Duration::from_millis(2 * ms),
            memory: Duration::ZERO,
        };
        let memory = |n| MemoryActivity {
            major_faults: n,
            file_refaults: 10 * n,
        };
        let at_exec = Activity {
            stalls: Some(stalls(5)),
            memory: Some(memory(3)),
        };
        let at_end = Activity {
            stalls: Some(stalls(25)),
            memory: Some(memory(2)),
        };
        assert_eq!(
            at_end.since(&at_exec),
            Activity {
                stalls: Some(stalls(20)),
                memory: Some(memory(0)),
            }
        );
        let without_psi = Activity {
            stalls: None,
            ..at_exec
        };
        assert_eq!(at_end.since(&without_psi).stalls, None);
    }
}
