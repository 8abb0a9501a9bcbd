//! `GET /metrics`: Prometheus (OpenMetrics) text. Counters and histograms are this process's
//! (from its start); the judgings by status and the queue depth are read from the store at
//! each scrape, so they hold across restarts.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::slots::SlotPool;
use super::store::Status;
use crate::judge::TestResult;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabel {
    pub verdict: String,
}

/// A finding's kind (`ipc-ns-teardown`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

/// A worker slot: its index and where it runs (`none`: unpinned).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SlotLabel {
    worker: String,
    cpus: String,
    mems: String,
}

pub struct Metrics {
    registry: Registry,
    /// The worker slots, whose states are read at each scrape.
    slots: Arc<SlotPool>,
    queue_depth: Gauge,
    judgings: Family<StatusLabel, Gauge>,
    worker_states: Family<StateLabel, Gauge>,
    worker_busy: Family<SlotLabel, Gauge>,
    pub submitted: Counter,
    /// "Work may be queued" notifications from the store (PostgreSQL LISTEN).
    pub queue_notifications: Counter,
    pub test_case_runs: Counter,
    pub test_case_verdicts: Family<VerdictLabel, Counter>,
    /// Finished judgings by outcome: their verdict, or `cancelled` / `failed`.
    pub judging_outcomes: Family<VerdictLabel, Counter>,
    pub cpu_seconds: Histogram,
    pub wall_seconds: Histogram,
    /// Wall time minus CPU time of a run: waiting (sleep, I/O, a busy host).
    pub wall_minus_cpu_seconds: Histogram,
    pub judging_seconds: Histogram,
    /// The host watcher's findings, per window, by kind.
    pub host_findings: Family<KindLabel, Counter>,
}

impl Metrics {
    pub fn new(slots: Arc<SlotPool>) -> Metrics {
        let mut registry = Registry::with_prefix("judged");
        let metrics = Metrics {
            slots,
            queue_depth: Gauge::default(),
            judgings: Family::default(),
            worker_states: Family::default(),
            worker_busy: Family::default(),
            submitted: Counter::default(),
            queue_notifications: Counter::default(),
            test_case_runs: Counter::default(),
            test_case_verdicts: Family::default(),
            judging_outcomes: Family::default(),
            cpu_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            wall_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            wall_minus_cpu_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            judging_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            host_findings: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "queue_depth",
            "Judgings waiting in the queue",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "judgings",
            "Judgings in the store by status",
            metrics.judgings.clone(),
        );
        registry.register(
            "workers",
            "Workers by state (busy: judging, idle: waiting for work)",
            metrics.worker_states.clone(),
        );
        registry.register(
            "worker_busy",
            "Per worker slot, 1 while it judges, 0 when idle; labelled with the CPUs and \
             memory nodes its steps are pinned to",
            metrics.worker_busy.clone(),
        );
        registry.register(
            "submissions",
            "Judgings submitted to this process",
            metrics.submitted.clone(),
        );
        registry.register(
            "queue_notifications",
            "Notifications that work may be queued, from any host (PostgreSQL LISTEN/NOTIFY)",
            metrics.queue_notifications.clone(),
        );
        registry.register(
            "test_case_runs",
            "Test cases run",
            metrics.test_case_runs.clone(),
        );
        registry.register(
            "test_case_verdicts",
            "Test case verdicts",
            metrics.test_case_verdicts.clone(),
        );
        registry.register(
            "judging_outcomes",
            "Finished judgings by verdict (or cancelled, failed)",
            metrics.judging_outcomes.clone(),
        );
        registry.register(
            "run_cpu_seconds",
            "CPU time of test case runs",
            metrics.cpu_seconds.clone(),
        );
        registry.register(
            "run_wall_seconds",
            "Wall time of test case runs",
            metrics.wall_seconds.clone(),
        );
        registry.register(
            "run_wall_minus_cpu_seconds",
            "Wall time minus CPU time of test case runs (drift: waiting, a busy host)",
            metrics.wall_minus_cpu_seconds.clone(),
        );
        registry.register(
            "judging_seconds",
            "Time from claim to result of a judging",
            metrics.judging_seconds.clone(),
        );
        registry.register(
            "host_findings",
            "Findings of the host watcher's windows, by kind",
            metrics.host_findings.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// A test case was judged.
    pub fn test_case(&self, result: &TestResult) {
        self.test_case_runs.inc();
        self.test_case_verdicts
            .get_or_create(&VerdictLabel {
                verdict: result.verdict.name().to_owned(),
            })
            .inc();
        if let Some(report) = &result.report {
            let cpu = report.cpu_time.as_secs_f64();
            let wall = report.wall_time.as_secs_f64();
            self.cpu_seconds.observe(cpu);
            self.wall_seconds.observe(wall);
            self.wall_minus_cpu_seconds.observe((wall - cpu).max(0.0));
        }
    }

    pub fn judging_finished(&self, outcome: &str, seconds: f64) {
        self.judging_outcomes
            .get_or_create(&VerdictLabel {
                verdict: outcome.to_owned(),
            })
            .inc();
        self.judging_seconds.observe(seconds);
    }

    /// The exposition, with the store's counts of judgings by status.
    pub fn render(&self, counts: &BTreeMap<Status, u64>) -> String {
        for status in Status::ALL {
            let count = counts.get(&status).copied().unwrap_or(0);
            self.judgings
                .get_or_create(&StatusLabel {
                    status: status.as_str().to_owned(),
                })
                .set(count as i64);
        }
        self.queue_depth
            .set(counts.get(&Status::Queued).copied().unwrap_or(0) as i64);
        let states = self.slots.states();
        let mut busy = 0;
        for slot in &states {
            let label = SlotLabel {
                worker: slot.slot.index.to_string(),
                cpus: slot.slot.cpus.clone().unwrap_or_else(|| "none".into()),
                mems: slot.slot.mems.clone().unwrap_or_else(|| "none".into()),
            };
            let judging = i64::from(slot.judging.is_some());
            self.worker_busy.get_or_create(&label).set(judging);
            busy += judging;
        }
        for (state, n) in [("busy", busy), ("idle", states.len() as i64 - busy)] {
            self.worker_states
                .get_or_create(&StateLabel {
                    state: state.to_owned(),
                })
                .set(n);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_exposition_names_every_family() {
        let slot = |index: usize, cpus: &str| super::super::slots::Slot {
            index,
            cpus: Some(cpus.into()),
            mems: Some("0".into()),
        };
        let slots = SlotPool::new(vec![slot(0, "1"), slot(1, "2")]);
        let metrics = Metrics::new(slots.clone());
        let taken = slots.take().await;
        taken.runs(5);
        metrics.judging_finished("correct", 0.5);
        metrics
            .host_findings
            .get_or_create(&KindLabel {
                kind: "ipc-ns-teardown".into(),
            })
            .inc();
        let counts = BTreeMap::from([(Status::Queued, 3)]);
        let text = metrics.render(&counts);
        for needle in [
            "judged_queue_depth 3",
            "judged_judgings{status=\"queued\"} 3",
            "judged_judgings{status=\"done\"} 0",
            "judged_workers{state=\"busy\"} 1",
            "judged_workers{state=\"idle\"} 1",
            "judged_worker_busy{worker=\"0\",cpus=\"1\",mems=\"0\"} 1",
            "judged_worker_busy{worker=\"1\",cpus=\"2\",mems=\"0\"} 0",
            "judged_test_case_runs_total 0",
            "judged_judging_outcomes_total{verdict=\"correct\"} 1",
            "judged_run_wall_minus_cpu_seconds_bucket",
            "judged_host_findings_total{kind=\"ipc-ns-teardown\"} 1",
            "# EOF",
        ] {
            assert!(text.contains(needle), "no {needle:?} in\n{text}");
        }
    }
}
