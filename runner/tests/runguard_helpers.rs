//! Tests of the pure helpers the runguard black-box tests rely on (`common/`): if these are
//! wrong, the other tests' verdicts are worthless. No privileges needed.

mod common;

use std::path::Path;

use common::cgroupfs::{child_dirs, own_cgroup_paths, parent_dirs, remove_tree, test_parent};
use common::procfs::{environ_contains, orphan_zombies, parse_stat, processes_with_env};
use common::testdir::TestDir;
use common::KeyValues;

#[test]
fn meta_lines_split_at_the_first_colon_and_trim() {
    let meta = KeyValues::parse_meta(
        "memory-bytes: 1234\nexitcode: 0\ntime-result: \n\
         internal-error: cannot chdir to `x' in chroot: No such file or directory\n",
    )
    .unwrap();
    assert_eq!(meta.integer("memory-bytes"), 1234);
    assert_eq!(meta.get("time-result"), Some(""));
    assert_eq!(
        meta.get("internal-error"),
        Some("cannot chdir to `x' in chroot: No such file or directory")
    );
    assert_eq!(meta.get("signal"), None);
    assert_eq!(
        meta.keys().collect::<Vec<_>>(),
        ["memory-bytes", "exitcode", "time-result", "internal-error"]
    );
}

#[test]
fn meta_values_read_as_seconds() {
    let meta = KeyValues::parse_meta("wall-time: 1.004\n").unwrap();
    assert!((meta.seconds("wall-time") - 1.004).abs() < 1e-9);
}

#[test]
fn meta_line_without_colon_is_an_error() {
    let error = KeyValues::parse_meta("exitcode: 0\ngarbage\n").unwrap_err();
    assert!(error.contains("line 2"), "{error}");
}

#[test]
#[should_panic(expected = "key `wall-time' missing")]
fn missing_meta_key_fails_naming_it() {
    KeyValues::parse_meta("exitcode: 0\n")
        .unwrap()
        .require("wall-time");
}

#[test]
fn probe_output_parses_with_equals() {
    let probe = KeyValues::parse("uid=65534\ncpus=0,1\ncwd=/a=b\n", '=').unwrap();
    assert_eq!(probe.get("cpus"), Some("0,1"));
    assert_eq!(probe.get("cwd"), Some("/a=b"));
}

#[test]
fn stat_with_spaces_and_parens_in_comm() {
    let info = parse_stat("4242 (a (b) c) Z 1 4242 4242 0 -1 4194560 0 0").unwrap();
    assert_eq!(info.pid, 4242);
    assert_eq!(info.comm, "a (b) c");
    assert_eq!(info.state, 'Z');
    assert_eq!(info.ppid, 1);
    assert!(info.is_zombie());
    assert_eq!(parse_stat("garbage"), None);
}

#[test]
fn environ_matches_whole_entries_only() {
    let environ = b"PATH=/bin\0JUDGED_TEST_TAG=abc-1\0";
    assert!(environ_contains(environ, "JUDGED_TEST_TAG=abc-1"));
    assert!(!environ_contains(environ, "JUDGED_TEST_TAG=abc"));
    assert!(!environ_contains(environ, "JUDGED_TEST_TAG=abc-10"));
}

/// A procfs fixture: a tagged live process, an orphan zombie, a zombie with a living parent,
/// and entries that are not processes.
fn fake_proc(root: &Path) {
    let process = |pid: &str, stat: &str, environ: &[u8]| {
        let dir = root.join(pid);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("stat"), stat).unwrap();
        std::fs::write(dir.join("environ"), environ).unwrap();
    };
    process(
        "100",
        "100 (flood) R 1 100 100 0",
        b"PATH=/bin\0JUDGED_TEST_TAG=t1\0",
    );
    process("101", "101 (escape) Z 1 101 101 0", b"");
    process("102", "102 (orphan) Z 55 102 102 0", b"");
    process("103", "103 (sleep) S 1 103 103 0", b"JUDGED_TEST_TAG=t2\0");
    std::fs::create_dir(root.join("sys")).unwrap();
    std::fs::write(root.join("uptime"), "1.0 1.0").unwrap();
}

#[test]
fn tagged_processes_and_orphan_zombies_are_found() {
    let dir = TestDir::new("fake-proc");
    fake_proc(dir.path());
    let tagged: Vec<i32> = processes_with_env(dir.path(), "JUDGED_TEST_TAG=t1")
        .iter()
        .map(|p| p.pid)
        .collect();
    assert_eq!(tagged, [100]);
    let zombies: Vec<i32> = orphan_zombies(dir.path()).iter().map(|p| p.pid).collect();
    assert_eq!(zombies, [101]);
}

#[test]
fn own_cgroup_paths_from_proc_self_cgroup() {
    let text = "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n";
    assert_eq!(own_cgroup_paths(text), ["", "process_api/abc"]);
}

/// A hybrid cgroup fixture: the test's parent directly in `unified`, below our own memory
/// cgroup, and a same-named directory too deep to be a runner's.
#[test]
fn cgroup_parents_found_in_hierarchy_roots_and_below_own_cgroup() {
    let dir = TestDir::new("fake-cgroup");
    let root = dir.path();
    for path in [
        "unified/judged-test-x/run-1",
        "memory/process_api/abc/judged-test-x/run-2",
        "memory/other",
        "cpu/a/b/judged-test-x",
    ] {
        std::fs::create_dir_all(root.join(path)).unwrap();
    }
    let own = own_cgroup_paths("4:memory:/process_api/abc\n0::/\n");
    let found = parent_dirs(root, &own, "judged-test-x");
    let canonical = |p: &str| root.join(p).canonicalize().unwrap();
    assert_eq!(
        found,
        [
            canonical("memory/process_api/abc/judged-test-x"),
            canonical("unified/judged-test-x")
        ]
    );
    let runs: Vec<_> = found.iter().flat_map(|p| child_dirs(p)).collect();
    assert_eq!(runs.len(), 2);

    remove_tree(&found[0]).unwrap();
    assert!(!found[0].exists());
}

#[test]
fn pure_v2_parent_sits_in_the_root() {
    let dir = TestDir::new("fake-cgroup-v2");
    std::fs::create_dir_all(dir.join("judged-test-y/run-1")).unwrap();
    let found = parent_dirs(dir.path(), &own_cgroup_paths("0::/\n"), "judged-test-y");
    assert_eq!(found, [dir.join("judged-test-y").canonicalize().unwrap()]);
}

#[test]
fn test_parent_sits_at_the_top_without_a_delegated_group() {
    let parent = test_parent(Path::new("/sys/fs/cgroup"), None, "judged-test-x-1-0");
    assert_eq!(parent, Path::new("judged-test-x-1-0"));
}

#[test]
fn test_parent_sits_under_the_delegated_group() {
    let delegated = Path::new("/sys/fs/cgroup/judged");
    let parent = test_parent(
        Path::new("/sys/fs/cgroup"),
        Some(delegated),
        "judged-test-x-1-0",
    );
    assert_eq!(parent, Path::new("judged/judged-test-x-1-0"));
}

#[test]
#[should_panic(expected = "is not below /sys/fs/cgroup")]
fn delegated_group_outside_the_cgroup_root_is_refused() {
    test_parent(
        Path::new("/sys/fs/cgroup"),
        Some(Path::new("/tmp/judged")),
        "t",
    );
}

#[test]
fn delegated_parent_is_found_below_the_root() {
    let dir = TestDir::new("fake-cgroup-v2-delegated");
    std::fs::create_dir_all(dir.join("judged/judged-test-z/run-1")).unwrap();
    let found = parent_dirs(
        dir.path(),
        &own_cgroup_paths("0::/judged-daemon\n"),
        "judged/judged-test-z",
    );
    assert_eq!(
        found,
        [dir.join("judged/judged-test-z").canonicalize().unwrap()]
    );
}

#[test]
fn test_programs_build_and_run() {
    if !common::privilege::require_c_compiler() {
        return;
    }
    let output = std::process::Command::new(common::program("exitwith"))
        .args(["code", "7"])
        .status()
        .unwrap();
    assert_eq!(output.code(), Some(7));
    assert!(common::programs::names().contains("forkbomb"));
}
