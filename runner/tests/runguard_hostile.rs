//! Hostile programs (`testdata/programs`): each must be contained by its limits, end, and leave
//! nothing behind: no live process of the run, no unreaped zombie (pid 1 here reaps none), no
//! run cgroup (`Fixture::assert_clean`).

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use common::privilege::skip;
use common::procfs::parse_stat;
use common::{program, require_root, Fixture};

#[test]
fn fork_bomb_is_contained_and_leaves_nothing() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("hostile-forkbomb");
    let outcome = fx
        .runguard()
        .args(["-t", "2:2", "-C", "1:1", "-p", "64"])
        .run([program("forkbomb")]);
    outcome.assert_ran();
    assert_eq!(
        outcome.meta().require("time-result"),
        "hard-timelimit",
        "{outcome}"
    );
    assert!(outcome.code() > 128, "{outcome}");
    assert!(outcome.elapsed < Duration::from_secs(5), "{outcome}");
    fx.assert_clean();
}

#[test]
fn thread_bomb_stops_at_the_process_limit() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("hostile-threadbomb");
    let outcome = fx
        .runguard()
        .args(["-t", "1:1", "-p", "32"])
        .run([program("threadbomb")]);
    outcome.assert_ran();
    // Threads count against the run's process limit: the main thread and 31 more.
    assert_eq!(outcome.stdout_text(), "threads=31\n", "{outcome}");
    assert_eq!(
        outcome.meta().require("time-result"),
        "hard-timelimit",
        "{outcome}"
    );
    fx.assert_clean();
}

#[test]
fn memory_bomb_is_killed_inside_its_own_cgroup() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("hostile-membomb");
    let outcome = fx
        .runguard()
        .args(["-t", "20", "-m", "65536"])
        .json_file(fx.path("report.json"))
        .run([program("membomb")]);
    // runguard itself survived and reported: the OOM kill stayed inside the run.
    outcome.assert_ran();
    assert_eq!(outcome.code(), 128 + 9, "{outcome}");
    assert_eq!(
        outcome.meta().require("time-result"),
        "",
        "ended by OOM, not a clock"
    );
    let peak = outcome.meta().integer("memory-bytes");
    assert!(
        (60 << 20..=(64 << 20) + (1 << 18)).contains(&peak),
        "memory-bytes {peak}{outcome}"
    );
    assert!(outcome.report().oom_kills >= 1, "{outcome}");
    fx.assert_clean();
}

#[test]
fn output_flood_on_both_streams_is_cut_and_drained_until_the_time_limit() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("hostile-flood");
    let (out, err) = (fx.path("program.out"), fx.path("program.err"));
    let outcome = fx
        .runguard()
        .args(["-t", "1:1", "-s", "64", "-o"])
        .arg(&out)
        .arg("-e")
        .arg(&err)
        .run([
            program("flood").as_os_str(),
            "both".as_ref(),
            "forever".as_ref(),
        ]);
    outcome.assert_ran();
    let meta = outcome.meta();
    for file in [&out, &err] {
        assert_eq!(
            std::fs::metadata(file).unwrap().len(),
            65536,
            "{}",
            file.display()
        );
    }
    assert_eq!(meta.require("output-truncated"), "stdout,stderr");
    // The flooder was never blocked nor killed by a closed pipe: it ran until the limit.
    assert_eq!(meta.require("time-result"), "hard-timelimit", "{outcome}");
    for key in ["stdout-bytes", "stderr-bytes"] {
        assert!(
            meta.integer(key) > 10 * 65536,
            "{key} shows the flooder was blocked{outcome}"
        );
    }
    fx.assert_clean();
}

#[test]
fn file_size_bomb_gets_sigxfsz() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("hostile-fsize");
    let bomb = fx.path("bomb");
    let outcome = fx.runguard().args(["-t", "10", "-f", "1024"]).run([
        program("writefile").as_os_str(),
        bomb.as_os_str(),
        "forever".as_ref(),
    ]);
    outcome.assert_exit(128 + 25);
    assert_eq!(std::fs::metadata(&bomb).unwrap().len(), 1 << 20);
    fx.assert_clean();
}

/// Run a program that leaves a process behind and writes its pid to a file; that process must
/// be gone, reaped too, when runguard returns, and runguard must not wait for the time limit.
fn assert_left_behind_process_is_killed_and_reaped(label: &str, name: &str) {
    let fx = Fixture::new(label);
    let pid_file = fx.path("left-behind.pid");
    let outcome = fx
        .runguard()
        .args(["-t", "10"])
        .run([program(name).as_os_str(), pid_file.as_os_str()]);
    outcome.assert_exit(0);
    assert!(
        outcome.elapsed < Duration::from_secs(5),
        "waited for the leftover{outcome}"
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{name} wrote no pid file: {e}{outcome}"))
        .trim()
        .parse()
        .unwrap();
    let proc_pid = Path::new("/proc").join(pid.to_string());
    let still_there = std::fs::read_to_string(proc_pid.join("stat"))
        .ok()
        .and_then(|stat| parse_stat(&stat))
        .filter(|p| p.comm == name);
    assert_eq!(
        still_there, None,
        "pid {pid} left, alive or as a zombie{outcome}"
    );
    fx.assert_clean();
}

#[test]
fn double_fork_setsid_escape_is_killed_and_reaped() {
    if !require_root() {
        return;
    }
    assert_left_behind_process_is_killed_and_reaped("hostile-escape", "escape");
}

#[test]
fn child_outliving_its_parent_is_killed_and_reaped() {
    if !require_root() {
        return;
    }
    assert_left_behind_process_is_killed_and_reaped("hostile-orphan", "orphan");
}

#[test]
fn self_stopped_program_ends_by_the_wall_limit() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("hostile-selfstop");
    let outcome = fx.runguard().args(["-t", "1:1"]).run([program("selfstop")]);
    outcome.assert_ran();
    assert_eq!(
        outcome.meta().require("time-result"),
        "hard-timelimit",
        "{outcome}"
    );
    assert!(outcome.elapsed < Duration::from_secs(3), "{outcome}");
    fx.assert_clean();
}

#[test]
fn network_is_unreachable_from_a_run() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("hostile-net");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let outcome = fx
        .runguard()
        .args(["-t", "10"])
        .run([program("netconnect").as_os_str(), port.as_ref()]);
    outcome.assert_exit(1);
    assert!(outcome.stdout_text().starts_with("connect: "), "{outcome}");
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a run reached a host listener: {accepted:?}"
    );
    fx.assert_clean();
}

#[test]
fn writes_outside_the_work_dir_fail_in_a_read_only_profile() {
    if !require_root() {
        return;
    }
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/sandbox/default.toml");
    if !profile.exists() {
        skip(&format!("no sandbox profile at {}", profile.display()));
        return;
    }
    let fx = Fixture::new("hostile-readonly");
    // /var/tmp is world-writable on the host: only the sandbox's read-only view can stop it.
    let target = Path::new("/var/tmp").join(fx.name());
    let script = format!("echo escaped > {}", target.display());
    let outcome = fx
        .runguard()
        .arg("--profile")
        .arg(&profile)
        .args(["-t", "10"])
        .run(["/bin/sh", "-c", &script]);
    let escaped = target.exists();
    let _ = std::fs::remove_file(&target);
    outcome.assert_ran();
    assert!(
        !escaped,
        "the run wrote {} on the host{outcome}",
        target.display()
    );
    assert_ne!(
        outcome.code(),
        0,
        "the write outside the work dir did not fail{outcome}"
    );
    fx.assert_clean();
}
