//! The host watcher in the daemon (`[diagnostics] host_watch`): the shared
//! [`HostWatcher`] (its thread, its history, the [`HostFindings`] source the judgings ask
//! about each test case run), plus what only the daemon has: `GET /host`'s view of the recent
//! windows and the `judged_host_findings_total{kind}` counters.
//!
//! [`HostFindings`]: crate::diagnostics::hostwatch::HostFindings

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;

use super::metrics::KindLabel;
use crate::diagnostics::ebpf::Status;
use crate::diagnostics::hostwatch::Window;
use crate::diagnostics::hostwatcher::{HostWatcher, KeptWindow, Running};
use crate::diagnostics::psi::PsiStatus;
use crate::diagnostics::thresholds::HostThresholds;

/// Windows `GET /host` shows by default (the newest), and the history keeps at least.
pub const SHOWN_WINDOWS: usize = 60;

/// The daemon's watcher, closing a window every `window`.
pub fn watcher(window: Duration) -> Arc<HostWatcher> {
    HostWatcher::new("judged serve", window, SHOWN_WINDOWS)
}

/// Start `watcher`'s thread, counting each window's findings by kind in `counts`.
pub fn start(
    watcher: &Arc<HostWatcher>,
    thresholds: HostThresholds,
    counts: Family<KindLabel, Counter>,
) -> std::io::Result<Running> {
    watcher.start(thresholds, move |window: &Window| {
        for finding in &window.findings {
            counts
                .get_or_create(&KindLabel {
                    kind: finding.kind.name(),
                })
                .inc();
        }
    })
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
    /// `GET /host`: the state and the newest `limit` windows.
    pub fn view(&self, limit: usize) -> HostView {
        let state = self.state();
        let skip = state.windows.len().saturating_sub(limit);
        HostView {
            window_s: self.window().as_secs_f64(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::hostwatcher::tests::window;
    use crate::diagnostics::hostwatcher::HISTORY;

    #[test]
    fn the_history_keeps_what_is_shown_and_the_view_shows_the_newest() {
        let watcher = watcher(HISTORY / 2);
        for n in 1..=(SHOWN_WINDOWS as u64 + 5) {
            let at = Duration::from_secs(n);
            watcher.closed_window(window(n, at, at + Duration::from_secs(1), &[]));
        }
        let numbers =
            |view: HostView| -> Vec<u64> { view.windows.iter().map(|w| w.span.window).collect() };
        let all = numbers(watcher.view(usize::MAX));
        assert_eq!(all.len(), SHOWN_WINDOWS);
        assert_eq!(all[0], 6);
        assert_eq!(numbers(watcher.view(2)), [64, 65]);
    }
}
