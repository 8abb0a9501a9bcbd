// SPDX-License-Identifier: GPL-2.0
/* Workqueue item latency per work function.
 *
 * workqueue_queue_work stamps the time a work item is queued (keyed by the work_struct
 * pointer); workqueue_execute_start takes the stamp and adds the queue latency to the work
 * function's totals, and remembers on the worker thread when execution began;
 * workqueue_execute_end adds the execution time. Totals are per CPU (no atomics, no lost
 * maxima); userspace sums the CPUs, then deletes each function's entry: a window's numbers. */
#include "tracepoints.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct work_stat {
	__u64 count;            /* items that started executing */
	__u64 latency_total_ns; /* queued -> started, summed over items with a stamp */
	__u64 latency_max_ns;
	__u64 latency_count;    /* items with a queue stamp (queued while we watched) */
	__u64 exec_total_ns;    /* started -> ended */
	__u64 exec_max_ns;
	__u64 exec_count;
};

struct running {
	__u64 start_ns;
	__u64 function;
};

/* Queued, not yet started work items. LRU: items we never see start (queued just before
 * detach, cancelled) age out instead of filling the map. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} queued SEC(".maps");

/* The item each worker thread is executing: a worker runs one at a time, and an item may
 * requeue itself while running, so the thread, not the work pointer, is the key. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct running);
} executing SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct work_stat);
} work_stats SEC(".maps");

static struct work_stat *stat_of(__u64 function)
{
	struct work_stat *stat = bpf_map_lookup_elem(&work_stats, &function);
	if (stat)
		return stat;
	struct work_stat zero = {};
	bpf_map_update_elem(&work_stats, &function, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&work_stats, &function);
}

SEC("tracepoint/workqueue/workqueue_queue_work")
int workqueue_queue_work(struct workqueue_queue_work_args *args)
{
	__u64 work = args->work;
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&queued, &work, &now, BPF_ANY);
	return 0;
}

SEC("tracepoint/workqueue/workqueue_execute_start")
int workqueue_execute_start(struct workqueue_execute_args *args)
{
	__u64 work = args->work;
	__u64 function = args->function;
	__u64 now = bpf_ktime_get_ns();
	struct work_stat *stat = stat_of(function);
	if (!stat)
		return 0;
	stat->count += 1;
	__u64 *queued_at = bpf_map_lookup_elem(&queued, &work);
	/* The pending bit is cleared before this tracepoint fires, so another CPU may already
	 * have queued the item again and stamped it after `now` was read: that stamp is the next
	 * execution's (now - stamp would wrap around to ~584 years). Leave it for that one. */
	if (queued_at && *queued_at <= now) {
		__u64 latency = now - *queued_at;
		bpf_map_delete_elem(&queued, &work);
		stat->latency_count += 1;
		stat->latency_total_ns += latency;
		if (latency > stat->latency_max_ns)
			stat->latency_max_ns = latency;
	}
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct running running = { .start_ns = now, .function = function };
	bpf_map_update_elem(&executing, &tid, &running, BPF_ANY);
	return 0;
}

SEC("tracepoint/workqueue/workqueue_execute_end")
int workqueue_execute_end(struct workqueue_execute_args *args)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct running *running = bpf_map_lookup_elem(&executing, &tid);
	if (!running)
		return 0;
	__u64 exec = bpf_ktime_get_ns() - running->start_ns;
	__u64 function = running->function;
	bpf_map_delete_elem(&executing, &tid);
	struct work_stat *stat = stat_of(function);
	if (!stat)
		return 0;
	stat->exec_count += 1;
	stat->exec_total_ns += exec;
	if (exec > stat->exec_max_ns)
		stat->exec_max_ns = exec;
	return 0;
}
