//! What is happening now, in memory: the judgings this process is running (their claim, the
//! test cases finished so far, the flag that stops them) and a broadcast of progress events
//! that the SSE streams follow. The store holds the truth; this is only the live view.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::store::{Claim, Status, TestRecord};

/// A running judging's stop flag.
pub const RUN: u8 = 0;
/// A cancel was asked: start no more test cases, record the judging as cancelled.
pub const CANCEL: u8 = 1;
/// The daemon handed it back to the queue at shutdown, or its lease was lost (another host
/// may be judging it now): stop, record nothing.
pub const HANDED_BACK: u8 = 2;

#[derive(Debug, Clone)]
pub enum HubEvent {
    Started { id: i64, attempt: u32 },
    Test { id: i64, test: TestRecord },
    Final { id: i64, status: Status },
}

impl HubEvent {
    pub fn id(&self) -> i64 {
        match self {
            HubEvent::Started { id, .. }
            | HubEvent::Test { id, .. }
            | HubEvent::Final { id, .. } => *id,
        }
    }
}

struct Live {
    claim: Claim,
    tests: Vec<TestRecord>,
    stop: Arc<AtomicU8>,
}

pub struct Hub {
    events: broadcast::Sender<HubEvent>,
    live: Mutex<HashMap<i64, Live>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            events: broadcast::channel(1024).0,
            live: Mutex::default(),
        }
    }
}

impl Hub {
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Live>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.events.subscribe()
    }

    fn send(&self, event: HubEvent) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    /// A worker starts judging `claim`; its stop flag.
    pub fn start(&self, claim: &Claim) -> Arc<AtomicU8> {
        let stop = Arc::new(AtomicU8::new(RUN));
        self.live().insert(
            claim.id,
            Live {
                claim: claim.clone(),
                tests: Vec::new(),
                stop: stop.clone(),
            },
        );
        self.send(HubEvent::Started {
            id: claim.id,
            attempt: claim.attempt,
        });
        stop
    }

    pub fn test_finished(&self, id: i64, test: TestRecord) {
        if let Some(live) = self.live().get_mut(&id) {
            live.tests.push(test.clone());
        }
        self.send(HubEvent::Test { id, test });
    }

    /// The judging's outcome is in the store (or it was cancelled while queued).
    pub fn finished(&self, id: i64, status: Status) {
        self.live().remove(&id);
        self.send(HubEvent::Final { id, status });
    }

    /// Forget a judging handed back to the queue.
    pub fn forget(&self, id: i64) {
        self.live().remove(&id);
    }

    /// The test cases a running judging has finished so far (`None`: not running here).
    pub fn snapshot(&self, id: i64) -> Option<Vec<TestRecord>> {
        self.live().get(&id).map(|live| live.tests.clone())
    }

    /// Ask a running judging to stop at its next test case; `false` if it is not running here.
    pub fn request_cancel(&self, id: i64) -> bool {
        match self.live().get(&id) {
            Some(live) => {
                let _ = live
                    .stop
                    .compare_exchange(RUN, CANCEL, Ordering::SeqCst, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// The claims of the judgings running here (for the heartbeat).
    pub fn claims(&self) -> Vec<Claim> {
        self.live()
            .values()
            .map(|live| live.claim.clone())
            .collect()
    }

    /// A running judging's claim is no longer ours (its lease ran out and another host may
    /// have it): stop it and record nothing. `false`: it is not running here (any more).
    pub fn lose(&self, id: i64) -> bool {
        match self.live().get(&id) {
            Some(live) => {
                live.stop.store(HANDED_BACK, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// The claims of every running judging, each flagged as handed back (shutdown).
    pub fn hand_back_all(&self) -> Vec<Claim> {
        self.live()
            .values()
            .map(|live| {
                live.stop.store(HANDED_BACK, Ordering::SeqCst);
                live.claim.clone()
            })
            .collect()
    }
}
