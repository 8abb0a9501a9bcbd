//! Diagnostics: why a run's timing may not be trusted, as findings with a cause and a remedy.
//!
//! Measurements come from procfs and cgroupfs ([`procfs`], [`host`]); the decisions are pure
//! functions of plain numbers ([`run::classify`], [`host::classify`]) against thresholds that
//! are data ([`thresholds`], `profiles/diagnostics.toml`). The eBPF watcher ([`ebpf`]) measures
//! workqueue latency, lock contention and fork latency per window; [`events::classify`] turns
//! a window into findings. [`ebpf::RunTracer`] measures runs' D-state time per kernel stack
//! ([`events::explain_dstate`] puts it into `dstate-io`), and [`taskstats`] their tasks'
//! delays, for each run of a process's lanes ([`lanes`]). [`throttled`] watches the CFS
//! throttling of judged's own cgroup and its ancestors. [`hostwatch`] is the host watcher's
//! window loop; [`hostwatcher`] runs it on a thread for the daemon and `judged run`.

pub mod code_files;
pub mod code_pages;
pub mod ebpf;
pub mod events;
pub mod host;
pub mod hostwatch;
pub mod hostwatcher;
pub mod kallsyms;
pub mod kernel;
pub mod lanes;
pub mod procfs;
pub mod psi;
pub mod run;
pub mod taskstats;
pub mod thresholds;
pub mod throttled;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What kind of disturbance a finding names. The kebab-case name is a stable machine-readable
/// identifier: scripts and dashboards match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Wall time far above CPU time, and stalls explain the gap.
    WallCpuDrift,
    /// The run's CPU quota throttled it.
    CfsThrottling,
    /// The run waited for a CPU that others held.
    RunqueueDelay,
    /// The run was stalled on block IO.
    DstateIo,
    /// The run was stalled reclaiming memory.
    MemcgReclaim,
    /// The run re-read pages the kernel had evicted (its executable, libraries, data).
    PageCacheThrash,
    /// The sandbox took long to start the run (not billed to the program, but slow).
    SlowSetup,
    /// IPC namespaces pile up waiting to be freed.
    IpcNsTeardown,
    /// Removed cgroups pile up without being freed.
    DyingCgroups,
    /// The whole host was under CPU, IO or memory pressure during the run.
    HostPressure,
    /// Tasks waited long for kernel locks inside cgroup (or shrinker) code.
    CgroupLockContention,
    /// Kernel work items waited long for a worker.
    WorkqueueLatency,
    /// A process's forks took long: they copy its page tables, which grow with its memory.
    SlowFork,
}

impl Kind {
    /// Whether a run with this finding, or overlapping a host window with it, may have had
    /// its time stretched by something other than the program (so a time-limit verdict of it
    /// cannot be trusted). Of the host's kinds, those that stall tasks while they happen:
    /// kworkers busy freeing IPC namespaces or starved (the run's teardown, and any task
    /// waiting on them), cgroup locks held long (the run's own cgroup and memory-charging
    /// paths take them), the whole host short of CPU, IO or memory. Not dying cgroups (a
    /// slow pile-up over hours, not a stall of one run) nor a slow fork (its caller's cost).
    pub fn disturbs_timing(self) -> bool {
        matches!(
            self,
            Kind::WallCpuDrift
                | Kind::CfsThrottling
                | Kind::RunqueueDelay
                | Kind::DstateIo
                | Kind::MemcgReclaim
                | Kind::PageCacheThrash
                | Kind::IpcNsTeardown
                | Kind::CgroupLockContention
                | Kind::WorkqueueLatency
                | Kind::HostPressure
        )
    }

    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .expect("a Kind serializes as a string")
    }
}

/// One explained disturbance: the cause in one sentence, the numbers behind it, what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: Kind,
    pub summary: String,
    /// Named measurements (milliseconds, counts, fractions: the key says which).
    pub evidence: Map<String, Value>,
    pub remedy: String,
}

impl Finding {
    fn new(kind: Kind, summary: String, remedy: &str) -> Finding {
        Finding {
            kind,
            summary,
            evidence: Map::new(),
            remedy: remedy.to_owned(),
        }
    }

    fn with(mut self, key: &str, value: impl Into<Value>) -> Finding {
        self.evidence.insert(key.to_owned(), value.into());
        self
    }
}

/// Milliseconds, rounded to 0.1 ms, as evidence shows them.
fn millis(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}
