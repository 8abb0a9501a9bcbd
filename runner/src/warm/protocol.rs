//! What the client and the keeper say to each other: one JSON document per line, over the
//! keeper's stdin and stdout (or a Unix socket with `keeper --listen`).
//!
//! The client opens with a [`SandboxSpec`]; the keeper answers [`Ready`] once the sandbox is
//! built (or [`Response::Failed`] and exits). Then each [`Request`] gets one [`Response`].

use std::ffi::OsString;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::plan::{CpuBandwidth, Filesystem, Namespaces, Plan};
use crate::report::Report;

/// What a sandbox is built from, once: everything of a [`Plan`] that is not per run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// mount, uts, ipc, net and time are entered once by the keeper; pid, user and cgroup are
    /// still made per run (they cost little and cannot be shared by the keeper's children).
    pub namespaces: Namespaces,
    pub filesystem: Option<Filesystem>,
    /// chroot of every run, when there is no assembled `filesystem`.
    pub root: Option<PathBuf>,
    pub cgroup_parent: PathBuf,
    /// Processes of each run (the keeper's own slot is added).
    pub nproc: Option<u64>,
    pub cpuset: Option<String>,
    #[serde(default)]
    pub cpuset_mems: Option<String>,
    #[serde(default)]
    pub cpu_bandwidth: Option<CpuBandwidth>,
    /// A host directory the sandbox owns, emptied between runs (usually bound writable into
    /// `filesystem` as the work dir). Tmpfs mounts of `filesystem` are emptied too.
    pub work_dir: Option<PathBuf>,
}

impl SandboxSpec {
    /// The sandbox `plan` would run in.
    pub fn of_plan(plan: &Plan, work_dir: Option<PathBuf>) -> SandboxSpec {
        SandboxSpec {
            namespaces: plan.namespaces,
            filesystem: plan.filesystem.clone(),
            root: plan.root.clone(),
            cgroup_parent: plan.cgroup_parent.clone(),
            nproc: plan.limits.nproc,
            cpuset: plan.limits.cpuset.clone(),
            cpuset_mems: plan.limits.cpuset_mems.clone(),
            cpu_bandwidth: plan.limits.cpu_bandwidth,
            work_dir,
        }
    }

    /// Why `plan` cannot run in this sandbox, if it cannot.
    pub fn misfit(&self, plan: &Plan) -> Option<String> {
        let shared = |n: &Namespaces| (n.mount, n.uts, n.ipc, n.net, n.time);
        let differs = [
            (
                "namespaces",
                shared(&self.namespaces) != shared(&plan.namespaces),
            ),
            ("filesystem", self.filesystem != plan.filesystem),
            ("root", self.root != plan.root),
            ("cgroup parent", self.cgroup_parent != plan.cgroup_parent),
            ("process limit", self.nproc != plan.limits.nproc),
            ("cpuset", self.cpuset != plan.limits.cpuset),
            ("memory nodes", self.cpuset_mems != plan.limits.cpuset_mems),
            ("CPU quota", self.cpu_bandwidth != plan.limits.cpu_bandwidth),
        ];
        let names: Vec<&str> = differs
            .iter()
            .filter(|(_, differs)| *differs)
            .map(|(name, _)| *name)
            .collect();
        (!names.is_empty()).then(|| {
            format!(
                "the run does not fit this warm sandbox: its {} differ(s) from the sandbox's; \
                 build a sandbox for it",
                names.join(", ")
            )
        })
    }
}

/// The keeper's answer to a [`SandboxSpec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    pub keeper_pid: i32,
    /// The sandbox's cgroup directories, for the client to remove should the keeper die.
    pub cgroup_dirs: Vec<PathBuf>,
    /// Where the keeper makes a cgroup per run (v1 and v2 hosts), named `run-<keeper pid>-N`:
    /// a run whose keeper died leaves its groups there for the client to remove.
    #[serde(default)]
    pub run_cgroup_parents: Vec<PathBuf>,
    /// The host directory the keeper mounts its message queues on (in its own mount
    /// namespace), for the client to remove should the keeper die.
    pub mqueue_dir: Option<PathBuf>,
}

/// One run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub plan: Plan,
    /// Host path opened as the program's stdin; `None`: `/dev/null`.
    pub stdin: Option<PathBuf>,
    /// Host files copied into the sandbox's work dir before the run, under the given names.
    #[serde(default)]
    pub files: Vec<(PathBuf, OsString)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Response {
    Ready(Ready),
    Report(Box<Report>),
    /// The run could not be carried out. `broken`: the sandbox is unusable and the keeper is
    /// leaving; the client rebuilds it.
    Failed {
        message: String,
        broken: bool,
    },
}

/// Write one message as a line.
pub fn send<T: Serialize>(to: &mut impl Write, message: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(io::Error::other)?;
    line.push(b'\n');
    to.write_all(&line)?;
    to.flush()
}

/// Read one message; `None` at EOF.
pub fn receive<T: DeserializeOwned>(from: &mut impl BufRead) -> io::Result<Option<T>> {
    let mut line = String::new();
    if from.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    serde_json::from_str(&line)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_fits_the_sandbox_made_of_it_whatever_its_per_run_parts() {
        let mut plan = Plan::new("true", vec![]);
        let spec = SandboxSpec::of_plan(&plan, None);
        plan.args = vec!["x".into()];
        plan.limits.memory_bytes = Some(1 << 20);
        plan.namespaces.pid = true;
        assert_eq!(spec.misfit(&plan), None);
        plan.namespaces.net = true;
        plan.limits.nproc = Some(3);
        let why = spec.misfit(&plan).unwrap();
        assert!(why.contains("namespaces, process limit"), "{why}");
    }

    #[test]
    fn messages_go_one_per_line() {
        let mut buffer = Vec::new();
        let failed = Response::Failed {
            message: "x".into(),
            broken: true,
        };
        send(&mut buffer, &failed).unwrap();
        send(&mut buffer, &failed).unwrap();
        let mut reader = io::BufReader::new(buffer.as_slice());
        for _ in 0..2 {
            assert_eq!(
                receive::<Response>(&mut reader).unwrap(),
                Some(failed.clone())
            );
        }
        assert_eq!(receive::<Response>(&mut reader).unwrap(), None);
    }
}
