//! Carrying out a `Plan`: the parent side of a run.
//!
//! The parent creates the run's cgroups and starts the child (which confines itself: see
//! `sys::child`), born in the run's cgroup2 group. A child that needs nothing from us before
//! its exec shares our memory until then (see [`spawn`]: no page tables copied, no
//! copy-on-write faults after) and joins the v1 groups itself; otherwise it is a fork that we
//! move into the v1 groups while it builds its namespaces, then let go. The clocks start when the child execs, seen as EOF on a close-on-exec report pipe;
//! setup before that is reported apart (`setup_time`). While the program runs we pump its output
//! and enforce the hard wall and CPU limits on the whole run. When the main process ends,
//! everything left in the run's cgroup is killed and reaped, and its cgroups removed, before a
//! `Report` is returned.
//!
//! The same code carries out a run in a warm sandbox ([`run_in`], called by the keeper of
//! `crate::warm`): there the cgroup is the sandbox's, made once, and the namespaces and root are
//! the keeper's (see `sys::child::Confinement`); everything from the fork on is shared.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::{pipe2, Pid};

use crate::cgroup::{CgroupLimits, Hierarchies, Layout, RunCgroup, Usage};
use crate::error::{Result, SandboxError};
use crate::output::{open_output_file, StreamPump};
use crate::plan::{OutputTarget, Plan, DEFAULT_PATH};
use crate::report::{Activity, Report, Termination, TimeResult};
use crate::sys::child::{confine_and_exec, ChildSpec, Confinement, ExecStrings};
use crate::sys::netns_pool::{self, PooledNetns};
use crate::sys::process::{self, Forked};
use crate::sys::signals::StopSignals;

/// The CPU limit is checked at least this often when the run is close to it, which bounds how
/// far a run can overshoot it (with the kill's own latency, well under 10 ms).
const MIN_POLL: Duration = Duration::from_millis(1);
/// The most one read from an output pipe moves (a pipe holds 64 KiB by default).
const PIPE_READ_BYTES: usize = 65536;
/// How long we wait for the output pipes to reach EOF once every process of the run is dead.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Run `plan` to completion on this host: fork, confine, exec, measure, kill and reap
/// everything of the run.
///
/// Must be called from a single-threaded process that has no other children to wait for: the
/// child runs setup code between fork and exec, and we reap every orphan of the run.
pub fn run(plan: &Plan) -> Result<Report> {
    run_on(plan, &Hierarchies::detect()?)
}

/// [`run`] with the host's cgroup hierarchies already detected: the run gets cgroups of its own,
/// removed at the end, and builds its namespaces and root itself.
pub fn run_on(plan: &Plan, hierarchies: &Hierarchies) -> Result<Report> {
    if let Some(filesystem) = &plan.filesystem {
        std::fs::create_dir_all(&filesystem.new_root).map_err(|e| {
            SandboxError::io("cannot create the sandbox root", &filesystem.new_root, e)
        })?;
    }
    let pooled_netns = match &plan.netns_pool {
        Some(pool) if plan.namespaces.net && !plan.namespaces.user => netns_pool::take(pool)?,
        _ => None,
    };
    run_in_own_cgroup(
        plan,
        hierarchies,
        Confinement::Own,
        pooled_netns.as_ref().map(PooledNetns::fd),
        None,
    )
    // The pooled namespace is given back here, with every process of the run dead.
}

/// A run with cgroups of its own (created, used, removed), confined as `confinement` says;
/// `netns`: a network namespace to enter instead of making one.
pub fn run_in_own_cgroup(
    plan: &Plan,
    hierarchies: &Hierarchies,
    confinement: Confinement,
    netns: Option<BorrowedFd<'_>>,
    stdin: Option<BorrowedFd<'_>>,
) -> Result<Report> {
    let cgroup = RunCgroup::create(
        hierarchies,
        &plan.cgroup_parent,
        &run_name(),
        &cgroup_limits(plan),
    )?;
    let report = run_in(
        plan,
        &Setting {
            cgroup: &cgroup,
            confinement,
            layout: hierarchies.layout(),
            netns,
            stdin,
        },
    )?;
    cgroup.remove()?;
    Ok(report)
}

/// The cgroup a run is accounted in. A one-shot run has a [`RunCgroup`] of its own; a run in a
/// warm sandbox shares the sandbox's, whose counters are re-based between runs.
pub trait RunGroup {
    /// The cgroup2 directory to clone the child into, where there is one.
    fn clone_into_fd(&self) -> Option<BorrowedFd<'_>>;
    /// Put the forked child into every group of the run (but the clone-into one when it was
    /// born there).
    fn attach(&self, pid: i32, born_in_clone_group: bool) -> Result<()>;
    /// The `cgroup.procs` files, open for writing, of the groups a child born in
    /// [`RunGroup::clone_into_fd`] is not in yet. A child that shares our memory joins them
    /// itself, writing `0`: we are suspended until its exec.
    fn procs_to_join(&self) -> Result<Vec<File>>;
    /// CPU time of the run's group so far.
    fn cpu_time(&self) -> Result<Duration>;
    /// What the group measured (peak memory of this run alone).
    fn usage(&self) -> Result<Usage>;
    /// Kill every process of the run; none is left running on return.
    fn kill_all(&self) -> Result<()>;
    /// The group's stalls and memory activity so far (counters, re-based by the caller).
    fn activity(&self) -> Result<Activity>;
}

impl RunGroup for RunCgroup {
    fn clone_into_fd(&self) -> Option<BorrowedFd<'_>> {
        RunCgroup::clone_into_fd(self)
    }
    fn attach(&self, pid: i32, born_in_clone_group: bool) -> Result<()> {
        RunCgroup::attach(self, pid, born_in_clone_group)
    }
    fn procs_to_join(&self) -> Result<Vec<File>> {
        RunCgroup::procs_to_join(self)
    }
    fn cpu_time(&self) -> Result<Duration> {
        RunCgroup::cpu_time(self)
    }
    fn usage(&self) -> Result<Usage> {
        RunCgroup::usage(self)
    }
    fn kill_all(&self) -> Result<()> {
        RunCgroup::kill_all(self)
    }
    fn activity(&self) -> Result<Activity> {
        RunCgroup::activity(self)
    }
}

/// Where and how a run is carried out, beyond its plan.
pub struct Setting<'a> {
    pub cgroup: &'a dyn RunGroup,
    pub confinement: Confinement,
    /// Reported as the run's `cgroup_layout`.
    pub layout: Layout,
    /// A pooled network namespace for the child to enter instead of making one
    /// (`sys::netns_pool`); only with [`Confinement::Own`].
    pub netns: Option<BorrowedFd<'a>>,
    /// The program's stdin; `None`: ours.
    pub stdin: Option<BorrowedFd<'a>>,
}

/// Carry out `plan` in `setting`: fork, confine, exec, measure, kill and reap everything of the
/// run. The cgroup is left for the caller to remove or reuse. Same caller requirements as
/// [`run`].
pub fn run_in(plan: &Plan, setting: &Setting<'_>) -> Result<Report> {
    process::become_subreaper()
        .map_err(|e| SandboxError::sys("prctl(PR_SET_CHILD_SUBREAPER)", e))?;
    let seccomp = match &plan.seccomp_policy {
        Some(path) => {
            crate::seccomp::compile(path).map_err(|e| SandboxError::Config(e.to_string()))?
        }
        None => Vec::new(),
    };
    let stdout = StreamPump::new(
        destination(&plan.stdout, Stream::Stdout)?,
        plan.limits.stream_bytes,
    );
    let stderr = StreamPump::new(
        destination(&plan.stderr, Stream::Stderr)?,
        plan.limits.stream_bytes,
    );
    let cgroup = setting.cgroup;
    let pipes = Pipes::new()?;
    let mut spec = child_spec(plan, setting, seccomp, &pipes);
    let signals = StopSignals::block().map_err(|e| SandboxError::sys("signalfd", e))?;

    let forked_at = Instant::now();
    let (forked, whole_at_birth) = spawn(plan, setting, &mut spec)?;
    let child = KillOnDrop(forked.pid);
    let parent_ends = pipes.into_parent_ends();
    let go = (!whole_at_birth).then_some(parent_ends.go);
    let started = start(plan, &forked, cgroup, go, parent_ends.report)?;
    let setup_time = started.at - forked_at;

    let mut supervisor = Supervisor {
        plan,
        cgroup,
        baseline: started.baseline,
        started: started.at,
        time_result: TimeResult::default(),
        runner_signal: None,
        stdout,
        stderr,
        buffer: vec![0; PIPE_READ_BYTES],
    };
    let main_status =
        supervisor.supervise(&forked, &parent_ends.stdout, &parent_ends.stderr, &signals)?;
    let wall_time = started.at.elapsed();
    std::mem::forget(child);

    // Nothing of the run may outlive it.
    cgroup.kill_all()?;
    process::reap_all();
    supervisor.drain(&parent_ends.stdout, &parent_ends.stderr)?;
    let termination = termination(
        main_status,
        plan.namespaces.pid.then_some(&parent_ends.status),
    )?;
    let Supervisor {
        baseline,
        mut time_result,
        runner_signal,
        stdout,
        stderr,
        ..
    } = supervisor;
    let usage = cgroup.usage()?;
    let cpu = since(&usage, &baseline);
    let activity = match &started.activity_baseline {
        Some(at_exec) => Some(cgroup.activity()?.since(at_exec)),
        None => None,
    };
    mark_limits_passed(&mut time_result, plan, wall_time, cpu.total);
    Ok(Report {
        termination,
        wall_time,
        user_time: cpu.user,
        sys_time: cpu.system,
        cpu_time: cpu.total,
        setup_time,
        memory_bytes: usage.memory_peak_bytes,
        time_result,
        stdout: stdout
            .finish()
            .map_err(|e| SandboxError::io("cannot write the program's stdout", "stdout", e))?,
        stderr: stderr
            .finish()
            .map_err(|e| SandboxError::io("cannot write the program's stderr", "stderr", e))?,
        // A shared group counts the kills of earlier runs too.
        oom_kills: usage.oom_kills.saturating_sub(baseline.oom_kills),
        throttling: usage.throttling,
        cgroup_layout: setting.layout,
        runner_signal,
        activity,
    })
}

/// Start the child (in the child, this confines and execs). Where it can be
/// ([`shares_our_memory`]) the child shares our memory until its exec, joins the groups it
/// was not born in itself and needs no "go": then the second value is true and the child has
/// exec'd (or failed) on return. Otherwise it is a copy of us that waits for the "go" of
/// [`start`].
fn spawn(plan: &Plan, setting: &Setting<'_>, spec: &mut ChildSpec) -> Result<(Forked, bool)> {
    let flags = process::clone_time_namespace_flags(&plan.namespaces);
    let cgroup = setting.cgroup.clone_into_fd();
    if shares_our_memory(plan) {
        // Open until the child has exec'd: it writes to them, then exec closes its copies.
        let procs = setting.cgroup.procs_to_join()?;
        spec.join = procs.iter().map(AsRawFd::as_raw_fd).collect();
        let go = spec.go.take();
        match process::spawn_sharing_memory(flags, cgroup, spec) {
            Ok(spawned) => return Ok((spawned, true)),
            // Not built for this architecture, or a cgroup the kernel will not clone into.
            Err(Errno::ENOSYS | Errno::EINVAL | Errno::EOPNOTSUPP | Errno::E2BIG) => {}
            Err(e) => return Err(SandboxError::sys("clone3(CLONE_VM)", e)),
        }
        spec.go = go;
        spec.join.clear();
    }
    match process::fork_child(flags, cgroup).map_err(|e| SandboxError::sys("clone3", e))? {
        Some(forked) => Ok((forked, false)),
        None => confine_and_exec(spec),
    }
}

/// Whether the child may be spawned sharing our memory ([`process::spawn_sharing_memory`]):
/// when we have nothing to do for it before its exec (no user namespace to map ids of, no pid
/// namespace whose init stays). It joins the groups it was not born in itself.
fn shares_our_memory(plan: &Plan) -> bool {
    !plan.namespaces.user && !plan.namespaces.pid
}

/// Unique among the runs of this host: our pid and a counter.
fn run_name() -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    format!(
        "run-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

fn cgroup_limits(plan: &Plan) -> CgroupLimits {
    CgroupLimits {
        memory_bytes: plan.limits.memory_bytes,
        pids: plan.limits.nproc,
        cpuset: plan.limits.cpuset.clone(),
        cpuset_mems: plan.limits.cpuset_mems.clone(),
        cpu_bandwidth: plan.limits.cpu_bandwidth,
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

fn destination(target: &OutputTarget, stream: Stream) -> Result<Box<dyn Write>> {
    Ok(match (target, stream) {
        (OutputTarget::File(path), _) => {
            Box::new(open_output_file(path).map_err(|e| SandboxError::io("cannot open", path, e))?)
        }
        (OutputTarget::Inherit, Stream::Stdout) => Box::new(io::stdout()),
        (OutputTarget::Inherit, Stream::Stderr) => Box::new(io::stderr()),
    })
}

/// The pipes between parent and child, all close-on-exec (the child moves the output ends to
/// descriptors 1 and 2, which are not).
struct Pipes {
    stdout: (OwnedFd, OwnedFd),
    stderr: (OwnedFd, OwnedFd),
    go: (OwnedFd, OwnedFd),
    report: (OwnedFd, OwnedFd),
    status: (OwnedFd, OwnedFd),
}

/// The parent's ends: read ends of the output, report and status pipes, write end of "go".
struct ParentEnds {
    stdout: OwnedFd,
    stderr: OwnedFd,
    go: OwnedFd,
    report: OwnedFd,
    status: OwnedFd,
}

impl Pipes {
    fn new() -> Result<Pipes> {
        let pipe = || pipe2(OFlag::O_CLOEXEC).map_err(|e| SandboxError::sys("pipe2", e));
        Ok(Pipes {
            stdout: pipe()?,
            stderr: pipe()?,
            go: pipe()?,
            report: pipe()?,
            status: pipe()?,
        })
    }

    /// Keep the parent's ends; closing the child's ends here is what lets EOF mean "exec".
    fn into_parent_ends(self) -> ParentEnds {
        ParentEnds {
            stdout: self.stdout.0,
            stderr: self.stderr.0,
            go: self.go.1,
            report: self.report.0,
            status: self.status.0,
        }
    }
}

fn child_spec(
    plan: &Plan,
    setting: &Setting<'_>,
    seccomp: Vec<seccompiler::BpfProgram>,
    pipes: &Pipes,
) -> ChildSpec {
    let command = plan.command.as_os_str();
    ChildSpec {
        confinement: setting.confinement,
        namespaces: plan.namespaces,
        filesystem: plan.filesystem.clone(),
        root: plan.root.clone(),
        chdir: plan.chdir.clone(),
        credentials: plan.credentials,
        file_size_bytes: plan.limits.file_size_bytes,
        no_core: plan.limits.no_core,
        seccomp,
        ignored_signals: crate::sys::signals::ignored(),
        exec_candidates: exec_candidates(command, plan),
        command_name: command.to_string_lossy().into_owned(),
        argv: ExecStrings::new(
            std::iter::once(command)
                .chain(plan.args.iter().map(OsString::as_os_str))
                .map(c_string)
                .collect(),
        ),
        envp: ExecStrings::new(
            plan.env
                .iter()
                .map(|(key, value)| {
                    c_string(&[key.as_os_str(), value.as_os_str()].join(OsStr::new("=")))
                })
                .collect(),
        ),
        netns: setting.netns.map(|fd| fd.as_raw_fd()),
        join: Vec::new(),
        stdin: setting.stdin.map(|fd| fd.as_raw_fd()),
        stdout: pipes.stdout.1.as_raw_fd(),
        stderr: pipes.stderr.1.as_raw_fd(),
        go: Some(pipes.go.0.as_raw_fd()),
        report: pipes.report.1.as_raw_fd(),
        status: pipes.status.1.as_raw_fd(),
    }
}

/// Where `command` may be, as execvp would search: itself if it has a slash, else each
/// directory of the child's PATH (of the default path when it has none).
fn exec_candidates(command: &OsStr, plan: &Plan) -> Vec<CString> {
    if command.as_bytes().contains(&b'/') {
        return vec![c_string(command)];
    }
    let path = plan
        .env
        .iter()
        .find(|(key, _)| key == "PATH")
        .map_or(OsStr::new(DEFAULT_PATH), |(_, value)| value.as_os_str());
    path.as_bytes()
        .split(|&byte| byte == b':')
        .map(|dir| {
            if dir.is_empty() {
                Path::new(".")
            } else {
                Path::new(OsStr::from_bytes(dir))
            }
        })
        .map(|dir| c_string(dir.join(command).as_os_str()))
        .collect()
}

/// Interior NUL bytes cannot reach exec; they cannot come from a command line either.
fn c_string(text: &OsStr) -> CString {
    CString::new(text.as_bytes()).unwrap_or_default()
}

/// Kills the child if the parent leaves `run` early with an error.
struct KillOnDrop(Pid);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        process::signal_process(self.0, Signal::SIGKILL);
        process::reap_all();
    }
}

/// The moment the program was exec'd, and the run's CPU usage (and activity, when measured)
/// then: the child's own setup.
struct Started {
    at: Instant,
    baseline: Usage,
    activity_baseline: Option<Activity>,
}

/// Finish the child's setup from the outside and wait for its exec.
fn start(
    plan: &Plan,
    forked: &Forked,
    cgroup: &dyn RunGroup,
    go: Option<OwnedFd>,
    report: OwnedFd,
) -> Result<Started> {
    if plan.namespaces.user {
        process::write_identity_id_maps(forked.pid).map_err(|e| {
            SandboxError::io(
                "cannot write the id maps of",
                format!("/proc/{}", forked.pid),
                e,
            )
        })?;
    }
    // A child whose setup fails before the "go" (e.g. its chdir in the new root) reports why
    // and exits, and then the attach (ESRCH) or the "go" (EPIPE) fails too: its report is the
    // cause. Otherwise the "go" pipe closes with `go` and the waiting child exits quietly.
    // Without a "go" the child was whole at birth and has exec'd or failed already.
    let released = match go {
        Some(go) => cgroup
            .attach(forked.pid.as_raw(), forked.in_cgroup)
            .and_then(|()| {
                File::from(go)
                    .write_all(b"g")
                    .map_err(|e| SandboxError::io("cannot release the child", "go pipe", e))
            }),
        None => Ok(()),
    };
    let mut message = String::new();
    File::from(report)
        .read_to_string(&mut message)
        .map_err(|e| SandboxError::io("cannot read the child's report", "report pipe", e))?;
    let at = Instant::now();
    if !message.is_empty() {
        return Err(SandboxError::Setup(message));
    }
    released?;
    Ok(Started {
        at,
        baseline: cgroup.usage()?,
        activity_baseline: match plan.measure_activity {
            true => Some(cgroup.activity()?),
            false => None,
        },
    })
}

/// Watches a running program: pumps its output and enforces the hard limits.
struct Supervisor<'a> {
    plan: &'a Plan,
    cgroup: &'a dyn RunGroup,
    baseline: Usage,
    started: Instant,
    time_result: TimeResult,
    runner_signal: Option<i32>,
    stdout: StreamPump<Box<dyn Write>>,
    stderr: StreamPump<Box<dyn Write>>,
    /// What one read from an output pipe moves at most. On the heap and made once: zeroing
    /// 64 KiB of stack per read cost a run 16 page faults (most runs read only EOF).
    buffer: Vec<u8>,
}

/// Which hard limit (or which of our signals) ended the run.
enum KillReason {
    WallLimit,
    CpuLimit,
    Signal(i32),
}

impl Supervisor<'_> {
    /// Until the main process has exited; returns its wait status.
    fn supervise(
        &mut self,
        forked: &Forked,
        stdout: &OwnedFd,
        stderr: &OwnedFd,
        signals: &StopSignals,
    ) -> Result<WaitStatus> {
        let mut open = [true, true];
        let cpus = usable_cpus(self.plan);
        // The baseline was read at exec, a moment ago: nothing to read for the first check.
        let mut cpu_used = Duration::ZERO;
        loop {
            if let Some(reason) = self.limit_reached(cpu_used) {
                self.kill(reason)?;
            }
            let timeout = self.next_check(cpus, cpu_used);
            let mut fds = vec![
                PollFd::new(forked.pidfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN),
            ];
            let streams: Vec<usize> = (0..2).filter(|&i| open[i]).collect();
            for &i in &streams {
                fds.push(PollFd::new([stdout, stderr][i].as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(SandboxError::sys("poll", e)),
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|events| !events.is_empty());
            let stream_ready: Vec<bool> = fds[2..].iter().map(ready).collect();
            let (exited, signalled) = (ready(&fds[0]), ready(&fds[1]));
            drop(fds);
            for (&i, _) in streams
                .iter()
                .zip(stream_ready)
                .filter(|(_, is_ready)| *is_ready)
            {
                open[i] = self.pump(i, [stdout, stderr][i])?;
            }
            if signalled {
                if let Some(signal) = signals.received() {
                    self.kill(KillReason::Signal(signal))?;
                }
            }
            if exited {
                if let Some(status) = process::reap_exited(forked.pid) {
                    return Ok(status);
                }
            }
            if self.watching_cpu() {
                cpu_used = self.cpu_used()?;
            }
        }
    }

    /// Whether the CPU limit is still to be enforced: there is one and no kill is under way.
    fn watching_cpu(&self) -> bool {
        self.plan.limits.cpu.is_some() && !self.killing()
    }

    fn killing(&self) -> bool {
        self.time_result.any_hard() || self.runner_signal.is_some()
    }

    fn limit_reached(&self, cpu_used: Duration) -> Option<KillReason> {
        if self.killing() {
            return None;
        }
        if self
            .plan
            .limits
            .wall
            .is_some_and(|wall| self.started.elapsed() >= wall.hard)
        {
            return Some(KillReason::WallLimit);
        }
        if self.plan.limits.cpu.is_some_and(|cpu| cpu_used >= cpu.hard) {
            return Some(KillReason::CpuLimit);
        }
        None
    }

    /// Sleep no longer than until the wall limit, or until the CPU limit could be reached with
    /// every usable CPU busy: the run cannot pass it unseen.
    fn next_check(&self, cpus: u32, cpu_used: Duration) -> PollTimeout {
        if self.killing() {
            return PollTimeout::from(100u16);
        }
        let mut wait: Option<Duration> = None;
        if let Some(wall) = self.plan.limits.wall {
            wait = Some(wall.hard.saturating_sub(self.started.elapsed()));
        }
        if let Some(cpu) = self.plan.limits.cpu {
            let until_cpu = cpu.hard.saturating_sub(cpu_used) / cpus;
            wait = Some(wait.map_or(until_cpu, |w| w.min(until_cpu)));
        }
        match wait {
            None => PollTimeout::NONE,
            Some(wait) => {
                let millis = wait.max(MIN_POLL).as_millis().min(i32::MAX as u128);
                PollTimeout::try_from(millis as i32).unwrap_or(PollTimeout::MAX)
            }
        }
    }

    fn cpu_used(&self) -> Result<Duration> {
        Ok(self
            .cgroup
            .cpu_time()?
            .saturating_sub(self.baseline.cpu_total))
    }

    fn kill(&mut self, reason: KillReason) -> Result<()> {
        match reason {
            KillReason::WallLimit => {
                self.time_result.wall_hard = true;
                // Interactive problems: the other side of the pipe goes first.
                if let Some(pid) = self.plan.runpipe_pid {
                    process::signal_process(Pid::from_raw(pid), Signal::SIGUSR1);
                }
            }
            KillReason::CpuLimit => self.time_result.cpu_hard = true,
            KillReason::Signal(signal) => self.runner_signal = Some(signal),
        }
        self.cgroup.kill_all()
    }

    /// Move what one output pipe holds; false at EOF.
    fn pump(&mut self, index: usize, pipe: &OwnedFd) -> Result<bool> {
        let read = match nix::unistd::read(pipe.as_fd(), &mut self.buffer) {
            Ok(read) => read,
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => return Ok(true),
            Err(e) => return Err(SandboxError::sys("read", e)),
        };
        let pump = if index == 0 {
            &mut self.stdout
        } else {
            &mut self.stderr
        };
        pump.take(&self.buffer[..read])
            .map_err(|e| SandboxError::io("cannot write the program's output", "output", e))?;
        Ok(read > 0)
    }

    /// After every process of the run is gone: take what is left in the pipes.
    fn drain(&mut self, stdout: &OwnedFd, stderr: &OwnedFd) -> Result<()> {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        for (index, pipe) in [stdout, stderr].into_iter().enumerate() {
            while Instant::now() < deadline {
                let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .as_millis() as i32;
                if poll(
                    &mut fds,
                    PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO),
                )
                .unwrap_or(0)
                    == 0
                {
                    break;
                }
                if !self.pump(index, pipe)? {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// CPUs the run can use at once: its cpuset, else those we may run on (which it inherits).
/// Not `available_parallelism`: that also reads our cgroup's CPU quota, four files for a bound
/// we need only from above (a quota makes the run use CPU time more slowly, not faster).
fn usable_cpus(plan: &Plan) -> u32 {
    let from_cpuset = plan.limits.cpuset.as_deref().map(count_cpus);
    from_cpuset.unwrap_or_else(process::affinity_cpus).max(1)
}

/// Number of CPUs in a list like `0,2-3` (already validated by the front end).
fn count_cpus(list: &str) -> u32 {
    list.split(',')
        .filter_map(|part| match part.split_once('-') {
            Some((low, high)) => Some(
                high.trim()
                    .parse::<u32>()
                    .ok()?
                    .saturating_sub(low.trim().parse().ok()?)
                    + 1,
            ),
            None => part.trim().parse::<u32>().ok().map(|_| 1),
        })
        .sum()
}

fn termination(main: WaitStatus, init_status_pipe: Option<&OwnedFd>) -> Result<Termination> {
    // With a pid namespace the main process is the namespace's init; the program's own status
    // comes through the status pipe (nothing there: init was killed with everything else).
    if let Some(pipe) = init_status_pipe {
        let mut raw = [0u8; 4];
        let mut file = File::from(
            pipe.try_clone()
                .map_err(|e| SandboxError::io("cannot read", "status pipe", e))?,
        );
        if file.read_exact(&mut raw).is_ok() {
            let status = i32::from_ne_bytes(raw);
            return Ok(if libc::WIFSIGNALED(status) {
                Termination::Signaled(libc::WTERMSIG(status))
            } else {
                Termination::Exited(libc::WEXITSTATUS(status))
            });
        }
    }
    match main {
        WaitStatus::Exited(_, code) => Ok(Termination::Exited(code)),
        WaitStatus::Signaled(_, signal, _) => Ok(Termination::Signaled(signal as i32)),
        other => Err(SandboxError::Setup(format!(
            "unexpected wait status of the program: {other:?}"
        ))),
    }
}

/// CPU usage of the program alone: the run's usage minus what the child's setup used.
fn since(usage: &Usage, baseline: &Usage) -> CpuUsage {
    CpuUsage {
        user: usage.cpu_user.saturating_sub(baseline.cpu_user),
        system: usage.cpu_system.saturating_sub(baseline.cpu_system),
        total: usage.cpu_total.saturating_sub(baseline.cpu_total),
    }
}

struct CpuUsage {
    user: Duration,
    system: Duration,
    total: Duration,
}

/// Soft limits are judged after the run; a hard limit passed between two checks counts as hit.
fn mark_limits_passed(result: &mut TimeResult, plan: &Plan, wall: Duration, cpu: Duration) {
    if let Some(limit) = plan.limits.wall {
        result.wall_soft |= wall > limit.soft;
        result.wall_hard |= wall > limit.hard;
    }
    if let Some(limit) = plan.limits.cpu {
        result.cpu_soft |= cpu > limit.soft;
        result.cpu_hard |= cpu > limit.hard;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_that_needs_nothing_from_us_before_its_exec_shares_our_memory() {
        let plain = Plan::new("prog", vec![]);
        let mut with_pid = plain.clone();
        with_pid.namespaces.pid = true;
        let mut with_user = plain.clone();
        with_user.namespaces.user = true;
        let mut with_the_rest = plain.clone();
        with_the_rest.namespaces = crate::plan::Namespaces {
            cgroup: true,
            time: true,
            ..crate::plan::Namespaces::default()
        };
        for (plan, shares) in [
            (&plain, true),
            (&with_the_rest, true),
            (&with_pid, false),
            (&with_user, false),
        ] {
            assert_eq!(shares_our_memory(plan), shares, "{:?}", plan.namespaces);
        }
    }

    #[test]
    fn counts_cpus_of_a_list() {
        assert_eq!(count_cpus("0"), 1);
        assert_eq!(count_cpus("0,2-3"), 3);
        assert_eq!(count_cpus("1-7"), 7);
    }

    #[test]
    fn searches_path_like_execvp() {
        let mut plan = Plan::new("prog", vec![]);
        plan.env = vec![("PATH".into(), "/a::/b".into())];
        let found: Vec<_> = exec_candidates(OsStr::new("prog"), &plan)
            .into_iter()
            .map(|c| c.into_string().unwrap())
            .collect();
        assert_eq!(found, ["/a/prog", "./prog", "/b/prog"]);
        assert_eq!(
            exec_candidates(OsStr::new("./x"), &plan),
            [CString::new("./x").unwrap()]
        );
    }
}
