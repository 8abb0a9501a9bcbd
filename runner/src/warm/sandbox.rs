//! The client side of a warm sandbox: start its keeper, send it runs, rebuild it when broken.

use std::io::{BufReader, ErrorKind};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Result, SandboxError};
use crate::report::Report;
use crate::warm::protocol::{receive, send, Ready, Request, Response, SandboxSpec};

/// Environment variable naming the keeper binary (default: `keeper` beside our executable).
pub const KEEPER_VARIABLE: &str = "JUDGED_KEEPER";
/// How long the client waits for the groups of a gone keeper to empty before removing them.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A sandbox built once and used for many runs, then destroyed (on drop too). Not `Sync`: one
/// worker drives one sandbox; run one sandbox per worker for parallel runs.
pub struct Sandbox {
    spec: SandboxSpec,
    keeper_binary: PathBuf,
    keeper: Option<Keeper>,
}

/// A running keeper process and our ends of its protocol.
struct Keeper {
    process: Child,
    requests: ChildStdin,
    responses: BufReader<ChildStdout>,
    ready: Ready,
}

/// Why one attempt at a run gave no report.
enum Attempt {
    /// The run cannot be carried out (bad plan, command missing...): the sandbox is fine.
    Failed(String),
    /// The sandbox is unusable (keeper gone, cgroup removed, reset failed).
    Broken(String),
}

impl Sandbox {
    /// Build a sandbox from `spec` with the keeper at `keeper_binary`.
    pub fn create(spec: SandboxSpec, keeper_binary: &Path) -> Result<Sandbox> {
        let keeper = Keeper::start(&spec, keeper_binary)?;
        Ok(Sandbox {
            spec,
            keeper_binary: keeper_binary.to_path_buf(),
            keeper: Some(keeper),
        })
    }

    /// The keeper's pid (for tests and monitoring).
    pub fn keeper_pid(&self) -> Option<i32> {
        self.keeper.as_ref().map(|keeper| keeper.ready.keeper_pid)
    }

    /// The sandbox's cgroup directories that live as long as it does (hybrid hosts).
    pub fn cgroup_dirs(&self) -> &[PathBuf] {
        self.keeper
            .as_ref()
            .map_or(&[], |keeper| keeper.ready.cgroup_dirs.as_slice())
    }

    /// Carry out one run. A broken sandbox is rebuilt and the run retried once; if that fails
    /// too, the error says so (an internal error, never a report).
    pub fn run(&mut self, request: &Request) -> Result<Report> {
        let first = match self.attempt(request) {
            Ok(report) => return Ok(report),
            Err(Attempt::Failed(message)) => return Err(SandboxError::Setup(message)),
            Err(Attempt::Broken(why)) => why,
        };
        self.discard_keeper();
        self.keeper = Some(Keeper::start(&self.spec, &self.keeper_binary)?);
        match self.attempt(request) {
            Ok(report) => Ok(report),
            Err(Attempt::Failed(message)) => Err(SandboxError::Setup(message)),
            Err(Attempt::Broken(second)) => {
                self.discard_keeper();
                Err(SandboxError::Setup(format!(
                    "warm sandbox broken ({first}), and again after rebuilding it ({second})"
                )))
            }
        }
    }

    fn attempt(&mut self, request: &Request) -> Result<Report, Attempt> {
        let Some(keeper) = &mut self.keeper else {
            return Err(Attempt::Broken("no keeper".into()));
        };
        if let Err(e) = send(&mut keeper.requests, request) {
            return Err(Attempt::Broken(format!("cannot reach the keeper: {e}")));
        }
        match receive::<Response>(&mut keeper.responses) {
            Ok(Some(Response::Report(report))) => Ok(*report),
            Ok(Some(Response::Failed {
                message,
                broken: false,
            })) => Err(Attempt::Failed(message)),
            Ok(Some(Response::Failed {
                message,
                broken: true,
            })) => Err(Attempt::Broken(message)),
            Ok(Some(Response::Ready(_))) => Err(Attempt::Broken("keeper out of step".into())),
            Ok(None) => Err(Attempt::Broken("the keeper died".into())),
            Err(e) => Err(Attempt::Broken(format!("bad answer from the keeper: {e}"))),
        }
    }

    /// Stop the keeper and remove the sandbox's cgroups, reporting what could not be removed.
    pub fn destroy(mut self) -> Result<()> {
        match self.keeper.take() {
            Some(keeper) => keeper.stop(false),
            None => Ok(()),
        }
    }

    fn discard_keeper(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.stop(true);
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.stop(false);
        }
    }
}

impl Keeper {
    fn start(spec: &SandboxSpec, binary: &Path) -> Result<Keeper> {
        let mut process = Command::new(binary)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| SandboxError::io("cannot start the keeper", binary, e))?;
        let (Some(mut requests), Some(responses)) = (process.stdin.take(), process.stdout.take())
        else {
            unreachable!("both streams were asked piped");
        };
        let mut responses = BufReader::new(responses);
        let answer = send(&mut requests, spec).and_then(|()| receive::<Response>(&mut responses));
        let failure = match answer {
            Ok(Some(Response::Ready(ready))) => {
                return Ok(Keeper {
                    process,
                    requests,
                    responses,
                    ready,
                })
            }
            Ok(Some(Response::Failed { message, .. })) => message,
            Ok(_) => "the keeper ended without an answer".to_string(),
            Err(e) => e.to_string(),
        };
        let _ = process.kill();
        let _ = process.wait();
        Err(SandboxError::Setup(format!(
            "cannot build the warm sandbox: {failure}"
        )))
    }

    /// End the keeper (closing its input; `kill`: at once) and remove its groups once it is
    /// gone, killing whatever a dead keeper left in them.
    fn stop(mut self, kill: bool) -> Result<()> {
        if kill {
            let _ = self.process.kill();
        }
        drop(self.requests);
        self.process
            .wait()
            .map_err(|e| SandboxError::io("cannot wait for the keeper", "keeper", e))?;
        for dir in self.ready.cgroup_dirs.iter().rev() {
            remove_cgroup(dir)?;
        }
        // A keeper killed during a run on a v1 or v2 host leaves that run's own groups.
        let run_prefix = format!("run-{}-", self.ready.keeper_pid);
        for parent in &self.ready.run_cgroup_parents {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&run_prefix) {
                    remove_cgroup(&entry.path())?;
                }
            }
        }
        if let Some(dir) = &self.ready.mqueue_dir {
            // Left by a keeper that was killed; its mount went with its namespace.
            match std::fs::remove_dir(dir) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    return Err(SandboxError::io("cannot remove", dir, e))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Remove one group of a gone keeper; a cgroup2 group is emptied first with `cgroup.kill` (a
/// run whose keeper was killed may have left processes).
fn remove_cgroup(dir: &Path) -> Result<()> {
    let kill = dir.join("cgroup.kill");
    if kill.exists() {
        let _ = std::fs::write(&kill, "1");
    } else {
        // A v1 group: its processes are killed one by one (they are orphans of a dead keeper,
        // stopped from forking by nothing but their pids limit: repeat until empty below).
        kill_listed(dir);
    }
    let deadline = Instant::now() + REMOVE_TIMEOUT;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(SandboxError::io(
                    "cannot remove the sandbox's cgroup",
                    dir,
                    e,
                ))
            }
            Err(_) => {
                kill_listed(dir);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// SIGKILL every process listed in a v1 group's `cgroup.procs`.
fn kill_listed(dir: &Path) {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in procs
        .lines()
        .filter_map(|line| line.trim().parse::<i32>().ok())
    {
        crate::sys::process::signal_process(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The keeper binary: `$JUDGED_KEEPER`, else `keeper` beside our executable or in its parent
/// directory (test executables live in `target/<profile>/deps`).
pub fn default_keeper_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(KEEPER_VARIABLE) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let beside = exe.with_file_name("keeper");
    if beside.exists() {
        return beside;
    }
    exe.parent()
        .and_then(Path::parent)
        .map_or(beside.clone(), |dir| dir.join("keeper"))
}
