//! The eBPF watcher: workqueue item latency per work function, kernel lock contention with
//! the waiting caller's stack and fork latency per forking process, read and reset once per
//! window.
//!
//! [`RunTracer`] does the same for runs: D-state time per kernel stack of the tasks under
//! each of a process's run lanes (cgroup2 groups, one run at a time in each), filtered in the
//! kernel, read and deleted per lane at each run's end.
//!
//! Theory of operation. [`Watcher::start`] makes sure tracefs is there (where the host has
//! none, it loads and attaches on a thread of its own with tracefs mounted in that thread's
//! own mount namespace, which the host never sees and which goes with the thread), probes
//! which attach types this kernel allows (tracepoint, raw tracepoint, tp_btf, kprobe, fentry: reported, for
//! `judged doctor`-style answers), then checks each tracepoint's record layout against the
//! kernel's format file ([`format`]) and loads and attaches the programs (`src/bpf/*.bpf.c`,
//! compiled by `build.rs`). The programs use classic tracepoints only, which work everywhere
//! the others might not. A program that fails is reported by name with the reason and the
//! others go on; none working is "eBPF unavailable" with every reason, never a crash.
//! [`Watcher::collect`] reads each map, deletes what it read (so each window starts from
//! zero; an event between the read and the delete of its entry is lost, which is at most a
//! few per window), and symbolizes through [`Symbols`]. Dropping the watcher detaches
//! everything (aya's links close with their programs).

pub mod format;
pub mod raw;

use serde::Serialize;

/// Lock waits kept per window (largest total first): the JSON shows these, the findings
/// are computed from them.
pub const LOCK_WAITS_KEPT: usize = 50;

/// Run lanes one [`RunTracer`] follows at most (`MAX_LANES` of `src/bpf/dstate.bpf.c`).
pub const MAX_LANES: usize = 64;

/// Whether one program (or one attach type of the probe) works here, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    pub name: String,
    pub works: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Probe {
    #[cfg_attr(judged_no_bpf, allow(dead_code))]
    fn result(name: &str, result: Result<(), String>) -> Probe {
        Probe {
            name: name.to_owned(),
            works: result.is_ok(),
            error: result.err(),
        }
    }
}

/// What the watcher could set up, as reported once and in every JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Status {
    /// Why no program runs, when none does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// Which attach types this kernel allows.
    pub attach_types: Vec<Probe>,
    /// Each of the watcher's programs: `workqueue`, `lock` and `fork`.
    pub programs: Vec<Probe>,
    /// Whether judged mounted tracefs (in a mount namespace of the loading thread's own, gone
    /// once the programs were attached).
    pub mounted_tracefs: bool,
}

impl Status {
    /// One line for people: what works and what does not, and why.
    pub fn describe(&self) -> String {
        let list = |probes: &[Probe]| {
            probes
                .iter()
                .map(|p| match &p.error {
                    None => format!("{} yes", p.name),
                    Some(error) => format!("{} no ({error})", p.name),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut text = match &self.unavailable {
            Some(reason) => format!("eBPF unavailable: {reason}"),
            None => format!("eBPF programs: {}", list(&self.programs)),
        };
        if !self.attach_types.is_empty() {
            text.push_str(&format!("; attach types: {}", list(&self.attach_types)));
        }
        text
    }
}

#[cfg(judged_no_bpf)]
mod loader {
    use super::Status;
    use crate::diagnostics::events::{EventWindow, RunEvents};
    use crate::diagnostics::kallsyms::Symbols;

    /// Built without clang: nothing to load.
    pub struct Watcher;

    impl Drop for Watcher {
        /// Nothing is attached; the impl keeps `Watcher` a type with a Drop in both builds.
        fn drop(&mut self) {}
    }

    impl Watcher {
        pub fn start() -> (Option<Watcher>, Status) {
            let status = Status {
                unavailable: Some(format!(
                    "built without clang ({})",
                    env!("JUDGED_NO_BPF_REASON")
                )),
                ..Status::default()
            };
            (None, status)
        }

        pub fn collect(&mut self, _symbols: &Symbols) -> EventWindow {
            EventWindow::default()
        }
    }

    /// Built without clang: no D-state tracing (never constructed).
    pub enum RunTracer {}

    impl RunTracer {
        pub fn start(_lanes: &[std::path::PathBuf], _exits: bool) -> Result<RunTracer, String> {
            Err(format!(
                "built without clang ({})",
                env!("JUDGED_NO_BPF_REASON")
            ))
        }

        pub fn take(&mut self, _lane: u32, _symbols: &Symbols) -> Result<RunEvents, String> {
            match *self {}
        }

        pub fn clear_stacks(&mut self) -> Result<(), String> {
            match *self {}
        }
    }

    /// Built without clang: no page-cache counts (never constructed).
    pub enum PageCacheTracer {}

    impl PageCacheTracer {
        pub fn start() -> Result<PageCacheTracer, String> {
            Err(format!(
                "built without clang ({})",
                env!("JUDGED_NO_BPF_REASON")
            ))
        }

        pub fn watch(&mut self, _file: super::raw::RawFileKey) -> Result<(), String> {
            match *self {}
        }

        pub fn pages(
            &mut self,
            _file: super::raw::RawFileKey,
        ) -> Result<super::raw::RawFilePages, String> {
            match *self {}
        }

        pub fn unwatch(&mut self, _file: super::raw::RawFileKey) -> Result<(), String> {
            match *self {}
        }
    }
}

#[cfg(not(judged_no_bpf))]
mod loader;

pub use loader::{PageCacheTracer, RunTracer, Watcher};
