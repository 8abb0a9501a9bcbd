//! Warm sandboxes through the library: what one run leaves is invisible to the next, and a
//! sandbox broken underneath (keeper killed mid-run, cgroup removed, tmpfs filled) is recovered
//! or reported, never turned into a wrong result. (The one-shot suite `runguard_*` runs against
//! warm sandboxes too: `RUNGUARD_BACKEND=warm`, see ci/test.)

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::procfs::processes_with_env;
use common::{program, require_root, Fixture, RUN_GID, RUN_UID};
use runner::plan::{Credentials, Filesystem, Mount, OutputTarget, Plan, TimeLimit};
use runner::report::{Report, Termination};
use runner::warm::{Request, Sandbox, SandboxSpec};

const MIB: u64 = 1 << 20;
const TMPFS_BYTES: u64 = MIB;

/// A sandbox like the default profile's: a read-only root of the host's system directories and
/// the test programs, a writable work dir at `/work` (owned by the sandbox, emptied between
/// runs), a 1 MiB tmpfs at `/tmp`, run as `nobody`.
struct Warm {
    // Dropped in this order: the sandbox (keeper, cgroups) before the fixture's cgroup parent.
    sandbox: Sandbox,
    template: Plan,
    fx: Fixture,
}

impl Warm {
    fn new(label: &str) -> Warm {
        let fx = Fixture::new(label);
        let work = fx.path("work");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o777)).unwrap();
        let programs = program("ipc").parent().unwrap().to_path_buf();
        let read_only = |source: &str| Mount::Bind {
            source: source.into(),
            target: source.into(),
            writable: false,
        };
        let mut template = Plan::new("/bin/true", vec![]);
        template.namespaces = runner::plan::Namespaces::default();
        template.filesystem = Some(Filesystem {
            new_root: fx.path("root"),
            mounts: vec![
                read_only("/usr"),
                read_only("/bin"),
                read_only("/lib"),
                read_only("/lib64"),
                Mount::Bind {
                    source: programs,
                    target: "/programs".into(),
                    writable: false,
                },
                Mount::Bind {
                    source: work.clone(),
                    target: "/work".into(),
                    writable: true,
                },
                Mount::Tmpfs {
                    target: "/tmp".into(),
                    size_bytes: TMPFS_BYTES,
                },
            ],
        });
        template.chdir = Some("/work".into());
        template.credentials = Some(Credentials {
            uid: RUN_UID,
            gid: RUN_GID,
        });
        template.cgroup_parent = fx.cgroup_parent().into();
        template.limits.wall = Some(TimeLimit {
            soft: Duration::from_secs(10),
            hard: Duration::from_secs(10),
        });
        let (key, value) = fx.tag().split_once('=').unwrap();
        template.env.push((key.into(), value.into()));
        template.stdout = OutputTarget::File(fx.path("stdout"));
        template.stderr = OutputTarget::File(fx.path("stderr"));
        let spec = SandboxSpec::of_plan(&template, Some(work));
        let keeper = std::env::var_os("JUDGED_KEEPER").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_keeper")),
            PathBuf::from,
        );
        let sandbox = Sandbox::create(spec, &keeper).expect("building the warm sandbox");
        Warm {
            fx,
            sandbox,
            template,
        }
    }

    fn plan(&self, command: &str, args: &[&str]) -> Plan {
        Plan {
            command: command.into(),
            args: args.iter().map(Into::into).collect(),
            ..self.template.clone()
        }
    }

    /// Run `sh -c script` (or a plan) and return its report and stdout.
    fn shell(&mut self, script: &str) -> (Report, String) {
        let plan = self.plan("/bin/sh", &["-c", script]);
        self.run(plan)
    }

    fn run(&mut self, plan: Plan) -> (Report, String) {
        let request = Request {
            plan,
            stdin: None,
            files: Vec::new(),
        };
        let report = self.sandbox.run(&request).expect("the warm run");
        let stdout = std::fs::read_to_string(self.fx.path("stdout")).unwrap();
        let stderr = std::fs::read_to_string(self.fx.path("stderr")).unwrap();
        if !stderr.is_empty() {
            println!("stderr of the run: {stderr}");
        }
        (report, stdout)
    }

    fn finish(self) {
        self.sandbox.destroy().expect("destroying the warm sandbox");
        self.fx.assert_clean();
    }
}

#[test]
fn a_run_sees_no_file_ipc_object_variable_or_process_of_the_run_before() {
    if !require_root() {
        return;
    }
    let mut warm = Warm::new("warm-isolation");
    let mut first = warm.plan(
        "/bin/sh",
        &[
            "-c",
            "echo x > /tmp/a; echo y > /work/b; mkdir /work/d; /programs/ipc make; \
             /bin/sleep 1000 & echo $SECRET",
        ],
    );
    first.env.push(("SECRET".into(), "first-run".into()));
    let (report, stdout) = warm.run(first);
    assert_eq!(report.termination, Termination::Exited(0));
    assert_eq!(stdout, "made\nfirst-run\n");
    let left = processes_with_env(Path::new("/proc"), warm.fx.tag());
    assert!(
        left.is_empty(),
        "processes of the first run alive: {left:?}"
    );

    let (report, stdout) =
        warm.shell("ls -A /tmp /work; /programs/ipc probe; echo ${SECRET-unset}");
    assert_eq!(report.termination, Termination::Exited(0));
    assert_eq!(stdout, "/tmp:\n\n/work:\nshm=0 msg=0 sem=0 mq=0\nunset\n");
    warm.finish();
}

#[test]
fn peak_memory_is_the_runs_own_and_the_limit_holds_on_every_run() {
    if !require_root() {
        return;
    }
    let mut warm = Warm::new("warm-memory");
    let mut plan = warm.plan("/programs/alloc", &["48"]);
    plan.limits.memory_bytes = Some(64 * MIB);
    let (report, _) = warm.run(plan.clone());
    assert_eq!(report.termination, Termination::Exited(0));
    // The keeper's charge at the reset is subtracted from the shared group's peak; pages of it
    // uncharged during the run (page cache of earlier runs) make the figure a little low.
    assert!(report.memory_bytes >= 47 * MIB, "{}", report.memory_bytes);

    let (report, _) = warm.run(warm.plan("/programs/ipc", &["probe"]));
    assert!(
        report.memory_bytes < 16 * MIB,
        "the peak of a small run includes the one before: {}",
        report.memory_bytes
    );

    plan.args = vec!["100".into()];
    let (report, _) = warm.run(plan.clone());
    assert_ne!(report.termination, Termination::Exited(0), "{report:?}");
    plan.args = vec!["48".into()];
    let (report, _) = warm.run(plan);
    assert_eq!(report.termination, Termination::Exited(0), "{report:?}");
    assert_eq!(
        report.oom_kills, 0,
        "the kill of the run before counted again"
    );
    warm.finish();
}

#[test]
fn killing_the_keeper_mid_run_rebuilds_the_sandbox_and_retries_the_run() {
    if !require_root() {
        return;
    }
    let mut warm = Warm::new("warm-keeper-killed");
    let keeper = warm.sandbox.keeper_pid().unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(keeper),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    });
    let (report, stdout) = warm.shell("/bin/sleep 1; echo done");
    killer.join().unwrap();
    assert_eq!(report.termination, Termination::Exited(0));
    assert_eq!(stdout, "done\n");
    assert!(report.wall_time >= Duration::from_secs(1));
    assert_ne!(warm.sandbox.keeper_pid(), Some(keeper));
    warm.finish();
}

#[test]
fn a_sandbox_whose_cgroup_was_removed_is_rebuilt() {
    if !require_root() {
        return;
    }
    let mut warm = Warm::new("warm-cgroup-removed");
    let Some(unified) = cgroup2_dir(warm.sandbox.cgroup_dirs()) else {
        println!("skipping: no cgroup2 group (the host is not hybrid)");
        return warm.finish();
    };
    warm.shell("true");
    std::fs::remove_dir(&unified).expect("removing the sandbox's empty cgroup2 group");
    let (report, stdout) = warm.shell("echo after");
    assert_eq!(report.termination, Termination::Exited(0));
    assert_eq!(stdout, "after\n");
    warm.finish();
}

fn cgroup2_dir(dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .find(|dir| dir.join("cgroup.kill").exists())
        .cloned()
}

#[test]
fn a_run_that_fills_the_tmpfs_leaves_the_next_one_all_of_it() {
    if !require_root() {
        return;
    }
    let mut warm = Warm::new("warm-fill");
    let (report, stdout) = warm.run(warm.plan("/programs/writefile", &["/tmp/f", "forever"]));
    assert_eq!(report.termination, Termination::Exited(1), "{stdout}");
    let almost_all = (TMPFS_BYTES * 9 / 10).to_string();
    let (report, stdout) = warm.run(warm.plan("/programs/writefile", &["/tmp/g", &almost_all]));
    assert_eq!(report.termination, Termination::Exited(0), "{stdout}");
    warm.finish();
}

#[test]
fn a_keeper_listening_on_a_socket_serves_a_client_that_is_not_its_parent() {
    use runner::warm::protocol::{receive, send, Response};
    use std::io::BufReader;
    use std::os::unix::net::UnixStream;
    if !require_root() {
        return;
    }
    let fx = Fixture::new("warm-listen");
    let socket = fx.path("keeper.sock");
    let mut keeper = std::process::Command::new(env!("CARGO_BIN_EXE_keeper"))
        .arg("--listen")
        .arg(&socket)
        .spawn()
        .unwrap();
    let stream = (0..500)
        .find_map(|_| {
            UnixStream::connect(&socket)
                .map_err(|_| std::thread::sleep(Duration::from_millis(10)))
                .ok()
        })
        .expect("the keeper never listened");
    let mut responses = BufReader::new(stream.try_clone().unwrap());
    let mut requests = stream;
    let mut plan = Plan::new("/bin/echo", vec!["served".into()]);
    plan.namespaces = runner::plan::Namespaces::default();
    plan.cgroup_parent = fx.cgroup_parent().into();
    plan.stdout = OutputTarget::File(fx.path("stdout"));
    send(&mut requests, &SandboxSpec::of_plan(&plan, None)).unwrap();
    let Ok(Some(Response::Ready(ready))) = receive::<Response>(&mut responses) else {
        panic!("no Ready from the keeper");
    };
    send(
        &mut requests,
        &Request {
            plan,
            stdin: None,
            files: Vec::new(),
        },
    )
    .unwrap();
    let Ok(Some(Response::Report(report))) = receive::<Response>(&mut responses) else {
        panic!("no report from the keeper");
    };
    assert_eq!(report.termination, Termination::Exited(0));
    assert_eq!(
        std::fs::read_to_string(fx.path("stdout")).unwrap(),
        "served\n"
    );
    // Closing our side of the connection (both handles) ends the session.
    drop((requests, responses));
    assert!(keeper.wait().unwrap().success());
    for dir in ready.cgroup_dirs.iter().rev() {
        std::fs::remove_dir(dir).unwrap();
    }
    assert!(
        !ready.mqueue_dir.unwrap().exists(),
        "a keeper that ends normally removes its mqueue mount point"
    );
    fx.assert_clean();
}

/// The keeper's resident anonymous memory in KiB (`RssAnon` of /proc/PID/status): its heap
/// and stacks, where a leak shows, without the pages of its binary that later runs page in
/// (in the VM lane, whose emulated keeper starts with few of them resident).
fn resident_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no RssAnon in /proc/{pid}/status"))
}

#[test]
fn a_keepers_memory_stays_flat_over_thousands_of_runs() {
    if !require_root() {
        return;
    }
    // A run's child may share the keeper's memory until its exec: whatever it allocates and
    // does not free before exec stays in the keeper's heap, once per run.
    const WARM_UP: usize = 300;
    const RUNS: usize = 3000;
    const SLACK_KIB: u64 = 64;
    let mut warm = Warm::new("warm-flat");
    for _ in 0..WARM_UP {
        warm.run(warm.plan("/bin/true", &[]));
    }
    let keeper = warm.sandbox.keeper_pid().unwrap();
    let before = resident_kib(keeper);
    for _ in 0..RUNS {
        let (report, _) = warm.run(warm.plan("/bin/true", &[]));
        assert_eq!(report.termination, Termination::Exited(0));
    }
    assert_eq!(
        warm.sandbox.keeper_pid(),
        Some(keeper),
        "the keeper was rebuilt"
    );
    let after = resident_kib(keeper);
    println!("keeper anonymous RSS over {RUNS} runs: {before} KiB -> {after} KiB");
    assert!(
        after <= before + SLACK_KIB,
        "the keeper grew from {before} KiB to {after} KiB in {RUNS} runs"
    );
    warm.finish();
}
