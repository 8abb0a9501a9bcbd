//! The host watcher in the daemon (`[diagnostics] host_watch`): the windows of
//! [`crate::diagnostics::hostwatch`] closed every `host_window` on a thread of its own (the
//! eBPF reads and the host samples block; the runtime's threads must not), a bounded history
//! of the recent ones for `GET /host`, the `judged_host_findings_total{kind}` counters, and
//! the [`HostFindings`] source the judgings ask about each test case run.
//!
//! A judging thread asking about a run that ended in the open window waits on a condition
//! variable until the watcher closes it (see `judge.rs` for why waiting rather than closing
//! early); the wait is bounded, so a watcher that stalls or stops delays no judging for long.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;

use super::metrics::KindLabel;
use crate::diagnostics::ebpf::Status;
use crate::diagnostics::hostwatch::{
    disturbing_over, HostFinding, HostFindings, HostReport, HostWatch, Interval, Window, WindowSpan,
};
use crate::diagnostics::psi::{PsiStatus, Woken};
use crate::diagnostics::thresholds::HostThresholds;
use crate::diagnostics::Finding;

/// How far back the history reaches: a judging's results are given their host findings when
/// its last test case is done, so its first run's windows must still be there.
pub const HISTORY: Duration = Duration::from_secs(30 * 60);
/// Windows `GET /host` shows by default (the newest).
pub const SHOWN_WINDOWS: usize = 60;
/// Beyond the window's length, how long a time limit waits for the window of its run's end.
const WAIT_SLACK: Duration = Duration::from_secs(5);

/// A closed window as kept and shown: when, how long, the host readings, the findings (all of
/// them; the judgings take those that disturb timing).
#[derive(Debug, Clone, Serialize)]
pub struct KeptWindow {
    #[serde(flatten)]
    pub span: WindowSpan,
    pub window_s: f64,
    pub host: HostReport,
    pub findings: Vec<Finding>,
}

impl KeptWindow {
    fn of(window: Window) -> KeptWindow {
        KeptWindow {
            window_s: (window.length().as_secs_f64() * 1000.0).round() / 1000.0,
            span: window.span,
            host: window.host,
            findings: window.findings,
        }
    }
}

#[derive(Default)]
struct State {
    /// `None` until the watcher has started.
    status: Option<Status>,
    psi: Option<PsiStatus>,
    /// When the open window began (`CLOCK_MONOTONIC`).
    open_since: Option<Duration>,
    windows: VecDeque<KeptWindow>,
    stopped: bool,
}

/// The daemon's host watcher, shared by its thread, the judgings and the API.
pub struct HostWatcher {
    window: Duration,
    keep: usize,
    state: Mutex<State>,
    closed: Condvar,
}

/// What `GET /host` shows.
#[derive(Debug, Serialize)]
pub struct HostView {
    pub window_s: f64,
    /// `None` while the eBPF programs are being loaded.
    pub ebpf: Option<Status>,
    pub ebpf_state: Option<String>,
    /// Which PSI triggers are registered, and why not the others.
    pub psi_triggers: Option<PsiStatus>,
    pub psi_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_since_monotonic_s: Option<f64>,
    pub stopped: bool,
    /// The newest windows, oldest first.
    pub windows: Vec<KeptWindow>,
}

impl HostWatcher {
    /// A watcher closing a window every `window`, keeping [`HISTORY`] of them.
    pub fn new(window: Duration) -> Arc<HostWatcher> {
        let keep = (HISTORY.as_secs_f64() / window.as_secs_f64()).ceil() as usize;
        Arc::new(HostWatcher {
            window,
            keep: keep.max(SHOWN_WINDOWS),
            state: Mutex::default(),
            closed: Condvar::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Run the watcher on a thread of its own until `stop` (a pipe's read end) is readable or
    /// hung up, i.e. its write end is closed; the last, partial window is closed then, so no
    /// run waits for a window that never closes.
    pub fn spawn(
        self: &Arc<Self>,
        thresholds: HostThresholds,
        counts: Family<KindLabel, Counter>,
        stop: OwnedFd,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let this = self.clone();
        std::thread::Builder::new()
            .name("judged-hostwatch".into())
            .spawn(move || this.run(thresholds, &counts, &stop))
    }

    fn run(&self, thresholds: HostThresholds, counts: &Family<KindLabel, Counter>, stop: &OwnedFd) {
        let mut watch = HostWatch::start(thresholds);
        eprintln!(
            "judged serve: host watcher, {} s windows: {}",
            self.window.as_secs_f64(),
            watch.status().describe()
        );
        eprintln!("judged serve: {}", watch.psi_status().describe());
        {
            let mut state = self.state();
            state.status = Some(watch.status().clone());
            state.psi = Some(watch.psi_status().clone());
            state.open_since = Some(watch.opened());
        }
        let mut deadline = Instant::now() + self.window;
        loop {
            let stopping = watch.wait(deadline, Some(stop.as_fd())) == Woken::Wake;
            let window = watch.close();
            for finding in &window.findings {
                counts
                    .get_or_create(&KindLabel {
                        kind: finding.kind.name(),
                    })
                    .inc();
            }
            self.push(window, watch.opened());
            // A trigger of a removed cgroup is dropped while waiting.
            self.state().psi = Some(watch.psi_status().clone());
            if stopping {
                break;
            }
            // On schedule, unless a window took longer than its length to close.
            deadline = (deadline + self.window).max(Instant::now());
        }
        // Detach the eBPF programs before saying so.
        drop(watch);
        self.state().stopped = true;
        self.closed.notify_all();
    }

    /// Keep a closed window (dropping the oldest beyond the history) and wake the judgings
    /// waiting for it.
    fn push(&self, window: Window, open_since: Duration) {
        let mut state = self.state();
        state.windows.push_back(KeptWindow::of(window));
        while state.windows.len() > self.keep {
            state.windows.pop_front();
        }
        state.open_since = Some(open_since);
        drop(state);
        self.closed.notify_all();
    }

    /// `GET /host`: the state and the newest `limit` windows.
    pub fn view(&self, limit: usize) -> HostView {
        let state = self.state();
        let skip = state.windows.len().saturating_sub(limit);
        HostView {
            window_s: self.window.as_secs_f64(),
            ebpf_state: state.status.as_ref().map(Status::describe),
            ebpf: state.status.clone(),
            psi_state: state.psi.as_ref().map(PsiStatus::describe),
            psi_triggers: state.psi.clone(),
            open_since_monotonic_s: state.open_since.map(|t| t.as_secs_f64()),
            stopped: state.stopped,
            windows: state.windows.iter().skip(skip).cloned().collect(),
        }
    }
}

impl HostFindings for HostWatcher {
    fn over(&self, run: Interval) -> Vec<HostFinding> {
        let deadline = Instant::now() + self.window + WAIT_SLACK;
        let mut state = self.state();
        while !state.stopped
            && state
                .windows
                .back()
                .is_none_or(|last| last.span.monotonic.end < run.end)
        {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprintln!(
                    "judged serve: the host watcher closed no window for {:.1} s; a run is \
                     judged on the windows closed so far",
                    (self.window + WAIT_SLACK).as_secs_f64()
                );
                break;
            }
            state = self
                .closed
                .wait_timeout(state, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        State::disturbing_over(&state, run)
    }

    fn closed_over(&self, run: Interval) -> Vec<HostFinding> {
        State::disturbing_over(&self.state(), run)
    }
}

impl State {
    fn disturbing_over(&self, run: Interval) -> Vec<HostFinding> {
        disturbing_over(
            self.windows
                .iter()
                .map(|kept| (&kept.span, kept.findings.as_slice())),
            run,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::events::EventWindow;
    use crate::diagnostics::hostwatch::monotonic_now;
    use crate::diagnostics::Kind;

    fn window(number: u64, start: Duration, end: Duration, kinds: &[Kind]) -> Window {
        Window {
            span: WindowSpan {
                window: number,
                monotonic: Interval { start, end },
                wall_start: 0.0,
                wall_end: 0.0,
            },
            events: EventWindow::default(),
            host: HostReport::default(),
            findings: kinds
                .iter()
                .map(|&kind| Finding {
                    kind,
                    summary: kind.name(),
                    evidence: Default::default(),
                    remedy: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_run_ending_in_the_open_window_waits_for_it_to_close() {
        let watcher = HostWatcher::new(Duration::from_secs(1));
        let now = monotonic_now();
        let ms = Duration::from_millis;
        watcher.push(window(1, now - ms(100), now, &[]), now);
        // The run ends after the last closed window: its answer waits for the next one.
        let run = Interval {
            start: now - ms(50),
            end: now + ms(10),
        };
        let asking = {
            let watcher = watcher.clone();
            std::thread::spawn(move || watcher.over(run))
        };
        std::thread::sleep(ms(200));
        assert!(!asking.is_finished(), "answered before the window closed");
        assert_eq!(watcher.closed_over(run), [], "only window 1 is closed");
        watcher.push(
            window(2, now, now + ms(300), &[Kind::IpcNsTeardown]),
            now + ms(300),
        );
        let found: Vec<(u64, Kind)> = asking
            .join()
            .unwrap()
            .iter()
            .map(|h| (h.window.window, h.finding.kind))
            .collect();
        assert_eq!(found, [(2, Kind::IpcNsTeardown)]);
    }

    #[test]
    fn a_stopped_watcher_answers_with_what_it_has() {
        let watcher = HostWatcher::new(Duration::from_secs(60));
        watcher.state().stopped = true;
        let later = monotonic_now() + Duration::from_secs(3600);
        let started = Instant::now();
        let found = watcher.over(Interval {
            start: later,
            end: later,
        });
        assert!(found.is_empty());
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn the_history_is_bounded_and_the_view_shows_the_newest() {
        let watcher = HostWatcher::new(HISTORY / 2);
        assert_eq!(watcher.keep, SHOWN_WINDOWS);
        for n in 1..=(SHOWN_WINDOWS as u64 + 5) {
            let at = Duration::from_secs(n);
            watcher.push(window(n, at, at + Duration::from_secs(1), &[]), at);
        }
        let numbers =
            |view: HostView| -> Vec<u64> { view.windows.iter().map(|w| w.span.window).collect() };
        let all = numbers(watcher.view(usize::MAX));
        assert_eq!(all.len(), SHOWN_WINDOWS);
        assert_eq!(all[0], 6);
        assert_eq!(numbers(watcher.view(2)), [64, 65]);
    }
}
