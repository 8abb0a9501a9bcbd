//! The child's output and the meta file: exact stream truncation (-s), the byte counts, -o and
//! -e files (owner kept, new files 0600), the meta file's keys and order, the JSON report.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{chown, Gid, Uid};

use common::{program, require_root, Fixture};

/// What `flood` writes: byte `i` of each stream is `'a' + i % 26`.
fn flood_pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

fn flood(streams: &str, bytes: usize) -> [std::ffi::OsString; 3] {
    [
        program("flood").into(),
        streams.into(),
        bytes.to_string().into(),
    ]
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn streamsize_truncates_at_exactly_kib_and_counts_everything() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("out-truncate");
    let out = fx.path("program.out");
    let outcome = fx
        .runguard()
        .args(["-t", "10", "-s", "123", "-o"])
        .arg(&out)
        .run(flood("stdout", 200_000));
    outcome.assert_exit(0);
    let written = read(&out);
    assert_eq!(written.len(), 125_952, "-s 123 must keep exactly 123 KiB");
    assert!(
        written == flood_pattern(125_952),
        "the kept bytes are not the first ones"
    );
    let meta = outcome.meta();
    assert_eq!(
        meta.integer("stdout-bytes"),
        200_000,
        "discarded bytes count too"
    );
    assert_eq!(meta.require("output-truncated"), "stdout");
    assert!(outcome.stdout.is_empty(), "-o output leaked to our stdout");
}

#[test]
fn streamsize_boundary_is_exact() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("out-boundary");
    let out = fx.path("program.out");
    for (bytes, truncated) in [(125_952, ""), (125_953, "stdout")] {
        let outcome = fx
            .runguard()
            .args(["-t", "10", "-s", "123", "-o"])
            .arg(&out)
            .run(flood("stdout", bytes));
        outcome.assert_exit(0);
        assert_eq!(read(&out).len(), 125_952, "{bytes} bytes written");
        assert_eq!(
            outcome.meta().require("output-truncated"),
            truncated,
            "{bytes}{outcome}"
        );
    }
}

#[test]
fn streamsize_applies_to_our_own_stdout_too() {
    if !require_root() {
        return;
    }
    // DOMjudge's test_streamsize: no -o, the child's stdout is ours.
    let fx = Fixture::new("out-truncate-inherit");
    let outcome = fx
        .runguard()
        .args(["-t", "10", "-s", "123"])
        .run(flood("stdout", 300_000));
    outcome.assert_exit(0);
    assert_eq!(outcome.stdout.len(), 125_952);
}

#[test]
fn streamsize_cuts_each_stream_on_its_own() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("out-both");
    let (out, err) = (fx.path("program.out"), fx.path("program.err"));
    let run = |streams: &str| {
        fx.runguard()
            .args(["-t", "10", "-s", "4", "-o"])
            .arg(&out)
            .arg("-e")
            .arg(&err)
            .run(flood(streams, 10_000))
    };
    let both = run("both");
    both.assert_exit(0);
    assert_eq!(both.meta().require("output-truncated"), "stdout,stderr");
    assert_eq!(both.meta().integer("stdout-bytes"), 10_000);
    assert_eq!(both.meta().integer("stderr-bytes"), 10_000);
    assert!(read(&out) == flood_pattern(4096));
    assert!(read(&err) == flood_pattern(4096));

    let stderr_only = run("stderr");
    stderr_only.assert_exit(0);
    assert_eq!(stderr_only.meta().require("output-truncated"), "stderr");
    assert_eq!(stderr_only.meta().integer("stdout-bytes"), 0);
    assert_eq!(read(&out).len(), 0, "-o truncates the file");
}

#[test]
fn output_truncated_key_only_with_streamsize() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("out-no-streamsize");
    let outcome = fx.runguard().run(flood("stdout", 1000));
    outcome.assert_exit(0);
    assert_eq!(outcome.meta().get("output-truncated"), None, "{outcome}");
}

#[test]
fn precreated_output_files_keep_their_owner_and_are_truncated() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("out-owner");
    let caller = 4242;
    let files = ["program.out", "program.err", "program.meta"].map(|name| fx.path(name));
    for file in &files {
        std::fs::write(
            file,
            "stale content of an earlier run, longer than the new one\n",
        )
        .unwrap();
        chown(
            file,
            Some(Uid::from_raw(caller)),
            Some(Gid::from_raw(caller)),
        )
        .unwrap();
    }
    let [out, err, meta] = &files;
    let outcome = fx
        .runguard()
        .arg("-o")
        .arg(out)
        .arg("-e")
        .arg(err)
        .arg("-M")
        .arg(meta)
        .run(["/bin/echo", "new"]);
    assert_eq!(outcome.code(), 0, "{outcome}");
    assert_eq!(read(out), b"new\n");
    assert_eq!(read(err), b"");
    assert!(String::from_utf8(read(meta))
        .unwrap()
        .contains("exitcode: 0"));
    for file in &files {
        let owner = std::fs::metadata(file).unwrap().uid();
        assert_eq!(owner, caller, "{} changed owner", file.display());
    }
}

#[test]
fn new_output_files_get_mode_0600() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("out-mode");
    let files = ["new.out", "new.err", "new.meta"].map(|name| fx.path(name));
    let [out, err, meta] = &files;
    let outcome = fx
        .runguard()
        .arg("-o")
        .arg(out)
        .arg("-e")
        .arg(err)
        .arg("-M")
        .arg(meta)
        .run(["/bin/true"]);
    assert_eq!(outcome.code(), 0, "{outcome}");
    for file in &files {
        let mode = std::fs::metadata(file).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
    }
}

#[test]
fn byte_counts_of_a_small_run() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("out-counts");
    let outcome = fx
        .runguard()
        .run(["/bin/sh", "-c", "echo hello; echo oops >&2"]);
    outcome.assert_exit(0);
    assert_eq!(outcome.stdout_text(), "hello\n");
    assert!(outcome.stderr.contains("oops\n"), "{outcome}");
    let meta = outcome.meta();
    assert_eq!(meta.integer("stdout-bytes"), 6);
    assert_eq!(meta.integer("stderr-bytes"), 5);
    assert_eq!(meta.integer("stdin-bytes"), 0);
}

/// The meta keys of runguard-compat.md in their order; `signal`, `output-truncated` and
/// `internal-error` appear only sometimes.
const CONTRACT_KEYS: [&str; 14] = [
    "memory-bytes",
    "exitcode",
    "signal",
    "wall-time",
    "user-time",
    "sys-time",
    "cpu-time",
    "time-used",
    "time-result",
    "output-truncated",
    "stdin-bytes",
    "stdout-bytes",
    "stderr-bytes",
    "internal-error",
];

#[test]
fn meta_file_has_every_key_in_contract_order() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("out-meta-keys");
    let outcome = fx
        .runguard()
        .args(["-t", "5", "-s", "1"])
        .run(["/bin/true"]);
    outcome.assert_exit(0);
    let meta = outcome.meta();
    let ours: Vec<&str> = meta.keys().filter(|k| CONTRACT_KEYS.contains(k)).collect();
    let expected: Vec<&str> = CONTRACT_KEYS
        .into_iter()
        .filter(|k| !["signal", "internal-error"].contains(k))
        .collect();
    assert_eq!(ours, expected, "{outcome}");
    assert!(meta.keys().any(|k| k == "setup-time"), "{outcome}");
    for key in ["wall-time", "user-time", "sys-time", "cpu-time"] {
        let value = meta.require(key);
        let decimals = value.split_once('.').map(|(_, d)| d.len());
        assert_eq!(decimals, Some(3), "`{key}: {value}' is not %.3f");
    }
}

#[test]
fn json_report_agrees_with_the_meta_file() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("out-json");
    let outcome = fx.runguard().json_file(fx.path("report.json")).run([
        program("exitwith").as_os_str(),
        "code".as_ref(),
        "3".as_ref(),
    ]);
    outcome.assert_exit(3);
    let report = outcome.report();
    let meta = outcome.meta();
    assert_eq!(report.termination.exit_code(), 3);
    assert_eq!(report.memory_bytes, meta.integer("memory-bytes") as u64);
    assert_eq!(report.stdout.bytes, meta.integer("stdout-bytes") as u64);
    for (json, key) in [
        (report.wall_time, "wall-time"),
        (report.cpu_time, "cpu-time"),
        (report.user_time, "user-time"),
        (report.sys_time, "sys-time"),
    ] {
        let difference = (json.as_secs_f64() - meta.seconds(key)).abs();
        assert!(
            difference <= 0.0005 + 1e-9,
            "{key}: JSON {json:?} vs meta{outcome}"
        );
    }
}
