//! Loading, attaching, reading and detaching the BPF programs with aya (built with clang).

use std::collections::HashMap;
use std::path::Path;

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuHashMap, StackTraceMap};
use aya::programs::{BtfTracePoint, FEntry, KProbe, Program, RawTracePoint, TracePoint};
use aya::{include_bytes_aligned, Btf, Ebpf};

use super::format::check_tracepoint;
use super::raw::{self, RawContentionKey, RawContentionStat, RawForkStat, RawWorkStat};
use super::{Probe, Status, LOCK_WAITS_KEPT};
use crate::diagnostics::events::EventWindow;
use crate::diagnostics::kallsyms::Symbols;
use crate::diagnostics::procfs;

static WORKQUEUE: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/workqueue.bpf.o"));
static LOCK: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lock.bpf.o"));
static FORK: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fork.bpf.o"));
static PROBE: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/probe.bpf.o"));

/// Where tracefs is expected (aya looks here, then under debugfs).
const TRACEFS: &str = "/sys/kernel/tracing";

/// (program, tracepoint category, tracepoint) of each object.
const WORKQUEUE_PROGRAMS: [(&str, &str, &str); 3] = [
    ("workqueue_queue_work", "workqueue", "workqueue_queue_work"),
    (
        "workqueue_execute_start",
        "workqueue",
        "workqueue_execute_start",
    ),
    (
        "workqueue_execute_end",
        "workqueue",
        "workqueue_execute_end",
    ),
];
const LOCK_PROGRAMS: [(&str, &str, &str); 2] = [
    ("contention_begin", "lock", "contention_begin"),
    ("contention_end", "lock", "contention_end"),
];

const FORK_PROGRAMS: [(&str, &str, &str); 4] = [
    ("sys_enter_fork", "syscalls", "sys_enter_fork"),
    ("sys_enter_clone", "syscalls", "sys_enter_clone"),
    ("sys_enter_clone3", "syscalls", "sys_enter_clone3"),
    ("sched_process_fork", "sched", "sched_process_fork"),
];

/// The running programs; dropping it detaches them and unmounts tracefs if we mounted it.
pub struct Watcher {
    workqueue: Option<Ebpf>,
    lock: Option<Ebpf>,
    fork: Option<Ebpf>,
    mounted_tracefs: bool,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Programs first: their tracepoint links hold tracefs event ids.
        self.workqueue.take();
        self.lock.take();
        self.fork.take();
        if self.mounted_tracefs {
            let _ = nix::mount::umount(TRACEFS);
        }
    }
}

/// An error and its sources on one line, cut short (verifier logs can be long).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    let text = text.split('\n').next().unwrap_or_default().to_owned();
    match text.char_indices().nth(240) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text,
    }
}

/// Mount tracefs where aya and the format checks look, unless it is there; whether we did.
fn ensure_tracefs() -> Result<bool, String> {
    let tracefs = Path::new(TRACEFS);
    if tracefs.join("events").is_dir() || Path::new("/sys/kernel/debug/tracing/events").is_dir() {
        return Ok(false);
    }
    nix::mount::mount(
        Some("nodev"),
        tracefs,
        Some("tracefs"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("tracefs is not mounted and mounting it at {TRACEFS} failed: {e}"))?;
    Ok(true)
}

fn tracefs_root() -> &'static Path {
    if Path::new(TRACEFS).join("events").is_dir() {
        Path::new(TRACEFS)
    } else {
        Path::new("/sys/kernel/debug/tracing")
    }
}

fn program<'a, T>(bpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut Program, Error = aya::programs::ProgramError>,
{
    let program = bpf
        .program_mut(name)
        .ok_or_else(|| format!("no program `{name}' in the object"))?;
    program.try_into().map_err(|e| chain(&e))
}

/// Load an object of classic tracepoint programs and attach them all.
fn load_tracepoints(bytes: &[u8], programs: &[(&str, &str, &str)]) -> Result<Ebpf, String> {
    for (_, category, name) in programs {
        check_tracepoint(tracefs_root(), category, name)?;
    }
    let mut bpf = Ebpf::load(bytes).map_err(|e| format!("loading the object: {}", chain(&e)))?;
    for (name, category, tracepoint) in programs {
        let program: &mut TracePoint = program(&mut bpf, name)?;
        program
            .load()
            .map_err(|e| format!("loading {name}: {}", chain(&e)))?;
        program
            .attach(category, tracepoint)
            .map_err(|e| format!("attaching {name} to {category}:{tracepoint}: {}", chain(&e)))?;
    }
    Ok(bpf)
}

/// Which attach types work: one trivial program each, loaded, attached and detached again.
fn probe_attach_types() -> Vec<Probe> {
    let mut bpf = match Ebpf::load(PROBE) {
        Ok(bpf) => bpf,
        Err(e) => {
            return vec![Probe::result(
                "all",
                Err(format!("loading the probe: {}", chain(&e))),
            )]
        }
    };
    let btf = Btf::from_sys_fs().map_err(|e| format!("no kernel BTF: {}", chain(&e)));
    let mut probes = Vec::new();
    let mut result =
        |name: &str, outcome: Result<(), String>| probes.push(Probe::result(name, outcome));

    result(
        "tracepoint",
        program::<TracePoint>(&mut bpf, "probe_tracepoint").and_then(|p| {
            p.load().map_err(|e| chain(&e))?;
            p.attach("sched", "sched_process_free")
                .map(drop)
                .map_err(|e| chain(&e))
        }),
    );
    result(
        "raw_tracepoint",
        program::<RawTracePoint>(&mut bpf, "probe_raw_tracepoint").and_then(|p| {
            p.load().map_err(|e| chain(&e))?;
            p.attach("sched_process_free")
                .map(drop)
                .map_err(|e| chain(&e))
        }),
    );
    result(
        "tp_btf",
        btf.clone().and_then(|btf| {
            let p = program::<BtfTracePoint>(&mut bpf, "probe_tp_btf")?;
            p.load("sched_process_free", &btf).map_err(|e| chain(&e))?;
            p.attach().map(drop).map_err(|e| chain(&e))
        }),
    );
    result(
        "kprobe",
        program::<KProbe>(&mut bpf, "probe_kprobe").and_then(|p| {
            p.load().map_err(|e| chain(&e))?;
            p.attach("do_exit", 0).map(drop).map_err(|e| chain(&e))
        }),
    );
    result(
        "fentry",
        btf.and_then(|btf| {
            let p = program::<FEntry>(&mut bpf, "probe_fentry")?;
            p.load("do_exit", &btf).map_err(|e| chain(&e))?;
            p.attach().map(drop).map_err(|e| chain(&e))
        }),
    );
    probes
}

impl Watcher {
    /// Start what works; the status says what does and why the rest does not. `None` when
    /// no program runs (the status then names every reason).
    pub fn start() -> (Option<Watcher>, Status) {
        let mut status = Status::default();
        if !nix::unistd::geteuid().is_root() {
            status.unavailable = Some(
                "not root (loading BPF programs and reading kernel addresses needs root)"
                    .to_owned(),
            );
            return (None, status);
        }
        let mounted_tracefs = match ensure_tracefs() {
            Ok(mounted) => mounted,
            Err(reason) => {
                status.unavailable = Some(reason);
                return (None, status);
            }
        };
        status.mounted_tracefs = mounted_tracefs;
        let mut watcher = Watcher {
            workqueue: None,
            lock: None,
            fork: None,
            mounted_tracefs,
        };
        status.attach_types = probe_attach_types();
        let workqueue = load_tracepoints(WORKQUEUE, &WORKQUEUE_PROGRAMS);
        let lock = load_tracepoints(LOCK, &LOCK_PROGRAMS);
        let fork = load_tracepoints(FORK, &FORK_PROGRAMS);
        let result =
            |object: &Result<Ebpf, String>| object.as_ref().map(drop).map_err(Clone::clone);
        status.programs = vec![
            Probe::result("workqueue", result(&workqueue)),
            Probe::result("lock", result(&lock)),
            Probe::result("fork", result(&fork)),
        ];
        watcher.workqueue = workqueue.ok();
        watcher.lock = lock.ok();
        watcher.fork = fork.ok();
        if watcher.workqueue.is_none() && watcher.lock.is_none() && watcher.fork.is_none() {
            let reasons: Vec<String> = status
                .programs
                .iter()
                .filter_map(|p| p.error.as_ref().map(|e| format!("{}: {e}", p.name)))
                .collect();
            status.unavailable = Some(format!("no program could run ({})", reasons.join("; ")));
            return (None, status);
        }
        (Some(watcher), status)
    }

    /// What the programs counted since the last call; each map is emptied as it is read.
    pub fn collect(&mut self, symbols: &Symbols) -> EventWindow {
        EventWindow {
            workqueue: self.workqueue.as_mut().and_then(|bpf| {
                let raw = drain_work_stats(bpf).ok()?;
                Some(raw::work_functions(&raw, symbols))
            }),
            locks: self.lock.as_mut().and_then(|bpf| {
                let (raw, stacks) = drain_contention(bpf).ok()?;
                Some(raw::lock_waits(&raw, &stacks, symbols, LOCK_WAITS_KEPT))
            }),
            forks: self.fork.as_mut().and_then(|bpf| {
                let raw: Vec<(u32, RawForkStat)> = drain_hash(bpf, "fork_stats").ok()?;
                Some(raw::fork_callers(&raw, resident_kib))
            }),
        }
    }
}

/// The resident set of process `pid` now, from `/proc/PID/statm`.
fn resident_kib(pid: u32) -> Option<u64> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    procfs::statm_rss_kib(&statm, u64::try_from(page).ok()? / 1024)
}

fn map<'a>(bpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map, aya::maps::MapError> {
    bpf.map_mut(name).ok_or(aya::maps::MapError::InvalidName {
        name: name.to_owned(),
    })
}

fn drain_work_stats(bpf: &mut Ebpf) -> Result<Vec<(u64, RawWorkStat)>, aya::maps::MapError> {
    let mut stats: PerCpuHashMap<&mut MapData, u64, RawWorkStat> =
        PerCpuHashMap::try_from(map(bpf, "work_stats")?)?;
    let keys: Vec<u64> = stats.keys().filter_map(Result::ok).collect();
    let mut raw = Vec::with_capacity(keys.len());
    for key in keys {
        if let Ok(values) = stats.get(&key, 0) {
            raw.push((key, raw::sum_cpus(&values)));
        }
        let _ = stats.remove(&key);
    }
    Ok(raw)
}

/// Every entry of hash map `name`, each deleted once read.
fn drain_hash<K: aya::Pod, V: aya::Pod>(
    bpf: &mut Ebpf,
    name: &str,
) -> Result<Vec<(K, V)>, aya::maps::MapError> {
    let mut entries: BpfHashMap<&mut MapData, K, V> = BpfHashMap::try_from(map(bpf, name)?)?;
    let keys: Vec<K> = entries.keys().filter_map(Result::ok).collect();
    let mut raw = Vec::with_capacity(keys.len());
    for key in keys {
        if let Ok(value) = entries.get(&key, 0) {
            raw.push((key, value));
        }
        let _ = entries.remove(&key);
    }
    Ok(raw)
}

type Contention = (
    Vec<(RawContentionKey, RawContentionStat)>,
    HashMap<i64, Vec<u64>>,
);

fn drain_contention(bpf: &mut Ebpf) -> Result<Contention, aya::maps::MapError> {
    let raw: Vec<(RawContentionKey, RawContentionStat)> = drain_hash(bpf, "contention")?;
    let mut stacks_map: StackTraceMap<&mut MapData> = StackTraceMap::try_from(map(bpf, "stacks")?)?;
    let mut stacks = HashMap::new();
    for (key, _) in &raw {
        if let Ok(id) = u32::try_from(key.stack_id) {
            if let Ok(trace) = stacks_map.get(&id, 0) {
                stacks.insert(key.stack_id, trace.frames().iter().map(|f| f.ip).collect());
            }
        }
    }
    let ids: Vec<u32> = stacks_map.stack_ids().filter_map(Result::ok).collect();
    for id in ids {
        let _ = stacks_map.remove(&id);
    }
    Ok((raw, stacks))
}
