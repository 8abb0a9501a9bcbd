//! Loading, attaching, reading and detaching the BPF programs with aya (built with clang).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aya::maps::{Array, CgroupArray, HashMap as BpfHashMap, MapData, PerCpuHashMap, StackTraceMap};
use aya::programs::{BtfTracePoint, FEntry, KProbe, Program, RawTracePoint, TracePoint};
use aya::{include_bytes_aligned, Btf, Ebpf, EbpfError, EbpfLoader};

use super::format::check_tracepoint;
use super::raw::{
    self, RawContentionKey, RawContentionStat, RawFileKey, RawFilePages, RawForkStat, RawLaneStack,
    RawLaneTasks, RawWorkStat,
};
use super::{Probe, Status, LOCK_WAITS_KEPT, MAX_LANES};
use crate::diagnostics::events::{EventWindow, RunEvents};
use crate::diagnostics::kallsyms::Symbols;
use crate::diagnostics::procfs;

static WORKQUEUE: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/workqueue.bpf.o"));
static LOCK: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lock.bpf.o"));
static FORK: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fork.bpf.o"));
static DSTATE: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dstate.bpf.o"));
static PAGECACHE: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pagecache.bpf.o"));
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

const DSTATE_PROGRAMS: [(&str, &str, &str); 3] = [
    ("sched_switch", "sched", "sched_switch"),
    ("sched_wakeup", "sched", "sched_wakeup"),
    ("sched_process_exit", "sched", "sched_process_exit"),
];

const PAGECACHE_PROGRAMS: [(&str, &str, &str); 2] = [
    (
        "mm_filemap_delete_from_page_cache",
        "filemap",
        "mm_filemap_delete_from_page_cache",
    ),
    (
        "mm_filemap_add_to_page_cache",
        "filemap",
        "mm_filemap_add_to_page_cache",
    ),
];

/// Run `load` (loading and attaching programs) as root with tracefs where aya and the format
/// checks look; with whether we mounted it. They need it only to find each tracepoint's
/// format and id (an attached program holds its perf event by descriptor, and BPF objects
/// are descriptors of the whole process). Where the host has no tracefs, `load` runs on a
/// thread of its own that unshares its mount namespace (a thread may: CLONE_NEWNS takes
/// CLONE_FS with it, which is per thread), makes its copies of the mounts private and mounts
/// tracefs there. The namespace, and the mount with it, goes when the thread ends, or the
/// process, however it ends: the host never sees our tracefs, not even from a judged killed
/// with SIGKILL while attaching (the daemon's host watcher attaches after it listens), and
/// processes attaching at once do not unmount each other's.
fn with_tracefs<T: Send>(
    load: impl FnOnce() -> Result<T, String> + Send,
) -> Result<(T, bool), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err(
            "not root (loading BPF programs and reading kernel addresses needs root)".to_owned(),
        );
    }
    if tracefs_root().join("events").is_dir() {
        return load().map(|loaded| (loaded, false));
    }
    let loading = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("judged-bpf-load".into())
            .spawn_scoped(scope, || {
                mount_private_tracefs()?;
                load()
            })
            .map_err(|e| format!("cannot start a thread to load BPF programs on: {e}"))?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    loading.map(|loaded| (loaded, true))
}

/// In a mount namespace of this thread's own, whose mounts propagate nowhere, mount tracefs
/// at [`TRACEFS`].
fn mount_private_tracefs() -> Result<(), String> {
    use nix::mount::MsFlags;
    let failed = |step: &str, e: nix::Error| {
        format!("tracefs is not mounted, and mounting it in a mount namespace of our own failed ({step}: {e})")
    };
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| failed("unshare(CLONE_NEWNS)", e))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| failed("making the mounts private", e))?;
    nix::mount::mount(
        Some("nodev"),
        TRACEFS,
        Some("tracefs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| failed(&format!("mount -t tracefs nodev {TRACEFS}"), e))
}

/// The running programs; dropping it detaches them.
pub struct Watcher {
    workqueue: Option<Ebpf>,
    lock: Option<Ebpf>,
    fork: Option<Ebpf>,
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
    let mut bpf = load(bytes, programs)?;
    attach(&mut bpf, programs)?;
    Ok(bpf)
}

/// Load an object of classic tracepoint programs, their record layouts checked first.
fn load(bytes: &[u8], programs: &[(&str, &str, &str)]) -> Result<Ebpf, String> {
    for (_, category, name) in programs {
        check_tracepoint(tracefs_root(), category, name)?;
    }
    load_object(bytes).map_err(|e| format!("loading the object: {}", chain(&e)))
}

thread_local! {
    /// One loader per thread, without the kernel's BTF. Making a loader parses the kernel's
    /// BTF (megabytes: most of a watcher's start-up), and `Ebpf::load` makes a new one and
    /// parses it a second time, for every object. The BTF serves CO-RE relocations only, and
    /// our programs have none: they read classic tracepoint records (`tracepoints.h`).
    static LOADER: std::cell::RefCell<EbpfLoader<'static>> = std::cell::RefCell::new({
        let mut loader = EbpfLoader::new();
        loader.btf(None);
        loader
    });
}

fn load_object(bytes: &[u8]) -> Result<Ebpf, EbpfError> {
    LOADER.with_borrow_mut(|loader| loader.load(bytes))
}

/// Load each program of a loaded object into the kernel and attach it to its tracepoint.
fn attach(bpf: &mut Ebpf, programs: &[(&str, &str, &str)]) -> Result<(), String> {
    for (name, category, tracepoint) in programs {
        let program: &mut TracePoint = program(bpf, name)?;
        program
            .load()
            .map_err(|e| format!("loading {name}: {}", chain(&e)))?;
        program
            .attach(category, tracepoint)
            .map_err(|e| format!("attaching {name} to {category}:{tracepoint}: {}", chain(&e)))?;
    }
    Ok(())
}

/// Which attach types work: one trivial program each, loaded, attached and detached again.
fn probe_attach_types() -> Vec<Probe> {
    let mut bpf = match load_object(PROBE) {
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
        match with_tracefs(|| Ok(Watcher::attach_all())) {
            Ok(((watcher, status), mounted_tracefs)) => (
                watcher,
                Status {
                    mounted_tracefs,
                    ..status
                },
            ),
            Err(reason) => (
                None,
                Status {
                    unavailable: Some(reason),
                    ..Status::default()
                },
            ),
        }
    }

    /// [`Watcher::start`] with tracefs there.
    fn attach_all() -> (Option<Watcher>, Status) {
        let mut status = Status::default();
        let mut watcher = Watcher {
            workqueue: None,
            lock: None,
            fork: None,
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
    drain_hash_where(bpf, name, |_| true)
}

/// The entries of hash map `name` whose key is `wanted`, each deleted once read.
fn drain_hash_where<K: aya::Pod, V: aya::Pod>(
    bpf: &mut Ebpf,
    name: &str,
    wanted: impl Fn(&K) -> bool,
) -> Result<Vec<(K, V)>, aya::maps::MapError> {
    let mut entries: BpfHashMap<&mut MapData, K, V> = BpfHashMap::try_from(map(bpf, name)?)?;
    let keys: Vec<K> = entries
        .keys()
        .filter_map(Result::ok)
        .filter(|key| wanted(key))
        .collect();
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
    let stacks = drain_stacks(bpf, raw.iter().map(|(key, _)| key.stack_id))?;
    Ok((raw, stacks))
}

/// The frames of each of `ids` in the stack trace map `stacks`, which is then emptied.
fn drain_stacks(
    bpf: &mut Ebpf,
    ids: impl Iterator<Item = i64>,
) -> Result<HashMap<i64, Vec<u64>>, aya::maps::MapError> {
    let stacks = read_stacks(bpf, ids)?;
    clear_stacks(bpf)?;
    Ok(stacks)
}

/// The frames of each of `ids` in the stack trace map `stacks`.
fn read_stacks(
    bpf: &mut Ebpf,
    ids: impl Iterator<Item = i64>,
) -> Result<HashMap<i64, Vec<u64>>, aya::maps::MapError> {
    let stacks_map: StackTraceMap<&mut MapData> = StackTraceMap::try_from(map(bpf, "stacks")?)?;
    let mut stacks = HashMap::new();
    for stack_id in ids {
        if let Ok(id) = u32::try_from(stack_id) {
            if let Ok(trace) = stacks_map.get(&id, 0) {
                stacks.insert(stack_id, trace.frames().iter().map(|f| f.ip).collect());
            }
        }
    }
    Ok(stacks)
}

/// Empty the stack trace map `stacks`.
fn clear_stacks(bpf: &mut Ebpf) -> Result<(), aya::maps::MapError> {
    let mut stacks_map: StackTraceMap<&mut MapData> = StackTraceMap::try_from(map(bpf, "stacks")?)?;
    let ids: Vec<u32> = stacks_map.stack_ids().filter_map(Result::ok).collect();
    for id in ids {
        let _ = stacks_map.remove(&id);
    }
    Ok(())
}

/// D-state time per kernel stack of the runs in each of a process's run lanes
/// (`dstate.bpf.c`), and which of their tasks exited. Dropping it detaches the programs.
pub struct RunTracer {
    bpf: Ebpf,
    /// Whether a stack was read since the map was last emptied (opening the stack trace map
    /// reads a sysctl file: a run that slept not at all costs no more than the map lookups).
    stacks_used: bool,
    /// Whether exits are recorded (`sched_process_exit` attached).
    exits: bool,
}

impl RunTracer {
    /// Count the D-state sleeps (and with `exits`, record the exits) of tasks under each of
    /// `lanes` (directories of the cgroup2 mount, at most [`MAX_LANES`]); lane `i` is
    /// `lanes[i]`.
    pub fn start(lanes: &[PathBuf], exits: bool) -> Result<RunTracer, String> {
        if lanes.len() > MAX_LANES {
            return Err(format!(
                "{} run lanes, but the D-state tracer follows at most {MAX_LANES}",
                lanes.len()
            ));
        }
        // The exits are wanted only to pick out the runs' taskstats exit records.
        let programs = if exits {
            &DSTATE_PROGRAMS[..]
        } else {
            &DSTATE_PROGRAMS[..2]
        };
        let (bpf, _) = with_tracefs(|| RunTracer::load(lanes, programs))?;
        Ok(RunTracer {
            bpf,
            stacks_used: false,
            exits,
        })
    }

    /// Load the D-state programs, point them at `lanes` and attach them (tracefs there).
    fn load(lanes: &[PathBuf], programs: &[(&str, &str, &str)]) -> Result<Ebpf, String> {
        use std::os::fd::AsRawFd;
        let mut bpf = load(DSTATE, programs)?;
        let mut array: CgroupArray<&mut MapData> = map(&mut bpf, "lanes")
            .and_then(CgroupArray::try_from)
            .map_err(|e| format!("the lanes map: {}", chain(&e)))?;
        for (index, group) in (0u32..).zip(lanes) {
            let directory = std::fs::File::open(group)
                .map_err(|e| format!("cannot open cgroup `{}': {e}", group.display()))?;
            array
                .set(index, directory.as_raw_fd(), 0)
                .map_err(|e| format!("setting lane cgroup `{}': {}", group.display(), chain(&e)))?;
        }
        attach(&mut bpf, programs)?;
        Ok(bpf)
    }

    /// The D-state time and the exited tasks of lane `lane` since its last `take`, symbolized;
    /// its entries are deleted. The stacks stay (other lanes' entries may name them):
    /// [`RunTracer::clear_stacks`] empties them when no run is going on.
    pub fn take(&mut self, lane: u32, symbols: &Symbols) -> Result<RunEvents, String> {
        let mut slept: Array<&mut MapData, u64> = map(&mut self.bpf, "slept")
            .and_then(Array::try_from)
            .map_err(|e| chain(&e))?;
        let sleeps = slept.get(&lane, 0).map_err(|e| chain(&e))?;
        if sleeps > 0 {
            slept.set(lane, 0, 0).map_err(|e| chain(&e))?;
        }
        // Walking a hash map visits each of its buckets: only where the run added entries.
        let raw: Vec<(RawLaneStack, RawContentionStat)> = if sleeps == 0 {
            Vec::new()
        } else {
            drain_hash_where(&mut self.bpf, "dstate", |key: &RawLaneStack| {
                key.lane == lane
            })
            .map_err(|e| chain(&e))?
        };
        let raw: Vec<(i64, RawContentionStat)> = raw
            .into_iter()
            .map(|(key, stat)| (key.stack_id, stat))
            .collect();
        let stacks = if raw.is_empty() {
            HashMap::new()
        } else {
            self.stacks_used = true;
            read_stacks(&mut self.bpf, raw.iter().map(|(id, _)| *id)).map_err(|e| chain(&e))?
        };
        let exited = if self.exits {
            let mut exited: Array<&mut MapData, RawLaneTasks> = map(&mut self.bpf, "exited")
                .and_then(Array::try_from)
                .map_err(|e| chain(&e))?;
            let tasks = exited.get(&lane, 0).map_err(|e| chain(&e))?;
            if tasks.count > 0 {
                exited
                    .set(lane, RawLaneTasks::NONE, 0)
                    .map_err(|e| chain(&e))?;
            }
            tasks.kept().iter().copied().collect()
        } else {
            std::collections::HashSet::new()
        };
        Ok(RunEvents {
            dstate: raw::dstate(&raw, &stacks, symbols),
            exited,
        })
    }

    /// Empty the stack trace map (its ids are hashes of the stacks: without it a long-lived
    /// tracer's map would fill, and new stacks would be lost).
    pub fn clear_stacks(&mut self) -> Result<(), String> {
        if !std::mem::take(&mut self.stacks_used) {
            return Ok(());
        }
        clear_stacks(&mut self.bpf).map_err(|e| chain(&e))
    }
}

/// Pages of chosen files (the runs' code: executables, libraries) evicted from the page cache
/// and added back, host-wide (`pagecache.bpf.c`). Counts only grow; a file is counted from
/// [`PageCacheTracer::watch`] until [`PageCacheTracer::unwatch`]. Dropping it detaches the
/// programs.
pub struct PageCacheTracer {
    bpf: Ebpf,
}

impl PageCacheTracer {
    pub fn start() -> Result<PageCacheTracer, String> {
        let (bpf, _) = with_tracefs(|| load_tracepoints(PAGECACHE, &PAGECACHE_PROGRAMS))?;
        Ok(PageCacheTracer { bpf })
    }

    fn watched(&mut self) -> Result<BpfHashMap<&mut MapData, RawFileKey, RawFilePages>, String> {
        map(&mut self.bpf, "watched")
            .and_then(BpfHashMap::try_from)
            .map_err(|e| chain(&e))
    }

    /// Count the pages of `file` from now on (if it is not counted already).
    pub fn watch(&mut self, file: RawFileKey) -> Result<(), String> {
        let mut watched = self.watched()?;
        if watched.get(&file, 0).is_err() {
            watched
                .insert(file, RawFilePages::default(), 0)
                .map_err(|e| chain(&e))?;
        }
        Ok(())
    }

    /// The pages of `file` evicted and added since it was first watched.
    pub fn pages(&mut self, file: RawFileKey) -> Result<RawFilePages, String> {
        self.watched()?.get(&file, 0).map_err(|e| chain(&e))
    }

    pub fn unwatch(&mut self, file: RawFileKey) -> Result<(), String> {
        self.watched()?.remove(&file).map_err(|e| chain(&e))
    }
}
