//! Warm runs of the benchmark fixture's programs, as the warm benches make them (the runner's
//! `warm` and judged's `diagnostics`): the plan, its request, its sandbox and one timed run.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use runner::plan::{Credentials, Namespaces, OutputTarget, Plan, TimeLimit};
use runner::report::{Report, Termination};
use runner::warm::{Request, Sandbox, SandboxSpec};

use crate::fixture::Fixture;

/// `nobody`/`nogroup` on Debian.
const RUN_UID: u32 = 65534;
const RUN_GID: u32 = 65534;

/// The plan of a warm run: the confinement of runguard's DOMjudge test run (and its default
/// cgroup parent, shared and kept, as runguard does).
pub fn plan(fixture: &Fixture, program: &str, args: &[String]) -> Plan {
    let mut plan = Plan::new(program, args.iter().map(Into::into).collect());
    plan.root = Some(fixture.chroot());
    plan.namespaces = Namespaces::default();
    plan.credentials = Some(Credentials {
        uid: RUN_UID,
        gid: RUN_GID,
    });
    plan.limits.wall = Some(TimeLimit {
        soft: Duration::from_secs(10),
        hard: Duration::from_secs(10),
    });
    plan.limits.cpu = Some(TimeLimit {
        soft: Duration::from_secs(5),
        hard: Duration::from_secs(5),
    });
    plan.limits.memory_bytes = Some(256 << 20);
    plan.limits.nproc = Some(64);
    plan.limits.file_size_bytes = Some(8192 << 10);
    plan.limits.stream_bytes = Some(8192 << 10);
    plan.limits.no_core = true;
    plan.stdout = OutputTarget::File("/dev/null".into());
    plan.stderr = OutputTarget::File("/dev/null".into());
    plan
}

pub fn request(plan: Plan) -> Request {
    Request {
        plan,
        stdin: None,
        files: Vec::new(),
    }
}

/// A warm sandbox fitting `plan`, its keeper started from `keeper`.
pub fn sandbox_for(plan: &Plan, keeper: &Path) -> Result<Sandbox> {
    Ok(Sandbox::create(SandboxSpec::of_plan(plan, None), keeper)?)
}

/// One warm run that must exit 0; its round-trip time and report.
pub fn warm_run(sandbox: &mut Sandbox, request: &Request) -> Result<(Duration, Report)> {
    let start = Instant::now();
    let report = sandbox.run(request)?;
    let elapsed = start.elapsed();
    if report.termination != Termination::Exited(0) {
        bail!("warm run ended with {:?}", report.termination);
    }
    Ok((elapsed, report))
}
