//! The record layouts the BPF programs assume (`src/bpf/tracepoints.h`), checked against the
//! running kernel's tracepoint format files before a program is loaded.

use std::path::Path;

/// A field of a tracepoint record: name, offset, size.
pub type Field = (&'static str, usize, usize);

/// Every tracepoint the programs read, with the fields they read (keep in sync with
/// `src/bpf/tracepoints.h`).
pub const FORMATS: [(&str, &str, &[Field]); 14] = [
    (
        "workqueue",
        "workqueue_queue_work",
        &[("work", 8, 8), ("function", 16, 8)],
    ),
    (
        "workqueue",
        "workqueue_execute_start",
        &[("work", 8, 8), ("function", 16, 8)],
    ),
    (
        "workqueue",
        "workqueue_execute_end",
        &[("work", 8, 8), ("function", 16, 8)],
    ),
    (
        "lock",
        "contention_begin",
        &[("lock_addr", 8, 8), ("flags", 16, 4)],
    ),
    (
        "lock",
        "contention_end",
        &[("lock_addr", 8, 8), ("ret", 16, 4)],
    ),
    ("syscalls", "sys_enter_fork", &[]),
    ("syscalls", "sys_enter_clone", &[("clone_flags", 16, 8)]),
    ("syscalls", "sys_enter_clone3", &[("uargs", 16, 8)]),
    // Only fired on, not read.
    ("sched", "sched_process_fork", &[]),
    ("sched", "sched_switch", &[("prev_state", 32, 8)]),
    ("sched", "sched_wakeup", &[("pid", 24, 4)]),
    ("sched", "sched_process_exit", &[]),
    (
        "filemap",
        "mm_filemap_delete_from_page_cache",
        &[("i_ino", 16, 8), ("s_dev", 32, 4), ("order", 36, 1)],
    ),
    (
        "filemap",
        "mm_filemap_add_to_page_cache",
        &[("i_ino", 16, 8), ("s_dev", 32, 4), ("order", 36, 1)],
    ),
];

/// `(name, offset, size)` of each field of a format file
/// (`field:void * work;\toffset:8;\tsize:8;\tsigned:0;`).
pub fn parse(text: &str) -> Vec<(String, usize, usize)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim().strip_prefix("field:")?;
            let mut parts = line.split(';').map(str::trim);
            let declaration = parts.next()?;
            let name = declaration
                .split_whitespace()
                .last()?
                .split('[')
                .next()?
                .to_owned();
            let mut number =
                |key: &str| -> Option<usize> { parts.next()?.strip_prefix(key)?.parse().ok() };
            let offset = number("offset:")?;
            let size = number("size:")?;
            Some((name, offset, size))
        })
        .collect()
}

/// Whether the format file text has every expected field where the program reads it.
pub fn check(text: &str, expected: &[Field]) -> Result<(), String> {
    let fields = parse(text);
    for &(name, offset, size) in expected {
        match fields.iter().find(|(n, _, _)| n == name) {
            None => return Err(format!("no field `{name}'")),
            Some((_, o, s)) if (*o, *s) != (offset, size) => {
                return Err(format!(
                    "field `{name}' is at offset {o} size {s}, the program reads offset {offset} size {size}"
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Check a tracepoint under `tracefs` (`/sys/kernel/tracing`).
pub fn check_tracepoint(tracefs: &Path, category: &str, name: &str) -> Result<(), String> {
    let expected = FORMATS
        .iter()
        .find(|(c, n, _)| *c == category && *n == name)
        .map(|(_, _, fields)| *fields)
        .ok_or_else(|| format!("{category}:{name} has no known layout"))?;
    let path = tracefs
        .join("events")
        .join(category)
        .join(name)
        .join("format");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read `{}': {e}", path.display()))?;
    check(&text, expected).map_err(|e| format!("{category}:{name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/ebpf")
            .join(name);
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn format_files_parse() {
        let fields = parse(&fixture("workqueue_queue_work.format"));
        let names: Vec<&str> = fields.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "common_type",
                "common_flags",
                "common_preempt_count",
                "common_pid",
                "work",
                "function",
                "workqueue",
                "req_cpu",
                "cpu"
            ]
        );
        assert_eq!(fields[5], ("function".to_owned(), 16, 8));
    }

    #[test]
    fn layouts_are_checked() {
        let workqueue = fixture("workqueue_queue_work.format");
        let lock = fixture("contention_begin.format");
        let moved = lock.replace("offset:16;\tsize:4", "offset:20;\tsize:4");
        let table: Vec<(&str, &[Field], Result<(), &str>)> = vec![
            (&workqueue, FORMATS[0].2, Ok(())),
            (&lock, FORMATS[3].2, Ok(())),
            (
                &moved,
                FORMATS[3].2,
                Err("field `flags' is at offset 20 size 4, the program reads offset 16 size 4"),
            ),
            (&workqueue, FORMATS[3].2, Err("no field `lock_addr'")),
        ];
        for (text, expected, result) in table {
            assert_eq!(check(text, expected), result.map_err(str::to_owned));
        }
    }
}
