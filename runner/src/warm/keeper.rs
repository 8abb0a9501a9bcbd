//! The keeper: a small single-threaded process that builds one sandbox and forks its runs.
//!
//! Theory of operation. The client (`warm::Sandbox`) starts the `keeper` binary and sends a
//! [`SandboxSpec`]. The keeper then, once: shields itself from the OOM killer, makes the
//! sandbox's cgroups and joins their v1 groups (`warm::cgroup`), enters the sandbox's mount,
//! uts, ipc, net and time namespaces and assembles its root without entering it
//! (`sys::child::build_sandbox`), and answers [`Ready`]. For each [`Request`] it runs the plan
//! through the one-shot path's own code (`launch::run_in`, with the child only chrooting), sends
//! the report, and only then resets the sandbox (`warm::reset`), so the reset costs the client
//! no latency. A reset that fails, or a run error that left the cgroups gone, makes the keeper
//! report itself broken (`Response::Failed { broken: true }`) and leave; the client rebuilds.

use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;

use crate::cgroup::{CgroupLimits, Hierarchies};
use crate::launch::{self, Setting};
use crate::plan::Mount;
use crate::report::Report;
use crate::sys::child::{build_sandbox, drop_bounding_set, Confinement};
use crate::sys::keeper::{shield_from_oom_killer, unmount};
use crate::warm::cgroup::Cgroups;
use crate::warm::protocol::{receive, send, Ready, Request, Response, SandboxSpec};
use crate::warm::reset::Reset;

/// Exit status of a keeper that left because its sandbox broke or could not be built.
pub const BROKEN: i32 = 3;

/// Serve one client on `input`/`output` until it closes `input`; returns the exit status.
pub fn serve(mut input: impl BufRead, mut output: impl Write) -> i32 {
    let spec: SandboxSpec = match receive(&mut input) {
        Ok(Some(spec)) => spec,
        Ok(None) => return 0,
        Err(e) => return fail(&mut output, format!("bad sandbox spec: {e}")),
    };
    let mut keeper = match Keeper::build(spec) {
        Ok(keeper) => keeper,
        Err(message) => return fail(&mut output, message),
    };
    let ready = Response::Ready(Ready {
        keeper_pid: std::process::id() as i32,
        cgroup_dirs: keeper.cgroups.dirs(),
        run_cgroup_parents: keeper.cgroups.run_parents(&keeper.spec.cgroup_parent),
        mqueue_dir: keeper
            .reset
            .has_mqueue_mount()
            .then(|| keeper.mqueue_dir.clone()),
    });
    if send(&mut output, &ready).is_err() {
        return keeper.leave(BROKEN);
    }
    loop {
        let request: Request = match receive(&mut input) {
            Ok(Some(request)) => request,
            Ok(None) => return keeper.leave(0),
            Err(e) => {
                let failed = Response::Failed {
                    message: format!("bad request: {e}"),
                    broken: false,
                };
                if send(&mut output, &failed).is_err() {
                    return keeper.leave(BROKEN);
                }
                continue;
            }
        };
        let response = match keeper.run(&request) {
            Ok(report) => Response::Report(Box::new(report)),
            Err(failure) => Response::Failed {
                message: failure.message,
                broken: failure.broken,
            },
        };
        let broken = matches!(response, Response::Failed { broken: true, .. });
        if send(&mut output, &response).is_err() || broken {
            return keeper.leave(BROKEN);
        }
        if let Err(message) = keeper.reset.run() {
            // The report sent was right; the next run could see this one's leftovers.
            let failed = Response::Failed {
                message: format!("warm sandbox reset failed: {message}"),
                broken: true,
            };
            let _ = receive::<Request>(&mut input);
            let _ = send(&mut output, &failed);
            return keeper.leave(BROKEN);
        }
    }
}

fn fail(output: &mut impl Write, message: String) -> i32 {
    let _ = send(
        output,
        &Response::Failed {
            message,
            broken: true,
        },
    );
    BROKEN
}

struct Keeper {
    spec: SandboxSpec,
    hierarchies_layout: crate::cgroup::Layout,
    cgroups: Cgroups,
    reset: Reset,
    mqueue_dir: PathBuf,
}

/// A run that could not be carried out; `broken`: neither can the next.
struct Failure {
    message: String,
    broken: bool,
}

impl Keeper {
    fn build(spec: SandboxSpec) -> Result<Keeper, String> {
        if let Some(filesystem) = &spec.filesystem {
            // A procfs mounted once would show the keeper's pid namespace, not the run's.
            if filesystem
                .mounts
                .iter()
                .any(|mount| matches!(mount, Mount::Proc { .. }))
            {
                return Err(
                    "a warm sandbox cannot mount proc: it would show the keeper's \
                            processes; use one-shot runs for this profile"
                        .into(),
                );
            }
            std::fs::create_dir_all(&filesystem.new_root).map_err(|e| {
                format!(
                    "cannot create the sandbox root `{}': {e}",
                    filesystem.new_root.display()
                )
            })?;
        }
        shield_from_oom_killer().map_err(|e| format!("cannot set oom_score_adj: {e}"))?;
        let hierarchies = Hierarchies::detect().map_err(|e| e.to_string())?;
        let hierarchies_layout = hierarchies.layout();
        let cgroups = Cgroups::create(
            hierarchies,
            &spec.cgroup_parent,
            &format!("sandbox-{}", std::process::id()),
            CgroupLimits {
                memory_bytes: None,
                pids: spec.nproc,
                cpuset: spec.cpuset.clone(),
                cpuset_mems: spec.cpuset_mems.clone(),
                cpu_bandwidth: spec.cpu_bandwidth,
            },
        )
        .map_err(|e| e.to_string())?;
        build_sandbox(&spec.namespaces, spec.filesystem.as_ref())?;
        drop_bounding_set()
            .map_err(|e| format!("cannot empty the capability bounding set: {e}"))?;
        let mqueue_dir =
            std::env::temp_dir().join(format!("judged-keeper-{}-mqueue", std::process::id()));
        let reset = Reset::new(&spec, &mqueue_dir)
            .map_err(|e| format!("cannot prepare the sandbox's reset: {e}"))?;
        Ok(Keeper {
            spec,
            hierarchies_layout,
            cgroups,
            reset,
            mqueue_dir,
        })
    }

    fn run(&mut self, request: &Request) -> Result<Report, Failure> {
        let refused = |message: String| Failure {
            message,
            broken: false,
        };
        if let Some(why) = self.spec.misfit(&request.plan) {
            return Err(refused(why));
        }
        self.place_files(request).map_err(refused)?;
        let stdin = match &request.stdin {
            Some(path) => Some(
                File::open(path)
                    .map_err(|e| refused(format!("cannot open stdin `{}': {e}", path.display())))?,
            ),
            None => None,
        };
        let stdin = stdin.as_ref().map(AsFd::as_fd);
        let outcome =
            match &self.cgroups {
                Cgroups::Shared(shared) => shared
                    .prepare(request.plan.limits.memory_bytes)
                    .and_then(|()| {
                        launch::run_in(
                            &request.plan,
                            &Setting {
                                cgroup: shared.as_ref(),
                                confinement: Confinement::Inherited,
                                layout: self.hierarchies_layout,
                                netns: None,
                                stdin,
                            },
                        )
                    }),
                Cgroups::PerRun(hierarchies) => launch::run_in_own_cgroup(
                    &request.plan,
                    hierarchies,
                    Confinement::Inherited,
                    None,
                    stdin,
                ),
            };
        outcome.map_err(|e| Failure {
            message: e.to_string(),
            broken: !self.cgroups.intact(),
        })
    }

    fn place_files(&self, request: &Request) -> Result<(), String> {
        if request.files.is_empty() {
            return Ok(());
        }
        let Some(work_dir) = &self.spec.work_dir else {
            return Err("files to place, but the sandbox has no work dir".into());
        };
        for (source, name) in &request.files {
            let target = work_dir.join(name);
            if target.parent() != Some(work_dir.as_path()) {
                return Err(format!("`{}' is not a plain file name", target.display()));
            }
            std::fs::copy(source, &target).map_err(|e| {
                format!(
                    "cannot copy `{}' to `{}': {e}",
                    source.display(),
                    target.display()
                )
            })?;
        }
        Ok(())
    }

    /// Leave with `status`. Our v1 groups (which we are in) are removed by the client once we
    /// are gone.
    fn leave(self, status: i32) -> i32 {
        if self.reset.has_mqueue_mount() {
            let _ = unmount(&self.mqueue_dir);
        }
        let _ = std::fs::remove_dir(&self.mqueue_dir);
        std::mem::forget(self.cgroups);
        status
    }
}
