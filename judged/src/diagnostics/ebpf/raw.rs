//! The BPF maps' records as the programs write them (`src/bpf/*.bpf.c`), and the pure steps
//! from them to the plain data of [`crate::diagnostics::events`]: summing per-CPU values,
//! merging, ordering, symbolizing.

use std::collections::HashMap;

use crate::diagnostics::events::{DState, DStateStack, ForkCaller, LockWait, Totals, WorkFunction};
use crate::diagnostics::kallsyms::Symbols;

/// `struct work_stat` of `workqueue.bpf.c`: one work function's totals on one CPU.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawWorkStat {
    pub count: u64,
    pub latency_total_ns: u64,
    pub latency_max_ns: u64,
    pub latency_count: u64,
    pub exec_total_ns: u64,
    pub exec_max_ns: u64,
    pub exec_count: u64,
}

/// `struct contention_key` of `lock.bpf.c`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RawContentionKey {
    pub lock: u64,
    /// A `stacks` map id; negative when the stack could not be taken.
    pub stack_id: i64,
    pub flags: u32,
    pub pad: u32,
}

/// `struct wait_stat` of `stats.h`: `lock.bpf.c`'s waits per lock and stack, `dstate.bpf.c`'s
/// sleeps per stack (and the head of `fork.bpf.c`'s `struct fork_stat`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawContentionStat {
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
}

/// `struct lane_stack` of `dstate.bpf.c`: one run lane's D-state sleeps on one stack.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RawLaneStack {
    pub lane: u32,
    pub pad: u32,
    /// A `stacks` map id; negative when the stack could not be taken.
    pub stack_id: i64,
}

/// Exited tasks kept per run (`LANE_TASKS` of `dstate.bpf.c`).
pub const LANE_TASKS: usize = 1024;

/// `struct lane_tasks` of `dstate.bpf.c`: a run lane's run's tasks that exited, `count` of
/// them, the first [`LANE_TASKS`] kept.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLaneTasks {
    pub count: u32,
    pub pad: u32,
    pub tids: [u32; LANE_TASKS],
}

impl RawLaneTasks {
    pub const NONE: RawLaneTasks = RawLaneTasks {
        count: 0,
        pad: 0,
        tids: [0; LANE_TASKS],
    };

    /// The ids kept.
    pub fn kept(&self) -> &[u32] {
        &self.tids[..(self.count as usize).min(LANE_TASKS)]
    }
}

/// Buckets of `struct fork_stat`'s histogram (`FORK_BUCKETS` of `fork.bpf.c`).
pub const FORK_BUCKETS: usize = 24;

/// `struct fork_stat` of `fork.bpf.c`: one process's forks in a window.
/// `struct file_key` of `pagecache.bpf.c`: a file as the filemap tracepoints name it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RawFileKey {
    pub ino: u64,
    /// The kernel's device number: major << 20 | minor.
    pub dev: u32,
    pub pad: u32,
}

/// `struct file_pages` of `pagecache.bpf.c`: pages of a file dropped from and added to the
/// page cache, counted since it was first watched.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawFilePages {
    pub evicted: u64,
    pub added: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawForkStat {
    pub forks: RawContentionStat,
    pub histogram: [u64; FORK_BUCKETS],
    pub comm: [u8; 16],
}

impl RawContentionStat {
    pub fn totals(&self) -> Totals {
        Totals {
            count: self.count,
            total_ns: self.total_ns,
            max_ns: self.max_ns,
        }
    }
}

// SAFETY: plain `repr(C)` structs of integers without padding (sizes are multiples of 8 and
// every field is 8 bytes or a pair of 4-byte fields), so any bit pattern is a valid value and
// aya may copy them to and from the kernel as bytes.
unsafe impl aya::Pod for RawWorkStat {}
// SAFETY: as above: `repr(C)`, integers only, no padding (8 + 8 + 4 + 4 bytes).
unsafe impl aya::Pod for RawContentionKey {}
// SAFETY: as above: `repr(C)`, three u64.
unsafe impl aya::Pod for RawContentionStat {}
// SAFETY: as above: `repr(C)`, 27 u64 (a RawContentionStat first) and 16 bytes (a multiple of 8: no padding).
unsafe impl aya::Pod for RawForkStat {}
// SAFETY: as above: `repr(C)`, two u32 and an i64 (4 + 4 + 8 bytes, no padding).
unsafe impl aya::Pod for RawLaneStack {}
// SAFETY: as above: `repr(C)`, u32 only (2 + LANE_TASKS of them, no padding).
unsafe impl aya::Pod for RawLaneTasks {}
// SAFETY: as above: `repr(C)`, a u64 and two u32 (8 + 4 + 4 bytes, no padding).
unsafe impl aya::Pod for RawFileKey {}
// SAFETY: as above: `repr(C)`, two u64.
unsafe impl aya::Pod for RawFilePages {}

/// One function's totals over all CPUs: sums, and the largest maximum.
pub fn sum_cpus(values: &[RawWorkStat]) -> RawWorkStat {
    values
        .iter()
        .fold(RawWorkStat::default(), |sum, v| RawWorkStat {
            count: sum.count + v.count,
            latency_total_ns: sum.latency_total_ns + v.latency_total_ns,
            latency_max_ns: sum.latency_max_ns.max(v.latency_max_ns),
            latency_count: sum.latency_count + v.latency_count,
            exec_total_ns: sum.exec_total_ns + v.exec_total_ns,
            exec_max_ns: sum.exec_max_ns.max(v.exec_max_ns),
            exec_count: sum.exec_count + v.exec_count,
        })
}

/// Work functions by name, largest total queue latency first (then most items, then name).
pub fn work_functions(raw: &[(u64, RawWorkStat)], symbols: &Symbols) -> Vec<WorkFunction> {
    let mut functions: Vec<WorkFunction> = raw
        .iter()
        .map(|(address, s)| WorkFunction {
            function: symbols.function(*address),
            count: s.count,
            latency_count: s.latency_count,
            latency_total_ns: s.latency_total_ns,
            latency_max_ns: s.latency_max_ns,
            exec_count: s.exec_count,
            exec_total_ns: s.exec_total_ns,
            exec_max_ns: s.exec_max_ns,
        })
        .collect();
    functions.sort_by(|a, b| {
        (b.latency_total_ns, b.count, &a.function).cmp(&(a.latency_total_ns, a.count, &b.function))
    });
    functions
}

/// The kind of lock from `contention_begin`'s flags (LCB_F_* of include/trace/events/lock.h).
pub fn lock_kind(flags: u32) -> String {
    const SPIN: u32 = 1;
    const READ: u32 = 2;
    const WRITE: u32 = 4;
    const RT: u32 = 8;
    const PERCPU: u32 = 16;
    const MUTEX: u32 = 32;
    let mode = if flags & READ != 0 {
        "-read"
    } else if flags & WRITE != 0 {
        "-write"
    } else {
        ""
    };
    let base = if flags & PERCPU != 0 {
        "percpu-rwsem"
    } else if flags & MUTEX != 0 {
        if flags & RT != 0 {
            "rt-mutex"
        } else {
            "mutex"
        }
    } else if flags & (READ | WRITE) != 0 {
        if flags & SPIN != 0 {
            "rwlock"
        } else {
            "rwsem"
        }
    } else if flags & SPIN != 0 {
        "spinlock"
    } else if flags & RT != 0 {
        "rt-mutex"
    } else {
        "lock"
    };
    if base == "mutex" || base == "rt-mutex" || base == "spinlock" || base == "lock" {
        base.to_owned()
    } else {
        format!("{base}{mode}")
    }
}

/// Lock waits per (lock, stack), largest total first; at most `limit`. A mutex's spinning and
/// sleeping phases of one wait carry different flags: they are merged, the kind is the
/// sleeping one's. `stacks` maps a stack id to its frames' addresses, innermost first.
pub fn lock_waits(
    raw: &[(RawContentionKey, RawContentionStat)],
    stacks: &HashMap<i64, Vec<u64>>,
    symbols: &Symbols,
    limit: usize,
) -> Vec<LockWait> {
    let mut merged: HashMap<(u64, i64), (u32, RawContentionStat)> = HashMap::new();
    for (key, stat) in raw {
        let entry = merged
            .entry((key.lock, key.stack_id))
            .or_insert((key.flags, RawContentionStat::default()));
        const SPIN: u32 = 1;
        if entry.0 & SPIN != 0 && key.flags & SPIN == 0 {
            entry.0 = key.flags;
        }
        entry.1.count += stat.count;
        entry.1.total_ns += stat.total_ns;
        entry.1.max_ns = entry.1.max_ns.max(stat.max_ns);
    }
    let mut waits: Vec<LockWait> = merged
        .into_iter()
        .map(|((lock, stack_id), (flags, stat))| LockWait {
            lock: symbols.data(lock),
            kind: lock_kind(flags),
            count: stat.count,
            total_ns: stat.total_ns,
            max_ns: stat.max_ns,
            stack: symbolize(stacks, stack_id, symbols),
        })
        .collect();
    waits.sort_by(|a, b| {
        (b.total_ns, b.count, &a.lock, &a.stack).cmp(&(a.total_ns, a.count, &b.lock, &b.stack))
    });
    waits.truncate(limit);
    waits
}

/// The frames of stack `id` by name, innermost first; none when the stack was not taken.
fn symbolize(stacks: &HashMap<i64, Vec<u64>>, id: i64, symbols: &Symbols) -> Vec<String> {
    stacks
        .get(&id)
        .map(|frames| frames.iter().map(|&ip| symbols.frame(ip)).collect())
        .unwrap_or_default()
}

/// A run's D-state time per stack (`dstate.bpf.c`'s totals), largest total first.
pub fn dstate(
    raw: &[(i64, RawContentionStat)],
    stacks: &HashMap<i64, Vec<u64>>,
    symbols: &Symbols,
) -> DState {
    let mut per_stack: Vec<DStateStack> = raw
        .iter()
        .map(|(id, stat)| DStateStack {
            stack: symbolize(stacks, *id, symbols),
            sleeps: stat.totals(),
        })
        .collect();
    per_stack.sort_by(|a, b| {
        (b.sleeps.total_ns, b.sleeps.count, &a.stack).cmp(&(
            a.sleeps.total_ns,
            a.sleeps.count,
            &b.stack,
        ))
    });
    DState {
        total_ns: per_stack.iter().map(|s| s.sleeps.total_ns).sum(),
        count: per_stack.iter().map(|s| s.sleeps.count).sum(),
        stacks: per_stack,
    }
}

/// Forking processes, longest fork first (then most forks, then pid); `rss_kib` tells a
/// pid's resident set (read at the window's end).
pub fn fork_callers(
    raw: &[(u32, RawForkStat)],
    rss_kib: impl Fn(u32) -> Option<u64>,
) -> Vec<ForkCaller> {
    let mut callers: Vec<ForkCaller> = raw
        .iter()
        .map(|(pid, s)| {
            let used = s
                .histogram
                .iter()
                .rposition(|&n| n > 0)
                .map_or(0, |i| i + 1);
            let comm_len = s.comm.iter().position(|&b| b == 0).unwrap_or(s.comm.len());
            ForkCaller {
                pid: *pid,
                comm: String::from_utf8_lossy(&s.comm[..comm_len]).into_owned(),
                rss_kib: rss_kib(*pid),
                forks: s.forks.totals(),
                histogram_log2_us: s.histogram[..used].to_vec(),
            }
        })
        .collect();
    callers.sort_by(|a, b| {
        (b.forks.max_ns, b.forks.count, a.pid).cmp(&(a.forks.max_ns, a.forks.count, b.pid))
    });
    callers
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn symbols() -> Symbols {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/ebpf/kallsyms");
        Symbols::parse(&std::fs::read_to_string(path).unwrap())
    }

    #[test]
    fn records_match_the_c_layout() {
        assert_eq!(std::mem::size_of::<RawWorkStat>(), 7 * 8);
        assert_eq!(std::mem::size_of::<RawContentionKey>(), 24);
        assert_eq!(std::mem::size_of::<RawContentionStat>(), 24);
        assert_eq!(std::mem::size_of::<RawLaneStack>(), 16);
        assert_eq!(std::mem::size_of::<RawLaneTasks>(), 8 + 4 * LANE_TASKS);
        assert_eq!(
            std::mem::size_of::<RawForkStat>(),
            (3 + FORK_BUCKETS) * 8 + 16
        );
    }

    #[test]
    fn cpus_sum_and_maxima_are_the_largest() {
        let a = RawWorkStat {
            count: 3,
            latency_total_ns: 30,
            latency_max_ns: 20,
            latency_count: 2,
            exec_total_ns: 9,
            exec_max_ns: 5,
            exec_count: 3,
        };
        let b = RawWorkStat {
            count: 1,
            latency_total_ns: 50,
            latency_max_ns: 50,
            latency_count: 1,
            exec_total_ns: 1,
            exec_max_ns: 1,
            exec_count: 1,
        };
        let sum = sum_cpus(&[a, b, RawWorkStat::default()]);
        assert_eq!(
            sum,
            RawWorkStat {
                count: 4,
                latency_total_ns: 80,
                latency_max_ns: 50,
                latency_count: 3,
                exec_total_ns: 10,
                exec_max_ns: 5,
                exec_count: 4,
            }
        );
        assert_eq!(sum_cpus(&[]), RawWorkStat::default());
    }

    #[test]
    fn work_functions_are_named_and_ordered() {
        let stat = |count, latency_total_ns| RawWorkStat {
            count,
            latency_total_ns,
            ..RawWorkStat::default()
        };
        let raw = [
            (0xffffffff81449ed0, stat(5, 100)),
            (0xffffffff81a74af0, stat(200, 4000)),
            (0x1234, stat(7, 100)),
        ];
        let names: Vec<String> = work_functions(&raw, &symbols())
            .into_iter()
            .map(|f| f.function)
            .collect();
        assert_eq!(names, ["free_ipc", "0x1234", "css_killed_work_fn"]);
    }

    #[test]
    fn lock_kinds_from_flags() {
        let table = [
            (32 | 1, "mutex"),
            (32, "mutex"),
            (4, "rwsem-write"),
            (2, "rwsem-read"),
            (16 | 2, "percpu-rwsem-read"),
            (1, "spinlock"),
            (1 | 2, "rwlock-read"),
            (8 | 32, "rt-mutex"),
            (0, "lock"),
        ];
        for (flags, kind) in table {
            assert_eq!(lock_kind(flags), kind, "{flags}");
        }
    }

    #[test]
    fn lock_waits_merge_phases_and_symbolize_stacks() {
        let key = |lock, stack_id, flags| RawContentionKey {
            lock,
            stack_id,
            flags,
            pad: 0,
        };
        let stat = |count, total_ns, max_ns| RawContentionStat {
            count,
            total_ns,
            max_ns,
        };
        let raw = [
            // one mutex, one stack: its spinning phase and its sleeping phase
            (key(0xffffffff82a1c340, 7, 32 | 1), stat(4, 40, 20)),
            (key(0xffffffff82a1c340, 7, 32), stat(2, 900, 600)),
            // a heap lock without a stack
            (key(0xffff888003a1c000, -14, 4), stat(1, 500, 500)),
            (key(0xffff888003a1c008, -14, 1), stat(1, 1, 1)),
        ];
        let stacks = HashMap::from([(7, vec![0xffffffff81e01240, 0xffffffff8144a14d])]);
        let waits = lock_waits(&raw, &stacks, &symbols(), 2);
        assert_eq!(
            waits,
            [
                LockWait {
                    lock: "cgroup_mutex".to_owned(),
                    kind: "mutex".to_owned(),
                    count: 6,
                    total_ns: 940,
                    max_ns: 600,
                    stack: vec![
                        "__mutex_lock+0x10".to_owned(),
                        "cgroup_kn_lock_live+0x4d".to_owned()
                    ],
                },
                LockWait {
                    lock: "0xffff888003a1c000".to_owned(),
                    kind: "rwsem-write".to_owned(),
                    count: 1,
                    total_ns: 500,
                    max_ns: 500,
                    stack: vec![],
                },
            ]
        );
    }

    #[test]
    fn fork_callers_are_named_trimmed_and_ordered() {
        let stat = |max_ns, comm: &[u8], histogram: &[u64]| {
            let mut raw = RawForkStat {
                forks: RawContentionStat {
                    count: histogram.iter().sum(),
                    total_ns: max_ns,
                    max_ns,
                },
                histogram: [0; FORK_BUCKETS],
                comm: [0; 16],
            };
            raw.histogram[..histogram.len()].copy_from_slice(histogram);
            raw.comm[..comm.len()].copy_from_slice(comm);
            raw
        };
        let raw = [
            (40, stat(600_000, b"sh", &[3, 0, 0, 0])),
            (
                41,
                stat(
                    120_000_000,
                    b"forkstorm",
                    &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1],
                ),
            ),
            (42, stat(0, b"0123456789abcdef", &[])),
        ];
        let callers = fork_callers(&raw, |pid| (pid == 41).then_some(3_145_728));
        let summary: Vec<(u32, &str, usize, Option<u64>)> = callers
            .iter()
            .map(|c| (c.pid, c.comm.as_str(), c.histogram_log2_us.len(), c.rss_kib))
            .collect();
        assert_eq!(
            summary,
            [
                (41, "forkstorm", 18, Some(3_145_728)),
                (40, "sh", 1, None),
                (42, "0123456789abcdef", 0, None),
            ]
        );
        assert_eq!(callers[0].forks.count, 3);
    }

    #[test]
    fn a_lanes_exited_tasks_past_those_kept_are_left_out() {
        let mut tasks = RawLaneTasks::NONE;
        assert!(tasks.kept().is_empty());
        tasks.tids[..2].copy_from_slice(&[7, 9]);
        tasks.count = 2;
        assert_eq!(tasks.kept(), [7, 9]);
        tasks.count = LANE_TASKS as u32 + 5;
        assert_eq!(tasks.kept().len(), LANE_TASKS);
    }

    #[test]
    fn dstate_sums_and_orders_stacks() {
        let stat = |count, total_ns| RawContentionStat {
            count,
            total_ns,
            max_ns: total_ns,
        };
        let raw = [(7, stat(2, 900)), (-14, stat(1, 100)), (3, stat(5, 4000))];
        let stacks = HashMap::from([(7, vec![0xffffffff81e01240]), (3, vec![0xffffffff8144a14d])]);
        let dstate = dstate(&raw, &stacks, &symbols());
        assert_eq!((dstate.total_ns, dstate.count), (5000, 8));
        let order: Vec<(u64, Vec<String>)> = dstate
            .stacks
            .into_iter()
            .map(|s| (s.sleeps.total_ns, s.stack))
            .collect();
        assert_eq!(
            order,
            [
                (4000, vec!["cgroup_kn_lock_live+0x4d".to_owned()]),
                (900, vec!["__mutex_lock+0x10".to_owned()]),
                (100, vec![]),
            ]
        );
    }
}
