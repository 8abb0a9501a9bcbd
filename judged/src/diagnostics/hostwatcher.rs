//! The host watcher on a thread of its own, shared by the daemon (`[diagnostics] host_watch`,
//! `host_window`) and `judged run` (`--host-window`, `--no-host-watch`): the windows of
//! [`crate::diagnostics::hostwatch`] closed every window length (the eBPF reads and the host
//! samples block; the judging's threads must not), a bounded history of the recent ones, and
//! the [`HostFindings`] source a judging asks about each test case run.
//!
//! A judging thread asking about a run that ended in the open window waits on a condition
//! variable until the watcher closes it (see `judge.rs` for why waiting rather than closing
//! early); the wait is bounded, so a watcher that stalls or stops delays no judging for long.
//! [`HostWatcher::start`] returns a [`Running`] watcher: dropping it closes the last,
//! partial window (so no run waits for a window that never closes) and detaches the eBPF
//! programs before it returns.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::ebpf::Status;
use super::hostwatch::{
    disturbing_over, HostFinding, HostFindings, HostReport, HostWatch, Interval, Window, WindowSpan,
};
use super::psi::{PsiStatus, Woken};
use super::thresholds::HostThresholds;
use super::Finding;

/// The window's length unless told: short, since a time limit waits for the window holding
/// its run's end before it is decided.
pub const DEFAULT_WINDOW_SECS: f64 = 1.0;
/// Shortest and longest windows: below 0.1 s a window's reading costs more than it shows;
/// above a minute a time limit would wait that long for its run's window.
pub const WINDOW_RANGE_SECS: (f64, f64) = (0.1, 60.0);
/// How far back the history reaches: a judging's results are given their host findings when
/// its last test case is done, so its first run's windows must still be there.
pub const HISTORY: Duration = Duration::from_secs(30 * 60);
/// Beyond the window's length, how long a time limit waits for the window of its run's end.
const WAIT_SLACK: Duration = Duration::from_secs(5);
/// How long [`HostWatcher::wait_started`] waits for the eBPF programs to load (well under a
/// second here).
pub const START_WAIT: Duration = Duration::from_secs(30);

/// `seconds` as a window length, or what is wrong with it (for the caller to name the key or
/// option it came from).
pub fn window_length(seconds: f64) -> Result<Duration, String> {
    let (shortest, longest) = WINDOW_RANGE_SECS;
    if (shortest..=longest).contains(&seconds) {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(format!(
            "{seconds} is not a window length: give seconds from {shortest} to {longest}"
        ))
    }
}

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

/// What the watcher's thread shares with the judgings and the daemon's `GET /host`.
#[derive(Default)]
pub(crate) struct State {
    /// `None` until the watcher has started.
    pub(crate) status: Option<Status>,
    pub(crate) psi: Option<PsiStatus>,
    /// When the open window began (`CLOCK_MONOTONIC`).
    pub(crate) open_since: Option<Duration>,
    pub(crate) windows: VecDeque<KeptWindow>,
    pub(crate) stopped: bool,
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

/// A host watcher, shared by its thread and the judgings (and the daemon's API).
pub struct HostWatcher {
    /// Who is watching, as its messages on stderr begin (`judged serve`, `judged run`).
    who: &'static str,
    window: Duration,
    keep: usize,
    state: Mutex<State>,
    closed: Condvar,
}

/// What the watcher could set up, for people and programs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchState {
    pub window_s: f64,
    /// The eBPF programs' state ([`Status::describe`]); `None` if the watcher had not started.
    pub ebpf: Option<String>,
    /// Which PSI triggers are registered ([`PsiStatus::describe`]).
    pub psi: Option<String>,
}

impl HostWatcher {
    /// A watcher closing a window every `window`, keeping [`HISTORY`] of them, and at least
    /// `at_least`.
    pub fn new(who: &'static str, window: Duration, at_least: usize) -> Arc<HostWatcher> {
        let keep = (HISTORY.as_secs_f64() / window.as_secs_f64()).ceil() as usize;
        Arc::new(HostWatcher {
            who,
            window,
            keep: keep.max(at_least),
            state: Mutex::default(),
            closed: Condvar::new(),
        })
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the watcher could set up, so far.
    pub fn watch_state(&self) -> WatchState {
        let state = self.state();
        WatchState {
            window_s: self.window.as_secs_f64(),
            ebpf: state.status.as_ref().map(Status::describe),
            psi: state.psi.as_ref().map(PsiStatus::describe),
        }
    }

    /// Start the watcher on a thread of its own, telling `each` of every window it closes,
    /// until the returned [`Running`] is dropped.
    pub fn start(
        self: &Arc<Self>,
        thresholds: HostThresholds,
        each: impl FnMut(&Window) + Send + 'static,
    ) -> std::io::Result<Running> {
        // Close-on-exec, or the runguard and keeper processes started meanwhile would hold
        // the write end open and the watcher would never hear it close.
        let (stopped, stop) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let this = self.clone();
        let thread = std::thread::Builder::new()
            .name("judged-hostwatch".into())
            .spawn(move || this.run(thresholds, each, &stopped))?;
        Ok(Running {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Close windows until `stop` (a pipe's read end) is readable or hung up; the last,
    /// partial window is closed then.
    fn run(&self, thresholds: HostThresholds, mut each: impl FnMut(&Window), stop: &OwnedFd) {
        let mut watch = HostWatch::start(thresholds);
        eprintln!(
            "{}: host watcher, {} s windows: {}",
            self.who,
            self.window.as_secs_f64(),
            watch.status().describe()
        );
        eprintln!("{}: {}", self.who, watch.psi_status().describe());
        self.started(
            watch.status().clone(),
            watch.psi_status().clone(),
            watch.opened(),
        );
        let mut deadline = Instant::now() + self.window;
        loop {
            let stopping = watch.wait(deadline, Some(stop.as_fd())) == Woken::Wake;
            let window = watch.close();
            each(&window);
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

    /// The first window is open since `opened`: tell whoever waits for it.
    fn started(&self, status: Status, psi: PsiStatus, opened: Duration) {
        let mut state = self.state();
        state.status = Some(status);
        state.psi = Some(psi);
        state.open_since = Some(opened);
        drop(state);
        self.closed.notify_all();
    }

    /// Wait until the first window is open (the eBPF programs loaded, or known not to load),
    /// so that every run from then on overlaps a window, or for at most [`START_WAIT`].
    pub fn wait_started(&self) {
        let (state, in_time) = self.wait_until(START_WAIT, |state| state.open_since.is_some());
        drop(state);
        if !in_time {
            eprintln!(
                "{}: the host watcher did not start in {} s; going on without waiting",
                self.who,
                START_WAIT.as_secs()
            );
        }
    }

    /// Wait until `done` holds of the state, the watcher stopped or `wait` passed; the state,
    /// and whether it was not `wait` passing that ended the wait.
    fn wait_until(
        &self,
        wait: Duration,
        done: impl Fn(&State) -> bool,
    ) -> (MutexGuard<'_, State>, bool) {
        let deadline = Instant::now() + wait;
        let mut state = self.state();
        while !state.stopped && !done(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (state, false);
            }
            state = self
                .closed
                .wait_timeout(state, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        (state, true)
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
}

impl HostFindings for HostWatcher {
    fn over(&self, run: Interval) -> Vec<HostFinding> {
        let wait = self.window + WAIT_SLACK;
        let (state, in_time) = self.wait_until(wait, |state| {
            state
                .windows
                .back()
                .is_some_and(|last| last.span.monotonic.end >= run.end)
        });
        if !in_time {
            eprintln!(
                "{}: the host watcher closed no window for {:.1} s; a run is judged on the \
                 windows closed so far",
                self.who,
                wait.as_secs_f64()
            );
        }
        state.disturbing_over(run)
    }

    fn closed_over(&self, run: Interval) -> Vec<HostFinding> {
        self.state().disturbing_over(run)
    }
}

/// A started watcher's thread: dropping this stops it (the last window closed, the eBPF
/// programs detached) and waits for it.
pub struct Running {
    /// The write end of the stop pipe: closing it wakes the watcher.
    stop: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// The watcher's thread, while it runs (its name finds its CPU time in /proc).
    pub fn thread(&self) -> Option<&std::thread::Thread> {
        self.thread.as_ref().map(std::thread::JoinHandle::thread)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A panic on the watcher's thread was printed there; nothing is left to stop.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::diagnostics::events::EventWindow;
    use crate::diagnostics::hostwatch::monotonic_now;
    use crate::diagnostics::Kind;

    pub(crate) fn window(number: u64, start: Duration, end: Duration, kinds: &[Kind]) -> Window {
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

    impl HostWatcher {
        /// Keep `window` as if the watcher's thread had closed it.
        pub(crate) fn closed_window(&self, window: Window) {
            let open_since = window.span.monotonic.end;
            self.push(window, open_since);
        }
    }

    #[test]
    fn window_lengths_outside_the_range_are_refused() {
        assert_eq!(window_length(0.25), Ok(Duration::from_millis(250)));
        assert_eq!(window_length(60.0), Ok(Duration::from_secs(60)));
        for wrong in [0.05, 61.0, -1.0, f64::NAN] {
            let error = window_length(wrong).unwrap_err();
            assert!(error.contains("from 0.1 to 60"), "{wrong}: {error}");
        }
    }

    #[test]
    fn a_run_ending_in_the_open_window_waits_for_it_to_close() {
        let watcher = HostWatcher::new("test", Duration::from_secs(1), 0);
        let now = monotonic_now();
        let ms = Duration::from_millis;
        watcher.closed_window(window(1, now - ms(100), now, &[]));
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
        watcher.closed_window(window(2, now, now + ms(300), &[Kind::IpcNsTeardown]));
        let found: Vec<(u64, Kind)> = asking
            .join()
            .unwrap()
            .iter()
            .map(|h| (h.window.window, h.finding.kind))
            .collect();
        assert_eq!(found, [(2, Kind::IpcNsTeardown)]);
    }

    #[test]
    fn waiting_for_the_start_ends_when_the_first_window_opens() {
        let watcher = HostWatcher::new("test", Duration::from_secs(1), 0);
        let opening = {
            let watcher = watcher.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                watcher.started(Status::default(), PsiStatus::default(), monotonic_now());
            })
        };
        let began = Instant::now();
        watcher.wait_started();
        assert!(began.elapsed() >= Duration::from_millis(200));
        assert!(watcher.state().open_since.is_some());
        opening.join().unwrap();
        // Once open, nothing to wait for.
        let again = Instant::now();
        watcher.wait_started();
        assert!(again.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn a_stopped_watcher_answers_with_what_it_has() {
        let watcher = HostWatcher::new("test", Duration::from_secs(60), 0);
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
    fn the_history_is_bounded() {
        let kept = |watcher: &HostWatcher| -> Vec<u64> {
            watcher
                .state()
                .windows
                .iter()
                .map(|w| w.span.window)
                .collect()
        };
        // Half an hour of two-minute windows is 15 of them, unless more are asked for.
        for (at_least, first) in [(0, 6), (18, 3)] {
            let watcher = HostWatcher::new("test", Duration::from_secs(120), at_least);
            for n in 1..=20 {
                let at = Duration::from_secs(n);
                watcher.closed_window(window(n, at, at + Duration::from_secs(1), &[]));
            }
            assert_eq!(
                kept(&watcher),
                (first..=20).collect::<Vec<_>>(),
                "{at_least}"
            );
        }
    }
}
