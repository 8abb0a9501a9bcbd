// SPDX-License-Identifier: GPL-2.0
/* One trivial program per attach type, to find at start which ones this kernel allows (a
 * distribution kernel allows all; kernels with CONFIG_KPROBES off or under lockdown refuse
 * kprobes and fentry). Each only returns; they stay attached for a moment. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tracepoint/sched/sched_process_free")
int probe_tracepoint(void *ctx) { return 0; }

SEC("raw_tracepoint/sched_process_free")
int probe_raw_tracepoint(void *ctx) { return 0; }

SEC("tp_btf/sched_process_free")
int probe_tp_btf(void *ctx) { return 0; }

SEC("kprobe/do_exit")
int probe_kprobe(void *ctx) { return 0; }

SEC("fentry/do_exit")
int probe_fentry(void *ctx) { return 0; }
