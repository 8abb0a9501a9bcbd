/* The kernel stacks that lock.bpf.c's and dstate.bpf.c's waits happened on. */
#ifndef JUDGED_STACKS_H
#define JUDGED_STACKS_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Frames kept per kernel stack: a wait's callers and a few of theirs tell what it waited for. */
#define STACK_DEPTH 32

/* The kernel stacks of the waits (bpf_get_stackid ids), read and emptied by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 2048);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

#endif
