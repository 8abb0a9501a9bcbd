//! Each limit and confinement option of runguard at its boundary: memory (-m), file size (-f),
//! processes (-p), CPU pinning (-P), core size (-c), run user and group (-u, -g), environment
//! (-E, -V), and the exit status of the child.

mod common;

use common::{program, require_root, Fixture, KeyValues, RUN_GID, RUN_UID};

const MIB: i64 = 1 << 20;

/// Run the `probe` program with `args` and parse what it saw.
fn probe(fx: &Fixture, args: &[&str]) -> KeyValues {
    let outcome = fx.runguard().args(args).run([program("probe")]);
    outcome.assert_exit(0);
    KeyValues::parse(&outcome.stdout_text(), '=').expect("probe prints key=value lines")
}

#[test]
fn memory_below_the_limit_runs_fine() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("limit-mem-below");
    let outcome = fx
        .runguard()
        .args(["-t", "10", "-m", "65536"])
        .run([program("alloc").as_os_str(), "48".as_ref()]);
    outcome.assert_exit(0);
    assert_eq!(outcome.stdout_text(), "allocated 48 MiB\n");
    let peak = outcome.meta().integer("memory-bytes");
    assert!(
        (48 * MIB..=64 * MIB).contains(&peak),
        "memory-bytes {peak}{outcome}"
    );
    fx.assert_clean();
}

#[test]
fn memory_beyond_the_limit_is_killed_near_the_limit() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("limit-mem-above");
    let outcome = fx
        .runguard()
        .args(["-t", "10", "-m", "65536"])
        .json_file(fx.path("report.json"))
        .run([program("alloc").as_os_str(), "80".as_ref()]);
    outcome.assert_ran();
    // The OOM killer of the run's cgroup sends SIGKILL.
    assert_eq!(outcome.code(), 128 + 9, "{outcome}");
    let peak = outcome.meta().integer("memory-bytes");
    assert!(
        (60 * MIB..=64 * MIB + MIB / 4).contains(&peak),
        "memory-bytes {peak} not near the 64 MiB limit{outcome}"
    );
    assert!(
        outcome.report().oom_kills >= 1,
        "no OOM kill reported{outcome}"
    );
    fx.assert_clean();
}

#[test]
fn file_size_limit_allows_exactly_the_limit() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("limit-fsize");
    let file = fx.path("written");
    let write = |bytes: &str| {
        fx.runguard().args(["-t", "10", "-f", "10"]).run([
            program("writefile").as_os_str(),
            file.as_os_str(),
            bytes.as_ref(),
        ])
    };
    write("10240").assert_exit(0);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 10240);

    // One byte more: SIGXFSZ (25), exit status 153.
    let over = write("10241");
    over.assert_exit(128 + 25);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 10240);
    fx.assert_clean();
}

#[test]
fn nproc_allows_exactly_n_processes() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("limit-nproc");
    for limit in [1, 8, 16] {
        let outcome = fx
            .runguard()
            .args(["-t", "10", "-p", &limit.to_string()])
            .run([program("forkcount")]);
        outcome.assert_exit(0);
        assert_eq!(
            outcome.stdout_text(),
            format!("children={}\n", limit - 1),
            "-p {limit}{outcome}"
        );
    }
    fx.assert_clean();
}

#[test]
fn cpuset_pins_the_run() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("limit-cpuset");
    assert_eq!(probe(&fx, &["-P", "0"]).require("cpus"), "0");

    // Two busy threads on one CPU cannot run in parallel: wall time is about CPU time.
    let outcome = fx.runguard().args(["-t", "10", "-P", "0"]).run([
        program("spin").as_os_str(),
        "0.6".as_ref(),
        "2".as_ref(),
    ]);
    outcome.assert_exit(0);
    let meta = outcome.meta();
    let (wall, cpu) = (meta.seconds("wall-time"), meta.seconds("cpu-time"));
    println!("pinned two threads: wall {wall:.3} s, cpu {cpu:.3} s");
    // The spinner measures 0.6 s itself; CPU accounting is exact to a scheduler tick or so.
    assert!(cpu >= 0.55, "cpu-time {cpu}{outcome}");
    assert!(
        wall >= 0.95 * cpu,
        "wall {wall} < cpu {cpu}: not pinned to one CPU{outcome}"
    );
    fx.assert_clean();
}

/// `--cpuset-mems`: the run gets a cpuset group of its own whose `cpuset.mems` is the list
/// asked (the host's last node with memory, so that on a NUMA host it differs from what a
/// group would inherit); a node without memory is refused.
#[test]
fn cpuset_mems_binds_the_runs_memory_to_the_nodes_asked() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("limit-cpuset-mems");
    let has_memory = std::fs::read_to_string("/sys/devices/system/node/has_memory")
        .unwrap_or_else(|_| "0".into());
    let node = has_memory
        .trim()
        .rsplit([',', '-'])
        .next()
        .unwrap()
        .to_owned();
    let outcome = fx
        .runguard()
        .args(["-t", "10", "--cpuset-mems", &node])
        .run([
            "/bin/sh",
            "-c",
            "cat /proc/self/cpuset; grep ^Mems_allowed_list: /proc/self/status",
        ]);
    outcome.assert_exit(0);
    let text = outcome.stdout_text();
    let mut lines = text.lines();
    let group = lines.next().unwrap_or_default();
    assert!(
        group.contains(fx.cgroup_parent()),
        "the run is in the cpuset group `{group}', not one of its own under `{}'{outcome}",
        fx.cgroup_parent()
    );
    assert_eq!(
        lines.next().map(|line| line.split_whitespace().last()),
        Some(Some(node.as_str())),
        "{outcome}"
    );
    fx.runguard()
        .args(["-t", "10", "--cpuset-mems", "4095"])
        .run(["/bin/true"])
        .assert_internal_error("--cpuset-mems 4095: memory node 4095 has no memory");
    fx.assert_clean();
}

#[test]
fn no_core_sets_core_size_zero_and_is_off_by_default() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("limit-core");
    let pinned = probe(&fx, &["-c"]);
    assert_eq!(pinned.require("core_soft"), "0");
    assert_eq!(pinned.require("core_hard"), "0");

    // Without -c the hard core limit is the one we have.
    let (_, ours) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE)
        .expect("getrlimit(RLIMIT_CORE)");
    let expected = if ours == nix::sys::resource::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        ours.to_string()
    };
    assert_eq!(probe(&fx, &[]).require("core_hard"), expected);
}

#[test]
fn file_size_limit_is_rlimit_fsize_in_kib() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("limit-fsize-rlimit");
    let seen = probe(&fx, &["-f", "123"]);
    assert_eq!(seen.require("fsize_soft"), "125952");
    assert_eq!(seen.require("fsize_hard"), "125952");
}

#[test]
fn runs_as_the_given_user_and_group_without_privileges() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("limit-ids");
    let (uid, gid) = (RUN_UID.to_string(), RUN_GID.to_string());
    // By name (the fixture's -u nobody -g nogroup) and by number.
    for seen in [probe(&fx, &[]), probe(&fx, &["-u", &uid, "-g", &gid])] {
        for key in ["uid", "euid"] {
            assert_eq!(seen.require(key), uid, "{key}");
        }
        for key in ["gid", "egid"] {
            assert_eq!(seen.require(key), gid, "{key}");
        }
        assert_eq!(
            seen.require("groups"),
            "0",
            "supplementary groups not cleared"
        );
        assert_eq!(seen.require("no_new_privs"), "1");
        // Every capability set empty, the bounding set too (a warm sandbox's runs inherit the
        // keeper's, emptied once).
        for key in ["cap_effective", "cap_permitted", "cap_inheritable"] {
            assert_eq!(seen.require(key), "000000000", "{key}");
        }
        for key in ["cap_bounding", "cap_ambient"] {
            assert_eq!(seen.require(key), "0", "{key}");
        }
        // A fresh signal state: runguard ignores SIGPIPE and blocks its stop signals, the
        // program must not inherit either.
        assert_eq!(seen.require("sigpipe"), "default");
        assert_eq!(seen.require("signals_blocked"), "0");
    }
}

/// The child's environment as `/usr/bin/env` prints it, sorted.
fn child_env(fx: &Fixture, args: &[&str]) -> Vec<String> {
    let outcome = fx
        .runguard()
        .args(args)
        .env("JUDGED_TEST_KEEP", "kept")
        .run(["/usr/bin/env"]);
    outcome.assert_exit(0);
    let mut lines: Vec<String> = outcome.stdout_text().lines().map(String::from).collect();
    lines.sort();
    lines
}

#[test]
fn environment_is_cleared_to_path_by_default() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("limit-env-default");
    let env = child_env(&fx, &[]);
    let names: Vec<&str> = env.iter().map(|l| l.split('=').next().unwrap()).collect();
    // PATH, and the tag the fixture adds with -V.
    assert_eq!(names, ["JUDGED_TEST_TAG", "PATH"], "{env:?}");
}

#[test]
fn environment_flag_keeps_ours() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("limit-env-keep");
    let env = child_env(&fx, &["-E"]);
    assert!(
        env.contains(&"JUDGED_TEST_KEEP=kept".to_string()),
        "{env:?}"
    );
}

#[test]
fn variables_split_on_semicolons_and_repeat() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("limit-env-vars");
    let env = child_env(
        &fx,
        &["-V", "JUDGED_A=A;JUDGED_B=BB", "--variable", "JUDGED_C=C=C"],
    );
    for expected in ["JUDGED_A=A", "JUDGED_B=BB", "JUDGED_C=C=C"] {
        assert!(
            env.contains(&expected.to_string()),
            "{expected} missing: {env:?}"
        );
    }
    assert!(
        !env.iter().any(|l| l.starts_with("JUDGED_TEST_KEEP=")),
        "{env:?}"
    );
    assert_eq!(env.len(), 5, "{env:?}");
}

#[test]
fn exit_status_is_the_childs_or_128_plus_signal() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("limit-exit");
    for code in ["0", "1", "7", "42", "43"] {
        let outcome = fx.runguard().run([
            program("exitwith").as_os_str(),
            "code".as_ref(),
            code.as_ref(),
        ]);
        outcome.assert_exit(code.parse().unwrap());
    }
    // SIGUSR2 (12), SIGABRT (6) with no core file left behind by -c.
    for signal in [12, 6] {
        let outcome = fx.runguard().arg("-c").run([
            program("exitwith").as_os_str(),
            "signal".as_ref(),
            signal.to_string().as_ref(),
        ]);
        outcome.assert_exit(128 + signal);
    }
    assert!(!fx.path("core").exists(), "-c left a core file");
    fx.assert_clean();
}

#[test]
fn cpu_quota_holds_a_spinner_back_and_the_report_counts_the_throttling() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("limit-cpu-quota");
    // 0.3 s of CPU at a fifth of a CPU: at least ~1.5 s of wall time, throttled in most of
    // its 100 ms periods.
    let outcome = fx
        .runguard()
        .args(["-t", "20", "--cpu-quota=0.2"])
        .json_file(fx.path("report.json"))
        .run([program("spin").as_os_str(), "0.3".as_ref(), "1".as_ref()]);
    outcome.assert_exit(0);
    let report = outcome.report();
    let throttling = report
        .throttling
        .unwrap_or_else(|| panic!("no throttling counters reported{outcome}"));
    assert!(
        throttling.throttled_periods >= 5,
        "only {} throttled periods{outcome}",
        throttling.throttled_periods
    );
    assert!(
        report.wall_time.as_secs_f64() >= 1.2,
        "wall time {:?} for 0.3 s of CPU at 0.2 CPUs{outcome}",
        report.wall_time
    );
    fx.assert_clean();
}

#[test]
fn activity_reports_two_threads_on_one_cpu_stalling_each_other() {
    if !require_root() {
        return;
    }
    let fx = Fixture::new("limit-activity");
    let spin = [program("spin").into_os_string(), "0.4".into(), "2".into()];
    let outcome = fx
        .runguard()
        .args(["-t", "20", "-P", "0", "--activity"])
        .json_file(fx.path("report.json"))
        .run(spin.clone());
    outcome.assert_exit(0);
    let report = outcome.report();
    let activity = report
        .activity
        .unwrap_or_else(|| panic!("no activity with --activity{outcome}"));
    let memory = activity.memory.expect("memory.stat is always there");
    assert!(memory.file_refaults < 1_000_000, "{memory:?}");
    // Where the host has per-cgroup PSI (cgroup2 with psi=1), the two threads sharing CPU 0
    // each wait while the other runs: about half of the run's CPU time.
    if let Some(stalls) = activity.stalls {
        assert!(
            stalls.cpu.as_secs_f64() >= 0.25 * report.cpu_time.as_secs_f64(),
            "cpu stall {:?} for {:?} of CPU on one CPU{outcome}",
            stalls.cpu,
            report.cpu_time
        );
    } else {
        assert!(
            !std::path::Path::new("/proc/pressure/cpu").exists(),
            "the host has PSI but the run's stalls were not reported{outcome}"
        );
    }
    // Not asked for: not measured, not in the report.
    let plain = fx
        .runguard()
        .args(["-t", "20"])
        .json_file(fx.path("plain.json"))
        .run([program("spin").as_os_str(), "0.05".as_ref(), "1".as_ref()]);
    plain.assert_exit(0);
    assert!(
        plain.json.as_ref().unwrap().get("activity").is_none(),
        "{plain}"
    );
    fx.assert_clean();
}
