// SPDX-License-Identifier: GPL-2.0
/* Time in uninterruptible sleep (D state) of runs' tasks, per run lane and kernel stack.
 *
 * A lane is a cgroup2 group under which one run at a time lives (a job thread of judged run,
 * a worker slot of the daemon, diagnose's one run): userspace puts each lane's group (a
 * descriptor of its directory) into `lanes` at index = lane before attaching, and
 * bpf_current_task_under_cgroup asks whether the current task is in it or below it, so the
 * run's own groups (made later, below it, by runguard or a warm keeper) count too.
 * (bpf_get_current_ancestor_cgroup_id would compare ids, but tracepoint programs may not
 * call it.) Lanes fill the array from 0 up, so the first empty slot ends the search.
 * sched_switch fires in the task switched out: when it leaves in D state, its thread id gets
 * the time, its lane and the kernel stack it sleeps on (a stack trace map id). sched_wakeup
 * fires in whoever wakes it: the sleep's length is added to the totals of that lane and
 * stack. sched_process_exit (attached only where delay accounting is on) records the id of
 * each of a lane's tasks as it exits, so that userspace can tell the run's taskstats exit
 * records from the host's. Userspace reads and
 * deletes a lane's entries once its run is over (its tasks are all gone then), so each run
 * of a lane starts from zero. */
#include "tracepoints.h"
#include <bpf/bpf_helpers.h>
#include "stats.h"
#include "stacks.h"

char LICENSE[] SEC("license") = "GPL";

#define TASK_UNINTERRUPTIBLE 0x0002
struct sleeping {
	__u64 start_ns;
	__s64 stack_id; /* negative: no stack (errno from bpf_get_stackid) */
	__u32 lane;
	__u32 pad;
};

/* Lanes one process may trace at once (MAX_LANES of diagnostics/ebpf/loader.rs). */
#define MAX_LANES 64

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, MAX_LANES);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} lanes SEC(".maps");

/* A lane's D-state time on one stack (RawLaneStack of raw.rs). */
struct lane_stack {
	__u32 lane;
	__u32 pad;
	__s64 stack_id;
};

/* Exited tasks kept per run (LANE_TASKS of raw.rs); a run's later ones are not kept. */
#define LANE_TASKS 1024

/* A lane's run's tasks that exited (RawLaneTasks of raw.rs): `count` of them, the first
 * LANE_TASKS in `tids`. One lookup reads them all, where a hash map would be walked. */
struct lane_tasks {
	__u32 count;
	__u32 pad;
	__u32 tids[LANE_TASKS];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct sleeping);
} sleeping SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2048);
	__type(key, struct lane_stack);
	__type(value, struct wait_stat);
} dstate SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_LANES);
	__type(key, __u32);
	__type(value, struct lane_tasks);
} exited SEC(".maps");

/* Sleeps each lane's run added to `dstate`: userspace walks that hash map (a walk visits
 * every bucket) only for a lane whose run slept. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_LANES);
	__type(key, __u32);
	__type(value, __u64);
} slept SEC(".maps");

/* The lane the current task runs under, or -1. bpf_current_task_under_cgroup answers 1
 * (under it), 0 (not) or negative (no group at that index: past the last lane). */
static __always_inline int current_lane(void)
{
	for (int lane = 0; lane < MAX_LANES; lane++) {
		long under = bpf_current_task_under_cgroup(&lanes, lane);
		if (under == 1)
			return lane;
		if (under < 0)
			return -1;
	}
	return -1;
}

SEC("tracepoint/sched/sched_process_exit")
int sched_process_exit(void *args)
{
	/* Fires in the exiting task, before it leaves its cgroup. */
	int lane = current_lane();
	if (lane < 0)
		return 0;
	__u32 index = lane;
	struct lane_tasks *tasks = bpf_map_lookup_elem(&exited, &index);
	if (!tasks)
		return 0;
	__u32 slot = __sync_fetch_and_add(&tasks->count, 1);
	if (slot < LANE_TASKS)
		tasks->tids[slot] = (__u32)bpf_get_current_pid_tgid();
	return 0;
}

SEC("tracepoint/sched/sched_switch")
int sched_switch(struct sched_switch_args *args)
{
	if (!(args->prev_state & TASK_UNINTERRUPTIBLE))
		return 0;
	int lane = current_lane();
	if (lane < 0)
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sleeping entry = {
		.start_ns = bpf_ktime_get_ns(),
		.stack_id = bpf_get_stackid(args, &stacks, 0),
		.lane = lane,
	};
	bpf_map_update_elem(&sleeping, &tid, &entry, BPF_ANY);
	return 0;
}

SEC("tracepoint/sched/sched_wakeup")
int sched_wakeup(struct sched_wakeup_args *args)
{
	__u32 woken = (__u32)args->pid;
	struct sleeping *entry = bpf_map_lookup_elem(&sleeping, &woken);
	if (!entry)
		return 0;
	struct sleeping sleep = *entry;
	bpf_map_delete_elem(&sleeping, &woken);
	struct wait_stat zero = {};
	struct lane_stack key = { .lane = sleep.lane, .stack_id = sleep.stack_id };
	struct wait_stat *stat = lookup_or_init(&dstate, &key, &zero);
	if (stat)
		add_wait(stat, bpf_ktime_get_ns() - sleep.start_ns);
	__u64 *sleeps = bpf_map_lookup_elem(&slept, &sleep.lane);
	if (sleeps)
		__sync_fetch_and_add(sleeps, 1);
	return 0;
}
