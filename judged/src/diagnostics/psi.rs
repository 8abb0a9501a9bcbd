//! PSI triggers (kernel `Documentation/accounting/psi.rst`): a line such as
//! `some 150000 2000000` written to a pressure file (`/proc/pressure/cpu`, a cgroup2 group's
//! `cpu.pressure`) asks the kernel to wake the writer, with `POLLPRI` on that descriptor, the
//! moment some task has stalled 150 ms within the last 2 s. The host watcher polls its
//! triggers between windows, so a spike shorter than a window, which the window's averages
//! would flatten, is caught when it happens and becomes a `host-pressure` finding of the
//! window it happened in ([`PsiEvent::finding`]).
//!
//! The kernel refuses a trigger whose window is outside 500 ms to 10 s or whose stall exceeds
//! the window; without `CAP_SYS_RESOURCE` the window must be a multiple of 2 s. A trigger
//! that cannot be registered is a state ([`PsiStatus`]: "PSI triggers unavailable: REASON"),
//! never an error. Each trigger lives as long as its open descriptor.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use serde::Serialize;

use super::hostwatch::monotonic_now;
use super::thresholds::HostThresholds;
use super::{millis, Finding, Kind};

/// The kernel's limits on a trigger's window (`psi.rst`).
const WINDOW_MIN: Duration = Duration::from_millis(500);
const WINDOW_MAX: Duration = Duration::from_secs(10);

/// A resource PSI reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    Cpu,
    Io,
    Memory,
}

impl Resource {
    pub const ALL: [Resource; 3] = [Resource::Cpu, Resource::Io, Resource::Memory];

    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Io => "io",
            Resource::Memory => "memory",
        }
    }

    /// How findings word it ("the host was short of CPU").
    fn shown(self) -> &'static str {
        match self {
            Resource::Cpu => "CPU",
            Resource::Io => "IO",
            Resource::Memory => "memory",
        }
    }
}

/// Where a trigger watches: the whole host, or one cgroup2 group (its subtree included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Host,
    Cgroup(PathBuf),
}

impl Target {
    /// The pressure file of `resource`, under `root` (`/` on a real host; a cgroup's path is
    /// absolute, as on the host).
    fn file(&self, root: &Path, resource: Resource) -> PathBuf {
        match self {
            Target::Host => root.join("proc/pressure").join(resource.name()),
            Target::Cgroup(dir) => root
                .join(dir.strip_prefix("/").unwrap_or(dir))
                .join(format!("{}.pressure", resource.name())),
        }
    }

    fn name(&self) -> String {
        match self {
            Target::Host => "host".to_owned(),
            Target::Cgroup(dir) => format!("cgroup {}", dir.display()),
        }
    }
}

/// The trigger line for `stall` within `window`, or why the kernel would refuse it.
pub fn trigger_line(stall: Duration, window: Duration) -> Result<String, String> {
    if !(WINDOW_MIN..=WINDOW_MAX).contains(&window) {
        return Err(format!(
            "psi_trigger_window_ms = {} is outside the kernel's 500 to 10000 ms",
            window.as_millis()
        ));
    }
    if stall.is_zero() || stall > window {
        return Err(format!(
            "a stall of {} ms must be above 0 and at most the window of {} ms",
            stall.as_millis(),
            window.as_millis()
        ));
    }
    Ok(format!("some {} {}", stall.as_micros(), window.as_micros()))
}

/// The stall each resource's trigger fires at, from the thresholds.
fn stall_of(resource: Resource, t: &HostThresholds) -> Duration {
    let ms = match resource {
        Resource::Cpu => t.psi_trigger_cpu_some_ms,
        Resource::Io => t.psi_trigger_io_some_ms,
        Resource::Memory => t.psi_trigger_memory_some_ms,
    };
    Duration::try_from_secs_f64(ms / 1000.0).unwrap_or_default()
}

struct Trigger {
    target: Target,
    resource: Resource,
    stall: Duration,
    window: Duration,
    file: File,
}

/// What could be registered, and why not the rest.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PsiStatus {
    /// `host cpu: some 150000 2000000`, one per trigger registered.
    pub registered: Vec<String>,
    /// Why each of the others could not be.
    pub unavailable: Vec<String>,
}

impl PsiStatus {
    /// One line for people.
    pub fn describe(&self) -> String {
        match (self.registered.is_empty(), self.unavailable.is_empty()) {
            (true, _) => format!(
                "PSI triggers unavailable: {}",
                if self.unavailable.is_empty() {
                    "none asked for".to_owned()
                } else {
                    self.unavailable.join("; ")
                }
            ),
            (false, true) => format!("PSI triggers: {}", self.registered.join(", ")),
            (false, false) => format!(
                "PSI triggers: {}; not: {}",
                self.registered.join(", "),
                self.unavailable.join("; ")
            ),
        }
    }
}

/// A trigger that fired.
#[derive(Debug, Clone, PartialEq)]
pub struct PsiEvent {
    pub target: String,
    pub resource: Resource,
    /// When the kernel woke us (`CLOCK_MONOTONIC`); the stall lay within the trigger's window
    /// before it.
    pub at: Duration,
    pub stall: Duration,
    pub window: Duration,
}

impl PsiEvent {
    /// The `host-pressure` finding of this event.
    pub fn finding(&self) -> Finding {
        Finding::new(
            Kind::HostPressure,
            format!(
                "a PSI trigger fired ({} {}): some task stalled on {} for {:.0} ms within {:.0} ms",
                self.target,
                self.resource.name(),
                self.resource.shown(),
                millis(self.stall),
                millis(self.window)
            ),
            "keep other work off a judging host, and run fewer jobs at once",
        )
        .with("psi_trigger", self.target.clone())
        .with("resource", self.resource.name())
        .with("at_monotonic_s", self.at.as_secs_f64())
        .with("trigger_stall_ms", millis(self.stall))
        .with("trigger_window_ms", millis(self.window))
    }
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The deadline passed.
    Deadline,
    /// The descriptor given to wait on became readable (or hung up).
    Wake,
}

/// The registered triggers.
#[derive(Default)]
pub struct PsiTriggers {
    triggers: Vec<Trigger>,
    status: PsiStatus,
}

impl PsiTriggers {
    /// Register one trigger per target and resource under `root`, as the thresholds say.
    pub fn register(root: &Path, targets: &[Target], t: &HostThresholds) -> PsiTriggers {
        let mut triggers = PsiTriggers::default();
        let window =
            Duration::try_from_secs_f64(t.psi_trigger_window_ms / 1000.0).unwrap_or_default();
        for target in targets {
            for resource in Resource::ALL {
                let stall = stall_of(resource, t);
                let name = format!("{} {}", target.name(), resource.name());
                let registered = trigger_line(stall, window).and_then(|line| {
                    let path = target.file(root, resource);
                    open_trigger(&path, &line)
                        .map(|file| (file, line))
                        .map_err(|why| format!("`{}': {why}", path.display()))
                });
                match registered {
                    Ok((file, line)) => {
                        triggers.status.registered.push(format!("{name}: {line}"));
                        triggers.triggers.push(Trigger {
                            target: target.clone(),
                            resource,
                            stall,
                            window,
                            file,
                        });
                    }
                    Err(why) => triggers.status.unavailable.push(format!("{name}: {why}")),
                }
            }
        }
        triggers
    }

    pub fn status(&self) -> &PsiStatus {
        &self.status
    }

    /// Wait until `deadline` or until `wake` is readable, collecting the triggers that fire
    /// meanwhile into `events`. A trigger whose file reports an error (its cgroup was
    /// removed) is dropped, and the status says so.
    pub fn wait(
        &mut self,
        deadline: Instant,
        wake: Option<BorrowedFd<'_>>,
        events: &mut Vec<PsiEvent>,
    ) -> Woken {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Woken::Deadline;
            }
            let timeout =
                PollTimeout::try_from(left.as_millis().max(1)).unwrap_or(PollTimeout::MAX);
            let mut fds: Vec<PollFd> = self
                .triggers
                .iter()
                .map(|t| PollFd::new(t.file.as_fd(), PollFlags::POLLPRI))
                .collect();
            if let Some(wake) = wake {
                fds.push(PollFd::new(wake, PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, timeout) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                // Nothing to poll on that works: sleep out the wait.
                Err(_) => {
                    std::thread::sleep(left);
                    return Woken::Deadline;
                }
            }
            let ready: Vec<PollFlags> = fds
                .iter()
                .map(|fd| fd.revents().unwrap_or(PollFlags::empty()))
                .collect();
            drop(fds);
            let woken = wake.is_some()
                && ready.last().is_some_and(|flags| {
                    flags.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                });
            let at = monotonic_now();
            let mut gone = Vec::new();
            for (index, flags) in ready.iter().take(self.triggers.len()).enumerate() {
                let trigger = &self.triggers[index];
                if flags.contains(PollFlags::POLLERR) {
                    gone.push(index);
                } else if flags.contains(PollFlags::POLLPRI) {
                    events.push(PsiEvent {
                        target: trigger.target.name(),
                        resource: trigger.resource,
                        at,
                        stall: trigger.stall,
                        window: trigger.window,
                    });
                }
            }
            for index in gone.into_iter().rev() {
                let trigger = self.triggers.remove(index);
                let name = format!("{} {}", trigger.target.name(), trigger.resource.name());
                self.status
                    .registered
                    .retain(|r| !r.starts_with(&format!("{name}:")));
                self.status
                    .unavailable
                    .push(format!("{name}: gone (its cgroup was removed)"));
            }
            if woken {
                return Woken::Wake;
            }
        }
    }
}

/// Open `path` for writing and register `line` on it: one write with its terminating NUL, as
/// psi.rst does it (`/proc/pressure/*` refuses the line without one: EINVAL on 6.18, where a
/// cgroup's pressure file takes either).
fn open_trigger(path: &Path, line: &str) -> Result<File, String> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    file.write_all(format!("{line}\0").as_bytes())
        .map_err(|e| {
            let refused = [nix::errno::Errno::EINVAL, nix::errno::Errno::EPERM]
                .iter()
                .any(|errno| e.raw_os_error() == Some(*errno as i32));
            if refused {
                format!(
                "{e} (the kernel refuses `{line}': without CAP_SYS_RESOURCE the window must be \
                 a multiple of 2 s)"
            )
            } else {
                e.to_string()
            }
        })?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::thresholds::Thresholds;

    #[test]
    fn trigger_lines_within_the_kernels_limits() {
        let ms = Duration::from_millis;
        assert_eq!(
            trigger_line(ms(150), ms(2000)).unwrap(),
            "some 150000 2000000"
        );
        for (stall, window, says) in [
            (ms(150), ms(400), "outside"),
            (ms(150), ms(11_000), "outside"),
            (ms(3000), ms(2000), "at most the window"),
            (ms(0), ms(2000), "above 0"),
        ] {
            let why = trigger_line(stall, window).unwrap_err();
            assert!(why.contains(says), "{stall:?} {window:?}: {why}");
        }
    }

    #[test]
    fn a_trigger_is_one_write_of_its_line_to_each_pressure_file() {
        let root = tempfile::tempdir().unwrap();
        let host = root.path().join("proc/pressure");
        let group = root.path().join("sys/fs/cgroup/judged");
        for dir in [&host, &group] {
            std::fs::create_dir_all(dir).unwrap();
        }
        for resource in Resource::ALL {
            std::fs::write(host.join(resource.name()), "").unwrap();
        }
        // The group has CPU and IO pressure files only.
        std::fs::write(group.join("cpu.pressure"), "").unwrap();
        std::fs::write(group.join("io.pressure"), "").unwrap();
        let t = Thresholds::default().host;
        let targets = [Target::Host, Target::Cgroup("/sys/fs/cgroup/judged".into())];
        let triggers = PsiTriggers::register(root.path(), &targets, &t);
        let status = triggers.status();
        assert_eq!(status.registered.len(), 5, "{status:?}");
        assert_eq!(
            std::fs::read_to_string(host.join("cpu")).unwrap(),
            trigger_line(stall_of(Resource::Cpu, &t), Duration::from_secs(2)).unwrap() + "\0"
        );
        assert_eq!(
            std::fs::read_to_string(group.join("io.pressure")).unwrap(),
            format!(
                "some {} 2000000\0",
                (t.psi_trigger_io_some_ms * 1000.0) as u64
            )
        );
        let [missing] = status.unavailable.as_slice() else {
            panic!("{status:?}");
        };
        assert!(
            missing.starts_with("cgroup /sys/fs/cgroup/judged memory: `")
                && missing.contains("memory.pressure"),
            "{missing}"
        );
        assert!(triggers.status().describe().contains("; not: cgroup"));
    }

    #[test]
    fn none_registered_is_a_state_with_the_reasons() {
        let root = tempfile::tempdir().unwrap();
        let triggers =
            PsiTriggers::register(root.path(), &[Target::Host], &Thresholds::default().host);
        let line = triggers.status().describe();
        assert!(
            line.starts_with("PSI triggers unavailable: host cpu: `"),
            "{line}"
        );
        assert_eq!(triggers.status().unavailable.len(), 3);
    }

    #[test]
    fn a_wait_ends_at_its_deadline_or_when_woken() {
        let mut triggers = PsiTriggers::default();
        let mut events = Vec::new();
        let started = Instant::now();
        let woken = triggers.wait(started + Duration::from_millis(50), None, &mut events);
        assert_eq!(woken, Woken::Deadline);
        assert!(started.elapsed() >= Duration::from_millis(50));
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(write);
        let woken = triggers.wait(
            Instant::now() + Duration::from_secs(60),
            Some(read.as_fd()),
            &mut events,
        );
        assert_eq!(woken, Woken::Wake);
        assert!(events.is_empty());
    }

    #[test]
    fn an_event_is_a_host_pressure_finding_naming_the_resource_and_time() {
        let event = PsiEvent {
            target: "host".into(),
            resource: Resource::Io,
            at: Duration::from_secs(1234),
            stall: Duration::from_millis(150),
            window: Duration::from_secs(2),
        };
        let finding = event.finding();
        assert_eq!(finding.kind, Kind::HostPressure);
        assert_eq!(finding.evidence["resource"], "io");
        assert_eq!(finding.evidence["at_monotonic_s"], 1234.0);
        assert!(
            finding
                .summary
                .contains("stalled on IO for 150 ms within 2000 ms"),
            "{}",
            finding.summary
        );
    }
}
