//! Where the workers of `judged serve` go: a pure function of the topology and the options.
//!
//! * Housekeeping CPUs get no worker: judged itself, the keepers' parent and the kernel's
//!   own work run there. They are whole cores: naming a CPU reserves its SMT siblings too,
//!   since a run on a sibling would share the core's pipeline and caches with them.
//! * Every other physical core gets one worker on its first online thread; its other threads
//!   stay idle (with `smt`, each thread gets a worker of its own, the cores' first threads
//!   placed before their second ones).
//! * A worker's memory is bound to its core's node (`cpuset.mems`).
//! * Workers are taken from the nodes in turn (node 0, node 1, ..., node 0, ...), so worker i
//!   and worker i + 1 are on different nodes and a `max_workers` limit spreads them evenly.
//!
//! Every online CPU ends up in exactly one place: a worker, housekeeping, the idle siblings
//! of a worker's core, or unused (a free core beyond `max_workers`).

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::cpulist::{format_cpu_list, Cpus};
use super::{Core, Topology};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// CPUs kept free for judged and the kernel (their cores are reserved whole). `None`: the
    /// first physical core (CPU 0 and its siblings), or nothing on a one-core host.
    pub housekeeping: Option<Cpus>,
    /// Give SMT siblings workers of their own.
    pub smt: bool,
    /// At most this many workers.
    pub max_workers: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// In placement order; `id` is the index.
    pub workers: Vec<Worker>,
    /// CPUs of the housekeeping cores.
    pub housekeeping: Cpus,
    /// Threads of a worker's core that no worker uses.
    pub idle_siblings: Cpus,
    /// CPUs of free cores left without a worker by `max_workers`.
    pub unused: Cpus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Worker {
    pub id: usize,
    /// The node of its core: its `cpuset.mems`.
    pub node: u32,
    /// Its `cpuset.cpus` (one CPU).
    pub cpus: Cpus,
    /// The core's package (`physical_package_id`) and `core_id`.
    pub socket: u32,
    pub core: u32,
}

impl Worker {
    /// The value to write to the warm sandbox's `cpuset.cpus`.
    pub fn cpuset_cpus(&self) -> String {
        format_cpu_list(&self.cpus)
    }

    /// The value to write to the warm sandbox's `cpuset.mems`.
    pub fn cpuset_mems(&self) -> String {
        self.node.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "housekeeping CPU {cpu} is offline (online: {online}): name online CPUs, or bring it \
         online first"
    )]
    HousekeepingOffline { cpu: u32, online: String },
    #[error("housekeeping CPU {cpu} does not exist on this host (CPUs: {present}): name CPUs of that list")]
    HousekeepingMissing { cpu: u32, present: String },
    #[error(
        "the housekeeping CPUs {housekeeping} take all {cores} cores, leaving none for a worker: \
         name fewer (whole cores are reserved), or `none'"
    )]
    NoCoreLeft { housekeeping: String, cores: usize },
    #[error("at most 0 workers places nothing: give 1 or more, or no limit for one per core")]
    ZeroWorkers,
}

/// The plan for `topology` under `options`.
pub fn place(topology: &Topology, options: &Options) -> Result<Plan, PlacementError> {
    if options.max_workers == Some(0) {
        return Err(PlacementError::ZeroWorkers);
    }
    let housekeeping = housekeeping(topology, options.housekeeping.as_ref())?;
    let free: Vec<&Core> = topology
        .cores
        .iter()
        .filter(|core| core.cpus.is_disjoint(&housekeeping))
        .collect();
    if free.is_empty() {
        return Err(PlacementError::NoCoreLeft {
            housekeeping: format_cpu_list(&housekeeping),
            cores: topology.cores.len(),
        });
    }

    // Per node, the CPUs to give workers, in order: each core's first thread, then (with SMT)
    // each core's second thread, and so on.
    let mut queues: BTreeMap<u32, VecDeque<(&Core, u32)>> = BTreeMap::new();
    let threads = if options.smt {
        free.iter().map(|core| core.cpus.len()).max().unwrap_or(1)
    } else {
        1
    };
    for thread in 0..threads {
        for &core in &free {
            if let Some(&cpu) = core.cpus.iter().nth(thread) {
                queues.entry(core.node).or_default().push_back((core, cpu));
            }
        }
    }
    let limit = options.max_workers.unwrap_or(usize::MAX);
    let mut workers = Vec::new();
    while workers.len() < limit && queues.values().any(|queue| !queue.is_empty()) {
        for queue in queues.values_mut() {
            if workers.len() == limit {
                break;
            }
            if let Some((core, cpu)) = queue.pop_front() {
                workers.push(Worker {
                    id: workers.len(),
                    node: core.node,
                    cpus: Cpus::from([cpu]),
                    socket: core.socket,
                    core: core.core_id,
                });
            }
        }
    }

    let taken: Cpus = workers
        .iter()
        .flat_map(|w| w.cpus.iter().copied())
        .collect();
    let mut idle_siblings = Cpus::new();
    let mut unused = Cpus::new();
    for core in &free {
        let rest = core.cpus.difference(&taken).copied();
        if core.cpus.is_disjoint(&taken) {
            unused.extend(rest);
        } else {
            idle_siblings.extend(rest);
        }
    }
    Ok(Plan {
        workers,
        housekeeping,
        idle_siblings,
        unused,
    })
}

/// The housekeeping CPUs: the named ones (checked) or the default, widened to whole cores.
fn housekeeping(topology: &Topology, named: Option<&Cpus>) -> Result<Cpus, PlacementError> {
    let Some(named) = named else {
        return Ok(match topology.cores.as_slice() {
            [first, _, ..] => first.cpus.clone(),
            _ => Cpus::new(),
        });
    };
    for &cpu in named {
        if !topology.online.contains(&cpu) {
            return Err(if topology.present.contains(&cpu) {
                PlacementError::HousekeepingOffline {
                    cpu,
                    online: format_cpu_list(&topology.online),
                }
            } else {
                PlacementError::HousekeepingMissing {
                    cpu,
                    present: format_cpu_list(&topology.present),
                }
            });
        }
    }
    Ok(topology
        .cores
        .iter()
        .filter(|core| !core.cpus.is_disjoint(named))
        .flat_map(|core| core.cpus.iter().copied())
        .collect())
}
