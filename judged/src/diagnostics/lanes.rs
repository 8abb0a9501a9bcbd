//! Per-run kernel measurements for every run of a process (`judged run`, the daemon,
//! `judged diagnose`): D-state time per kernel stack (eBPF) and taskstats delays.
//!
//! Theory of operation. A process makes one [`RunTracing`] with a number of *lanes*: cgroup
//! parents under each of which one run at a time lives (a job thread of `judged run`, a
//! worker slot of the daemon, diagnose's one run). Each lane's cgroup2 directory is made
//! here, before one [`RunTracer`] is pointed at them all; runguard (or a slot's warm keeper),
//! given the lane as its cgroup parent, makes the run's own groups below it (and the lane's
//! directories in the v1 hierarchies). [`RunTracing::begin`] and [`RunTracing::finish`]
//! bracket a run of a lane: `finish` reads and deletes that lane's D-state totals and exited
//! tasks, and picks their exit records out of the taskstats listener's.
//!
//! Why read-and-clear per lane rather than keying the maps by the run's own cgroup id
//! (`bpf_get_current_cgroup_id`): the run's groups are made and removed inside runguard, so
//! judged never learns their ids, and the runs of a warm sandbox share one group. A lane's
//! runs are sequential, and once runguard has returned every task of the run has been reaped
//! (so each of its sleeps has ended and each exit been recorded): the lane's entries are then
//! exactly that run's.
//!
//! The stack trace map is shared by the lanes (one kernel stack, one id), so it is emptied
//! only when no lane has a run going on. Exit records of the whole host arrive on one socket;
//! those drained before the start of every run still going on cannot be any running run's,
//! and are forgotten ([`ExitRecords`]).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::code_pages::{CodePageWatch, CodePages, RunCode};
use super::ebpf::RunTracer;
use super::events::{self, DState, DStateStack, RunEvents};
use super::kallsyms::{base_name, Symbols};
use super::procfs::{self, Mount};
use super::taskstats::{self, Delays, ExitListener};
use super::thresholds::RunThresholds;
use super::Finding;

/// The cgroup mounts of this host: all of them (a lane has a directory in each), the cgroup2
/// one (the tracer's lanes, PSI) and the one holding memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMounts {
    pub all: Vec<PathBuf>,
    pub unified: Option<PathBuf>,
    /// The memory controller's mount and whether it is v1 (`total_` keys in memory.stat).
    pub memory: Option<(PathBuf, bool)>,
}

impl CgroupMounts {
    pub fn from_mounts(mounts: &[Mount]) -> CgroupMounts {
        let cgroup = |m: &&Mount| m.fstype == "cgroup" || m.fstype == "cgroup2";
        let unified = mounts
            .iter()
            .find(|m| m.fstype == "cgroup2")
            .map(|m| m.point.clone());
        let v1_memory = mounts
            .iter()
            .find(|m| m.fstype == "cgroup" && m.super_options.iter().any(|o| o == "memory"));
        let memory = match (v1_memory, &unified) {
            (Some(mount), _) => Some((mount.point.clone(), true)),
            (None, Some(unified)) => Some((unified.clone(), false)),
            (None, None) => None,
        };
        CgroupMounts {
            all: mounts
                .iter()
                .filter(cgroup)
                .map(|m| m.point.clone())
                .collect(),
            unified,
            memory,
        }
    }

    /// This process's mounts (`/proc/self/mountinfo`).
    pub fn read() -> Result<CgroupMounts, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        Ok(CgroupMounts::from_mounts(&procfs::parse_mountinfo(
            &mountinfo,
        )))
    }
}

/// What the kernel told about one run: its D-state time per kernel stack and its tasks'
/// delays, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct KernelRun {
    /// D-state time of the run's tasks per kernel stack (eBPF); `None` without it.
    pub dstate: Option<DState>,
    /// Why there is no D-state time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dstate_unavailable: Option<String>,
    /// Delay accounting of the run's tasks, summed from their taskstats exit records.
    pub delays: Option<Delays>,
    /// Why there are no delays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delays_unavailable: Option<String>,
    /// Pages of the run's executable and libraries evicted and read in while it ran (eBPF).
    pub code_pages: Option<CodePages>,
    /// Why they are not counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_pages_unavailable: Option<String>,
}

/// Stacks kept in a test case's result and shown in the text reports.
pub const DSTATE_STACKS_SHOWN: usize = events::DSTATE_STACKS_SHOWN;
/// Frames of each stack in the text reports.
const DSTATE_FRAMES_SHOWN: usize = 6;

/// A test case result's kernel part: the D-state total with the top stacks, the delays.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dstate_ms: Option<f64>,
    /// The top [`DSTATE_STACKS_SHOWN`] stacks, largest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dstate_top_stacks: Vec<DStateStack>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dstate_unavailable: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delays: Option<Delays>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delays_unavailable: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_pages: Option<CodePages>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_pages_unavailable: Option<String>,
}

impl KernelRun {
    /// Add the D-state time to the run's `dstate-io` finding, as diagnose does, and the
    /// eviction of its own code to its `page-cache-thrash` finding (made if need be).
    pub fn explain(&self, findings: &mut Vec<Finding>, t: &RunThresholds) {
        if let Some(dstate) = &self.dstate {
            events::explain_dstate(findings, dstate);
        }
        if let Some(code) = &self.code_pages {
            code.explain(findings, t);
        }
    }

    /// Whether the run's tasks slept in D state at all.
    pub fn slept(&self) -> bool {
        self.dstate.as_ref().is_some_and(|d| d.count > 0)
    }

    /// The part kept with a test case's result.
    pub fn summary(&self) -> KernelSummary {
        KernelSummary {
            dstate_ms: self
                .dstate
                .as_ref()
                .map(|d| Duration::from_nanos(d.total_ns).as_secs_f64() * 1000.0),
            dstate_top_stacks: self.dstate.as_ref().map_or_else(Vec::new, |d| {
                d.stacks.iter().take(DSTATE_STACKS_SHOWN).cloned().collect()
            }),
            dstate_unavailable: self.dstate_unavailable.clone(),
            delays: self.delays,
            delays_unavailable: self.delays_unavailable.clone(),
            code_pages: self.code_pages.clone(),
            code_pages_unavailable: self.code_pages_unavailable.clone(),
        }
    }

    /// The D-state and delay lines of a text report, each `(label, text)`.
    pub fn show(&self) -> Vec<(&'static str, String)> {
        let mut lines = Vec::new();
        match (&self.dstate, &self.dstate_unavailable) {
            (Some(dstate), _) => {
                let by_stack = if dstate.stacks.is_empty() {
                    ""
                } else {
                    ", by stack:"
                };
                lines.push((
                    "D state",
                    format!(
                        "{} in {} sleeps{by_stack}",
                        ms(Duration::from_nanos(dstate.total_ns)),
                        dstate.count
                    ),
                ));
                for stack in dstate.stacks.iter().take(DSTATE_STACKS_SHOWN) {
                    let frames: Vec<&str> =
                        waiting_frames(&stack.stack).map(String::as_str).collect();
                    let took = ms(Duration::from_nanos(stack.sleeps.total_ns));
                    lines.push((
                        "",
                        format!("  {took} in {}: {}", stack.sleeps.count, frames.join(" < ")),
                    ));
                }
            }
            (None, reason) => lines.push((
                "D state",
                format!("not measured ({})", reason.as_deref().unwrap_or("no eBPF")),
            )),
        }
        let delay = |ns: u64, count: u64| format!("{} ({count})", ms(Duration::from_nanos(ns)));
        lines.push((
            "delays",
            match (&self.delays, &self.delays_unavailable) {
                (Some(d), _) => format!(
                    "block IO {}, swap-in {}, reclaim {}, thrashing {} over {} tasks (taskstats)",
                    delay(d.blkio_delay_ns, d.blkio_count),
                    delay(d.swapin_delay_ns, d.swapin_count),
                    delay(d.freepages_delay_ns, d.freepages_count),
                    delay(d.thrashing_delay_ns, d.thrashing_count),
                    d.tasks
                ),
                (None, reason) => format!(
                    "not measured ({})",
                    reason.as_deref().unwrap_or("no taskstats")
                ),
            },
        ));
        if let Some(line) = self.code_pages.as_ref().and_then(CodePages::show) {
            lines.push(("own code", line));
        }
        lines
    }

    /// [`KernelRun::show`]'s lines, each label padded to `width`.
    pub fn show_lines(&self, width: usize, indent: &str) -> String {
        let mut out = String::new();
        for (label, text) in self.show() {
            let _ = writeln!(out, "{indent}{label:<width$}{text}");
        }
        out
    }
}

/// A duration in milliseconds, for people.
pub fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

/// The frames that say what a task in D state waited for: the scheduler's own come first.
fn waiting_frames(stack: &[String]) -> impl Iterator<Item = &String> {
    stack
        .iter()
        .skip_while(|f| matches!(base_name(f), "__schedule" | "schedule"))
        .take(DSTATE_FRAMES_SHOWN)
}

/// Exit records received from the taskstats listener and not yet claimed by a run, each with
/// when it was drained from the socket.
#[derive(Debug, Default)]
struct ExitRecords {
    records: Vec<(Instant, u32, Delays)>,
}

impl ExitRecords {
    fn receive(&mut self, at: Instant, records: Vec<(u32, Delays)>) {
        self.records
            .extend(records.into_iter().map(|(tid, delays)| (at, tid, delays)));
    }

    /// The sum of the records of `tasks`, which are taken out.
    fn take(&mut self, tasks: &HashSet<u32>) -> Delays {
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.records)
            .into_iter()
            .partition(|(_, tid, _)| tasks.contains(tid));
        self.records = kept;
        let taken: Vec<(u32, Delays)> = taken.into_iter().map(|(_, t, d)| (t, d)).collect();
        taskstats::sum_of(&taken, tasks)
    }

    /// Forget the records drained before `oldest` (the start of the oldest run going on):
    /// their tasks exited before every such run began. `None` (no run going on): all.
    fn forget_before(&mut self, oldest: Option<Instant>) {
        match oldest {
            Some(oldest) => self.records.retain(|(at, _, _)| *at >= oldest),
            None => self.records.clear(),
        }
    }
}

struct State {
    tracer: Result<RunTracer, String>,
    /// The page-cache counts of the runs' code files.
    code: CodePageWatch,
    /// Each lane's run's code files and their counts at its start.
    running_code: Vec<Option<RunCode>>,
    exits: Result<ExitListener, String>,
    pending: ExitRecords,
    /// When each lane's run began; `None`: no run in that lane.
    running: Vec<Option<Instant>>,
}

impl State {
    fn drain_exits(&mut self) {
        if let Ok(exits) = &mut self.exits {
            let records = exits.drain();
            self.pending.receive(Instant::now(), records);
        }
    }
}

/// One process's run lanes and what measures their runs (see the module's text).
pub struct RunTracing {
    mounts: CgroupMounts,
    /// Each lane's cgroup parent, relative to a cgroup mount.
    lanes: Vec<PathBuf>,
    symbols: Symbols,
    delay_accounting: bool,
    state: Mutex<State>,
}

impl RunTracing {
    /// Lanes at `lanes` (cgroup parents relative to the mounts; each lane's cgroup2
    /// directory is made here and, with its v1 directories, removed on drop). What cannot be
    /// measured is told in each run's [`KernelRun`], never an error.
    pub fn start(mounts: CgroupMounts, lanes: Vec<PathBuf>) -> RunTracing {
        let delay_accounting = std::fs::read_to_string("/proc/sys/kernel/task_delayacct")
            .is_ok_and(|v| v.trim() == "1");
        let tracer = match &mounts.unified {
            None => Err("no cgroup2 mount to filter the runs' tasks by".to_owned()),
            Some(unified) => lanes
                .iter()
                .map(|lane| {
                    let group = unified.join(lane);
                    std::fs::create_dir_all(&group)
                        .map(|()| group.clone())
                        .map_err(|e| format!("cannot make cgroup `{}': {e}", group.display()))
                })
                .collect::<Result<Vec<PathBuf>, String>>()
                .and_then(|groups| RunTracer::start(&groups, delay_accounting)),
        };
        let exits = if delay_accounting {
            std::fs::read_to_string("/sys/devices/system/cpu/possible")
                .map_err(|e| format!("cannot read /sys/devices/system/cpu/possible: {e}"))
                .and_then(|cpus| ExitListener::start(&cpus))
        } else {
            Err("not listening: delay accounting is off".to_owned())
        };
        let symbols = if tracer.is_ok() {
            Symbols::read_host()
        } else {
            Symbols::default()
        };
        RunTracing {
            mounts,
            state: Mutex::new(State {
                tracer,
                code: CodePageWatch::start(),
                running_code: (0..lanes.len()).map(|_| None).collect(),
                exits,
                pending: ExitRecords::default(),
                running: vec![None; lanes.len()],
            }),
            lanes,
            symbols,
            delay_accounting,
        }
    }

    /// `count` lanes of this process below cgroup parent `parent`, `parent/judged-PID-I`,
    /// after removing those a killed judged left there (their directories are empty: runguard
    /// and the warm sandboxes remove the runs' groups, or the daemon's next start does).
    pub fn for_process(mounts: CgroupMounts, parent: &Path, count: usize) -> RunTracing {
        remove_dead_lanes(&mounts, parent, |pid| {
            Path::new("/proc").join(pid.to_string()).exists()
        });
        RunTracing::start(mounts, lanes_under(parent, count, std::process::id()))
    }

    pub fn lane_count(&self) -> usize {
        self.lanes.len()
    }

    /// Lane `lane`'s cgroup parent (runguard's `--cgroup-parent`).
    pub fn lane_parent(&self, lane: usize) -> &Path {
        &self.lanes[lane]
    }

    /// Lane `lane`'s directory in cgroup mount `mount`.
    pub fn lane_dir(&self, lane: usize, mount: &Path) -> PathBuf {
        mount.join(&self.lanes[lane])
    }

    /// Why runs' D-state time is not measured, if it is not.
    pub fn dstate_unavailable(&self) -> Option<String> {
        self.state().tracer.as_ref().err().cloned()
    }

    pub fn mounts(&self) -> &CgroupMounts {
        &self.mounts
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A run of lane `lane` is about to start; its code is paged in from `code` (host paths:
    /// see [`code_files`](super::code_files)).
    pub fn begin(&self, lane: usize, code: &[PathBuf]) {
        let mut state = self.state();
        state.running_code[lane] = Some(state.code.begin(code));
        // The host's exits until now are no run's: drained now, they are forgotten sooner.
        state.drain_exits();
        state.running[lane] = Some(Instant::now());
    }

    /// The run of lane `lane` is over (its runguard has returned): what the kernel told
    /// about it. The lane's entries are cleared for its next run.
    pub fn finish(&self, lane: usize) -> KernelRun {
        let mut state = self.state();
        state.running[lane] = None;
        let run_code = state.running_code[lane].take().unwrap_or_default();
        let (code_pages, code_pages_unavailable) = split(state.code.finish(run_code));
        let events = match &mut state.tracer {
            Ok(tracer) => u32::try_from(lane)
                .map_err(|e| e.to_string())
                .and_then(|lane| tracer.take(lane, &self.symbols)),
            Err(reason) => Err(reason.clone()),
        };
        let oldest = state.running.iter().flatten().min().copied();
        if oldest.is_none() {
            if let Ok(tracer) = &mut state.tracer {
                // Best effort: a stack left over only risks a later collision.
                let _ = tracer.clear_stacks();
            }
        }
        state.drain_exits();
        let delays = self.delays(&mut state, &events);
        state.pending.forget_before(oldest);
        let (delays, delays_unavailable) = split(delays);
        let (dstate, dstate_unavailable) = split(events.map(|e| e.dstate));
        KernelRun {
            dstate,
            dstate_unavailable,
            delays,
            delays_unavailable,
            code_pages,
            code_pages_unavailable,
        }
    }

    /// The run's delays: its tasks' exit records (the tracer knows which tasks were the run's).
    fn delays(
        &self,
        state: &mut State,
        events: &Result<RunEvents, String>,
    ) -> Result<Delays, String> {
        if !self.delay_accounting {
            return Err(
                "delay accounting is off (sysctl -w kernel.task_delayacct=1 turns it on)"
                    .to_owned(),
            );
        }
        if let Err(e) = &state.exits {
            return Err(format!("no taskstats exit records: {e}"));
        }
        let events = events
            .as_ref()
            .map_err(|e| format!("the run's tasks are told by eBPF, which is unavailable: {e}"))?;
        Ok(state.pending.take(&events.exited))
    }
}

/// The lanes of process `pid`: `parent/judged-PID-I` for I below `count`.
fn lanes_under(parent: &Path, count: usize, pid: u32) -> Vec<PathBuf> {
    (0..count)
        .map(|lane| parent.join(format!("judged-{pid}-{lane}")))
        .collect()
}

/// The process whose lane a directory named `name` is (`judged-PID-I`).
fn lane_owner(name: &str) -> Option<u32> {
    let (pid, lane) = name.strip_prefix("judged-")?.split_once('-')?;
    lane.parse::<usize>().ok()?;
    pid.parse().ok()
}

/// Remove the lane directories below `parent` of processes that `alive` says are gone.
fn remove_dead_lanes(mounts: &CgroupMounts, parent: &Path, alive: impl Fn(u32) -> bool) {
    for mount in &mounts.all {
        let Ok(entries) = std::fs::read_dir(mount.join(parent)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let dead = name
                .to_str()
                .and_then(lane_owner)
                .is_some_and(|pid| !alive(pid));
            if dead {
                // Best effort: a group still busy stays, and is told.
                if let Err(error) = std::fs::remove_dir(entry.path()) {
                    eprintln!(
                        "judged: cannot remove the run lane `{}' of a judged that is gone: \
                         {error}",
                        entry.path().display()
                    );
                }
            }
        }
    }
}

fn split<T>(result: Result<T, String>) -> (Option<T>, Option<String>) {
    match result {
        Ok(value) => (Some(value), None),
        Err(reason) => (None, Some(reason)),
    }
}

impl Drop for RunTracing {
    /// Remove each lane's directories (runguard removes the runs' own groups; the lanes are
    /// ours). The tracer goes first: it holds the cgroup2 directories.
    fn drop(&mut self) {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.tracer = Err("stopped".to_owned());
        for lane in 0..self.lanes.len() {
            for mount in &self.mounts.all {
                let dir = self.lane_dir(lane, mount);
                if dir.is_dir() {
                    if let Err(error) = std::fs::remove_dir(&dir) {
                        eprintln!("judged: cannot remove cgroup `{}': {error}", dir.display());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(blkio_delay_ns: u64) -> Delays {
        Delays {
            tasks: 1,
            blkio_count: 1,
            blkio_delay_ns,
            ..Delays::default()
        }
    }

    #[test]
    fn a_runs_exit_records_are_taken_once_and_the_rest_kept() {
        let mut records = ExitRecords::default();
        let start = Instant::now();
        records.receive(
            start,
            vec![(10, delays(5)), (11, delays(7)), (99, delays(1000))],
        );
        let run = HashSet::from([10, 11]);
        let sum = records.take(&run);
        assert_eq!((sum.tasks, sum.blkio_delay_ns), (2, 12));
        assert_eq!(records.take(&run), Delays::default(), "taken twice");
        // Another lane's task is still there for its run.
        assert_eq!(records.take(&HashSet::from([99])).blkio_delay_ns, 1000);
    }

    #[test]
    fn records_drained_before_every_running_run_began_are_forgotten() {
        let mut records = ExitRecords::default();
        let early = Instant::now();
        let later = early + Duration::from_millis(5);
        records.receive(early, vec![(1, delays(1))]);
        records.receive(later, vec![(2, delays(2))]);
        records.forget_before(Some(later));
        assert_eq!(records.take(&HashSet::from([1, 2])).blkio_delay_ns, 2);
        records.receive(later, vec![(3, delays(3))]);
        records.forget_before(None);
        assert_eq!(records.take(&HashSet::from([3])), Delays::default());
    }

    #[test]
    fn lanes_are_named_by_process_and_index_under_the_parent() {
        let lanes = lanes_under(Path::new("judged"), 2, 41);
        assert_eq!(
            lanes,
            [
                PathBuf::from("judged/judged-41-0"),
                PathBuf::from("judged/judged-41-1")
            ]
        );
        assert_eq!(lane_owner("judged-41-1"), Some(41));
        for other in [
            "judged-41",
            "judged-x-1",
            "run-41-0",
            "judged-41-1x",
            "diagnose-41",
        ] {
            assert_eq!(lane_owner(other), None, "{other}");
        }
    }

    #[test]
    fn only_the_lanes_of_processes_that_are_gone_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let mounts = CgroupMounts {
            all: vec![root.path().join("memory"), root.path().join("unified")],
            unified: Some(root.path().join("unified")),
            memory: None,
        };
        for mount in &mounts.all {
            for name in ["judged-10-0", "judged-10-1", "judged-11-0", "run-10-0"] {
                std::fs::create_dir_all(mount.join("judged").join(name)).unwrap();
            }
        }
        remove_dead_lanes(&mounts, Path::new("judged"), |pid| pid == 11);
        for mount in &mounts.all {
            let mut left: Vec<String> = std::fs::read_dir(mount.join("judged"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            left.sort();
            assert_eq!(left, ["judged-11-0", "run-10-0"]);
        }
    }

    #[test]
    fn a_summary_keeps_the_top_stacks_and_says_why_delays_are_missing() {
        let stack = |ms: u64| DStateStack {
            stack: vec![format!("frame{ms}")],
            sleeps: events::Totals {
                count: 1,
                total_ns: ms * 1_000_000,
                max_ns: ms * 1_000_000,
            },
        };
        let run = KernelRun {
            dstate: Some(DState {
                total_ns: 10_000_000,
                count: 4,
                stacks: vec![stack(4), stack(3), stack(2), stack(1)],
            }),
            dstate_unavailable: None,
            delays: None,
            delays_unavailable: Some("delay accounting is off".to_owned()),
            ..KernelRun::default()
        };
        let summary = run.summary();
        assert_eq!(summary.dstate_ms, Some(10.0));
        assert_eq!(summary.dstate_top_stacks.len(), DSTATE_STACKS_SHOWN);
        assert_eq!(summary.dstate_top_stacks[0].stack, ["frame4"]);
        let text = run.show_lines(14, "");
        assert!(
            text.contains("D state       10.0 ms in 4 sleeps, by stack:"),
            "{text}"
        );
        assert!(
            text.contains("not measured (delay accounting is off)"),
            "{text}"
        );
    }

    #[test]
    fn memory_comes_from_v1_on_hybrid_and_from_cgroup2_on_v2() {
        let hybrid = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let mounts = CgroupMounts::from_mounts(&procfs::parse_mountinfo(hybrid));
        assert_eq!(mounts.memory, Some(("/sys/fs/cgroup/memory".into(), true)));
        assert_eq!(mounts.unified, Some("/sys/fs/cgroup/unified".into()));
        assert_eq!(mounts.all.len(), 2);
        let v2 = "25 24 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let mounts = CgroupMounts::from_mounts(&procfs::parse_mountinfo(v2));
        assert_eq!(mounts.memory, Some(("/sys/fs/cgroup".into(), false)));
    }
}
