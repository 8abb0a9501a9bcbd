//! PSI triggers on a real kernel: a burst of direct (uncached) writes by a process inside a
//! cgroup2 group of the test's own stalls it on IO, and the trigger registered on the group's
//! `io.pressure` fires while it runs. Needs root (cgroup2 groups); skips out loud otherwise,
//! and under `CI=true` a skip is a failure. The group and the file written are removed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use judged::diagnostics::psi::{PsiTriggers, Resource, Target};
use judged::diagnostics::thresholds::Thresholds;

#[allow(dead_code)]
mod common;
use common::{is_root, skip};

/// A cgroup2 group, removed when dropped (its processes must be gone by then).
struct Group(PathBuf);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(fields[1]))
    })
}

#[test]
fn an_io_burst_in_a_cgroup_fires_its_io_trigger() {
    if !is_root() {
        return skip("making a cgroup2 group needs root");
    }
    let Some(root) = cgroup2_root() else {
        return skip("no cgroup2 mount");
    };
    let group = Group(root.join(format!("judged-psi-test-{}", std::process::id())));
    std::fs::create_dir(&group.0).unwrap();
    if !group.0.join("io.pressure").exists() {
        return skip("this kernel's cgroup2 groups have no io.pressure (psi=1 missing?)");
    }
    let mut thresholds = Thresholds::default().host;
    thresholds.psi_trigger_io_some_ms = 50.0;
    let mut triggers = PsiTriggers::register(
        Path::new("/"),
        &[Target::Cgroup(group.0.clone())],
        &thresholds,
    );
    let status = triggers.status().clone();
    assert!(
        status
            .registered
            .iter()
            .any(|line| line.contains(" io: some 50000 2000000")),
        "{status:?}"
    );

    // On the disk (a tmpfs /tmp would not stall), not in the page cache. One burst can pass
    // under the threshold when the host's disk is fast at that moment: bursts follow each
    // other until a trigger fires or the deadline passes.
    let file =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("psi-burst-{}", std::process::id()));
    let burst = || {
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec dd if=/dev/zero of={} bs=16k count=8192 \
                 oflag=direct,dsync status=none",
                group.0.display(),
                file.display()
            ))
            .spawn()
            .unwrap()
    };
    let fired = |events: &[judged::diagnostics::psi::PsiEvent]| {
        events.iter().any(|e| e.resource == Resource::Io)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut events = Vec::new();
    let mut writer = burst();
    let mut bursts = 1;
    while Instant::now() < deadline && !fired(&events) {
        triggers.wait(
            Instant::now() + Duration::from_millis(200),
            None,
            &mut events,
        );
        if writer.try_wait().unwrap().is_some() {
            // The trigger's window reaches back over the burst: one last look, then the next.
            triggers.wait(
                Instant::now() + Duration::from_millis(500),
                None,
                &mut events,
            );
            if !fired(&events) {
                writer = burst();
                bursts += 1;
            }
        }
    }
    let _ = writer.kill();
    let _ = writer.wait();
    let _ = std::fs::remove_file(&file);
    drop(triggers);
    let io: Vec<_> = events
        .iter()
        .filter(|e| e.resource == Resource::Io)
        .collect();
    assert!(
        !io.is_empty(),
        "no io trigger fired in {bursts} bursts: {events:?}\n{status:?}"
    );
    let finding = io[0].finding();
    assert_eq!(finding.kind.name(), "host-pressure");
    assert!(
        finding.summary.contains(&group.0.display().to_string()),
        "{}",
        finding.summary
    );
}
