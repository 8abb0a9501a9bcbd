//! `judged topology`: the host's CPU topology (sockets, NUMA nodes, physical cores, SMT
//! siblings, online CPUs) and where `judged serve` will place its workers: one per physical
//! core, memory bound to the core's node, SMT siblings idle, housekeeping cores kept free.
//!
//! [`sysfs::read`] reads a [`Topology`] from sysfs under a root (`/`, or a
//! `testdata/topology/` tree); [`placement::place`] turns it and the [`placement::Options`]
//! into a [`placement::Plan`] without touching the system; this module prints both.

pub mod cpulist;
pub mod placement;
pub mod sysfs;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

pub use cpulist::{format_cpu_list, parse_cpu_list, Cpus};
pub use placement::{place, Options, PlacementError, Plan, Worker};

/// The CPUs of a host as the kernel describes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// The online CPUs (hardware threads).
    pub online: Cpus,
    /// The CPUs physically there, online or not.
    pub present: Cpus,
    /// The physical cores with at least one online thread, by their first CPU.
    pub cores: Vec<Core>,
    /// The online NUMA nodes, by id; one node 0 on a kernel without NUMA.
    pub nodes: Vec<Node>,
}

/// One physical core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Core {
    /// `physical_package_id`.
    pub socket: u32,
    /// `core_id`: unique within its socket only, often with gaps.
    pub core_id: u32,
    /// The node of its first thread.
    pub node: u32,
    /// Its online threads (the first one is where a worker goes).
    pub cpus: Cpus,
}

/// One NUMA node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub id: u32,
    /// Its online CPUs (none on a node with memory only).
    pub cpus: Cpus,
}

impl Topology {
    pub fn sockets(&self) -> BTreeSet<u32> {
        self.cores.iter().map(|core| core.socket).collect()
    }

    /// Present CPUs that are offline.
    pub fn offline(&self) -> Cpus {
        self.present.difference(&self.online).copied().collect()
    }
}

#[derive(Debug, Args)]
pub struct TopologyArgs {
    /// Read sysfs under this directory instead of `/` (a captured or generated tree).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// CPUs kept free for judged and the kernel, like `0,40` or `0-1,40-41`, or `none`
    /// (default: the first physical core with its SMT siblings; none on a one-core host).
    /// A named CPU reserves its whole core.
    #[arg(long, value_name = "LIST", value_parser = parse_housekeeping)]
    pub housekeeping: Option<Housekeeping>,
    /// Give SMT siblings workers of their own (default: one worker per physical core, its
    /// siblings idle).
    #[arg(long)]
    pub smt: bool,
    /// At most N workers, taken from the nodes in turn (default: one per free core).
    #[arg(long, value_name = "N")]
    pub max_workers: Option<usize>,
    /// Print one JSON object instead of the summary and the table.
    #[arg(long)]
    pub json: bool,
    /// Plan as `judged serve` with this config does: its [workers] housekeeping, smt and
    /// count (the options above, when given, override them).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The CPUs of `--housekeeping`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Housekeeping(pub Cpus);

/// `none`, or a CPU list (`judged topology --housekeeping`, `[workers] housekeeping`).
pub fn parse_housekeeping(text: &str) -> Result<Housekeeping, String> {
    if text.trim() == "none" {
        return Ok(Housekeeping(Cpus::new()));
    }
    parse_cpu_list(text).map(Housekeeping)
}

pub const TOPOLOGY_HELP: &str = "\
Reads the CPU topology from sysfs and prints the host and the plan `judged serve` will follow:
one worker per physical core, each with its own warm sandbox whose cgroup is pinned to the
core (cpuset.cpus) and whose memory comes from the core's NUMA node (cpuset.mems); SMT
siblings idle, since a sibling's load slows a run down; housekeeping cores left to judged
itself and the kernel; workers taken from the nodes in turn, so a limit spreads them evenly.
Nothing on the host is changed, and reading sysfs needs no privileges.

The host: sockets, NUMA nodes, physical cores, threads (online CPUs), the online and the
offline CPUs, and each node's CPUs.

Columns of the plan:
  worker       the worker's number, in placement order: consecutive workers are on different
               nodes when the host has several
  cpuset.cpus  the CPU its warm sandbox runs on
  cpuset.mems  the NUMA node its memory is bound to: its core's node
  socket       the core's physical package (physical_package_id)
  core         the core's id within its socket (core_id, often with gaps)

Under the table:
  housekeeping   CPUs no worker gets. Whole cores: a named CPU reserves its SMT siblings too.
  idle siblings  SMT siblings of a worker's CPU that no worker uses
  unused         CPUs of free cores beyond --max-workers

Defaults: housekeeping is the first physical core (CPU 0 and its SMT siblings), or nothing on
a host with one core; one worker per other physical core on its first thread; no limit.

Files read under ROOT: sys/devices/system/cpu/online and present;
cpuN/topology/physical_package_id, core_id and core_cpus_list (thread_siblings_list on
kernels without it) of each online CPU; sys/devices/system/node/online and each
nodeN/cpulist (without node/online the kernel has no NUMA: one node 0).

With --config FILE, the plan is the one `judged serve --config FILE' follows: its [workers]
housekeeping, smt and count (the daemon's worker slots are these workers, each judging's
steps pinned with runguard --cpuset and --cpuset-mems to its worker's columns below).

Examples:
  judged topology
  judged topology --config /etc/judged/serve.toml
  judged topology --housekeeping 0-1,40-41 --max-workers 16
  judged topology --smt --json
  judged topology --root testdata/topology/xeon-2s-40c-smt

Exit status:
  0  the plan was printed
  2  no plan: sysfs under ROOT is unreadable or malformed, or the request is impossible
     (the message says what to change)";

/// Run `judged topology`.
pub fn execute(args: TopologyArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(
        args.root.is_dir(),
        "--root `{}' is not a directory",
        args.root.display()
    );
    let topology = sysfs::read(&args.root)?;
    let mut options = Options::default();
    if let Some(path) = &args.config {
        let workers = crate::serve::config::Config::load_workers(path)?;
        if workers.placement == crate::serve::config::Placement::None {
            eprintln!(
                "note: `{}' has [workers] placement = \"none\": the daemon pins nothing; \
                 this is the plan placement = \"topology\" would follow",
                path.display()
            );
        }
        options = workers.placement_options();
    }
    if let Some(housekeeping) = args.housekeeping {
        options.housekeeping = Some(housekeeping.0);
    }
    options.smt |= args.smt;
    if args.max_workers.is_some() {
        options.max_workers = args.max_workers;
    }
    let plan = place(&topology, &options)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&topology, &plan))?
        );
    } else {
        print!("{}", summary(&topology, &plan));
    }
    Ok(0)
}

/// One JSON object: `host` (counts, CPU sets, nodes) and `plan` (workers with the values of
/// their `cpuset.cpus` and `cpuset.mems`, and the CPUs left to housekeeping, idle, unused).
pub fn to_json(topology: &Topology, plan: &Plan) -> serde_json::Value {
    let workers: Vec<serde_json::Value> = plan
        .workers
        .iter()
        .map(|w| {
            serde_json::json!({
                "id": w.id,
                "node": w.node,
                "cpus": w.cpus,
                "cpuset_cpus": w.cpuset_cpus(),
                "cpuset_mems": w.cpuset_mems(),
                "socket": w.socket,
                "core": w.core,
            })
        })
        .collect();
    serde_json::json!({
        "host": {
            "sockets": topology.sockets().len(),
            "nodes": topology.nodes,
            "cores": topology.cores.len(),
            "threads": topology.online.len(),
            "online": topology.online,
            "offline": topology.offline(),
        },
        "plan": {
            "workers": workers,
            "housekeeping": plan.housekeeping,
            "idle_siblings": plan.idle_siblings,
            "unused": plan.unused,
        },
    })
}

/// A CPU set for people: `0-3,8`, or `none`.
fn shown(cpus: &Cpus) -> String {
    if cpus.is_empty() {
        "none".to_owned()
    } else {
        format_cpu_list(cpus)
    }
}

/// The host summary, the plan's table, and the CPUs without a worker.
pub fn summary(topology: &Topology, plan: &Plan) -> String {
    let mut out = String::new();
    let sockets = topology.sockets().len();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let _ = writeln!(
        out,
        "host: {}, {}, {}, {}",
        plural(sockets, "socket"),
        plural(topology.nodes.len(), "NUMA node"),
        plural(topology.cores.len(), "physical core"),
        plural(topology.online.len(), "thread"),
    );
    let _ = writeln!(
        out,
        "online CPUs: {}   offline: {}",
        shown(&topology.online),
        shown(&topology.offline())
    );
    for node in &topology.nodes {
        let _ = writeln!(out, "node {}: CPUs {}", node.id, shown(&node.cpus));
    }
    let per_node: Vec<String> = topology
        .nodes
        .iter()
        .map(|node| {
            let n = plan.workers.iter().filter(|w| w.node == node.id).count();
            format!("node {}: {n}", node.id)
        })
        .collect();
    let _ = writeln!(
        out,
        "\nplan: {} ({})",
        plural(plan.workers.len(), "worker"),
        per_node.join(", ")
    );
    let _ = writeln!(
        out,
        "{:>6}  {:<11}  {:<11}  {:>6}  {:>4}",
        "worker", "cpuset.cpus", "cpuset.mems", "socket", "core"
    );
    for w in &plan.workers {
        let _ = writeln!(
            out,
            "{:>6}  {:<11}  {:<11}  {:>6}  {:>4}",
            w.id,
            w.cpuset_cpus(),
            w.cpuset_mems(),
            w.socket,
            w.core
        );
    }
    let _ = writeln!(out, "housekeeping: {}", shown(&plan.housekeeping));
    let _ = writeln!(out, "idle siblings: {}", shown(&plan.idle_siblings));
    let _ = writeln!(out, "unused: {}", shown(&plan.unused));
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn fixture(name: &str) -> Topology {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/topology")
            .join(name);
        assert!(root.is_dir(), "fixture {} missing", root.display());
        sysfs::read(&root).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn cpus(list: &str) -> Cpus {
        parse_cpu_list(list).unwrap()
    }

    const FIXTURES: [&str; 5] = [
        "laptop-4c8t",
        "xeon-2s-40c-smt",
        "epyc-8node",
        "single-cpu",
        "desktop-6c12t-offline",
    ];

    #[test]
    fn every_fixture_reads_as_its_host() {
        // (fixture, sockets, nodes, cores, threads, online, offline)
        let cases: &[(&str, usize, usize, usize, usize, &str, &str)] = &[
            ("laptop-4c8t", 1, 1, 4, 8, "0-7", ""),
            ("xeon-2s-40c-smt", 2, 2, 40, 80, "0-79", ""),
            ("epyc-8node", 1, 8, 64, 128, "0-127", ""),
            ("single-cpu", 1, 1, 1, 1, "0", ""),
            (
                "desktop-6c12t-offline",
                1,
                1,
                5,
                9,
                "0-3,5-7,9,11",
                "4,8,10",
            ),
        ];
        assert_eq!(cases.len(), FIXTURES.len(), "a fixture without a row here");
        for &(name, sockets, nodes, cores, threads, online, offline) in cases {
            let topology = fixture(name);
            assert_eq!(topology.sockets().len(), sockets, "{name}: sockets");
            assert_eq!(topology.nodes.len(), nodes, "{name}: nodes");
            assert_eq!(topology.cores.len(), cores, "{name}: cores");
            assert_eq!(topology.online.len(), threads, "{name}: threads");
            assert_eq!(topology.online, cpus(online), "{name}: online");
            assert_eq!(topology.offline(), cpus(offline), "{name}: offline");
        }
    }

    #[test]
    fn cores_nodes_and_siblings_of_the_xeon() {
        let xeon = fixture("xeon-2s-40c-smt");
        // CPU n and n + 40 share a core; socket 1 starts at CPU 20; core ids have gaps.
        let core = |cpu: u32| xeon.cores.iter().find(|c| c.cpus.contains(&cpu)).unwrap();
        assert_eq!(core(25).cpus, cpus("25,65"));
        assert_eq!(
            (core(25).socket, core(25).core_id, core(25).node),
            (1, 8, 1)
        );
        assert_eq!(
            (core(59).socket, core(59).core_id, core(59).node),
            (0, 28, 0)
        );
        assert_eq!(xeon.nodes[0].cpus, cpus("0-19,40-59"));
        assert_eq!(xeon.nodes[1].cpus, cpus("20-39,60-79"));
        let epyc = fixture("epyc-8node");
        assert_eq!(epyc.nodes[3].cpus, cpus("24-31,88-95"));
        let desktop = fixture("desktop-6c12t-offline");
        let firsts: Vec<Cpus> = desktop.cores.iter().map(|c| c.cpus.clone()).collect();
        let expected: Vec<Cpus> = ["0,6", "1,7", "2", "3,9", "5,11"].map(cpus).to_vec();
        assert_eq!(
            firsts, expected,
            "an offline sibling leaves its core one thread"
        );
    }

    struct Case {
        fixture: &'static str,
        housekeeping: Option<&'static str>,
        smt: bool,
        max_workers: Option<usize>,
        /// Workers per node, by node id.
        per_node: &'static [usize],
        /// The first workers' (CPU, node), in order.
        first: &'static [(u32, u32)],
        /// The last worker's (CPU, node).
        last: (u32, u32),
        /// Every worker's CPU.
        worker_cpus: &'static str,
        housekeeping_cpus: &'static str,
        idle_siblings: &'static str,
        unused: &'static str,
    }

    const DEFAULTS: Case = Case {
        fixture: "",
        housekeeping: None,
        smt: false,
        max_workers: None,
        per_node: &[],
        first: &[],
        last: (0, 0),
        worker_cpus: "",
        housekeeping_cpus: "",
        idle_siblings: "",
        unused: "",
    };

    const CASES: &[Case] = &[
        Case {
            fixture: "laptop-4c8t",
            per_node: &[3],
            first: &[(1, 0), (2, 0), (3, 0)],
            last: (3, 0),
            worker_cpus: "1-3",
            housekeeping_cpus: "0,4",
            idle_siblings: "5-7",
            ..DEFAULTS
        },
        Case {
            fixture: "laptop-4c8t",
            smt: true,
            per_node: &[6],
            first: &[(1, 0), (2, 0), (3, 0), (5, 0), (6, 0), (7, 0)],
            last: (7, 0),
            worker_cpus: "1-3,5-7",
            housekeeping_cpus: "0,4",
            ..DEFAULTS
        },
        Case {
            fixture: "laptop-4c8t",
            housekeeping: Some("none"),
            per_node: &[4],
            first: &[(0, 0), (1, 0)],
            last: (3, 0),
            worker_cpus: "0-3",
            idle_siblings: "4-7",
            ..DEFAULTS
        },
        Case {
            // A named CPU reserves its whole core: 1 takes 5 along.
            fixture: "laptop-4c8t",
            housekeeping: Some("1"),
            per_node: &[3],
            first: &[(0, 0), (2, 0), (3, 0)],
            last: (3, 0),
            worker_cpus: "0,2-3",
            housekeeping_cpus: "1,5",
            idle_siblings: "4,6-7",
            ..DEFAULTS
        },
        Case {
            fixture: "laptop-4c8t",
            housekeeping: Some("0-1"),
            per_node: &[2],
            first: &[(2, 0), (3, 0)],
            last: (3, 0),
            worker_cpus: "2-3",
            housekeeping_cpus: "0-1,4-5",
            idle_siblings: "6-7",
            ..DEFAULTS
        },
        Case {
            fixture: "laptop-4c8t",
            max_workers: Some(2),
            per_node: &[2],
            first: &[(1, 0), (2, 0)],
            last: (2, 0),
            worker_cpus: "1-2",
            housekeeping_cpus: "0,4",
            idle_siblings: "5-6",
            unused: "3,7",
            ..DEFAULTS
        },
        Case {
            // Node 0 gives CPU 0's core to housekeeping: 19 workers there, 20 on node 1.
            fixture: "xeon-2s-40c-smt",
            per_node: &[19, 20],
            first: &[(1, 0), (20, 1), (2, 0), (21, 1)],
            last: (39, 1),
            worker_cpus: "1-39",
            housekeeping_cpus: "0,40",
            idle_siblings: "41-79",
            ..DEFAULTS
        },
        Case {
            // The first threads of every core before any second thread.
            fixture: "xeon-2s-40c-smt",
            smt: true,
            per_node: &[38, 40],
            first: &[(1, 0), (20, 1), (2, 0), (21, 1)],
            last: (79, 1),
            worker_cpus: "1-39,41-79",
            housekeeping_cpus: "0,40",
            ..DEFAULTS
        },
        Case {
            fixture: "xeon-2s-40c-smt",
            max_workers: Some(10),
            per_node: &[5, 5],
            first: &[(1, 0), (20, 1), (2, 0), (21, 1)],
            last: (24, 1),
            worker_cpus: "1-5,20-24",
            housekeeping_cpus: "0,40",
            idle_siblings: "41-45,60-64",
            unused: "6-19,25-39,46-59,65-79",
            ..DEFAULTS
        },
        Case {
            fixture: "xeon-2s-40c-smt",
            max_workers: Some(1),
            per_node: &[1, 0],
            first: &[(1, 0)],
            last: (1, 0),
            worker_cpus: "1",
            housekeeping_cpus: "0,40",
            idle_siblings: "41",
            unused: "2-39,42-79",
            ..DEFAULTS
        },
        Case {
            fixture: "xeon-2s-40c-smt",
            housekeeping: Some("0-1,20-21"),
            per_node: &[18, 18],
            first: &[(2, 0), (22, 1)],
            last: (39, 1),
            worker_cpus: "2-19,22-39",
            housekeeping_cpus: "0-1,20-21,40-41,60-61",
            idle_siblings: "42-59,62-79",
            ..DEFAULTS
        },
        Case {
            fixture: "xeon-2s-40c-smt",
            max_workers: Some(1000),
            per_node: &[19, 20],
            first: &[(1, 0)],
            last: (39, 1),
            worker_cpus: "1-39",
            housekeeping_cpus: "0,40",
            idle_siblings: "41-79",
            ..DEFAULTS
        },
        Case {
            fixture: "epyc-8node",
            per_node: &[7, 8, 8, 8, 8, 8, 8, 8],
            first: &[
                (1, 0),
                (8, 1),
                (16, 2),
                (24, 3),
                (32, 4),
                (40, 5),
                (48, 6),
                (56, 7),
                (2, 0),
            ],
            last: (63, 7),
            worker_cpus: "1-63",
            housekeeping_cpus: "0,64",
            idle_siblings: "65-127",
            ..DEFAULTS
        },
        Case {
            fixture: "epyc-8node",
            max_workers: Some(16),
            per_node: &[2, 2, 2, 2, 2, 2, 2, 2],
            first: &[(1, 0), (8, 1), (16, 2)],
            last: (57, 7),
            worker_cpus: "1-2,8-9,16-17,24-25,32-33,40-41,48-49,56-57",
            housekeeping_cpus: "0,64",
            idle_siblings: "65-66,72-73,80-81,88-89,96-97,104-105,112-113,120-121",
            unused: "3-7,10-15,18-23,26-31,34-39,42-47,50-55,58-63,\
                     67-71,74-79,82-87,90-95,98-103,106-111,114-119,122-127",
            ..DEFAULTS
        },
        Case {
            fixture: "epyc-8node",
            smt: true,
            max_workers: Some(9),
            per_node: &[2, 1, 1, 1, 1, 1, 1, 1],
            first: &[(1, 0), (8, 1)],
            last: (2, 0),
            worker_cpus: "1-2,8,16,24,32,40,48,56",
            housekeeping_cpus: "0,64",
            // With --smt too, the siblings of a worker's CPU left out by the limit are idle.
            idle_siblings: "65-66,72,80,88,96,104,112,120",
            unused: "3-7,9-15,17-23,25-31,33-39,41-47,49-55,57-63,\
                     67-71,73-79,81-87,89-95,97-103,105-111,113-119,121-127",
            ..DEFAULTS
        },
        Case {
            // One core: no housekeeping, or there would be no worker.
            fixture: "single-cpu",
            per_node: &[1],
            first: &[(0, 0)],
            last: (0, 0),
            worker_cpus: "0",
            ..DEFAULTS
        },
        Case {
            fixture: "single-cpu",
            smt: true,
            per_node: &[1],
            first: &[(0, 0)],
            last: (0, 0),
            worker_cpus: "0",
            ..DEFAULTS
        },
        Case {
            fixture: "desktop-6c12t-offline",
            per_node: &[4],
            first: &[(1, 0), (2, 0), (3, 0), (5, 0)],
            last: (5, 0),
            worker_cpus: "1-3,5",
            housekeeping_cpus: "0,6",
            idle_siblings: "7,9,11",
            ..DEFAULTS
        },
        Case {
            fixture: "desktop-6c12t-offline",
            smt: true,
            per_node: &[7],
            first: &[(1, 0), (2, 0), (3, 0), (5, 0), (7, 0), (9, 0), (11, 0)],
            last: (11, 0),
            worker_cpus: "1-3,5,7,9,11",
            housekeeping_cpus: "0,6",
            ..DEFAULTS
        },
    ];

    fn options(case: &Case) -> Options {
        Options {
            housekeeping: case
                .housekeeping
                .map(|list| parse_housekeeping(list).unwrap().0),
            smt: case.smt,
            max_workers: case.max_workers,
        }
    }

    #[test]
    fn plans_of_every_fixture() {
        for case in CASES {
            let topology = fixture(case.fixture);
            let options = options(case);
            let what = format!("{} {options:?}", case.fixture);
            let plan = place(&topology, &options).unwrap_or_else(|e| panic!("{what}: {e}"));
            let per_node: Vec<usize> = topology
                .nodes
                .iter()
                .map(|n| plan.workers.iter().filter(|w| w.node == n.id).count())
                .collect();
            assert_eq!(per_node, case.per_node, "{what}: workers per node");
            let placed: Vec<(u32, u32)> = plan
                .workers
                .iter()
                .map(|w| (*w.cpus.first().unwrap(), w.node))
                .collect();
            assert_eq!(&placed[..case.first.len()], case.first, "{what}: first");
            assert_eq!(placed.last(), Some(&case.last), "{what}: last");
            let worker_cpus: Cpus = plan.workers.iter().flat_map(|w| w.cpus.clone()).collect();
            assert_eq!(worker_cpus, cpus(case.worker_cpus), "{what}: worker CPUs");
            assert_eq!(
                plan.housekeeping,
                cpus(case.housekeeping_cpus),
                "{what}: housekeeping"
            );
            assert_eq!(
                plan.idle_siblings,
                cpus(case.idle_siblings),
                "{what}: idle siblings"
            );
            assert_eq!(plan.unused, cpus(case.unused), "{what}: unused");
        }
    }

    #[test]
    fn every_plan_places_each_cpu_once_and_memory_on_the_cores_node() {
        let option_sets = [
            Options::default(),
            Options {
                smt: true,
                ..Options::default()
            },
            Options {
                max_workers: Some(3),
                ..Options::default()
            },
            Options {
                smt: true,
                max_workers: Some(5),
                housekeeping: Some(Cpus::new()),
            },
        ];
        for name in FIXTURES {
            let topology = fixture(name);
            for options in &option_sets {
                let plan = place(&topology, options).unwrap();
                let mut seen = Cpus::new();
                let all = plan
                    .workers
                    .iter()
                    .flat_map(|w| w.cpus.iter())
                    .chain(&plan.housekeeping)
                    .chain(&plan.idle_siblings)
                    .chain(&plan.unused);
                for &cpu in all {
                    assert!(seen.insert(cpu), "{name} {options:?}: CPU {cpu} twice");
                }
                assert_eq!(seen, topology.online, "{name} {options:?}");
                for (i, worker) in plan.workers.iter().enumerate() {
                    assert_eq!(worker.id, i);
                    assert_eq!(worker.cpus.len(), 1, "{name}: one CPU per worker");
                    let node = topology.nodes.iter().find(|n| n.id == worker.node).unwrap();
                    assert!(node.cpus.is_superset(&worker.cpus), "{name}: {worker:?}");
                    assert_eq!(worker.cpuset_mems(), worker.node.to_string());
                }
            }
        }
    }

    #[test]
    fn impossible_requests_say_what_to_change() {
        // (fixture, --housekeeping, --max-workers, the error)
        let cases: &[(&str, &str, Option<usize>, PlacementError)] = &[
            (
                "laptop-4c8t",
                "0-3",
                None,
                PlacementError::NoCoreLeft {
                    housekeeping: "0-7".into(),
                    cores: 4,
                },
            ),
            (
                "single-cpu",
                "0",
                None,
                PlacementError::NoCoreLeft {
                    housekeeping: "0".into(),
                    cores: 1,
                },
            ),
            (
                "laptop-4c8t",
                "0,8",
                None,
                PlacementError::HousekeepingMissing {
                    cpu: 8,
                    present: "0-7".into(),
                },
            ),
            (
                "desktop-6c12t-offline",
                "0,4",
                None,
                PlacementError::HousekeepingOffline {
                    cpu: 4,
                    online: "0-3,5-7,9,11".into(),
                },
            ),
            ("xeon-2s-40c-smt", "0", Some(0), PlacementError::ZeroWorkers),
        ];
        for (name, housekeeping, max_workers, expected) in cases {
            let options = Options {
                housekeeping: Some(parse_housekeeping(housekeeping).unwrap().0),
                smt: false,
                max_workers: *max_workers,
            };
            let error = place(&fixture(name), &options).unwrap_err();
            assert_eq!(&error, expected, "{name} --housekeeping {housekeeping}");
        }
        let message = |e: PlacementError| e.to_string();
        assert!(message(cases[0].3.clone()).contains("name fewer"));
        assert!(message(cases[2].3.clone()).contains("name CPUs of that list"));
        assert!(message(cases[3].3.clone()).contains("bring it online"));
    }

    #[test]
    fn housekeeping_takes_none_or_a_list() {
        assert_eq!(parse_housekeeping("none").unwrap().0, Cpus::new());
        assert_eq!(parse_housekeeping("0,40").unwrap().0, cpus("0,40"));
        assert!(parse_housekeeping("0,,1")
            .unwrap_err()
            .contains("empty item"));
    }

    #[test]
    fn the_summary_shows_host_plan_and_leftovers() {
        let xeon = fixture("xeon-2s-40c-smt");
        let plan = place(&xeon, &Options::default()).unwrap();
        let out = summary(&xeon, &plan);
        for line in [
            "host: 2 sockets, 2 NUMA nodes, 40 physical cores, 80 threads",
            "online CPUs: 0-79   offline: none",
            "node 1: CPUs 20-39,60-79",
            "plan: 39 workers (node 0: 19, node 1: 20)",
            "     1  20           1                 1     0",
            "housekeeping: 0,40",
            "idle siblings: 41-79",
            "unused: none",
        ] {
            assert!(out.lines().any(|l| l == line), "no line {line:?} in\n{out}");
        }
        let json = to_json(&xeon, &plan);
        assert_eq!(json["plan"]["workers"][1]["cpuset_cpus"], "20");
        assert_eq!(json["plan"]["workers"][1]["cpuset_mems"], "1");
        assert_eq!(json["host"]["cores"], 40);
    }

    #[test]
    fn help_is_a_manual() {
        let help = <crate::cli::Cli as clap::CommandFactory>::command()
            .find_subcommand_mut("topology")
            .unwrap()
            .render_long_help()
            .to_string();
        for needle in [
            "cpuset.mems",
            "idle siblings",
            "Examples",
            "Exit status",
            "--smt",
        ] {
            assert!(help.contains(needle), "{needle} not in the help");
        }
    }
}
