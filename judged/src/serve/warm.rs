//! Warm workers (`[workers] sandbox = "warm"`): each worker slot keeps one warm sandbox of the
//! runner ([`runner::warm::Sandbox`]: a `keeper` process, started by the client, never a fork
//! of judged), built with the slot's cpuset on the first test case run and reused for the
//! next ones, across judgings.
//!
//! Only test case runs go warm: the step is the same runguard command line a one-shot step
//! gets ([`Runguard::args`]), parsed and resolved by the runner's runguard front end into the
//! same `Plan`, with the run profile applied to the sandbox's own work dir instead of the
//! step's. The step's files (the program's links) are copied into that work dir by the keeper,
//! which empties it after the run; stdin, stdout and stderr stay the step's host files. Each
//! run's limits are per run in the plan, so test cases with other limits fit the same
//! sandbox; a plan that does not fit it (another language's process limit) rebuilds it.
//! Compiles, validators and a program with subdirectories (the keeper places plain files
//! only) stay one-shot.
//!
//! A built sandbox's cgroup directories are written beside its work dir (`*.cgroups`): the
//! client removes them when the sandbox is dropped, but a daemon killed with SIGKILL cannot;
//! its keeper leaves on EOF, and the next start removes what the file lists
//! ([`remove_leftover_cgroups`]) before the scratch directory is emptied.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use runner::profile::Profile;
use runner::report::Report;
use runner::runguard::cli::{self, Parsed};
use runner::runguard::config::Config;
use runner::runguard::host::System;
use runner::runguard::resolve::resolve;
use runner::warm::{Request, SandboxSpec};

use crate::sandbox::{RunSpec, Runguard, Sandbox, SandboxFailure, SandboxProfiles};

/// The extension of the files that list a warm sandbox's cgroup directories.
const CGROUPS_LIST: &str = "cgroups";

/// Remove the cgroup directories of the warm sandboxes of a killed daemon, listed in `*.cgroups`
/// files of `scratch`. Its keepers leave on EOF when it dies, so a group still busy is waited
/// for (up to [`LEFTOVER_TIMEOUT`]). Returns the directories removed; one that cannot be
/// removed is told on stderr and left.
pub fn remove_leftover_cgroups(scratch: &Path) -> anyhow::Result<usize> {
    let mut removed = 0;
    let deadline = Instant::now() + LEFTOVER_TIMEOUT;
    let entries = match std::fs::read_dir(scratch) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error).context(format!("cannot read `{}'", scratch.display())),
    };
    for entry in entries {
        let list = entry?.path();
        if list.extension().and_then(|e| e.to_str()) != Some(CGROUPS_LIST) {
            continue;
        }
        let text = std::fs::read_to_string(&list)
            .with_context(|| format!("cannot read `{}'", list.display()))?;
        // Listed parents first: remove children first.
        for dir in text.lines().rev().map(Path::new) {
            let mut outcome = std::fs::remove_dir(dir);
            while matches!(&outcome, Err(e) if e.kind() == std::io::ErrorKind::ResourceBusy)
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
                outcome = std::fs::remove_dir(dir);
            }
            match outcome {
                Ok(()) => removed += 1,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => eprintln!(
                    "judged serve: cannot remove `{}' of a warm sandbox of an earlier run: \
                     {error}",
                    dir.display()
                ),
            }
        }
        std::fs::remove_file(&list)
            .with_context(|| format!("cannot remove `{}'", list.display()))?;
    }
    Ok(removed)
}

/// How long [`remove_leftover_cgroups`] waits for a killed daemon's keepers to leave.
const LEFTOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// One slot's warm sandbox, built on its first run.
pub struct WarmSandbox {
    keeper: PathBuf,
    /// Steps under this profile go warm (the test case runs' profile).
    run_profile: PathBuf,
    profile: Profile,
    /// The runguard config the one-shot steps get, read once.
    config: Config,
    /// The sandbox's own work dir, shown at the profile's work dir.
    work_dir: PathBuf,
    sandbox: Mutex<Option<(SandboxSpec, runner::warm::Sandbox)>>,
    runs: AtomicU64,
}

impl WarmSandbox {
    /// A warm sandbox for the test case runs of `profiles`, working in `work_dir` (made here,
    /// owned by the run user); the keeper starts with the first run.
    pub fn new(
        keeper: &Path,
        profiles: &SandboxProfiles,
        runguard: &Runguard,
        work_dir: PathBuf,
    ) -> anyhow::Result<WarmSandbox> {
        anyhow::ensure!(
            keeper.is_file(),
            "no keeper binary at `{}' for [workers] sandbox = \"warm\": build it (cargo build -p \
             runner) or set JUDGED_KEEPER",
            keeper.display()
        );
        let profile = Profile::load(&profiles.run.path)?;
        let config = Config::load(Some(runguard.config_path()))?;
        std::fs::create_dir_all(&work_dir)
            .with_context(|| format!("cannot make `{}'", work_dir.display()))?;
        crate::judge::give(&work_dir, runguard.user())
            .with_context(|| format!("cannot give `{}' to the run user", work_dir.display()))?;
        Ok(WarmSandbox {
            keeper: keeper.to_path_buf(),
            run_profile: profiles.run.path.clone(),
            profile,
            config,
            work_dir,
            sandbox: Mutex::new(None),
            runs: AtomicU64::new(0),
        })
    }

    /// Where the built sandbox's cgroup directories are listed.
    fn cgroups_list(&self) -> PathBuf {
        self.work_dir.with_extension(CGROUPS_LIST)
    }

    /// Runs carried out in this sandbox so far.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::SeqCst)
    }

    /// The keeper's pid while the sandbox is built.
    pub fn keeper_pid(&self) -> Option<i32> {
        self.sandbox
            .lock()
            .ok()?
            .as_ref()
            .and_then(|(_, sandbox)| sandbox.keeper_pid())
    }

    /// The warm request for `spec`, or `None` when the step stays one-shot.
    fn request(
        &self,
        runguard: &Runguard,
        spec: &RunSpec,
    ) -> Result<Option<Request>, SandboxFailure> {
        if spec.profile.as_deref() != Some(self.run_profile.as_path()) || spec.stdin.is_none() {
            return Ok(None);
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SandboxFailure::Io { path, source }
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&spec.cwd).map_err(io(&spec.cwd))? {
            let entry = entry.map_err(io(&spec.cwd))?;
            if !entry.file_type().map_err(io(&entry.path()))?.is_file() {
                return Ok(None);
            }
            files.push((entry.path(), entry.file_name()));
        }
        let internal = |message: String| SandboxFailure::Internal {
            status: "warm sandbox".into(),
            message,
        };
        let args: Vec<OsString> = runguard.args(spec);
        let options = match cli::parse(&args) {
            Ok(Parsed::Run(options)) => options,
            Ok(other) => return Err(internal(format!("runguard arguments parse as {other:?}"))),
            Err(error) => return Err(internal(error.to_string())),
        };
        let mut plan = resolve(&options, &self.config, &System::default())
            .map_err(|e| internal(e.to_string()))?
            .plan;
        self.profile
            .apply(&mut plan, &self.work_dir)
            .map_err(|e| internal(e.to_string()))?;
        Ok(Some(Request {
            plan,
            stdin: spec.stdin.clone(),
            files,
        }))
    }

    fn run(&self, request: &Request) -> Result<Report, SandboxFailure> {
        let failure = |message: String| SandboxFailure::Internal {
            status: "warm sandbox".into(),
            message,
        };
        let mut sandbox = self
            .sandbox
            .lock()
            .map_err(|_| failure("a run panicked in this sandbox".into()))?;
        let misfit = match &*sandbox {
            Some((spec, _)) => spec.misfit(&request.plan),
            None => Some("not built yet".into()),
        };
        if let Some(why) = misfit {
            if let Some((_, old)) = sandbox.take() {
                eprintln!("judged serve: rebuilding a warm sandbox: {why}");
                let _ = old.destroy();
            }
            let spec = SandboxSpec::of_plan(&request.plan, Some(self.work_dir.clone()));
            let built = runner::warm::Sandbox::create(spec.clone(), &self.keeper)
                .map_err(|e| failure(e.to_string()))?;
            let listed: String = built
                .cgroup_dirs()
                .iter()
                .map(|dir| format!("{}\n", dir.display()))
                .collect();
            let list = self.cgroups_list();
            std::fs::write(&list, listed).map_err(|source| SandboxFailure::Io {
                path: list.clone(),
                source,
            })?;
            *sandbox = Some((spec, built));
        }
        let (_, built) = sandbox.as_mut().expect("built above");
        let report = built.run(request).map_err(|e| failure(e.to_string()))?;
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(report)
    }
}

/// A judging's sandbox in a warm worker: test case runs in the slot's warm sandbox, every
/// other step one-shot.
pub struct Warm<'a> {
    pub oneshot: &'a Runguard,
    pub warm: &'a WarmSandbox,
}

impl Drop for WarmSandbox {
    fn drop(&mut self) {
        // The client removes the sandbox's groups as it is dropped: nothing is left to list.
        if let Ok(mut sandbox) = self.sandbox.lock() {
            drop(sandbox.take());
        }
        let _ = std::fs::remove_file(self.cgroups_list());
    }
}

impl Sandbox for Warm<'_> {
    fn run(&self, spec: &RunSpec) -> Result<Report, SandboxFailure> {
        match self.warm.request(self.oneshot, spec)? {
            Some(request) => self.warm.run(&request),
            None => self.oneshot.run(spec),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::time::Duration;

    use runner::plan::Mount;

    use super::*;
    use crate::sandbox::StepLimits;
    use crate::users::RunUser;

    struct Setup {
        dir: tempfile::TempDir,
        runguard: Runguard,
        profiles: SandboxProfiles,
        warm: WarmSandbox,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        // As root, `nobody` (runguard refuses root as the run user); else ourselves, whom
        // `give` needs no privilege for.
        let user = if nix::unistd::geteuid().is_root() {
            RunUser {
                name: "nobody".into(),
                uid: 65534,
                gid: 65534,
            }
        } else {
            let owner = std::fs::metadata(dir.path()).unwrap();
            RunUser {
                name: "me".into(),
                uid: owner.uid(),
                gid: owner.gid(),
            }
        };
        let runguard = Runguard::new("/bin/false".into(), user, dir.path()).unwrap();
        let profiles = SandboxProfiles::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/sandbox"),
        )
        .unwrap();
        // The keeper starts only with the first run, which these tests do not make.
        let warm = WarmSandbox::new(
            Path::new("/bin/true"),
            &profiles,
            &runguard,
            dir.path().join("warm"),
        )
        .unwrap();
        Setup {
            dir,
            runguard,
            profiles,
            warm,
        }
    }

    fn step(setup: &Setup, profile: &Path, stdin: bool) -> RunSpec {
        let cwd = setup.dir.path().join("case/run");
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::write(cwd.join("program"), "").unwrap();
        RunSpec {
            argv: vec!["/work/program".into()],
            cwd,
            profile: Some(profile.to_path_buf()),
            stdin: stdin.then(|| setup.dir.path().join("case/1.in")),
            stdout: setup.dir.path().join("case/program.out"),
            stderr: setup.dir.path().join("case/program.err"),
            report: setup.dir.path().join("case/program.json"),
            cgroup_parent: None,
            env: Vec::new(),
            limits: StepLimits {
                cpuset: Some("1".into()),
                cpuset_mems: Some("0".into()),
                ..StepLimits::with_time(Duration::from_millis(1500), 64 << 20, 1 << 20, 8)
            },
        }
    }

    #[test]
    fn a_test_case_run_becomes_the_same_plan_in_the_sandboxs_work_dir() {
        if !nix::unistd::geteuid().is_root() {
            // runguard's front end resolves `-u` only for root, as DOMjudge's does.
            let reason = "resolving a step's runguard options needs root";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "skipping is a failure under CI=true: {reason}"
            );
            return eprintln!("skipping: {reason}");
        }
        let setup = setup();
        let run_profile = setup.profiles.run.path.clone();
        let spec = step(&setup, &run_profile, true);
        let request = setup
            .warm
            .request(&setup.runguard, &spec)
            .unwrap()
            .expect("a test case run goes warm");
        let plan = &request.plan;
        assert_eq!(plan.limits.cpuset.as_deref(), Some("1"));
        assert_eq!(plan.limits.cpuset_mems.as_deref(), Some("0"));
        assert_eq!(plan.limits.nproc, Some(8));
        assert_eq!(plan.limits.memory_bytes, Some(64 << 20));
        let work = plan
            .filesystem
            .as_ref()
            .unwrap()
            .mounts
            .iter()
            .find_map(|mount| match mount {
                Mount::Bind { source, target, .. } if target == Path::new("/work") => {
                    Some(source.clone())
                }
                _ => None,
            });
        assert_eq!(work, Some(setup.dir.path().join("warm")));
        assert_eq!(
            request.files,
            [(spec.cwd.join("program"), "program".into())]
        );
        assert_eq!(request.stdin, spec.stdin);
        // Two test cases make plans that fit one sandbox.
        let spec = SandboxSpec::of_plan(plan, Some(setup.dir.path().join("warm")));
        let mut other = step(&setup, &run_profile, true);
        other.limits = StepLimits {
            cpuset: other.limits.cpuset,
            cpuset_mems: other.limits.cpuset_mems,
            ..StepLimits::with_time(Duration::from_secs(5), 256 << 20, 1 << 20, 8)
        };
        let other = setup
            .warm
            .request(&setup.runguard, &other)
            .unwrap()
            .unwrap();
        assert_eq!(spec.misfit(&other.plan), None);
    }

    #[test]
    fn leftover_groups_listed_in_the_scratch_dir_are_removed_children_first() {
        let scratch = tempfile::tempdir().unwrap();
        let group = scratch.path().join("cg/judged/sandbox-1");
        std::fs::create_dir_all(group.join("run-1-0")).unwrap();
        std::fs::write(
            scratch.path().join("warm-worker-0.cgroups"),
            format!("{}\n{}\n", group.display(), group.join("run-1-0").display()),
        )
        .unwrap();
        std::fs::write(scratch.path().join("other.toml"), "").unwrap();
        assert_eq!(remove_leftover_cgroups(scratch.path()).unwrap(), 2);
        assert!(!group.exists());
        assert!(!scratch.path().join("warm-worker-0.cgroups").exists());
        assert!(scratch.path().join("other.toml").exists());
        assert_eq!(remove_leftover_cgroups(scratch.path()).unwrap(), 0);
    }

    #[test]
    fn compiles_and_programs_with_directories_stay_one_shot() {
        let setup = setup();
        let compile = step(&setup, &setup.profiles.compile.path, false);
        let no_stdin = step(&setup, &setup.profiles.run.path, false);
        let nested = step(&setup, &setup.profiles.run.path, true);
        std::fs::create_dir(nested.cwd.join("classes")).unwrap();
        for (what, spec) in [
            ("a compile", compile),
            ("a step without stdin", no_stdin),
            ("a program with a directory", nested),
        ] {
            let request = setup.warm.request(&setup.runguard, &spec).unwrap();
            assert!(request.is_none(), "{what} went warm");
        }
    }
}
