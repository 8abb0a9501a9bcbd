/* The records of the classic tracepoints judged's BPF programs read, written by hand from
 * /sys/kernel/tracing/events/<category>/<name>/format. Classic tracepoints rather than tp_btf
 * with a generated vmlinux.h: these records have kept the same layout since the events were
 * added (workqueue in 3.x, lock contention in 5.19, syscall records since 2.6.33), they need neither BTF nor bpftool at build
 * time, and the loader checks every offset below against the running kernel's format files
 * before loading, so a kernel that moved a field reports that program unavailable instead of
 * reading garbage. Keep the offsets in sync with FORMATS in diagnostics/ebpf/mod.rs. */
#ifndef JUDGED_TRACEPOINTS_H
#define JUDGED_TRACEPOINTS_H

#include <linux/types.h>
#include <linux/bpf.h>

/* common_type, common_flags, common_preempt_count, common_pid: 8 bytes before every record. */
struct trace_common {
	__u16 common_type;
	__u8 common_flags;
	__u8 common_preempt_count;
	__s32 common_pid;
};

/* workqueue:workqueue_queue_work (the workqueue name, req_cpu and cpu follow; unused). */
struct workqueue_queue_work_args {
	struct trace_common common;
	__u64 work;     /* offset 8: struct work_struct * */
	__u64 function; /* offset 16: work_func_t */
};

/* workqueue:workqueue_execute_start and workqueue:workqueue_execute_end. */
struct workqueue_execute_args {
	struct trace_common common;
	__u64 work;     /* offset 8 */
	__u64 function; /* offset 16 */
};

/* lock:contention_begin. */
struct contention_begin_args {
	struct trace_common common;
	__u64 lock_addr; /* offset 8 */
	__u32 flags;     /* offset 16: LCB_F_SPIN 1, READ 2, WRITE 4, RT 8, PERCPU 16, MUTEX 32 */
};

/* lock:contention_end. */
struct contention_end_args {
	struct trace_common common;
	__u64 lock_addr; /* offset 8 */
	__s32 ret;       /* offset 16 */
};

/* syscalls:sys_enter_fork has no arguments; syscalls:sys_enter_clone (the rest unused). */
struct sys_enter_clone_args {
	struct trace_common common;
	__s32 syscall_nr;   /* offset 8 */
	__u32 pad;
	__u64 clone_flags;  /* offset 16 */
};

/* syscalls:sys_enter_clone3: the flags are the first field of the user's struct clone_args. */
struct sys_enter_clone3_args {
	struct trace_common common;
	__s32 syscall_nr;   /* offset 8 */
	__u32 pad;
	__u64 uargs;        /* offset 16: struct clone_args __user * */
};

/* sched:sched_process_fork fires in the parent once the child is copied; no field is read
 * (its comm fields became __data_loc in 6.x, so no layout is assumed). */

/* sched:sched_switch (fires in the task switched out: current is prev). */
struct sched_switch_args {
	struct trace_common common;
	char prev_comm[16]; /* offset 8 */
	__s32 prev_pid;     /* offset 24 */
	__s32 prev_prio;    /* offset 28 */
	__s64 prev_state;   /* offset 32: TASK_UNINTERRUPTIBLE is 2 */
	char next_comm[16]; /* offset 40 */
	__s32 next_pid;     /* offset 56 */
	__s32 next_prio;    /* offset 60 */
};

/* sched:sched_wakeup (fires in the waker: the woken task is `pid'). */
struct sched_wakeup_args {
	struct trace_common common;
	char comm[16];      /* offset 8 */
	__s32 pid;          /* offset 24 */
	__s32 prio;         /* offset 28 */
	__s32 target_cpu;   /* offset 32 */
};

/* filemap:mm_filemap_delete_from_page_cache and filemap:mm_filemap_add_to_page_cache. */
struct filemap_page_args {
	struct trace_common common;
	__u64 pfn;          /* offset 8 */
	__u64 i_ino;        /* offset 16 */
	__u64 index;        /* offset 24 */
	__u32 s_dev;        /* offset 32: the kernel's dev_t, major << 20 | minor */
	__u8 order;         /* offset 36: the folio holds 2^order pages */
};

#endif
