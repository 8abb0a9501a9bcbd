/* What several of judged's BPF programs keep: waits counted, summed and their longest, in
 * hash map entries made on first use. */
#ifndef JUDGED_STATS_H
#define JUDGED_STATS_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct wait_stat {
	__u64 count;
	__u64 total_ns;
	__u64 max_ns;
};

/* The value of `key` in hash map `map`, made from `zero` when missing; NULL when full. */
static __always_inline void *lookup_or_init(void *map, const void *key, const void *zero)
{
	void *value = bpf_map_lookup_elem(map, key);
	if (value)
		return value;
	bpf_map_update_elem(map, key, zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}

/* One more wait of `ns` in `stat`, shared between CPUs. */
static __always_inline void add_wait(struct wait_stat *stat, __u64 ns)
{
	__sync_fetch_and_add(&stat->count, 1);
	__sync_fetch_and_add(&stat->total_ns, ns);
	if (ns > stat->max_ns)
		stat->max_ns = ns; /* racy between CPUs: a maximum may be missed, never invented */
}

#endif
