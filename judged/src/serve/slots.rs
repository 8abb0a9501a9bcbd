//! The worker slots of `judged serve`: a judging runs in one slot, and every step of it is
//! pinned where the slot is (runguard `--cpuset` and `--cpuset-mems`).
//!
//! [`plan`] turns the `[workers]` settings and the host's topology into slots: with
//! `placement = "topology"` they are the workers of [`crate::topology::place`], the plan
//! `judged topology` prints (one per free physical core, memory on the core's node); with
//! `"none"` they are `count` unpinned slots. [`SlotPool`] hands them out, one judging per slot,
//! the lowest free index first; a slot comes back when its [`SlotGuard`] is dropped.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::{Placement, WorkerSettings};
use crate::topology::{self, Topology};

/// One worker slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slot {
    /// Its number: the plan's worker id (`judged topology`'s `worker` column).
    pub index: usize,
    /// `cpuset.cpus` of its steps; `None`: unpinned.
    pub cpus: Option<String>,
    /// `cpuset.mems` of its steps; `None`: the kernel's choice.
    pub mems: Option<String>,
}

impl WorkerSettings {
    /// The placement options `judged topology` takes, from these settings.
    pub fn placement_options(&self) -> topology::Options {
        topology::Options {
            housekeeping: self.housekeeping.clone(),
            smt: self.smt,
            max_workers: self.count,
        }
    }
}

/// The slots of `settings`; `topology` is read only for `placement = "topology"`.
pub fn plan(
    settings: &WorkerSettings,
    topology: impl FnOnce() -> anyhow::Result<Topology>,
) -> anyhow::Result<Vec<Slot>> {
    match settings.placement {
        Placement::None => Ok((0..settings.count.unwrap_or(1))
            .map(|index| Slot {
                index,
                cpus: None,
                mems: None,
            })
            .collect()),
        Placement::Topology => {
            let topology = topology()?;
            let plan = topology::place(&topology, &settings.placement_options())?;
            Ok(plan
                .workers
                .iter()
                .map(|worker| Slot {
                    index: worker.id,
                    cpus: Some(worker.cpuset_cpus()),
                    mems: Some(worker.cpuset_mems()),
                })
                .collect())
        }
    }
}

/// The slots and which judging each one runs.
pub struct SlotPool {
    slots: Vec<Slot>,
    /// Per slot, the id of the judging it runs (`None`: idle).
    running: Vec<Mutex<Option<i64>>>,
    free: Mutex<BTreeSet<usize>>,
    /// One permit per free slot: taking a slot waits on it.
    available: Arc<Semaphore>,
}

/// A slot taken from the pool; it goes back (idle) when this is dropped.
pub struct SlotGuard {
    pool: Arc<SlotPool>,
    index: usize,
    /// Released after `drop` has put the slot back in the free set.
    _permit: OwnedSemaphorePermit,
}

/// What `GET /workers` and the metrics show of a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotState {
    #[serde(flatten)]
    pub slot: Slot,
    /// `idle` or `busy`.
    pub state: &'static str,
    pub judging: Option<i64>,
}

impl SlotPool {
    pub fn new(slots: Vec<Slot>) -> Arc<SlotPool> {
        Arc::new(SlotPool {
            running: slots.iter().map(|_| Mutex::new(None)).collect(),
            free: Mutex::new((0..slots.len()).collect()),
            available: Arc::new(Semaphore::new(slots.len())),
            slots,
        })
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Wait for a free slot and take it (the lowest free index).
    pub async fn take(self: &Arc<SlotPool>) -> SlotGuard {
        let permit = self
            .available
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let index = self
            .free
            .lock()
            .expect("no thread panics holding the free set")
            .pop_first()
            .expect("a permit is held only while a slot is free");
        SlotGuard {
            pool: self.clone(),
            index,
            _permit: permit,
        }
    }

    /// Every slot with its state, in index order.
    pub fn states(&self) -> Vec<SlotState> {
        self.slots
            .iter()
            .zip(&self.running)
            .map(|(slot, running)| {
                let judging = *running.lock().expect("no thread panics holding a slot");
                SlotState {
                    slot: slot.clone(),
                    state: if judging.is_some() { "busy" } else { "idle" },
                    judging,
                }
            })
            .collect()
    }
}

impl SlotGuard {
    pub fn slot(&self) -> &Slot {
        &self.pool.slots[self.index]
    }

    /// The slot runs `judging` from now on (busy until the guard is dropped).
    pub fn runs(&self, judging: i64) {
        *self.pool.running[self.index]
            .lock()
            .expect("no thread panics holding a slot") = Some(judging);
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Ok(mut running) = self.pool.running[self.index].lock() {
            *running = None;
        }
        if let Ok(mut free) = self.pool.free.lock() {
            free.insert(self.index);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::topology::sysfs;

    fn fixture(name: &str) -> impl FnOnce() -> anyhow::Result<Topology> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/topology")
            .join(name);
        move || Ok(sysfs::read(&root)?)
    }

    fn settings(text: &str) -> WorkerSettings {
        let path = Path::new("/etc/judged/serve.toml");
        super::super::config::Config::parse(text, path)
            .unwrap()
            .validate(Some(path), &Default::default(), "h")
            .unwrap()
            .workers
    }

    fn shown(slots: &[Slot]) -> Vec<(usize, &str, &str)> {
        slots
            .iter()
            .map(|s| {
                (
                    s.index,
                    s.cpus.as_deref().unwrap_or("-"),
                    s.mems.as_deref().unwrap_or("-"),
                )
            })
            .collect()
    }

    /// The config's `[workers]` through the placement to slots, on the topology fixtures.
    #[test]
    fn slots_are_the_placements_workers() {
        /// A slot as (index, cpus, mems).
        type Shown = (usize, &'static str, &'static str);
        // (fixture, [workers] table, some of the slots, how many)
        let cases: &[(&str, &str, &[Shown], usize)] = &[
            (
                "laptop-4c8t",
                "",
                &[(0, "1", "0"), (1, "2", "0"), (2, "3", "0")],
                3,
            ),
            (
                "laptop-4c8t",
                "smt = true\nhousekeeping = \"none\"",
                &[
                    (0, "0", "0"),
                    (1, "1", "0"),
                    (2, "2", "0"),
                    (3, "3", "0"),
                    (4, "4", "0"),
                ],
                8,
            ),
            // Spread over the nodes in turn; CPU 0's core (0 and 40) kept free.
            (
                "xeon-2s-40c-smt",
                "count = 4",
                &[(0, "1", "0"), (1, "20", "1"), (2, "2", "0"), (3, "21", "1")],
                4,
            ),
            (
                "epyc-8node",
                "housekeeping = \"0,8\"\ncount = 9",
                &[
                    (0, "1", "0"),
                    (1, "9", "1"),
                    (2, "16", "2"),
                    (7, "56", "7"),
                    (8, "2", "0"),
                ],
                9,
            ),
            ("single-cpu", "", &[(0, "0", "0")], 1),
            ("desktop-6c12t-offline", "count = 100", &[(3, "5", "0")], 4),
        ];
        for &(name, table, expected, count) in cases {
            let settings = settings(&format!("[workers]\nplacement = \"topology\"\n{table}\n"));
            let slots = plan(&settings, fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(slots.len(), count, "{name} {table:?}: {:?}", shown(&slots));
            let shown = shown(&slots);
            for slot in expected {
                assert!(
                    shown.contains(slot),
                    "{name} {table:?}: {slot:?} not in {shown:?}"
                );
            }
            // The same plan `judged topology` prints for these options.
            let printed =
                topology::place(&fixture(name)().unwrap(), &settings.placement_options()).unwrap();
            let cpus: Vec<String> = printed.workers.iter().map(|w| w.cpuset_cpus()).collect();
            let slot_cpus: Vec<String> = slots.iter().map(|s| s.cpus.clone().unwrap()).collect();
            assert_eq!(slot_cpus, cpus, "{name}");
        }
    }

    #[test]
    fn the_default_is_topology_and_none_gives_unpinned_slots() {
        let slots = plan(&settings(""), fixture("laptop-4c8t")).unwrap();
        assert_eq!(shown(&slots), [(0, "1", "0"), (1, "2", "0"), (2, "3", "0")]);
        let unread = || -> anyhow::Result<Topology> { panic!("placement none reads no topology") };
        let none = plan(
            &settings("[workers]\nplacement = \"none\"\ncount = 2\n"),
            unread,
        )
        .unwrap();
        assert_eq!(shown(&none), [(0, "-", "-"), (1, "-", "-")]);
        let one = plan(&settings("[workers]\nplacement = \"none\"\n"), unread).unwrap();
        assert_eq!(one.len(), 1);
        // `workers = N` is `[workers] count = N`.
        let short = settings("workers = 2\n");
        assert_eq!(
            (short.placement, short.count),
            (Placement::Topology, Some(2))
        );
    }

    #[test]
    fn an_impossible_placement_says_what_to_change() {
        let settings = settings("[workers]\nhousekeeping = \"0-3\"\n");
        let error = plan(&settings, fixture("laptop-4c8t")).unwrap_err();
        assert!(format!("{error:#}").contains("name fewer"), "{error:#}");
    }

    #[tokio::test]
    async fn slots_are_taken_lowest_first_and_come_back_idle() {
        let pool = SlotPool::new(
            plan(&settings("[workers]\ncount = 2\n"), fixture("laptop-4c8t")).unwrap(),
        );
        let first = pool.take().await;
        let second = pool.take().await;
        assert_eq!((first.slot().index, second.slot().index), (0, 1));
        second.runs(7);
        let states = pool.states();
        assert_eq!(
            states
                .iter()
                .map(|s| (s.state, s.judging))
                .collect::<Vec<_>>(),
            [("idle", None), ("busy", Some(7))]
        );
        // Both taken: a third waits until one comes back.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), pool.take())
                .await
                .is_err()
        );
        drop(first);
        let again = pool.take().await;
        assert_eq!(again.slot().index, 0);
        drop(second);
        assert_eq!(pool.states()[1].state, "idle");
    }
}
