//! Many runs in a row leak nothing: 1000 sequential runs of `/bin/true` leave our open file
//! descriptors, our mounts, the run cgroups and the unreaped zombies as they were.

mod common;

use std::path::Path;

use common::procfs::{mount_count, open_fd_count, orphan_zombies};
use common::{require_root, Fixture};

const RUNS: usize = 1000;

/// Orphan zombies of `true`: what a runner that forgets to reap its child leaves here.
fn unreaped_trues() -> usize {
    orphan_zombies(Path::new("/proc"))
        .iter()
        .filter(|p| p.comm == "true")
        .count()
}

#[test]
fn thousand_sequential_runs_leak_nothing() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("leak");
    let ours = Path::new("/proc/self");
    // One run first, so that lazily opened things (the test harness's, runguard's cgroup
    // parent) exist before the baseline.
    fx.runguard().run(["/bin/true"]).assert_exit(0);
    let (fds, mounts, zombies) = (open_fd_count(ours), mount_count(ours), unreaped_trues());

    let started = std::time::Instant::now();
    for run in 0..RUNS {
        let outcome = fx.runguard().run(["/bin/true"]);
        assert_eq!(outcome.code(), 0, "run {run}{outcome}");
    }
    let per_run = started.elapsed() / RUNS as u32;
    println!("{RUNS} runs of /bin/true: {per_run:?} per runguard invocation");

    assert_eq!(open_fd_count(ours), fds, "open file descriptors");
    assert_eq!(mount_count(ours), mounts, "mounts in /proc/self/mountinfo");
    assert_eq!(unreaped_trues(), zombies, "unreaped zombies of `true'");
    fx.assert_clean();
}
