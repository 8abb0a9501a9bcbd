//! The host watcher's windows, shared by `judged watch` (which prints each) and `judged serve`
//! (which keeps the recent ones and marks the test case runs they overlap).
//!
//! [`HostWatch::start`] starts the eBPF [`Watcher`] (or, where it cannot run, keeps to the
//! [`HostSample`] readings), registers the PSI triggers ([`psi`]) and opens the first window;
//! [`HostWatch::wait`] waits for the window's end, noting the triggers that fire meanwhile;
//! each [`HostWatch::close`] reads what
//! was counted since, takes a new host sample, classifies the window and opens the next one
//! where this one ended, so windows tile time without gaps. A closed [`Window`] carries its
//! time range in both clocks: `CLOCK_MONOTONIC` to compare with run intervals (measured in
//! the same clock, immune to clock steps) and the wall clock for people.
//!
//! Attaching windows to runs is pure: [`disturbing_over`] picks, from a list of windows, the
//! findings that disturb timing ([`Kind::disturbs_timing`]) of each window a run's
//! [`Interval`] overlaps. The judge asks a [`HostFindings`] source, so it can be tested with
//! a fake one.

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::ebpf::{Status, Watcher};
use super::events::{self, EventWindow};
use super::host::{self, HostSample, KernelFacts};
use super::kallsyms::Symbols;
use super::kernel::{self, KernelVersion};
use super::procfs;
use super::psi::{PsiEvent, PsiStatus, PsiTriggers, Target, Woken};
use super::thresholds::HostThresholds;
use super::throttled::{self, ThrottleSample, ThrottleWatch, Throttled};
use super::{Finding, Kind};

/// A span of `CLOCK_MONOTONIC` time (since boot), as runs and windows are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Interval {
    #[serde(with = "runner::report::seconds", rename = "monotonic_start_s")]
    pub start: Duration,
    #[serde(with = "runner::report::seconds", rename = "monotonic_end_s")]
    pub end: Duration,
}

impl Interval {
    /// Whether the two share any time (touching ends count: a window that closed the instant
    /// a run started may hold the stall that delayed its start).
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

/// Now on `CLOCK_MONOTONIC`.
pub fn monotonic_now() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(Duration::from)
        .expect("CLOCK_MONOTONIC is always readable")
}

/// Seconds since the Unix epoch.
fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// Where and when a window was: its number (from 1, per watcher) and its time in both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowSpan {
    pub window: u64,
    #[serde(flatten)]
    pub monotonic: Interval,
    /// Seconds since the Unix epoch.
    pub wall_start: f64,
    pub wall_end: f64,
}

/// The host's readings of a window, as `judged watch` and `GET /host` show them.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct HostReport {
    pub dying_cgroups: Option<u64>,
    pub mqueue_inodes: Option<u64>,
    pub pressure_some_ms: Option<PressureMs>,
    /// judged's own cgroup and its ancestors that their CPU quota throttled in the window.
    pub throttled_cgroups: Vec<Throttled>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct PressureMs {
    pub cpu: f64,
    pub io: f64,
    pub memory: f64,
}

fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

impl HostReport {
    pub fn of(before: &HostSample, after: &HostSample) -> HostReport {
        HostReport {
            dying_cgroups: after.dying_cgroups,
            mqueue_inodes: after.mqueue_inodes,
            pressure_some_ms: before.pressure.zip(after.pressure).map(|(b, a)| {
                let stall = a.since(&b);
                PressureMs {
                    cpu: ms(stall.cpu),
                    io: ms(stall.io),
                    memory: ms(stall.memory),
                }
            }),
            throttled_cgroups: Vec::new(),
        }
    }
}

/// A window's findings: from the eBPF counts, then from the host readings. The host's
/// `ipc-ns-teardown` (from the mqueue slab) is left out when the counts already gave one.
pub fn findings(
    events_window: &EventWindow,
    before: &HostSample,
    after: &HostSample,
    window: Duration,
    kernel: KernelFacts,
    t: &HostThresholds,
) -> Vec<Finding> {
    let mut all = events::classify(events_window, window, kernel, t);
    let ipc = all.iter().any(|f| f.kind == Kind::IpcNsTeardown);
    all.extend(
        host::classify(before, after, window, None, kernel, t)
            .into_iter()
            .filter(|f| !(ipc && f.kind == Kind::IpcNsTeardown)),
    );
    all
}

/// One closed window: when it was, what the eBPF programs counted, the host's readings and
/// the findings.
#[derive(Debug, Clone)]
pub struct Window {
    pub span: WindowSpan,
    pub events: EventWindow,
    pub host: HostReport,
    pub findings: Vec<Finding>,
}

impl Window {
    pub fn length(&self) -> Duration {
        self.span
            .monotonic
            .end
            .saturating_sub(self.span.monotonic.start)
    }
}

/// The watcher between windows: the eBPF programs (if any run), what the remedies and stacks
/// need, and the open window's start.
pub struct HostWatch {
    watcher: Option<Watcher>,
    status: Status,
    symbols: Symbols,
    kernel: KernelFacts,
    cgroup2: Option<PathBuf>,
    thresholds: HostThresholds,
    psi: PsiTriggers,
    /// Triggers fired in the open window.
    fired: Vec<PsiEvent>,
    before: HostSample,
    /// judged's own cgroup and its ancestors, whose CPU quota would slow every run.
    throttle: ThrottleWatch,
    throttle_before: ThrottleSample,
    opened: Duration,
    opened_wall: f64,
    closed: u64,
}

fn own_mounts() -> Vec<procfs::Mount> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| procfs::parse_mountinfo(&text))
        .unwrap_or_default()
}

impl HostWatch {
    /// Start the eBPF programs (their state is [`HostWatch::status`]; none running is a
    /// state, not an error) and open the first window. Counts from before it are dropped.
    pub fn start(thresholds: HostThresholds) -> HostWatch {
        let (watcher, status) = Watcher::start();
        HostWatch::open(watcher, status, thresholds)
    }

    /// Open the first window with `watcher` (if any) counting.
    fn open(mut watcher: Option<Watcher>, status: Status, thresholds: HostThresholds) -> HostWatch {
        let root = Path::new("/");
        let kallsyms = std::fs::read_to_string("/proc/kallsyms").ok();
        let symbols = kallsyms.as_deref().map(Symbols::parse).unwrap_or_default();
        let version = KernelVersion::read(root);
        let kernel = KernelFacts {
            version,
            ipc_teardown: kernel::ipc_teardown(version, kallsyms.as_deref()),
        };
        drop(kallsyms);
        let mounts = own_mounts();
        let cgroup2 = mounts
            .iter()
            .find(|m| m.fstype == "cgroup2")
            .map(|m| m.point.clone());
        let own_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let throttle = ThrottleWatch::of_process(root, &mounts, &own_cgroup);
        // The host's, and the group judged's runs live under where the host has one.
        let mut targets = vec![Target::Host];
        if let Some(group) = cgroup2
            .as_deref()
            .map(|dir| dir.join(runner::plan::DEFAULT_CGROUP_PARENT))
            .filter(|group| group.is_dir())
        {
            targets.push(Target::Cgroup(group));
        }
        let psi = PsiTriggers::register(root, &targets, &thresholds);
        if let Some(watcher) = watcher.as_mut() {
            watcher.collect(&symbols);
        }
        let before = HostSample::read(root, cgroup2.as_deref());
        let throttle_before = throttle.sample();
        HostWatch {
            watcher,
            status,
            symbols,
            kernel,
            cgroup2,
            thresholds,
            psi,
            fired: Vec::new(),
            before,
            throttle,
            throttle_before,
            opened: monotonic_now(),
            opened_wall: wall_now(),
            closed: 0,
        }
    }

    /// What the eBPF watcher could set up.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Which PSI triggers are registered, and why not the others.
    pub fn psi_status(&self) -> &PsiStatus {
        self.psi.status()
    }

    /// Wait until `deadline` (the window's end) or until `wake` is readable, noting the PSI
    /// triggers that fire meanwhile as findings of the open window.
    pub fn wait(&mut self, deadline: Instant, wake: Option<BorrowedFd<'_>>) -> Woken {
        self.psi.wait(deadline, wake, &mut self.fired)
    }

    /// Whether eBPF programs run but kernel addresses cannot be named.
    pub fn lacks_symbols(&self) -> bool {
        self.watcher.is_some() && self.symbols.is_empty()
    }

    /// When the open window began (`CLOCK_MONOTONIC`).
    pub fn opened(&self) -> Duration {
        self.opened
    }

    /// Close the open window (read and reset the counts, sample the host, classify) and open
    /// the next one where it ended.
    pub fn close(&mut self) -> Window {
        let events = self
            .watcher
            .as_mut()
            .map(|w| w.collect(&self.symbols))
            .unwrap_or_default();
        let after = HostSample::read(Path::new("/"), self.cgroup2.as_deref());
        let ended = monotonic_now();
        let ended_wall = wall_now();
        let length = ended.saturating_sub(self.opened);
        self.closed += 1;
        let mut findings = findings(
            &events,
            &self.before,
            &after,
            length,
            self.kernel,
            &self.thresholds,
        );
        findings.extend(self.fired.drain(..).map(|event| event.finding()));
        let throttle_after = self.throttle.sample();
        let throttled = throttled::throttled_between(&self.throttle_before, &throttle_after);
        findings.extend(throttled::classify(&throttled, &self.thresholds));
        self.throttle_before = throttle_after;
        let mut host = HostReport::of(&self.before, &after);
        host.throttled_cgroups = throttled;
        let window = Window {
            span: WindowSpan {
                window: self.closed,
                monotonic: Interval {
                    start: self.opened,
                    end: ended,
                },
                wall_start: self.opened_wall,
                wall_end: ended_wall,
            },
            findings,
            host,
            events,
        };
        self.before = after;
        self.opened = ended;
        self.opened_wall = ended_wall;
        window
    }
}

/// A host finding that disturbed a run, with the window it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostFinding {
    pub window: WindowSpan,
    pub finding: Finding,
}

/// The host findings over a run: what the judge asks about each test case run.
pub trait HostFindings: Send + Sync {
    /// The findings that disturb timing of every window overlapping `run`. Blocks until the
    /// window holding `run.end` is closed (a stall late in the run must not be missed), or
    /// the source gives up waiting (its watcher stopped): then what is known.
    fn over(&self, run: Interval) -> Vec<HostFinding>;

    /// The same of the windows closed so far, without waiting for the open one.
    fn closed_over(&self, run: Interval) -> Vec<HostFinding>;
}

/// Of `windows`, the findings that disturb timing of each one `run` overlaps, in window order.
pub fn disturbing_over<'w>(
    windows: impl IntoIterator<Item = (&'w WindowSpan, &'w [Finding])>,
    run: Interval,
) -> Vec<HostFinding> {
    windows
        .into_iter()
        .filter(|(span, _)| span.monotonic.overlaps(&run))
        .flat_map(|(span, findings)| {
            findings
                .iter()
                .filter(|finding| finding.kind.disturbs_timing())
                .map(|finding| HostFinding {
                    window: *span,
                    finding: finding.clone(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::events::WorkFunction;
    use crate::diagnostics::procfs::Pressure;
    use crate::diagnostics::thresholds::Thresholds;

    fn s(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    fn interval(start: f64, end: f64) -> Interval {
        Interval {
            start: s(start),
            end: s(end),
        }
    }

    #[test]
    fn intervals_overlap_when_they_share_time() {
        let window = interval(10.0, 11.0);
        let table = [
            ("inside", interval(10.2, 10.5), true),
            ("across the start", interval(9.5, 10.1), true),
            ("across the end", interval(10.9, 11.3), true),
            ("covering", interval(9.0, 12.0), true),
            ("ending at the start", interval(9.0, 10.0), true),
            ("before", interval(9.0, 9.99), false),
            ("after", interval(11.01, 11.5), false),
        ];
        for (name, run, expected) in table {
            assert_eq!(window.overlaps(&run), expected, "{name}");
            assert_eq!(run.overlaps(&window), expected, "{name}, reversed");
        }
    }

    fn finding(kind: Kind) -> Finding {
        Finding::new(kind, format!("{} happened", kind.name()), "wait")
    }

    fn span(window: u64, start: f64, end: f64) -> WindowSpan {
        WindowSpan {
            window,
            monotonic: interval(start, end),
            wall_start: 1_700_000_000.0 + start,
            wall_end: 1_700_000_000.0 + end,
        }
    }

    #[test]
    fn a_run_gets_the_disturbing_findings_of_the_windows_it_overlaps() {
        let windows = [
            (span(1, 0.0, 1.0), vec![finding(Kind::IpcNsTeardown)]),
            (
                span(2, 1.0, 2.0),
                vec![finding(Kind::DyingCgroups), finding(Kind::HostPressure)],
            ),
            (span(3, 2.0, 3.0), vec![finding(Kind::CgroupLockContention)]),
        ];
        let over = |start, end| {
            disturbing_over(
                windows.iter().map(|(span, f)| (span, f.as_slice())),
                interval(start, end),
            )
            .into_iter()
            .map(|h| (h.window.window, h.finding.kind))
            .collect::<Vec<_>>()
        };
        assert_eq!(over(0.2, 0.4), [(1, Kind::IpcNsTeardown)]);
        // Dying cgroups pile up over hours: they do not stretch one run.
        assert_eq!(
            over(0.5, 1.5),
            [(1, Kind::IpcNsTeardown), (2, Kind::HostPressure)]
        );
        assert_eq!(over(2.5, 2.6), [(3, Kind::CgroupLockContention)]);
        assert_eq!(over(3.5, 4.0), []);
    }

    #[test]
    fn host_pressure_is_the_windows_difference() {
        let at = |cpu_ms| HostSample {
            pressure: Some(Pressure {
                cpu: Duration::from_millis(cpu_ms),
                ..Pressure::default()
            }),
            ..HostSample::default()
        };
        let report = HostReport::of(&at(100), &at(350));
        assert_eq!(report.pressure_some_ms.unwrap().cpu, 250.0);
        assert_eq!(
            HostReport::of(&HostSample::default(), &at(1)).pressure_some_ms,
            None
        );
    }

    #[test]
    fn one_ipc_finding_per_window() {
        let t = Thresholds::default();
        let backlog = HostSample {
            mqueue_inodes: Some(5000),
            ..HostSample::default()
        };
        let quiet = EventWindow::default();
        let busy = EventWindow {
            workqueue: Some(vec![WorkFunction {
                function: "free_ipc".to_owned(),
                count: 100,
                latency_count: 100,
                latency_total_ns: 900_000_000,
                latency_max_ns: 300_000_000,
                ..WorkFunction::default()
            }]),
            locks: None,
            forks: None,
        };
        let kinds = |events: &EventWindow| {
            findings(
                events,
                &backlog,
                &backlog,
                Duration::from_secs(10),
                KernelFacts::default(),
                &t.host,
            )
            .into_iter()
            .map(|f| (f.kind, f.evidence.contains_key("free_ipc_items")))
            .collect::<Vec<_>>()
        };
        assert_eq!(kinds(&quiet), [(Kind::IpcNsTeardown, false)]);
        assert_eq!(kinds(&busy), [(Kind::IpcNsTeardown, true)]);
    }

    #[test]
    fn windows_tile_time() {
        // The host readings only: the eBPF programs need root and are tested in tests/watch.rs.
        let mut watch = HostWatch::open(None, Status::default(), Thresholds::default().host);
        let opened = watch.opened();
        let first = watch.close();
        let second = watch.close();
        assert_eq!(first.span.monotonic.start, opened);
        assert_eq!(first.span.monotonic.end, second.span.monotonic.start);
        assert_eq!(first.span.wall_end, second.span.wall_start);
        assert_eq!((first.span.window, second.span.window), (1, 2));
        assert!(second.span.monotonic.end >= second.span.monotonic.start);
    }
}
