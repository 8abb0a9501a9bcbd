//! One-shot runs enter pooled network namespaces (runner/src/sys/netns_pool.rs): a run reuses
//! the namespace the run before it gave back, concurrent runs never share one, a run cannot
//! change it, and a pool directory others could tamper with is refused. (Not a `runguard_*`
//! suite: warm runs live in their keeper's namespace, so ci/test does not repeat it warm.)

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::fixture::write_config;
use common::{require_root, Fixture, Outcome, INTERNAL_ERROR_STATUS};

/// A pool of its own for one test, its pins unmounted when dropped.
struct Pool {
    dir: PathBuf,
    config: PathBuf,
}

impl Pool {
    fn new(fx: &Fixture, size: usize) -> Pool {
        let dir = fx.path("pool");
        let config = fx.path("runguard.toml");
        write_config(&config, Path::new("/"));
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!(
            "netns_pool_dir = \"{}\"\nnetns_pool_size = {size}\n",
            dir.display()
        ));
        std::fs::write(&config, text).unwrap();
        Pool { dir, config }
    }

    /// `runguard --config CONFIG --clear-netns-pool`.
    fn clear(&self, fx: &Fixture) -> Outcome {
        common::Invocation::new(fx.dir())
            .args(["--config".as_ref(), self.config.as_os_str()])
            .arg("--clear-netns-pool")
            .run_as_given()
    }

    /// Whether a run holds `slot` now (its lock is taken).
    fn is_held(&self, slot: usize) -> bool {
        let Ok(lock) = std::fs::File::open(self.dir.join(format!("net-{slot}.lock"))) else {
            return false;
        };
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
    }

    /// `sh -c script` run by runguard with this pool.
    fn run(&self, fx: &Fixture, script: &str) -> Outcome {
        fx.runguard_with_config(&self.config)
            .run(["/bin/sh", "-c", script])
    }

    /// The namespace pinned in `slot`, as /proc/PID/ns/net names it.
    fn pinned(&self, slot: usize) -> String {
        let inode = std::fs::metadata(self.dir.join(format!("net-{slot}")))
            .unwrap_or_else(|e| panic!("slot {slot} of {}: {e}", self.dir.display()))
            .ino();
        format!("net:[{inode}]")
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().ends_with(".lock") {
                // Until none is left: a broken pool may have stacked pins.
                while nix::mount::umount2(&entry.path(), nix::mount::MntFlags::MNT_DETACH).is_ok() {
                }
            }
        }
    }
}

fn our_netns() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// A shell line whose first output line is the run's network namespace.
const PRINT_NETNS: &str = "readlink /proc/self/ns/net";

#[test]
fn consecutive_runs_reuse_one_pooled_network_namespace() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("netns-reuse");
    let pool = Pool::new(&fx, 4);
    let namespace_of_a_run = || {
        let outcome = pool.run(&fx, PRINT_NETNS);
        outcome.assert_exit(0);
        outcome.stdout_text().trim().to_owned()
    };
    let first = namespace_of_a_run();
    let second = namespace_of_a_run();
    assert_ne!(first, our_netns(), "the run was in our network namespace");
    assert_eq!(
        first,
        pool.pinned(0),
        "the first run's namespace is not slot 0's"
    );
    assert_eq!(
        second, first,
        "the second run did not reuse the first's namespace"
    );
    fx.assert_clean();
}

#[test]
fn concurrent_runs_never_share_a_network_namespace() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("netns-concurrent");
    // One slot: the second of two concurrent runs finds it taken.
    let pool = Pool::new(&fx, 1);
    let holder = fx.runguard_with_config(&pool.config).spawn([
        "/bin/sh",
        "-c",
        &format!("{PRINT_NETNS}; sleep 2"),
    ]);
    // The holder's slot is locked before its pin is made: once the pin exists, it is taken.
    let pin = pool.dir.join("net-0");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !pin.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let meanwhile = pool.run(&fx, PRINT_NETNS);
    let holder = holder.finish();
    holder.assert_exit(0);
    meanwhile.assert_exit(0);
    let (held, other) = (holder.stdout_text(), meanwhile.stdout_text());
    assert_eq!(held.trim(), pool.pinned(0), "{holder}");
    assert_ne!(
        other.trim(),
        held.trim(),
        "two concurrent runs shared a namespace"
    );
    assert_ne!(other.trim(), our_netns(), "{meanwhile}");
    fx.assert_clean();
}

#[test]
fn a_run_cannot_bring_up_the_pooled_loopback() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("netns-lo");
    let pool = Pool::new(&fx, 1);
    let tried = pool.run(&fx, "ip link set lo up");
    assert_ne!(
        tried.code(),
        0,
        "ip link set lo up succeeded in a run: {tried}"
    );
    let after = pool.run(&fx, "ip -o link show lo");
    after.assert_exit(0);
    // `1: lo: <LOOPBACK> mtu 65536 qdisc noop ...`: the flags in <> have no UP.
    let link = after.stdout_text();
    let flags = link
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(flags, _)| flags.split(',').collect::<Vec<_>>());
    assert!(
        flags.as_ref().is_some_and(|flags| !flags.contains(&"UP")),
        "the pooled loopback is up: {link}{after}"
    );
    fx.assert_clean();
}

#[test]
fn a_pool_directory_others_may_write_is_refused() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("netns-insecure");
    let pool = Pool::new(&fx, 2);
    std::fs::create_dir_all(&pool.dir).unwrap();
    std::fs::set_permissions(&pool.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let outcome = fx.runguard_with_config(&pool.config).run(["/bin/true"]);
    assert_eq!(outcome.code(), INTERNAL_ERROR_STATUS, "{outcome}");
    assert!(
        outcome.stderr.contains(&*pool.dir.to_string_lossy()),
        "{outcome}"
    );
    assert!(outcome.stderr.contains("netns_pool_size = 0"), "{outcome}");
    fx.assert_clean();
}

#[test]
fn clearing_the_pool_unpins_all_but_the_namespaces_runs_hold() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("netns-clear");
    let pool = Pool::new(&fx, 2);
    pool.run(&fx, "true").assert_exit(0);
    // A run that sleeps holds a slot; runs meanwhile pin the other one.
    let holder = fx
        .runguard_with_config(&pool.config)
        .spawn(["/bin/sleep", "2"]);
    let pinned = |slot: usize| {
        let pin = pool.dir.join(format!("net-{slot}"));
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&format!(" {} ", pin.display()))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let held = loop {
        pool.run(&fx, "true").assert_exit(0);
        // Both pinned, one held (its run asleep): the held slot is the sleeping run's.
        if let Some(slot) = (0..2).find(|&slot| pool.is_held(slot) && pinned(slot)) {
            if pinned(1 - slot) {
                break slot;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sleeping run took no slot"
        );
    };
    let free = 1 - held;
    let cleared = pool.clear(&fx);
    assert_eq!(cleared.code(), 0, "{cleared}");
    assert!(
        cleared
            .stdout_text()
            .contains("1 namespaces unpinned, 1 in use by runs"),
        "{cleared}"
    );
    assert!(!pinned(free), "slot {free} is still pinned after clearing");
    assert!(
        !pool.dir.join(format!("net-{free}")).exists(),
        "slot {free}'s pin file is left"
    );
    assert!(pinned(held), "the slot a run holds was unpinned under it");
    holder.finish().assert_exit(0);
    fx.assert_clean();
}
