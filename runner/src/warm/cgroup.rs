//! The cgroups of a warm sandbox.
//!
//! On a hybrid host (v1 controllers, controller-less cgroup2) the sandbox has ONE set of groups
//! made at start ([`SharedCgroup`]): the keeper joins the v1 ones (memory, pids, cpuset, cpu) once,
//! and each run is cloned straight into the cgroup2 group, inheriting the v1 groups from the
//! keeper. No run migrates (a v1 migration costs ~0.7 ms here, and far more under churn). The
//! cgroup2 group holds the run alone: its `cpu.stat` is the run's.
//!
//! Leftovers are killed under the cgroup2 freezer, not with `cgroup.kill`: on this kernel
//! (6.18) a child cloned into a group that was ever `cgroup.kill`ed is SIGKILLed at birth (the
//! group's kill sequence no longer matches the one the fork sampled), which would kill every
//! run after the first. Frozen, no process of the run can fork while we SIGKILL each one.
//!
//! The v1 memory group is shared with the keeper, so before each run its counters are re-based:
//! the peak is reset by writing 0 to `memory.max_usage_in_bytes`, the charge then present (the
//! keeper's own pages, cache left by earlier runs) is subtracted from the peak afterwards and
//! added to the run's limit. CPU time and OOM kills are re-based at exec by `launch` itself.
//!
//! On pure v2 and pure v1 hosts each run gets a fresh `RunCgroup` instead (see `Cgroups`): on v2
//! that is a mkdir, clone3 into it and rmdir, cheap and no migration, and it gives an exact
//! `memory.peak` on kernels before 6.12 (which cannot reset it); pure v1 has no clone3 target,
//! so a run is attached as in the one-shot path.

use std::cell::Cell;
use std::fs::File;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cgroup::fs::write;
use crate::cgroup::{CgroupLimits, Hierarchies, Layout, RunCgroup, Usage};
use crate::error::{Result, SandboxError};
use crate::launch::RunGroup;
use crate::report::Activity;

/// The kernel's "no limit" for v1 memory files.
const UNLIMITED: &str = "-1";
/// How long killing a run's leftovers may take before the sandbox counts as broken.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// How a sandbox's runs get their cgroups.
pub enum Cgroups {
    Shared(Box<SharedCgroup>),
    PerRun(Hierarchies),
}

impl Cgroups {
    /// The sandbox's cgroups on this host with the limits of every run (but memory, set per
    /// run); on hybrid hosts the calling keeper joins them.
    pub fn create(
        hierarchies: Hierarchies,
        parent: &Path,
        name: &str,
        limits: CgroupLimits,
    ) -> Result<Cgroups> {
        Ok(match hierarchies.layout() {
            Layout::Hybrid => Cgroups::Shared(Box::new(SharedCgroup::create(
                &hierarchies,
                parent,
                name,
                limits,
            )?)),
            Layout::V1 | Layout::V2 => Cgroups::PerRun(hierarchies),
        })
    }

    /// Directories that outlive the keeper's runs (removed by the client once the keeper is
    /// gone: the keeper cannot remove v1 groups it is in).
    pub fn dirs(&self) -> Vec<PathBuf> {
        match self {
            Cgroups::Shared(shared) => shared.group.dirs().map(Path::to_path_buf).collect(),
            Cgroups::PerRun(_) => Vec::new(),
        }
    }

    /// Still usable: nobody removed a group underneath us.
    /// The directories per-run groups are made in (none when the groups are shared).
    pub fn run_parents(&self, parent: &Path) -> Vec<PathBuf> {
        match self {
            Cgroups::Shared(_) => Vec::new(),
            Cgroups::PerRun(hierarchies) => hierarchies
                .mounts()
                .map(|mount| mount.join(parent))
                .collect(),
        }
    }

    pub fn intact(&self) -> bool {
        self.dirs().iter().all(|dir| dir.is_dir())
    }
}

/// The one set of groups of a sandbox on a hybrid host.
pub struct SharedCgroup {
    group: RunCgroup,
    memory_dir: PathBuf,
    /// The cgroup2 group the runs are cloned into.
    unified_dir: PathBuf,
    /// Memory charged to the group when the current run started: not the run's.
    base_charge: Cell<u64>,
    /// What `memory.limit_in_bytes` holds (`None`: unlimited).
    memory_limit: Cell<Option<u64>>,
}

impl SharedCgroup {
    fn create(
        hierarchies: &Hierarchies,
        parent: &Path,
        name: &str,
        limits: CgroupLimits,
    ) -> Result<SharedCgroup> {
        // The keeper itself takes one process slot, and shares a CPU quota (it sleeps while
        // a run runs).
        let limits = CgroupLimits {
            pids: limits.pids.map(|n| n + 1),
            ..limits
        };
        let unified_dir = hierarchies
            .unified()
            .expect("hybrid hosts have a cgroup2 mount")
            .join(parent)
            .join(name);
        let group = RunCgroup::create(hierarchies, parent, name, &limits)?;
        // The keeper joins the v1 groups only: the cgroup2 group is the run's alone, so that
        // its CPU time and `cgroup.kill` never include the keeper.
        group.attach(std::process::id() as i32, true)?;
        Ok(SharedCgroup {
            memory_dir: group.memory_dir().to_path_buf(),
            unified_dir,
            group,
            base_charge: Cell::new(0),
            memory_limit: Cell::new(None),
        })
    }

    /// Before a run: reset the peak, note the charge present, and set the run's memory limit
    /// on top of it (written only when it changes).
    pub fn prepare(&self, memory_bytes: Option<u64>) -> Result<()> {
        self.group
            .files()
            .write(&self.memory_dir.join("memory.max_usage_in_bytes"), "0")?;
        let charge = self.group.memory_charge()?;
        self.base_charge.set(charge);
        let limit = memory_bytes.map(|bytes| bytes.saturating_add(charge));
        if limit != self.memory_limit.get() {
            self.set_memory_limit(limit)?;
        }
        Ok(())
    }

    /// memory + swap may never be below memory: raise memsw first, lower it last.
    fn set_memory_limit(&self, limit: Option<u64>) -> Result<()> {
        let value = limit.map_or(UNLIMITED.to_string(), |bytes| bytes.to_string());
        let memory = self.memory_dir.join("memory.limit_in_bytes");
        let memsw = self.memory_dir.join("memory.memsw.limit_in_bytes");
        let raising = match (limit, self.memory_limit.get()) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(new), Some(old)) => new > old,
        };
        let order = if raising {
            [&memsw, &memory]
        } else {
            [&memory, &memsw]
        };
        for file in order {
            self.group.files().write(file, &value)?;
        }
        self.memory_limit.set(limit);
        Ok(())
    }
}

impl RunGroup for SharedCgroup {
    fn clone_into_fd(&self) -> Option<BorrowedFd<'_>> {
        self.group.clone_into_fd()
    }

    /// Stalls are the run's own (its cgroup2 group); memory activity comes from the v1 memory
    /// group it shares with the keeper, which barely faults while a run runs.
    fn activity(&self) -> Result<Activity> {
        self.group.activity()
    }

    fn attach(&self, _pid: i32, born_in_clone_group: bool) -> Result<()> {
        // Born in the cgroup2 group, the child has the v1 groups from the keeper already.
        if born_in_clone_group {
            Ok(())
        } else {
            Err(SandboxError::Config(
                "the kernel refused clone3(CLONE_INTO_CGROUP) into the warm sandbox's cgroup2 \
                 group; warm sandboxes need Linux >= 5.7"
                    .into(),
            ))
        }
    }

    /// The v1 groups are the keeper's, and so the child's from its birth.
    fn procs_to_join(&self) -> Result<Vec<File>> {
        Ok(Vec::new())
    }

    fn cpu_time(&self) -> Result<Duration> {
        self.group.cpu_time()
    }

    fn usage(&self) -> Result<Usage> {
        let usage = self.group.usage()?;
        Ok(Usage {
            memory_peak_bytes: usage
                .memory_peak_bytes
                .saturating_sub(self.base_charge.get()),
            ..usage
        })
    }

    fn kill_all(&self) -> Result<()> {
        if self.group.pids()?.is_empty() {
            return Ok(());
        }
        let freeze = self.unified_dir.join("cgroup.freeze");
        write(&freeze, "1")?;
        let killed = self.kill_frozen();
        write(&freeze, "0")?;
        killed
    }
}

impl SharedCgroup {
    /// SIGKILL every process of the (frozen) run until none is left; the keeper is not in the
    /// cgroup2 group, so it is never among them.
    fn kill_frozen(&self) -> Result<()> {
        let deadline = Instant::now() + KILL_TIMEOUT;
        let mut pause = Duration::from_micros(50);
        loop {
            let pids = self.group.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SandboxError::io(
                    "kill the run's processes",
                    self.unified_dir.join("cgroup.procs"),
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "{} process(es) left {KILL_TIMEOUT:?} after SIGKILL",
                            pids.len()
                        ),
                    ),
                ));
            }
            for pid in pids {
                match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(e) => return Err(SandboxError::sys("kill", e)),
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }
}
