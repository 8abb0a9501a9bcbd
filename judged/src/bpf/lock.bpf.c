// SPDX-License-Identifier: GPL-2.0
/* Kernel lock contention with the waiting caller's stack.
 *
 * contention_begin remembers, per thread, when it began waiting for which lock and the kernel
 * stack it waits on (a stack trace map id); a mutex's optimistic spin and its sleep each fire
 * contention_begin, so the first one of a wait is kept. contention_end adds the wait to the
 * totals of (lock, stack). Userspace reads and deletes the totals and the stacks each window. */
#include "tracepoints.h"
#include <bpf/bpf_helpers.h>
#include "stats.h"
#include "stacks.h"

char LICENSE[] SEC("license") = "GPL";

struct waiting {
	__u64 start_ns;
	__u64 lock;
	__s64 stack_id; /* negative: no stack (errno from bpf_get_stackid) */
	__u32 flags;
	__u32 pad;
};

struct contention_key {
	__u64 lock;
	__s64 stack_id;
	__u32 flags;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct waiting);
} waiting SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct contention_key);
	__type(value, struct wait_stat);
} contention SEC(".maps");

SEC("tracepoint/lock/contention_begin")
int contention_begin(struct contention_begin_args *args)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct waiting *already = bpf_map_lookup_elem(&waiting, &tid);
	if (already && already->lock == args->lock_addr)
		return 0;
	struct waiting entry = {
		.start_ns = bpf_ktime_get_ns(),
		.lock = args->lock_addr,
		.stack_id = bpf_get_stackid(args, &stacks, 0),
		.flags = args->flags,
	};
	bpf_map_update_elem(&waiting, &tid, &entry, BPF_ANY);
	return 0;
}

SEC("tracepoint/lock/contention_end")
int contention_end(struct contention_end_args *args)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct waiting *entry = bpf_map_lookup_elem(&waiting, &tid);
	if (!entry)
		return 0;
	__u64 waited = bpf_ktime_get_ns() - entry->start_ns;
	struct contention_key key = {
		.lock = entry->lock,
		.stack_id = entry->stack_id,
		.flags = entry->flags,
	};
	bpf_map_delete_elem(&waiting, &tid);
	struct wait_stat zero = {};
	struct wait_stat *stat = lookup_or_init(&contention, &key, &zero);
	if (stat)
		add_wait(stat, waited);
	return 0;
}
