// SPDX-License-Identifier: GPL-2.0
/* Time in uninterruptible sleep (D state) of one run's tasks, per kernel stack.
 *
 * Only tasks inside one cgroup2 group count: userspace puts the group (a descriptor of its
 * directory) into `target` before attaching, and bpf_current_task_under_cgroup asks whether
 * the task switched out is in it or below it, so the run's own groups (made later, below it,
 * by runguard) count too. (bpf_get_current_ancestor_cgroup_id would compare ids, but
 * tracepoint programs may not call it.) sched_switch fires in the task switched out: when it leaves in D state,
 * its thread id gets the time and the kernel stack it sleeps on (a stack trace map id).
 * sched_wakeup fires in whoever wakes it: the sleep's length is added to the totals of that
 * stack. sched_process_exit records the id of each of the run's tasks as it exits, so that
 * userspace can tell the run's taskstats exit records from the host's. Userspace reads the
 * totals, the stacks and the exited tasks once, after the run. */
#include "tracepoints.h"
#include <bpf/bpf_helpers.h>
#include "stats.h"
#include "stacks.h"

char LICENSE[] SEC("license") = "GPL";

#define TASK_UNINTERRUPTIBLE 0x0002
struct sleeping {
	__u64 start_ns;
	__s64 stack_id; /* negative: no stack (errno from bpf_get_stackid) */
};

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} target SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct sleeping);
} sleeping SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2048);
	__type(key, __s64);
	__type(value, struct wait_stat);
} dstate SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, __u8);
} exited SEC(".maps");

SEC("tracepoint/sched/sched_process_exit")
int sched_process_exit(void *args)
{
	/* Fires in the exiting task, before it leaves its cgroup. */
	if (bpf_current_task_under_cgroup(&target, 0) != 1)
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u8 yes = 1;
	bpf_map_update_elem(&exited, &tid, &yes, BPF_ANY);
	return 0;
}

SEC("tracepoint/sched/sched_switch")
int sched_switch(struct sched_switch_args *args)
{
	if (!(args->prev_state & TASK_UNINTERRUPTIBLE))
		return 0;
	/* 1: under it; 0: not; negative: no group set. */
	if (bpf_current_task_under_cgroup(&target, 0) != 1)
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sleeping entry = {
		.start_ns = bpf_ktime_get_ns(),
		.stack_id = bpf_get_stackid(args, &stacks, 0),
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
	struct wait_stat *stat = lookup_or_init(&dstate, &sleep.stack_id, &zero);
	if (stat)
		add_wait(stat, bpf_ktime_get_ns() - sleep.start_ns);
	return 0;
}
