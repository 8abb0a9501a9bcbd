// SPDX-License-Identifier: GPL-2.0
/* fork/clone latency per calling process.
 *
 * The syscall entry of fork, clone and clone3 stamps the calling thread, unless the new task
 * shares the caller's memory (CLONE_VM: threads, vfork, posix_spawn), which copies no page
 * tables; sched_process_fork, which fires in the caller once copy_process has copied the
 * child, takes the stamp and adds the time to the caller's (tgid's) totals and to a log2
 * histogram. Ending there, not at the syscall's exit, leaves out a vfork-like wait for the
 * child and the child's own scheduling. A clone that fails leaves a stamp behind that the
 * thread's next clone overwrites (LRU: stamps of exited threads age out). Userspace reads and
 * deletes the totals each window, and reads each caller's RSS. */
#include "tracepoints.h"
#include <bpf/bpf_helpers.h>
#include "stats.h"

char LICENSE[] SEC("license") = "GPL";

#define CLONE_VM 0x00000100ULL
/* Buckets of the histogram: bucket i counts forks of [2^i, 2^(i+1)) microseconds (bucket 0
 * also those under 1 us); the last one everything from 2^23 us (8.4 s) on. */
#define FORK_BUCKETS 24

struct fork_stat {
	struct wait_stat forks;
	__u64 histogram[FORK_BUCKETS];
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} forking SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct fork_stat);
} fork_stats SEC(".maps");

static int stamp(__u64 flags)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (flags & CLONE_VM) {
		bpf_map_delete_elem(&forking, &tid);
		return 0;
	}
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&forking, &tid, &now, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_fork")
int sys_enter_fork(void *args)
{
	return stamp(0);
}

SEC("tracepoint/syscalls/sys_enter_clone")
int sys_enter_clone(struct sys_enter_clone_args *args)
{
	return stamp(args->clone_flags);
}

SEC("tracepoint/syscalls/sys_enter_clone3")
int sys_enter_clone3(struct sys_enter_clone3_args *args)
{
	__u64 flags = 0;
	/* Unreadable arguments make clone3 fail with EFAULT: no child, no sched_process_fork. */
	if (bpf_probe_read_user(&flags, sizeof(flags), (const void *)args->uargs) < 0)
		return 0;
	return stamp(flags);
}

static __u32 log2_us(__u64 ns)
{
	__u64 us = ns / 1000;
	__u32 bucket = 0;
#pragma unroll
	for (int i = 0; i < FORK_BUCKETS - 1; i++) {
		if (us >= 2) {
			us >>= 1;
			bucket++;
		}
	}
	return bucket;
}

SEC("tracepoint/sched/sched_process_fork")
int sched_process_fork(void *args)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	__u32 tgid = pid_tgid >> 32;
	__u64 *started = bpf_map_lookup_elem(&forking, &tid);
	if (!started)
		return 0;
	__u64 took = bpf_ktime_get_ns() - *started;
	bpf_map_delete_elem(&forking, &tid);
	struct fork_stat zero = {};
	bpf_get_current_comm(zero.comm, sizeof(zero.comm));
	struct fork_stat *stat = lookup_or_init(&fork_stats, &tgid, &zero);
	if (!stat)
		return 0;
	add_wait(&stat->forks, took);
	__u32 bucket = log2_us(took);
	if (bucket < FORK_BUCKETS)
		__sync_fetch_and_add(&stat->histogram[bucket], 1);
	return 0;
}
