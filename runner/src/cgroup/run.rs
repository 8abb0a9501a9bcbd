//! One run's cgroup directories: created with the run's limits, measured, emptied, removed.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::detect::V1Hierarchy;
use super::fs::{read_parsed, write, CgroupFs, CreatedDirs, Kernel, OpenFiles};
use super::parse::{self, CpuStat};
use super::{v1, v2, CgroupLimits, Hierarchies, Layout, Usage};
use crate::error::{Result, SandboxError};
use crate::report::{Activity, Stalls};

/// How long [`RunCgroup::kill_all`] waits for the killed processes to leave the group.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// The cgroup directories of one run, one per hierarchy used. Dropping it kills what is left
/// inside and removes the directories, best effort; [`RunCgroup::remove`] does the same
/// removal and reports errors.
#[derive(Debug)]
pub struct RunCgroup {
    /// The counters read, kept open; first, so that they close before `dirs` removes the
    /// directories when a run is dropped.
    files: OpenFiles,
    /// Every directory of the run, in creation order.
    dirs: CreatedDirs,
    /// The run's cgroup2 directory (v2, hybrid): CPU time, `cgroup.kill`, clone3.
    unified: Option<UnifiedDir>,
    cpu: CpuSource,
    memory: MemorySource,
    /// The run's v1 freezer group (pure v1 hosts that mount the freezer).
    freezer: Option<PathBuf>,
    /// The v1 cpu group of a run with a CPU quota, where cpuacct does not already give the
    /// throttling counters: its `cpu.stat` does.
    throttling_dir: Option<PathBuf>,
}

#[derive(Debug)]
struct UnifiedDir {
    path: PathBuf,
    /// Kept open for clone3(CLONE_INTO_CGROUP).
    fd: OwnedFd,
}

/// Where the run's CPU time is read.
#[derive(Debug)]
enum CpuSource {
    /// `cpu.stat` of a cgroup2 group (v2, hybrid).
    CgroupV2(PathBuf),
    /// `cpuacct.*` of a v1 group; `cpu.stat` too when cpu is co-mounted with cpuacct.
    Cpuacct { dir: PathBuf, has_cpu_stat: bool },
}

/// Where the run's peak memory and OOM kills are read.
#[derive(Debug)]
enum MemorySource {
    V1(PathBuf),
    V2 {
        dir: PathBuf,
        /// Linux < 5.19 has no `memory.peak`: we keep the largest `memory.current` seen.
        has_peak: bool,
        sampled_peak: Cell<u64>,
    },
}

impl RunCgroup {
    /// Create `parent/name` in every hierarchy the run needs and apply `limits`. `parent` is
    /// relative to each hierarchy's root and is created if missing (and kept: it is shared by
    /// runs); `name` must not exist yet.
    ///
    /// * v2: one group with memory (+ pids, cpuset when limited), the controllers enabled in
    ///   `cgroup.subtree_control` from the hierarchy's root down to `parent`.
    /// * hybrid: v1 groups for memory (always: peak memory), pids and cpuset when limited,
    ///   plus a group in the controller-less cgroup2 mount for CPU time, kill and clone3.
    /// * v1: groups for memory, cpuacct (CPU time), pids and cpuset when limited, and the
    ///   freezer when mounted (atomic kill).
    pub fn create(
        hierarchies: &Hierarchies,
        parent: &Path,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<RunCgroup> {
        RunCgroup::create_with(Box::new(Kernel), hierarchies, parent, name, limits)
    }

    pub(crate) fn create_with(
        fs: Box<dyn CgroupFs>,
        hierarchies: &Hierarchies,
        parent: &Path,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<RunCgroup> {
        check_names(parent, name)?;
        let layout = hierarchies.layout();
        let mut dirs = CreatedDirs::new(fs);

        let mut v1_dirs: Vec<(&V1Hierarchy, PathBuf)> = Vec::new();
        for hierarchy in v1_hierarchies(hierarchies, limits)? {
            let dir = make_v1_dir(&mut dirs, hierarchy, parent, name)?;
            v1_dirs.push((hierarchy, dir));
        }

        let unified = match (layout, hierarchies.unified()) {
            (Layout::V1, _) => None,
            (_, None) => unreachable!("detection gives v2 and hybrid a cgroup2 mount"),
            (_, Some(mount)) => {
                // On hybrid hosts the controllers belong to v1: the cgroup2 group needs none.
                let controllers = match layout {
                    Layout::V2 => limited_controllers(limits),
                    _ => Vec::new(),
                };
                Some(make_unified_dir(
                    &mut dirs,
                    mount,
                    parent,
                    name,
                    &controllers,
                )?)
            }
        };

        // The group holding `controller`: the cgroup2 group on v2, else a v1 group.
        let dir_of = |controller: &str| -> &Path {
            match (&unified, layout) {
                (Some(unified), Layout::V2) => &unified.path,
                _ => v1_dirs
                    .iter()
                    .find(|(hierarchy, _)| hierarchy.binds(controller))
                    .map(|(_, dir)| dir.as_path())
                    .expect("v1_hierarchies() gave a group for every controller used"),
            }
        };

        if let Some(bytes) = limits.memory_bytes {
            match layout {
                Layout::V2 => v2::limit_memory(dir_of("memory"), bytes)?,
                Layout::V1 | Layout::Hybrid => v1::limit_memory(dir_of("memory"), bytes)?,
            }
        }
        if let Some(pids) = limits.pids {
            write(&dir_of("pids").join("pids.max"), &pids.to_string())?;
        }
        if let Some(cpus) = &limits.cpuset {
            write(&dir_of("cpuset").join("cpuset.cpus"), cpus)?;
        }
        if let Some(mems) = &limits.cpuset_mems {
            write(&dir_of("cpuset").join("cpuset.mems"), mems)?;
        }
        if let Some(bandwidth) = limits.cpu_bandwidth {
            match layout {
                Layout::V2 => v2::limit_cpu(dir_of("cpu"), bandwidth)?,
                Layout::V1 | Layout::Hybrid => v1::limit_cpu(dir_of("cpu"), bandwidth)?,
            }
        }

        let memory_dir = dir_of("memory").to_path_buf();
        let memory = match layout {
            Layout::V2 => MemorySource::V2 {
                has_peak: memory_dir.join("memory.peak").exists(),
                dir: memory_dir,
                sampled_peak: Cell::new(0),
            },
            Layout::V1 | Layout::Hybrid => MemorySource::V1(memory_dir),
        };
        let cpu = match (&unified, hierarchies.v1("cpuacct")) {
            (Some(unified), _) => CpuSource::CgroupV2(unified.path.clone()),
            (None, Some(cpuacct)) => CpuSource::Cpuacct {
                dir: dir_of("cpuacct").to_path_buf(),
                has_cpu_stat: cpuacct.binds("cpu"),
            },
            (None, None) => unreachable!("v1_hierarchies() requires cpuacct on v1"),
        };
        let throttling_dir = match (&cpu, limits.cpu_bandwidth) {
            (
                CpuSource::Cpuacct {
                    has_cpu_stat: true, ..
                },
                _,
            )
            | (_, None) => None,
            (_, Some(_)) if layout == Layout::V2 => None,
            (_, Some(_)) => Some(dir_of("cpu").to_path_buf()),
        };
        let freezer = match layout {
            Layout::V1 if hierarchies.v1("freezer").is_some() => {
                Some(dir_of("freezer").to_path_buf())
            }
            _ => None,
        };

        Ok(RunCgroup {
            files: OpenFiles::default(),
            dirs,
            unified,
            cpu,
            memory,
            freezer,
            throttling_dir,
        })
    }

    /// The run's directories, in creation order.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter()
    }

    /// The group of the memory controller (a warm sandbox re-bases its counters between runs).
    pub(crate) fn memory_dir(&self) -> &Path {
        match &self.memory {
            MemorySource::V1(dir) | MemorySource::V2 { dir, .. } => dir,
        }
    }

    /// The group's control files kept open (a warm sandbox writes some before every run).
    pub(crate) fn files(&self) -> &OpenFiles {
        &self.files
    }

    /// The run's stalls (PSI of its cgroup2 group) and memory activity so far.
    pub fn activity(&self) -> Result<Activity> {
        let stalls = match &self.unified {
            Some(unified) => {
                let stall = |resource: &str| {
                    let path = unified.path.join(format!("{resource}.pressure"));
                    self.files.read_optional(&path, parse::psi_some_total)
                };
                match (stall("cpu")?, stall("io")?, stall("memory")?) {
                    (Some(cpu), Some(io), Some(memory)) => Some(Stalls { cpu, io, memory }),
                    _ => None,
                }
            }
            None => None,
        };
        let memory = Some(self.files.read_parsed(
            &self.memory_dir().join("memory.stat"),
            parse::memory_activity,
        )?);
        Ok(Activity { stalls, memory })
    }

    /// Memory charged to the group now (a warm sandbox's base before a run: v1 memory groups).
    pub(crate) fn memory_charge(&self) -> Result<u64> {
        match &self.memory {
            MemorySource::V1(dir) => v1::memory_usage(&self.files, dir),
            MemorySource::V2 { dir, .. } => v2::memory_current(&self.files, dir),
        }
    }

    /// An open directory fd of the run's cgroup2 group, for clone3(CLONE_INTO_CGROUP)
    /// (v2 and hybrid hosts).
    pub fn clone_into_fd(&self) -> Option<BorrowedFd<'_>> {
        self.unified.as_ref().map(|unified| unified.fd.as_fd())
    }

    /// The groups a child born in the clone-into group is not in yet: none on pure v2, the v1
    /// ones on hybrid hosts, every one where there is no cgroup2 group.
    pub fn groups_to_join(&self) -> Vec<&Path> {
        let born_in = self.unified.as_ref().map(|unified| unified.path.as_path());
        self.dirs
            .iter()
            .filter(|&dir| Some(dir) != born_in)
            .collect()
    }

    /// The `cgroup.procs` files of [`RunCgroup::groups_to_join`], open for writing: a child
    /// that writes `0` to each has joined them.
    pub fn procs_to_join(&self) -> Result<Vec<File>> {
        self.groups_to_join()
            .into_iter()
            .map(|dir| {
                let procs = dir.join("cgroup.procs");
                OpenOptions::new()
                    .write(true)
                    .open(&procs)
                    .map_err(|e| SandboxError::io("cannot open", &procs, e))
            })
            .collect()
    }

    /// Move `pid` into every group of the run; with `except_clone_into`, leave out the group
    /// of [`RunCgroup::clone_into_fd`] (the child was born there).
    pub fn attach(&self, pid: i32, except_clone_into: bool) -> Result<()> {
        let dirs = match except_clone_into {
            true => self.groups_to_join(),
            false => self.dirs.iter().collect(),
        };
        let pid = pid.to_string();
        for dir in dirs {
            write(&dir.join("cgroup.procs"), &pid)?;
        }
        Ok(())
    }

    /// Total CPU time so far, for polling the CPU limit: one file read (two on v2 kernels
    /// older than 5.19, which sample memory here for want of `memory.peak`).
    pub fn cpu_time(&self) -> Result<Duration> {
        self.sample_memory()?;
        match &self.cpu {
            CpuSource::CgroupV2(dir) => v2::cpu_time(&self.files, dir),
            CpuSource::Cpuacct { dir, .. } => v1::cpu_time(&self.files, dir),
        }
    }

    /// What the run's groups measured.
    pub fn usage(&self) -> Result<Usage> {
        let mut cpu: CpuStat = match &self.cpu {
            CpuSource::CgroupV2(dir) => v2::cpu_usage(&self.files, dir)?,
            CpuSource::Cpuacct { dir, has_cpu_stat } => {
                v1::cpu_usage(&self.files, dir, *has_cpu_stat)?
            }
        };
        if let Some(dir) = &self.throttling_dir {
            cpu.throttling = v1::throttling(&self.files, dir)?;
        }
        let (memory_peak_bytes, oom_kills) = match &self.memory {
            MemorySource::V1(dir) => (
                v1::memory_peak(&self.files, dir)?,
                v1::oom_kills(&self.files, dir)?,
            ),
            MemorySource::V2 { dir, has_peak, .. } => {
                let peak = if *has_peak {
                    v2::memory_peak(&self.files, dir)?
                } else {
                    self.sample_memory()?
                };
                (peak, v2::oom_kills(&self.files, dir)?)
            }
        };
        Ok(Usage {
            cpu_user: cpu.user,
            cpu_system: cpu.system,
            cpu_total: cpu.usage,
            memory_peak_bytes,
            oom_kills,
            throttling: cpu.throttling,
        })
    }

    /// On v2 without `memory.peak`: fold the current usage into the sampled peak and return
    /// it. Elsewhere a no-op returning 0.
    fn sample_memory(&self) -> Result<u64> {
        match &self.memory {
            MemorySource::V2 {
                dir,
                has_peak: false,
                sampled_peak,
            } => {
                let peak = sampled_peak
                    .get()
                    .max(v2::memory_current(&self.files, dir)?);
                sampled_peak.set(peak);
                Ok(peak)
            }
            _ => Ok(0),
        }
    }

    /// Pids currently in the run. A cgroup2 `cgroup.procs` lists the members anew on every
    /// read from 0; a v1 one answers from a pid list cached per open file, so it is opened
    /// for each read.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let procs = self.members_dir().join("cgroup.procs");
        match self.unified {
            Some(_) => self.files.read_parsed_list(&procs, parse::pids),
            None => read_parsed(&procs, parse::pids),
        }
    }

    /// The group every process of the run is in from its start: the cgroup2 group where
    /// clone3 puts the child, else the memory group (always created).
    fn members_dir(&self) -> &Path {
        match (&self.unified, &self.memory) {
            (Some(unified), _) => &unified.path,
            (None, MemorySource::V1(dir) | MemorySource::V2 { dir, .. }) => dir,
        }
    }

    /// Kill every process of the run and return once none is left running (zombies may remain
    /// for the caller to reap). Atomically where the kernel can (cgroup.kill, or the v1
    /// freezer), else by signalling the listed processes until the group is empty.
    pub fn kill_all(&self) -> Result<()> {
        let killed_at_once = self.kill_at_once()?;
        let deadline = Instant::now() + KILL_TIMEOUT;
        let mut pause = Duration::from_micros(50);
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SandboxError::io(
                    "kill cgroup processes",
                    self.members_dir().join("cgroup.procs"),
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "{} process(es) still there {KILL_TIMEOUT:?} after SIGKILL",
                            pids.len()
                        ),
                    ),
                ));
            }
            if !killed_at_once {
                sigkill_all(&pids)?;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// SIGKILL the whole group in one step, so that no fork escapes. False when the host has
    /// no way to do so (no `cgroup.kill`, no freezer, or a freeze that did not complete).
    fn kill_at_once(&self) -> Result<bool> {
        if let Some(unified) = &self.unified {
            if v2::kill(&unified.path)? {
                return Ok(true);
            }
        }
        if let Some(freezer) = &self.freezer {
            if v1::freeze(freezer)? {
                let killed = read_parsed(&freezer.join("cgroup.procs"), parse::pids)
                    .and_then(|pids| sigkill_all(&pids));
                v1::thaw(freezer)?;
                killed?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Remove every directory of the run (processes must be gone: see [`RunCgroup::kill_all`]).
    pub fn remove(mut self) -> Result<()> {
        self.files.close_all();
        self.dirs.remove_all()
    }
}

impl Drop for RunCgroup {
    /// On an error path the run may still have processes: kill them so that the directories
    /// (removed when `dirs` drops) can go.
    fn drop(&mut self) {
        if !self.dirs.is_empty() {
            let _ = self.kill_all();
        }
    }
}

/// SIGKILL each pid; one that is already gone is not an error.
fn sigkill_all(pids: &[i32]) -> Result<()> {
    for &pid in pids {
        match kill(Pid::from_raw(pid), Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => return Err(SandboxError::sys("kill", err)),
        }
    }
    Ok(())
}

/// `parent` must stay inside the hierarchy and `name` be one plain directory name.
fn check_names(parent: &Path, name: &str) -> Result<()> {
    if !parent
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(SandboxError::Config(format!(
            "cgroup parent `{}' must be a relative path without `..'",
            parent.display()
        )));
    }
    let mut components = Path::new(name).components();
    if !matches!(
        (components.next(), components.next()),
        (Some(Component::Normal(_)), None)
    ) {
        return Err(SandboxError::Config(format!(
            "cgroup name `{name}' must be a single directory name"
        )));
    }
    Ok(())
}

/// Controllers any layout needs for `limits`: memory always (peak memory is always reported),
/// pids, cpuset (CPUs or memory nodes) and cpu when limited.
fn limited_controllers(limits: &CgroupLimits) -> Vec<&'static str> {
    let mut controllers = vec!["memory"];
    if limits.pids.is_some() {
        controllers.push("pids");
    }
    if limits.cpuset.is_some() || limits.cpuset_mems.is_some() {
        controllers.push("cpuset");
    }
    if limits.cpu_bandwidth.is_some() {
        controllers.push("cpu");
    }
    controllers
}

/// The v1 hierarchies a run uses, each once even when it binds several of the controllers.
fn v1_hierarchies<'h>(
    hierarchies: &'h Hierarchies,
    limits: &CgroupLimits,
) -> Result<Vec<&'h V1Hierarchy>> {
    if hierarchies.layout() == Layout::V2 {
        return Ok(Vec::new());
    }
    let mut required = limited_controllers(limits);
    let mut optional = Vec::new();
    if hierarchies.layout() == Layout::V1 {
        required.push("cpuacct");
        optional.push("freezer");
    }
    let mut used: Vec<&V1Hierarchy> = Vec::new();
    for controller in required {
        let hierarchy = hierarchies.v1(controller).ok_or_else(|| {
            SandboxError::Config(format!(
                "no cgroup v1 hierarchy binds the `{controller}' controller (see \
                 /proc/self/mountinfo): mount one, e.g. `mount -t cgroup -o {controller} \
                 cgroup /sys/fs/cgroup/{controller}'"
            ))
        })?;
        if !used.contains(&hierarchy) {
            used.push(hierarchy);
        }
    }
    for hierarchy in optional.into_iter().filter_map(|c| hierarchies.v1(c)) {
        if !used.contains(&hierarchy) {
            used.push(hierarchy);
        }
    }
    Ok(used)
}

fn make_v1_dir(
    dirs: &mut CreatedDirs,
    hierarchy: &V1Hierarchy,
    parent: &Path,
    name: &str,
) -> Result<PathBuf> {
    let has_cpuset = hierarchy.binds("cpuset");
    let prepare = |level: &Path| {
        if has_cpuset {
            v1::inherit_cpuset(level)
        } else {
            Ok(())
        }
    };
    let dir = make_run_dir(dirs, &hierarchy.path, parent, name, prepare)?;
    prepare(&dir)?;
    Ok(dir)
}

fn make_unified_dir(
    dirs: &mut CreatedDirs,
    mount: &Path,
    parent: &Path,
    name: &str,
    controllers: &[&str],
) -> Result<UnifiedDir> {
    let path = if controllers.is_empty() {
        make_run_dir(dirs, mount, parent, name, |_| Ok(()))?
    } else {
        v2::check_available(mount, controllers)?;
        make_run_dir(dirs, mount, parent, name, |level| {
            v2::enable_controllers(level, controllers)
        })?
    };
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(&path)
        .map_err(|err| SandboxError::io("open cgroup", &path, err))?;
    Ok(UnifiedDir {
        path,
        fd: dir.into(),
    })
}

/// mkdir `mount/parent/name`, creating the levels of `parent` that are missing. `prepare`
/// runs top-down on the mount root and each level of `parent` before its child is made.
fn make_run_dir(
    dirs: &mut CreatedDirs,
    mount: &Path,
    parent: &Path,
    name: &str,
    prepare: impl Fn(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let mut level = mount.to_path_buf();
    prepare(&level)?;
    for component in parent.components() {
        level.push(component);
        dirs.ensure_parent(&level)?;
        prepare(&level)?;
    }
    dirs.make(level.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::fake::FixtureTree;
    use crate::cgroup::Throttling;
    use crate::plan::CpuBandwidth;

    const MIB: u64 = 1 << 20;
    /// Far above any pid_max: a stand-in that no signal can reach.
    const NO_SUCH_PID: i32 = i32::MAX - 1;

    fn create(tree: &FixtureTree, limits: &CgroupLimits) -> Result<RunCgroup> {
        RunCgroup::create_with(
            tree.fs(),
            &tree.hierarchies,
            Path::new("judged"),
            "run1",
            limits,
        )
    }

    fn all_limits() -> CgroupLimits {
        CgroupLimits {
            memory_bytes: Some(256 * MIB),
            pids: Some(16),
            cpuset: Some("1".into()),
            cpuset_mems: None,
            cpu_bandwidth: None,
        }
    }

    fn half_a_cpu() -> CgroupLimits {
        CgroupLimits {
            cpu_bandwidth: Some(CpuBandwidth {
                quota_us: 50_000,
                period_us: 100_000,
            }),
            ..CgroupLimits::default()
        }
    }

    const THROTTLED_CPU_STAT: &str =
        "nr_periods 40\nnr_throttled 12\nthrottled_time 250000000\nnr_bursts 0\nburst_time 0\n";
    const THROTTLED: Throttling = Throttling {
        periods: 40,
        throttled_periods: 12,
        throttled_time: Duration::from_millis(250),
    };

    fn relative_dirs(tree: &FixtureTree, run: &RunCgroup) -> Vec<String> {
        run.dirs()
            .map(|dir| dir.strip_prefix(&tree.root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn hybrid_uses_v1_controllers_plus_a_cgroup2_group() {
        let tree = FixtureTree::copy("hybrid");
        let run = create(&tree, &all_limits()).unwrap();
        assert_eq!(
            relative_dirs(&tree, &run),
            [
                "sys/fs/cgroup/memory/judged/run1",
                "sys/fs/cgroup/pids/judged/run1",
                "sys/fs/cgroup/cpuset/judged/run1",
                "sys/fs/cgroup/unified/judged/run1",
            ]
        );
        assert!(run.clone_into_fd().is_some());
        let memory = "sys/fs/cgroup/memory/judged/run1";
        assert_eq!(
            tree.read(&format!("{memory}/memory.limit_in_bytes")),
            "268435456"
        );
        assert_eq!(
            tree.read(&format!("{memory}/memory.memsw.limit_in_bytes")),
            "268435456"
        );
        assert_eq!(tree.read("sys/fs/cgroup/pids/judged/run1/pids.max"), "16");
    }

    #[test]
    fn hybrid_without_limits_needs_only_memory_and_cgroup2() {
        let tree = FixtureTree::copy("hybrid");
        let run = create(&tree, &CgroupLimits::default()).unwrap();
        assert_eq!(
            relative_dirs(&tree, &run),
            [
                "sys/fs/cgroup/memory/judged/run1",
                "sys/fs/cgroup/unified/judged/run1"
            ]
        );
        // No limit written: the kernel's default stays.
        assert_eq!(
            tree.read("sys/fs/cgroup/memory/judged/run1/memory.limit_in_bytes")
                .trim(),
            "9223372036854771712"
        );
    }

    #[test]
    fn a_child_born_in_the_clone_into_group_still_joins_every_v1_group() {
        for layout in ["v2", "hybrid", "v1"] {
            let tree = FixtureTree::copy(layout);
            let run = create(&tree, &all_limits()).unwrap();
            let v1_dirs: Vec<&Path> = run
                .dirs
                .iter()
                .filter(|dir| {
                    layout != "v2" && !dir.starts_with(tree.path("sys/fs/cgroup/unified"))
                })
                .collect();
            assert_eq!(run.groups_to_join(), v1_dirs, "{layout}");
        }
    }

    #[test]
    fn v1_cpuset_groups_inherit_mems_top_down_before_taking_the_cpus_limit() {
        let tree = FixtureTree::copy("hybrid");
        let _run = create(&tree, &all_limits()).unwrap();
        // The new parent was empty like any new v1 cpuset group: filled from the root.
        assert_eq!(tree.read("sys/fs/cgroup/cpuset/judged/cpuset.cpus"), "0-1");
        assert_eq!(tree.read("sys/fs/cgroup/cpuset/judged/cpuset.mems"), "0");
        assert_eq!(
            tree.read("sys/fs/cgroup/cpuset/judged/run1/cpuset.mems"),
            "0"
        );
        assert_eq!(
            tree.read("sys/fs/cgroup/cpuset/judged/run1/cpuset.cpus"),
            "1"
        );
    }

    /// A run's memory nodes go to its cpuset group's `cpuset.mems` on every layout, with or
    /// without a CPU list; its CPUs then stay the parent's.
    #[test]
    fn memory_nodes_are_written_to_the_runs_cpuset_group() {
        // (layout, the root's cpuset.mems, the run's cpuset group)
        let cases = [
            (
                "v1",
                "sys/fs/cgroup/cpuset",
                "sys/fs/cgroup/cpuset/judged/run1",
            ),
            (
                "hybrid",
                "sys/fs/cgroup/cpuset",
                "sys/fs/cgroup/cpuset/judged/run1",
            ),
            ("v2", "", "sys/fs/cgroup/judged/run1"),
        ];
        for (layout, root, run_dir) in cases {
            let tree = FixtureTree::copy(layout);
            if !root.is_empty() {
                // Two nodes above: an inherited value would be `0-1`.
                tree.write(&format!("{root}/cpuset.mems"), "0-1");
            }
            let limits = CgroupLimits {
                cpuset_mems: Some("1".into()),
                ..CgroupLimits::default()
            };
            let run = create(&tree, &limits).unwrap();
            assert!(
                relative_dirs(&tree, &run).contains(&run_dir.to_owned()),
                "{layout}: no cpuset group in {:?}",
                relative_dirs(&tree, &run)
            );
            assert_eq!(
                tree.read(&format!("{run_dir}/cpuset.mems")),
                "1",
                "{layout}"
            );
            if layout == "v2" {
                assert!(
                    tree.read("sys/fs/cgroup/judged/cgroup.subtree_control")
                        .contains("+cpuset"),
                    "v2: cpuset not enabled for the run"
                );
            } else {
                assert_eq!(
                    tree.read(&format!("{run_dir}/cpuset.cpus")),
                    tree.read(&format!("{root}/cpuset.cpus")).trim(),
                    "{layout}: the CPUs are inherited"
                );
            }
            let both = CgroupLimits {
                cpuset: Some("1".into()),
                cpuset_mems: Some("0".into()),
                ..CgroupLimits::default()
            };
            drop(run);
            let tree = FixtureTree::copy(layout);
            let _run = create(&tree, &both).unwrap();
            assert_eq!(
                tree.read(&format!("{run_dir}/cpuset.cpus")),
                "1",
                "{layout}"
            );
            assert_eq!(
                tree.read(&format!("{run_dir}/cpuset.mems")),
                "0",
                "{layout}"
            );
        }
    }

    #[test]
    fn hybrid_usage_takes_cpu_from_cgroup2_and_memory_from_v1() {
        let tree = FixtureTree::copy("hybrid");
        let run = create(&tree, &CgroupLimits::default()).unwrap();
        tree.write(
            "sys/fs/cgroup/unified/judged/run1/cpu.stat",
            "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\nnice_usec 0\n",
        );
        tree.write(
            "sys/fs/cgroup/memory/judged/run1/memory.max_usage_in_bytes",
            "7340032\n",
        );
        tree.write(
            "sys/fs/cgroup/memory/judged/run1/memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        );
        assert_eq!(run.cpu_time().unwrap(), Duration::from_millis(1500));
        assert_eq!(
            run.usage().unwrap(),
            Usage {
                cpu_user: Duration::from_secs(1),
                cpu_system: Duration::from_millis(500),
                cpu_total: Duration::from_millis(1500),
                memory_peak_bytes: 7 * MIB,
                oom_kills: 1,
                throttling: None,
            }
        );
    }

    #[test]
    fn hybrid_cpu_quota_is_a_v1_cpu_group_whose_cpu_stat_gives_the_throttling() {
        let tree = FixtureTree::copy("hybrid");
        let run = create(&tree, &half_a_cpu()).unwrap();
        let cpu = "sys/fs/cgroup/cpu/judged/run1";
        assert!(relative_dirs(&tree, &run).contains(&cpu.to_string()));
        assert_eq!(tree.read(&format!("{cpu}/cpu.cfs_period_us")), "100000");
        assert_eq!(tree.read(&format!("{cpu}/cpu.cfs_quota_us")), "50000");
        tree.write(&format!("{cpu}/cpu.stat"), THROTTLED_CPU_STAT);
        assert_eq!(run.usage().unwrap().throttling, Some(THROTTLED));
    }

    #[test]
    fn v2_cpu_quota_enables_cpu_and_writes_cpu_max() {
        let tree = FixtureTree::copy("v2");
        let run = create(&tree, &half_a_cpu()).unwrap();
        assert_eq!(
            tree.read("sys/fs/cgroup/judged/cgroup.subtree_control"),
            "+memory +cpu"
        );
        let dir = "sys/fs/cgroup/judged/run1";
        assert_eq!(tree.read(&format!("{dir}/cpu.max")), "50000 100000");
        tree.write(
            &format!("{dir}/cpu.stat"),
            "usage_usec 10\nuser_usec 5\nsystem_usec 5\nnr_periods 40\nnr_throttled 12\n\
             throttled_usec 250000\n",
        );
        assert_eq!(run.usage().unwrap().throttling, Some(THROTTLED));
    }

    #[test]
    fn v1_cpu_quota_goes_to_the_cpu_cpuacct_group() {
        let tree = FixtureTree::copy("v1");
        let run = create(&tree, &half_a_cpu()).unwrap();
        let cpu = "sys/fs/cgroup/cpu,cpuacct/judged/run1";
        assert_eq!(tree.read(&format!("{cpu}/cpu.cfs_quota_us")), "50000");
        tree.write(&format!("{cpu}/cpu.stat"), THROTTLED_CPU_STAT);
        assert_eq!(run.usage().unwrap().throttling, Some(THROTTLED));
    }

    #[test]
    fn v1_uses_cpuacct_co_mounted_cpu_and_the_freezer() {
        let tree = FixtureTree::copy("v1");
        let run = create(&tree, &CgroupLimits::default()).unwrap();
        assert_eq!(
            relative_dirs(&tree, &run),
            [
                "sys/fs/cgroup/memory/judged/run1",
                "sys/fs/cgroup/cpu,cpuacct/judged/run1",
                "sys/fs/cgroup/freezer/judged/run1",
            ]
        );
        assert!(run.clone_into_fd().is_none());
        let cpu = "sys/fs/cgroup/cpu,cpuacct/judged/run1";
        tree.write(&format!("{cpu}/cpuacct.usage"), "2000000000\n");
        tree.write(&format!("{cpu}/cpuacct.stat"), "user 150\nsystem 50\n");
        tree.write(
            &format!("{cpu}/cpu.stat"),
            "nr_periods 10\nnr_throttled 2\nthrottled_time 3000000\n",
        );
        tree.write(
            "sys/fs/cgroup/memory/judged/run1/memory.max_usage_in_bytes",
            "1048576\n",
        );
        assert_eq!(run.cpu_time().unwrap(), Duration::from_secs(2));
        let usage = run.usage().unwrap();
        assert_eq!(usage.cpu_user, Duration::from_millis(1500));
        assert_eq!(usage.cpu_system, Duration::from_millis(500));
        assert_eq!(usage.memory_peak_bytes, MIB);
        assert_eq!(usage.oom_kills, 0);
        assert_eq!(
            usage.throttling,
            Some(super::super::Throttling {
                periods: 10,
                throttled_periods: 2,
                throttled_time: Duration::from_millis(3),
            })
        );
    }

    #[test]
    fn v2_enables_controllers_from_the_root_down_and_limits_one_group() {
        let tree = FixtureTree::copy("v2");
        let run = create(&tree, &all_limits()).unwrap();
        assert_eq!(relative_dirs(&tree, &run), ["sys/fs/cgroup/judged/run1"]);
        assert!(run.clone_into_fd().is_some());
        // The root already delegates memory and pids; cpuset was missing.
        assert_eq!(tree.read("sys/fs/cgroup/cgroup.subtree_control"), "+cpuset");
        assert_eq!(
            tree.read("sys/fs/cgroup/judged/cgroup.subtree_control"),
            "+memory +pids +cpuset"
        );
        let dir = "sys/fs/cgroup/judged/run1";
        assert_eq!(tree.read(&format!("{dir}/memory.max")), "268435456");
        assert_eq!(tree.read(&format!("{dir}/memory.swap.max")), "0");
        assert_eq!(tree.read(&format!("{dir}/pids.max")), "16");
        assert_eq!(tree.read(&format!("{dir}/cpuset.cpus")), "1");
    }

    #[test]
    fn v2_missing_controller_is_a_clear_error() {
        let tree = FixtureTree::copy("v2");
        tree.write("sys/fs/cgroup/cgroup.controllers", "cpu io memory\n");
        let err = create(&tree, &all_limits()).unwrap_err().to_string();
        assert!(err.contains("`pids' controller is not available"), "{err}");
        assert!(!tree.path("sys/fs/cgroup/judged/run1").exists());
    }

    #[test]
    fn v2_usage_with_cpu_controller_reports_throttling_and_peak() {
        let tree = FixtureTree::copy("v2");
        let run = create(&tree, &CgroupLimits::default()).unwrap();
        let dir = "sys/fs/cgroup/judged/run1";
        tree.write(
            &format!("{dir}/cpu.stat"),
            "usage_usec 300\nuser_usec 200\nsystem_usec 100\nnr_periods 4\nnr_throttled 1\nthrottled_usec 50\n",
        );
        tree.write(&format!("{dir}/memory.peak"), "4096\n");
        tree.write(
            &format!("{dir}/memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        );
        let usage = run.usage().unwrap();
        assert_eq!(usage.cpu_total, Duration::from_micros(300));
        assert_eq!(usage.memory_peak_bytes, 4096);
        assert_eq!(usage.oom_kills, 1);
        assert_eq!(
            usage.throttling.unwrap().throttled_time,
            Duration::from_micros(50)
        );
    }

    #[test]
    fn v2_without_memory_peak_keeps_the_largest_sampled_current() {
        let tree = FixtureTree::copy("v2");
        std::fs::remove_file(tree.path("new-cgroup/cgroup/memory.peak")).unwrap();
        let run = create(&tree, &CgroupLimits::default()).unwrap();
        let current = "sys/fs/cgroup/judged/run1/memory.current";
        tree.write(current, "5000\n");
        run.cpu_time().unwrap();
        tree.write(current, "3000\n");
        assert_eq!(run.usage().unwrap().memory_peak_bytes, 5000);
    }

    #[test]
    fn attach_writes_every_group_but_the_clone_into_one_when_asked() {
        let tree = FixtureTree::copy("hybrid");
        let run = create(&tree, &CgroupLimits::default()).unwrap();
        let memory_procs = "sys/fs/cgroup/memory/judged/run1/cgroup.procs";
        let unified_procs = "sys/fs/cgroup/unified/judged/run1/cgroup.procs";
        run.attach(NO_SUCH_PID, true).unwrap();
        assert_eq!(tree.read(memory_procs), NO_SUCH_PID.to_string());
        assert_eq!(tree.read(unified_procs), "");
        run.attach(NO_SUCH_PID, false).unwrap();
        assert_eq!(tree.read(unified_procs), NO_SUCH_PID.to_string());
        assert_eq!(run.pids().unwrap(), [NO_SUCH_PID]);
        // Empty the groups as the exit of the process would, so the drop can remove them.
        tree.write(memory_procs, "");
        tree.write(unified_procs, "");
    }

    #[test]
    fn remove_takes_the_run_groups_and_keeps_the_shared_parent() {
        let tree = FixtureTree::copy("hybrid");
        let run = create(&tree, &all_limits()).unwrap();
        let dirs: Vec<PathBuf> = run.dirs().map(Path::to_path_buf).collect();
        run.remove().unwrap();
        for dir in dirs {
            assert!(!dir.exists(), "{} left behind", dir.display());
            assert!(dir.parent().unwrap().is_dir());
        }
    }

    #[test]
    fn dropping_a_run_removes_its_groups() {
        let tree = FixtureTree::copy("v1");
        let run = create(&tree, &CgroupLimits::default()).unwrap();
        let dirs: Vec<PathBuf> = run.dirs().map(Path::to_path_buf).collect();
        drop(run);
        assert!(dirs.iter().all(|dir| !dir.exists()));
    }

    #[test]
    fn failed_create_removes_what_it_made_and_says_why() {
        let tree = FixtureTree::copy("hybrid");
        // A kernel booted without swap accounting has no memsw files.
        std::fs::remove_file(tree.path("new-cgroup/memory/memory.memsw.limit_in_bytes")).unwrap();
        let err = create(&tree, &all_limits()).unwrap_err().to_string();
        assert!(err.contains("swapaccount=1"), "{err}");
        for hierarchy in ["memory", "pids", "cpuset", "unified"] {
            let dir = tree.path(&format!("sys/fs/cgroup/{hierarchy}/judged/run1"));
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
    }

    #[test]
    fn an_existing_run_group_is_an_error_naming_it() {
        let tree = FixtureTree::copy("v2");
        let _first = create(&tree, &CgroupLimits::default()).unwrap();
        let err = create(&tree, &CgroupLimits::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("create cgroup") && err.contains("judged/run1"),
            "{err}"
        );
        assert!(
            tree.path("sys/fs/cgroup/judged/run1").is_dir(),
            "the first run's group was removed"
        );
    }

    #[test]
    fn names_that_leave_the_hierarchy_are_refused() {
        let tree = FixtureTree::copy("v2");
        let limits = CgroupLimits::default();
        for (parent, name) in [
            ("../x", "run"),
            ("/abs", "run"),
            ("judged", "a/b"),
            ("judged", ".."),
            ("judged", ""),
        ] {
            let result = RunCgroup::create_with(
                tree.fs(),
                &tree.hierarchies,
                Path::new(parent),
                name,
                &limits,
            );
            assert!(
                matches!(result, Err(SandboxError::Config(_))),
                "{parent} {name}"
            );
        }
    }
}
