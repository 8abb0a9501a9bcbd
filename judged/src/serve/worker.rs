//! The workers: a dispatcher takes a free worker slot ([`super::slots`]: one judging per slot),
//! claims the oldest queued judging and hands both to a task that judges it with
//! [`crate::judge`] on a blocking thread, every step pinned to the slot's CPUs and memory
//! nodes (each step is a `runguard` process; judged never forks itself), and records the
//! outcome in one transaction. The slot is free again when that task ends.
//!
//! Leases: [`keep_leases`] is the heartbeat (every third of the lease it renews the claim of
//! each judging running here; a claim found lost stops its judging unrecorded, a cancel asked
//! on another host reaches it here) and the reaper (any host's judging whose lease ran out
//! goes back to the queue).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::hub::{self, Hub};
use super::metrics::Metrics;
use super::problems::Problems;
use super::slots::{SlotGuard, SlotPool};
use super::store::{Claim, Outcome, Renewal, Status, Store, TestRecord};
use super::warm::{Warm, WarmSandbox};
use crate::diagnostics::hostwatch::HostFindings;
use crate::diagnostics::hostwatcher::HostWatcher;
use crate::diagnostics::lanes::RunTracing;
use crate::diagnostics::thresholds::RunThresholds;
use crate::judge::{Judge, Lanes, Options, Progress, TestResult};
use crate::language::Languages;
use crate::problem::TestCase;
use crate::sandbox::{Runguard, Sandbox, SandboxProfiles};
use crate::users::RunUser;

/// What judging needs, loaded once before the runtime starts.
pub struct JudgeEnv {
    /// Those of the config and the uploaded ones ([`super::problems`]).
    pub problems: Problems,
    pub languages: Languages,
    /// Languages whose toolchain is installed here.
    pub available: BTreeSet<String>,
    pub runguard: Runguard,
    pub profiles: SandboxProfiles,
    pub user: RunUser,
    pub scratch: PathBuf,
    pub all_test_cases: bool,
    pub rerun_disturbed: u32,
    /// When a test case's measurements become findings (parsed once, at start).
    pub thresholds: RunThresholds,
    /// `[workers] sandbox = "warm"`: each slot's warm sandbox, by slot index (empty:
    /// one-shot steps only).
    pub warm: Vec<WarmSandbox>,
    /// The run lanes, one per slot by index (after `warm`: dropped once the warm sandboxes'
    /// groups below the lanes are gone).
    pub tracing: Arc<RunTracing>,
}

/// Everything the API and the workers share.
pub struct Daemon {
    pub env: JudgeEnv,
    pub store: Arc<dyn Store>,
    pub hub: Hub,
    pub metrics: Metrics,
    /// `[diagnostics] host_watch`: the host watcher's windows (`None`: off).
    pub host: Option<Arc<HostWatcher>>,
    pub host_id: String,
    /// The worker slots: at most one judging each.
    pub slots: Arc<SlotPool>,
    pub max_source_bytes: u64,
    /// How long a claim holds without a heartbeat (`[database] lease_secs`).
    pub lease: Duration,
    /// Told on each submission, so an idle dispatcher claims at once.
    pub wake: Notify,
    /// The one cancellation signal: SIGTERM/SIGINT, or the server failing.
    pub shutdown: CancellationToken,
}

/// How often an idle dispatcher looks at the queue without being woken (another process may
/// have put work there, e.g. a judging handed back).
const IDLE_POLL: Duration = Duration::from_secs(2);

/// Claim and start judgings until shutdown; every judging task is spawned on `tracker`.
pub async fn dispatch(daemon: Arc<Daemon>, tracker: TaskTracker) {
    loop {
        let slot = tokio::select! {
            _ = daemon.shutdown.cancelled() => break,
            slot = daemon.slots.take() => slot,
        };
        let store = daemon.store.clone();
        let host = daemon.host_id.clone();
        let claimed = tokio::task::spawn_blocking(move || store.claim(&host))
            .await
            .expect("claiming does not panic");
        match claimed {
            Ok(Some(claim)) => {
                tracker.spawn(judge_one(daemon.clone(), claim, slot));
            }
            Ok(None) => {
                drop(slot);
                tokio::select! {
                    _ = daemon.shutdown.cancelled() => break,
                    _ = daemon.wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
            Err(error) => {
                drop(slot);
                eprintln!("judged serve: cannot claim a judging: {error:#}");
                tokio::select! {
                    _ = daemon.shutdown.cancelled() => break,
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
        }
    }
}

/// Judge one claimed judging in `slot` and record it; holds the slot until done.
async fn judge_one(daemon: Arc<Daemon>, claim: Claim, slot: SlotGuard) {
    let started = Instant::now();
    slot.runs(claim.id);
    let stop = daemon.hub.start(&claim);
    let outcome = {
        let daemon = daemon.clone();
        let claim = claim.clone();
        let stop = stop.clone();
        let pinning = Pinning {
            slot: slot.slot().index,
            cpus: slot.slot().cpus.clone(),
            mems: slot.slot().mems.clone(),
        };
        tokio::task::spawn_blocking(move || {
            // A cancel asked between the claim and `hub.start` is in the store only.
            if let Ok(Some(record)) = daemon.store.get(claim.id) {
                if record.cancel_requested {
                    let _ = stop.compare_exchange(
                        hub::RUN,
                        hub::CANCEL,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                }
            }
            judge_blocking(&daemon, &claim, &stop, pinning)
        })
        .await
    };
    let outcome = match outcome {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => Outcome::Failed {
            error: format!("{error:#}"),
        },
        Err(_) => Outcome::Failed {
            error: "the judging thread panicked".into(),
        },
    };
    drop(slot);
    if stop.load(Ordering::SeqCst) == hub::HANDED_BACK {
        // Shutdown gave it back to the queue, or its lease was lost: whoever claims it next
        // judges it from the start.
        daemon.hub.forget(claim.id);
        return;
    }
    let (status, label) = match &outcome {
        Outcome::Done { verdict, .. } => (Status::Done, verdict.clone()),
        Outcome::Cancelled { .. } => (Status::Cancelled, "cancelled".to_owned()),
        Outcome::Failed { error } => {
            eprintln!("judged serve: judging {} failed: {error}", claim.id);
            (Status::Failed, "failed".to_owned())
        }
    };
    let recorded = {
        let store = daemon.store.clone();
        let claim = claim.clone();
        tokio::task::spawn_blocking(move || store.finish(&claim, &outcome))
            .await
            .expect("recording does not panic")
    };
    match recorded {
        Ok(true) => {
            daemon
                .metrics
                .judging_finished(&label, started.elapsed().as_secs_f64());
            daemon.hub.finished(claim.id, status);
        }
        Ok(false) => {
            eprintln!(
                "judged serve: judging {} (attempt {}) is no longer ours; its result is dropped",
                claim.id, claim.attempt
            );
            daemon.hub.forget(claim.id);
        }
        Err(error) => {
            // It stays `judging` in the store: the next start of this host runs it again.
            eprintln!(
                "judged serve: cannot record judging {}: {error:#}",
                claim.id
            );
            daemon.hub.forget(claim.id);
        }
    }
}

/// The heartbeat and the reaper, every third of the lease until `stop` (after the drain, so
/// judgings finishing in the grace period keep their leases).
pub async fn keep_leases(daemon: Arc<Daemon>, stop: CancellationToken) {
    let period = daemon.lease / 3;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(period) => {}
        }
        let daemon = daemon.clone();
        let _ = tokio::task::spawn_blocking(move || heartbeat(&daemon)).await;
    }
}

fn heartbeat(daemon: &Daemon) {
    for claim in daemon.hub.claims() {
        match daemon.store.renew(&claim) {
            Ok(Renewal::Held { cancel_requested }) => {
                if cancel_requested {
                    // Asked through another host's API: only the store knew.
                    daemon.hub.request_cancel(claim.id);
                }
            }
            // (A judging that just finished is no longer in the hub: nothing to say.)
            Ok(Renewal::Lost) => {
                if daemon.hub.lose(claim.id) {
                    eprintln!(
                        "judged serve: judging {} (attempt {}) lost its lease; stopping it, its \
                         result will not be recorded",
                        claim.id, claim.attempt
                    );
                }
            }
            // Not fatal: the lease holds for two more beats.
            Err(error) => eprintln!(
                "judged serve: cannot renew the lease of judging {}: {error:#}",
                claim.id
            ),
        }
    }
    reclaim_expired(daemon);
}

/// Put back every judging whose lease ran out (a host that died or lost the database).
pub fn reclaim_expired(daemon: &Daemon) {
    match daemon.store.reclaim_expired() {
        Ok(reclaimed) if reclaimed.requeued + reclaimed.cancelled > 0 => {
            eprintln!(
                "judged serve: reclaimed {} judging(s) whose lease ran out into the queue, {} \
                 cancelled",
                reclaimed.requeued, reclaimed.cancelled
            );
            daemon.wake.notify_one();
        }
        Ok(_) => {}
        Err(error) => eprintln!("judged serve: cannot reclaim expired leases: {error:#}"),
    }
}

/// Tells the hub and the metrics about each test case; stops on the flag.
struct ServeProgress<'a> {
    daemon: &'a Daemon,
    id: i64,
    stop: &'a AtomicU8,
}

impl Progress for ServeProgress<'_> {
    fn started(&self, _: usize, _: &TestCase) {}

    fn finished(&self, index: usize, result: &TestResult) {
        self.daemon.metrics.test_case(result);
        self.daemon
            .hub
            .test_finished(self.id, test_record(index, result));
    }

    fn cancelled(&self) -> bool {
        self.stop.load(Ordering::SeqCst) != hub::RUN
    }
}

pub fn test_record(ordinal: usize, result: &TestResult) -> TestRecord {
    let report = result.report.as_ref();
    TestRecord {
        ordinal,
        name: result.name.clone(),
        verdict: result.verdict.name().to_owned(),
        time_limit: result.time_limit.as_secs_f64(),
        cpu_time: report.map(|r| r.cpu_time.as_secs_f64()),
        wall_time: report.map(|r| r.wall_time.as_secs_f64()),
        memory_bytes: report.map(|r| r.memory_bytes),
        message: result.message.clone(),
        reruns: result.reruns,
        host_findings: result.host_findings.clone(),
        kernel: result
            .kernel
            .as_ref()
            .map(|kernel| serde_json::to_value(kernel.summary()).expect("plain data serializes")),
    }
}

/// A file name a submission may use: one plain path component.
pub fn is_plain_file_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(components.next(), Some(Component::Normal(_)))
        && components.next().is_none()
        && !name.contains(['/', '\\', '\0'])
}

/// Where a judging's steps run: its slot, the slot's CPUs and memory nodes.
struct Pinning {
    slot: usize,
    cpus: Option<String>,
    mems: Option<String>,
}

fn judge_blocking(
    daemon: &Daemon,
    claim: &Claim,
    stop: &AtomicU8,
    pinning: Pinning,
) -> anyhow::Result<Outcome> {
    let env = &daemon.env;
    let problem = env
        .problems
        .get(&claim.problem)
        .with_context(|| format!("problem `{}' is not registered here", claim.problem))?;
    let language = env.languages.by_id(&claim.language)?;
    let sources_dir = tempfile::Builder::new()
        .prefix("judged-sources-")
        .tempdir_in(&env.scratch)
        .with_context(|| format!("cannot make a directory in `{}'", env.scratch.display()))?;
    let mut sources = Vec::new();
    for file in &claim.files {
        anyhow::ensure!(
            is_plain_file_name(&file.name),
            "bad file name {:?}",
            file.name
        );
        let path = sources_dir.path().join(&file.name);
        std::fs::write(&path, &file.content)
            .with_context(|| format!("cannot write `{}'", path.display()))?;
        sources.push(path);
    }
    let warm = env.warm.get(pinning.slot).map(|warm| Warm {
        oneshot: &env.runguard,
        warm,
    });
    let sandbox: &dyn Sandbox = match &warm {
        Some(warm) => warm,
        None => &env.runguard,
    };
    let judge = Judge {
        problem: &problem,
        languages: &env.languages,
        sandbox,
        profiles: &env.profiles,
        user: &env.user,
        options: Options {
            jobs: 1,
            all: env.all_test_cases,
            scratch_parent: env.scratch.clone(),
            rerun_disturbed: env.rerun_disturbed,
            thresholds: env.thresholds.clone(),
            cpuset: pinning.cpus,
            cpuset_mems: pinning.mems,
            host: daemon
                .host
                .clone()
                .map(|host| host as Arc<dyn HostFindings>),
            lanes: Some(Lanes {
                tracing: Arc::clone(&env.tracing),
                first: pinning.slot,
            }),
        },
    };
    let progress = ServeProgress {
        daemon,
        id: claim.id,
        stop,
    };
    let judgement = judge.judge(language, &sources, &progress)?;
    let tests = judgement
        .tests
        .iter()
        .map(|result| {
            let ordinal = problem
                .test_cases
                .iter()
                .position(|case| case.name == result.name)
                .unwrap_or(usize::MAX);
            test_record(ordinal, result)
        })
        .collect();
    Ok(match stop.load(Ordering::SeqCst) {
        hub::RUN => Outcome::Done {
            verdict: judgement.verdict.name().to_owned(),
            compile_output: judgement.compile_output,
            tests,
        },
        _ => Outcome::Cancelled { tests },
    })
}

/// `GET /workers`: each slot, its state, and with warm workers its sandbox's keeper and the
/// runs it carried out.
pub fn workers_json(daemon: &Daemon) -> serde_json::Value {
    let workers: Vec<serde_json::Value> = daemon
        .slots
        .states()
        .into_iter()
        .map(|state| {
            let mut value = serde_json::to_value(&state).expect("plain data serializes");
            if let Some(warm) = daemon.env.warm.get(state.slot.index) {
                value["sandbox"] = "warm".into();
                value["keeper_pid"] = warm.keeper_pid().into();
                value["warm_runs"] = warm.runs().into();
            } else {
                value["sandbox"] = "oneshot".into();
            }
            value
        })
        .collect();
    serde_json::json!({ "workers": workers })
}

/// Shutdown after the grace period: every judging still running goes back to the queue.
pub async fn hand_back_running(daemon: &Daemon) -> usize {
    let claims = daemon.hub.hand_back_all();
    let store = daemon.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut handed = 0;
        for claim in &claims {
            match store.hand_back(claim) {
                Ok(true) => handed += 1,
                Ok(false) => {}
                Err(error) => eprintln!(
                    "judged serve: cannot hand judging {} back (the next start will): {error:#}",
                    claim.id
                ),
            }
        }
        handed
    })
    .await
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_one_plain_component() {
        for good in ["a.c", "Main.java", "x", ".hidden", "a b.py"] {
            assert!(is_plain_file_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "/etc/passwd",
            "a/b.c",
            "../a.c",
            "a\\b.c",
            "a\0.c",
            "./a.c",
        ] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
    }
}
