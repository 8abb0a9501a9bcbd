// SPDX-License-Identifier: GPL-2.0
/* Page-cache pages of chosen files evicted and read back in: the executables and libraries of
 * the runs. A program that spends its life in D state under a tight memory cgroup is often
 * re-reading its own binary, whose pages reclaim keeps dropping; the cgroup's refault counter
 * says that something thrashed, these counts say it was the program's own code.
 *
 * Userspace puts the files to watch in `watched` (key: inode number and the kernel's device
 * number, as the tracepoints give them) with zero counts, reads the counts at a run's start
 * and end, and removes files no run uses any more. The counts only grow. */
#include "tracepoints.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct file_key {
	__u64 ino;
	__u32 dev;
	__u32 pad;
};

struct file_pages {
	__u64 evicted;
	__u64 added;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct file_key);
	__type(value, struct file_pages);
} watched SEC(".maps");

static __always_inline struct file_pages *of(struct filemap_page_args *args)
{
	struct file_key key = { .ino = args->i_ino, .dev = args->s_dev, .pad = 0 };
	return bpf_map_lookup_elem(&watched, &key);
}

SEC("tracepoint/filemap/mm_filemap_delete_from_page_cache")
int mm_filemap_delete_from_page_cache(struct filemap_page_args *args)
{
	struct file_pages *pages = of(args);
	if (pages)
		__sync_fetch_and_add(&pages->evicted, 1ULL << args->order);
	return 0;
}

SEC("tracepoint/filemap/mm_filemap_add_to_page_cache")
int mm_filemap_add_to_page_cache(struct filemap_page_args *args)
{
	struct file_pages *pages = of(args);
	if (pages)
		__sync_fetch_and_add(&pages->added, 1ULL << args->order);
	return 0;
}
