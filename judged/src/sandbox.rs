//! Running one sandboxed step (a compile, a test run, a validator run).
//!
//! judged is multi-threaded, so it never forks and runs setup code itself: every step is a
//! `runguard` process (the runner's DOMjudge-compatible CLI) whose `--json` report is read
//! back into a [`Report`]. The [`Sandbox`] trait keeps that choice in one place, so a warm
//! sandbox backend can replace it and the judging logic can be tested with a fake.
//!
//! Submissions' steps (compiling, test case runs) are confined by a sandbox profile
//! (`runguard --profile`, [`SandboxProfiles`]): a read-only root of system directories with the
//! step's working directory as the only host directory it sees, writable, at the profile's
//! work dir (`/work`). Whatever the step must not read (answers, other test cases) therefore
//! simply stays outside that directory.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use runner::profile::Profile;
use runner::report::Report;
use runner::runguard::config::Config;
use serde::Serialize;

use crate::users::RunUser;

/// Limits of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepLimits {
    /// CPU time: the soft limit marks a time limit, the hard one kills.
    pub cpu_soft: Duration,
    pub cpu_hard: Duration,
    /// Wall clock: only its hard limit matters (it catches programs that sleep).
    pub wall_hard: Duration,
    pub memory_bytes: u64,
    /// Each of stdout and stderr is cut here.
    pub output_bytes: u64,
    /// No file the step writes may grow beyond this (RLIMIT_FSIZE).
    pub file_bytes: u64,
    pub nproc: u64,
    /// CPUs the step is pinned to (runguard's -P), like `1` or `0,2-3`.
    pub cpuset: Option<String>,
    /// NUMA nodes the step's memory comes from (runguard's --cpuset-mems), like `0`.
    pub cpuset_mems: Option<String>,
}

impl StepLimits {
    /// DOMjudge's default overshoot: a soft limit of `time`, killed at `time` plus the larger
    /// of 1 s and 10 %. Files are capped like the output streams, as DOMjudge does for test
    /// runs; a compiler needs a larger [`StepLimits::file_bytes`].
    pub fn with_time(time: Duration, memory_bytes: u64, output_bytes: u64, nproc: u64) -> Self {
        let hard = time + Duration::from_secs(1).max(time / 10);
        StepLimits {
            cpu_soft: time,
            cpu_hard: hard,
            wall_hard: hard,
            memory_bytes,
            output_bytes,
            file_bytes: output_bytes,
            nproc,
            cpuset: None,
            cpuset_mems: None,
        }
    }
}

/// A sandbox profile for runguard's `--profile`, and where it shows the step's working
/// directory.
#[derive(Debug, Clone, PartialEq)]
pub struct StepProfile {
    pub path: PathBuf,
    /// The profile's `filesystem.work_dir`: paths of files in the working directory, as the
    /// confined step sees them, start here.
    pub work_dir: PathBuf,
}

impl StepProfile {
    /// Load and check the profile at `path` (as runguard will) once, before anything runs. It
    /// must build its own root: a profile that leaves the host visible confines nothing.
    pub fn load(path: &Path) -> anyhow::Result<StepProfile> {
        let profile = Profile::load(path)?;
        let work_dir = profile.work_dir().with_context(|| {
            format!(
                "sandbox profile `{}' has no [filesystem]: submissions would see the host's \
                 files (the answers too); use one that builds its own root, like \
                 profiles/sandbox/default.toml",
                path.display()
            )
        })?;
        Ok(StepProfile {
            path: path.to_path_buf(),
            work_dir: work_dir.to_path_buf(),
        })
    }
}

/// The profiles that confine a submission's steps.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxProfiles {
    /// Compiling (submissions and output validators): `compile.toml`.
    pub compile: StepProfile,
    /// Test case runs: `default.toml`.
    pub run: StepProfile,
}

impl SandboxProfiles {
    /// `compile.toml` and `default.toml` of `dir` (a `profiles/sandbox` directory).
    pub fn load(dir: &Path) -> anyhow::Result<SandboxProfiles> {
        let load = |name: &str| {
            StepProfile::load(&dir.join(name)).with_context(|| {
                format!(
                    "no usable sandbox profile {name} in `{}' (pass --profiles DIR)",
                    dir.display()
                )
            })
        };
        Ok(SandboxProfiles {
            compile: load("compile.toml")?,
            run: load("default.toml")?,
        })
    }
}

/// One step to run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// argv; `argv[0]` is an absolute path (inside the sandbox when the step has a profile) or
    /// is looked up in the sandbox's PATH.
    pub argv: Vec<String>,
    /// Working directory (writable by the run user where the step must write). Under a
    /// profile, the only host directory the step sees (at the profile's work dir).
    pub cwd: PathBuf,
    /// The sandbox profile confining the step. `None` only for trusted problem code (output
    /// validators), which then sees the host's files as the run user.
    pub profile: Option<PathBuf>,
    /// Read on stdin; `/dev/null` when absent.
    pub stdin: Option<PathBuf>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// Where the backend keeps its report of the step.
    pub report: PathBuf,
    /// The cgroup parent of the step's groups (runguard's `--cgroup-parent`, a run lane);
    /// `None`: the runguard config's.
    pub cgroup_parent: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub limits: StepLimits,
}

/// The sandbox could not carry out or measure a step (never the program's own failure).
#[derive(Debug, thiserror::Error)]
pub enum SandboxFailure {
    /// runguard could not be started or waited for, or judged was stopped by a signal
    /// (then no new step starts).
    #[error("runguard `{program}': {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: crate::interrupt::OutputError,
    },
    #[error("cannot open `{path}' for the step: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the sandbox failed (runguard: {status}): {message}")]
    Internal { status: String, message: String },
    #[error("runguard's report `{path}' is unreadable: {message}")]
    BadReport { path: PathBuf, message: String },
}

pub trait Sandbox: Sync {
    fn run(&self, spec: &RunSpec) -> Result<Report, SandboxFailure>;
}

/// Runs each step through the `runguard` binary.
pub struct Runguard {
    binary: PathBuf,
    user: RunUser,
    /// The config every step gets with `--config` (see [`runguard_config`]); the file is
    /// removed when the `Runguard` is dropped.
    config: tempfile::NamedTempFile,
    /// The site's cgroup parent, which that config keeps.
    cgroup_parent: PathBuf,
}

impl Runguard {
    /// runguard's arguments for `spec`, as [`Sandbox::run`] gives them.
    pub fn args(&self, spec: &RunSpec) -> Vec<OsString> {
        runguard_args(spec, &self.user, self.config.path())
    }

    /// The runguard config every step gets.
    pub fn config_path(&self) -> &Path {
        self.config.path()
    }

    pub fn user(&self) -> &RunUser {
        &self.user
    }

    /// The cgroup parent of the steps (the site's runguard config's): run lanes go below it.
    pub fn cgroup_parent(&self) -> &Path {
        &self.cgroup_parent
    }

    /// A runguard backend running steps as `user`, with its config file written in `scratch`.
    /// The site's runguard config ([`runner::runguard::config::DEFAULT_CONFIG_PATH`] when it
    /// exists) supplies everything
    /// but the allowed users.
    pub fn new(binary: PathBuf, user: RunUser, scratch: &Path) -> anyhow::Result<Runguard> {
        let site = Config::load(None).context("the site's runguard config is unusable")?;
        let mut config = tempfile::Builder::new()
            .prefix("judged-runguard-")
            .suffix(".toml")
            .tempfile_in(scratch)
            .with_context(|| {
                format!(
                    "cannot make runguard's config file in `{}'",
                    scratch.display()
                )
            })?;
        config
            .write_all(runguard_config(&site, &user).as_bytes())
            .with_context(|| format!("cannot write `{}'", config.path().display()))?;
        Ok(Runguard {
            binary,
            user,
            config,
            cgroup_parent: site.cgroup_parent,
        })
    }
}

/// runguard's config for judged's steps: `site` with `valid_users` narrowed to exactly the
/// user judged chose. runguard's built-in list allows only `domjudge-run` and
/// `domjudge-run-*`, while judged falls back to `nobody` or takes `--user`: judged (root)
/// picks the run user, and naming only that one keeps runguard's check as tight as it can be.
pub fn runguard_config(site: &Config, user: &RunUser) -> String {
    #[derive(Serialize)]
    struct Written<'a> {
        valid_users: [&'a str; 1],
        chroot_prefixes: &'a [PathBuf],
        cgroup_parent: &'a Path,
    }
    let written = Written {
        valid_users: [&user.name],
        chroot_prefixes: &site.chroot_prefixes,
        cgroup_parent: &site.cgroup_parent,
    };
    let text = toml::to_string(&written)
        .expect("names and paths read from TOML are UTF-8, so they serialize");
    format!("# Written by judged for the steps of one judging (runguard --config).\n{text}")
}

const KIB: u64 = 1024;

/// runguard's options for `spec`, DOMjudge style, followed by `--` and the command.
pub fn runguard_args(spec: &RunSpec, user: &RunUser, config: &Path) -> Vec<OsString> {
    let limits = &spec.limits;
    let seconds = |d: Duration| format!("{:.3}", d.as_secs_f64());
    let kb = |bytes: u64| bytes.div_ceil(KIB).to_string();
    let mut args: Vec<OsString> = vec![
        "--config".into(),
        config.into(),
        "--user".into(),
        user.name.clone().into(),
        "--group".into(),
        user.gid.to_string().into(),
        "--memsize".into(),
        kb(limits.memory_bytes).into(),
        "--filesize".into(),
        kb(limits.file_bytes).into(),
        "--streamsize".into(),
        kb(limits.output_bytes).into(),
        "--nproc".into(),
        limits.nproc.to_string().into(),
        "--no-core".into(),
        // Wall first, CPU last: runguard reports the time of the last one given as time used.
        "--walltime".into(),
        format!(
            "{}:{}",
            seconds(limits.wall_hard),
            seconds(limits.wall_hard)
        )
        .into(),
        "--cputime".into(),
        format!("{}:{}", seconds(limits.cpu_soft), seconds(limits.cpu_hard)).into(),
        "--stdout".into(),
        spec.stdout.clone().into(),
        "--stderr".into(),
        spec.stderr.clone().into(),
        "--json".into(),
        spec.report.clone().into(),
        // Stalls and memory activity for the diagnostics of each step (a few cgroup reads).
        "--activity".into(),
    ];
    if let Some(cpus) = &limits.cpuset {
        args.push("--cpuset".into());
        args.push(cpus.into());
    }
    if let Some(mems) = &limits.cpuset_mems {
        args.push("--cpuset-mems".into());
        args.push(mems.into());
    }
    if let Some(parent) = &spec.cgroup_parent {
        args.push("--cgroup-parent".into());
        args.push(parent.into());
    }
    match &spec.profile {
        Some(profile) => {
            // The profile sets TMPDIR to its private /tmp.
            args.push("--profile".into());
            args.push(profile.into());
        }
        None => {
            // Temporary files go to the step's own directory, which the judge removes
            // (DOMjudge sets TMPDIR the same way).
            args.push("--variable".into());
            args.push(format!("TMPDIR={}", spec.cwd.display()).into());
        }
    }
    for (key, value) in &spec.env {
        args.push("--variable".into());
        args.push(format!("{key}={value}").into());
    }
    args.push("--".into());
    args.extend(spec.argv.iter().map(OsString::from));
    args
}

impl Sandbox for Runguard {
    fn run(&self, spec: &RunSpec) -> Result<Report, SandboxFailure> {
        let stdin = match &spec.stdin {
            Some(path) => Stdio::from(File::open(path).map_err(|source| SandboxFailure::Io {
                path: path.clone(),
                source,
            })?),
            None => Stdio::null(),
        };
        let output = crate::interrupt::output(
            Command::new(&self.binary)
                .args(self.args(spec))
                .current_dir(&spec.cwd)
                .stdin(stdin)
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        )
        .map_err(|source| SandboxFailure::Spawn {
            program: self.binary.clone(),
            source,
        })?;
        let internal = |message: String| SandboxFailure::Internal {
            status: output.status.to_string(),
            message,
        };
        let runguard_stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        // Killed: runguard cannot have finished its report.
        if output.status.code().is_none() {
            return Err(internal(runguard_stderr));
        }
        // The report, not the exit status, tells runguard's failure from the program's: a
        // program may exit with 255 too.
        let json = match std::fs::read(&spec.report) {
            Ok(json) if !json.is_empty() => json,
            // runguard failed before it could write anything (e.g. a bad option).
            _ => return Err(internal(runguard_stderr)),
        };
        let bad_report = |message: String| SandboxFailure::BadReport {
            path: spec.report.clone(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_slice(&json).map_err(|e| bad_report(e.to_string()))?;
        if let Some(message) = value.get("internal_error") {
            return Err(internal(message.as_str().unwrap_or_default().to_owned()));
        }
        serde_json::from_value(value).map_err(|e| bad_report(e.to_string()))
    }
}

/// Where the runguard binary is: `--runguard` (or `JUDGED_RUNGUARD`), else beside our own
/// executable.
pub fn locate_runguard(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .context("cannot find our own executable")?
            .with_file_name("runguard"),
    };
    anyhow::ensure!(
        path.is_file(),
        "runguard not found at `{}': build it (cargo build -p runner) or pass --runguard PATH",
        path.display()
    );
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(spec: &RunSpec) -> String {
        let user = RunUser {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
        };
        let args: Vec<String> = runguard_args(spec, &user, Path::new("/s/runguard.toml"))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        args.join(" ")
    }

    #[test]
    fn runguard_gets_domjudge_style_options_then_the_command() {
        let spec = RunSpec {
            argv: vec!["/w/build/program".into(), "x".into()],
            cwd: "/w/run".into(),
            profile: None,
            stdin: None,
            stdout: "/w/out".into(),
            stderr: "/w/err".into(),
            report: "/w/report.json".into(),
            cgroup_parent: Some("judged/judged-7-0".into()),
            env: vec![("HOME".into(), "/tmp".into())],
            limits: StepLimits::with_time(Duration::from_millis(1500), 256 << 20, 8 << 20, 64),
        };
        let joined = args_of(&spec);
        for expected in [
            "--config /s/runguard.toml --user nobody --group 65534",
            "--memsize 262144",
            "--filesize 8192 --streamsize 8192",
            "--nproc 64 --no-core",
            "--walltime 2.500:2.500 --cputime 1.500:2.500",
            "--stdout /w/out --stderr /w/err --json /w/report.json",
            "--cgroup-parent judged/judged-7-0",
            "--variable TMPDIR=/w/run --variable HOME=/tmp -- /w/build/program x",
        ] {
            assert!(joined.contains(expected), "{expected:?} not in {joined:?}");
        }
        assert!(joined.ends_with("-- /w/build/program x"));
    }

    #[test]
    fn a_confined_step_gets_its_profile_and_the_profiles_tmpdir() {
        let spec = RunSpec {
            profile: Some("/p/sandbox/default.toml".into()),
            ..spec_in(Path::new("/w/run"))
        };
        let joined = args_of(&spec);
        assert!(
            joined.contains("--profile /p/sandbox/default.toml -- /bin/true"),
            "{joined}"
        );
        assert!(!joined.contains("TMPDIR"), "{joined}");
    }

    fn shipped_sandbox_profiles() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/sandbox")
    }

    #[test]
    fn shipped_profiles_show_the_work_dir_at_work() {
        let profiles = SandboxProfiles::load(&shipped_sandbox_profiles()).unwrap();
        assert_eq!(profiles.compile.work_dir, Path::new("/work"));
        assert_eq!(profiles.run.work_dir, Path::new("/work"));
        assert!(profiles.run.path.ends_with("default.toml"));
    }

    #[test]
    fn a_profile_that_leaves_the_host_visible_is_refused() {
        let minimal = shipped_sandbox_profiles().join("minimal.toml");
        let message = format!("{:#}", StepProfile::load(&minimal).unwrap_err());
        assert!(
            message.contains("minimal.toml") && message.contains("no [filesystem]"),
            "{message}"
        );
    }

    #[test]
    fn overshoot_is_one_second_or_ten_percent() {
        let short = StepLimits::with_time(Duration::from_secs(2), 0, 0, 1);
        assert_eq!(short.cpu_hard, Duration::from_secs(3));
        let long = StepLimits::with_time(Duration::from_secs(20), 0, 0, 1);
        assert_eq!(long.cpu_hard, Duration::from_secs(22));
    }

    #[test]
    fn runguard_report_json_deserializes_ignoring_extra_keys() {
        let json = r#"{"termination":{"signaled":9},"wall_time":1.5,"user_time":0.9,
            "sys_time":0.1,"cpu_time":1.0,"setup_time":0.002,"memory_bytes":1048576,
            "time_result":{"wall_soft":false,"wall_hard":false,"cpu_soft":true,"cpu_hard":true},
            "stdout":{"bytes":10,"truncated":false},"stderr":{"bytes":0,"truncated":false},
            "oom_kills":0,"throttling":null,"cgroup_layout":"hybrid","runner_signal":null,
            "time_used":"cpu-time"}"#;
        let report: Report = serde_json::from_str(json).unwrap();
        assert_eq!(report.termination, runner::report::Termination::Signaled(9));
        assert_eq!(report.cpu_time, Duration::from_secs(1));
        assert!(report.time_result.cpu_hard);
    }

    fn nobody() -> RunUser {
        RunUser {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
        }
    }

    #[test]
    fn runguard_config_allows_exactly_the_run_user_and_keeps_the_site_settings() {
        let site = Config {
            chroot_prefixes: vec!["/srv/judgings".into()],
            cgroup_parent: "site/runs".into(),
            ..Config::default()
        };
        let text = runguard_config(&site, &nobody());
        let written = Config::from_toml(&text, Path::new("judged.toml")).unwrap();
        assert_eq!(written.valid_users, ["nobody"]);
        assert_eq!(written.chroot_prefixes, site.chroot_prefixes);
        assert_eq!(written.cgroup_parent, site.cgroup_parent);
        let uid_of = |_: &str| None;
        assert!(written.allows_user("nobody", 65534, uid_of));
        assert!(!written.allows_user("domjudge-run", 999, uid_of));
    }

    /// A `Runguard` whose binary is a script that writes `report` as its JSON report and exits
    /// with `status`, as runguard does.
    fn fake_runguard(dir: &Path, report: &str, status: u8) -> Runguard {
        let binary = dir.join("runguard");
        let script = format!(
            "#!/bin/sh\nwhile [ \"$1\" != --json ]; do shift; done\n\
             cat > \"$2\" <<'EOF'\n{report}\nEOF\nexit {status}\n"
        );
        // Written by another process: a write descriptor of ours, inherited by a child that
        // another test thread forks at that moment, would make exec fail with ETXTBSY.
        let source = dir.join("runguard.sh");
        std::fs::write(&source, script).unwrap();
        let installed = std::process::Command::new("install")
            .args(["-m", "755"])
            .arg(&source)
            .arg(&binary)
            .status()
            .unwrap();
        assert!(installed.success());
        Runguard::new(binary, nobody(), dir).unwrap()
    }

    #[test]
    fn a_pinned_step_gets_runguards_cpuset() {
        let mut spec = spec_in(Path::new("/w"));
        assert!(!args_of(&spec).contains("--cpuset"));
        spec.limits.cpuset = Some("2-3".into());
        assert!(
            args_of(&spec).contains("--activity --cpuset 2-3 "),
            "{}",
            args_of(&spec)
        );
        assert!(!args_of(&spec).contains("--cpuset-mems"));
        spec.limits.cpuset_mems = Some("1".into());
        assert!(
            args_of(&spec).contains("--activity --cpuset 2-3 --cpuset-mems 1 "),
            "{}",
            args_of(&spec)
        );
    }

    fn spec_in(dir: &Path) -> RunSpec {
        RunSpec {
            argv: vec!["/bin/true".into()],
            cwd: dir.to_path_buf(),
            profile: None,
            stdin: None,
            stdout: dir.join("out"),
            stderr: dir.join("err"),
            report: dir.join("report.json"),
            cgroup_parent: None,
            env: Vec::new(),
            limits: StepLimits::with_time(Duration::from_secs(1), 1 << 20, 1 << 20, 1),
        }
    }

    #[test]
    fn a_program_exiting_255_is_the_programs_failure_not_the_sandboxs() {
        let dir = tempfile::tempdir().unwrap();
        let report = Report {
            termination: runner::report::Termination::Exited(255),
            ..crate::verdict::tests::clean_report()
        };
        let runguard = fake_runguard(dir.path(), &serde_json::to_string(&report).unwrap(), 255);
        assert_eq!(runguard.run(&spec_in(dir.path())).unwrap(), report);
    }

    #[test]
    fn an_internal_error_in_the_report_is_a_sandbox_failure_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let runguard = fake_runguard(
            dir.path(),
            r#"{"internal_error":"cannot mount /proc"}"#,
            255,
        );
        let failure = runguard.run(&spec_in(dir.path())).unwrap_err();
        assert!(
            matches!(&failure, SandboxFailure::Internal { message, .. } if message == "cannot mount /proc"),
            "{failure}"
        );
    }

    #[test]
    fn runguard_config_file_is_removed_with_the_runguard() {
        let dir = tempfile::tempdir().unwrap();
        let runguard = fake_runguard(dir.path(), "{}", 0);
        let config = runguard.config.path().to_path_buf();
        assert!(std::fs::read_to_string(&config)
            .unwrap()
            .contains("\"nobody\""));
        drop(runguard);
        assert!(!config.exists());
    }
}
