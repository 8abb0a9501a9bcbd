//! Running one sandboxed step (a compile, a test run, a validator run).
//!
//! judged is multi-threaded, so it never forks and runs setup code itself: every step is a
//! `runguard` process (the runner's DOMjudge-compatible CLI) whose `--json` report is read
//! back into a [`Report`]. The [`Sandbox`] trait keeps that choice in one place, so a warm
//! sandbox backend can replace it and the judging logic can be tested with a fake.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use runner::report::Report;

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
    /// Each of stdout and stderr is cut here, and files the step writes are capped here.
    pub output_bytes: u64,
    pub nproc: u64,
}

impl StepLimits {
    /// DOMjudge's default overshoot: a soft limit of `time`, killed at `time` plus the larger
    /// of 1 s and 10 %.
    pub fn with_time(time: Duration, memory_bytes: u64, output_bytes: u64, nproc: u64) -> Self {
        let hard = time + Duration::from_secs(1).max(time / 10);
        StepLimits {
            cpu_soft: time,
            cpu_hard: hard,
            wall_hard: hard,
            memory_bytes,
            output_bytes,
            nproc,
        }
    }
}

/// One step to run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// argv; `argv[0]` is an absolute path or is looked up in the sandbox's PATH.
    pub argv: Vec<String>,
    /// Working directory (writable by the run user where the step must write).
    pub cwd: PathBuf,
    /// Read on stdin; `/dev/null` when absent.
    pub stdin: Option<PathBuf>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// Where the backend keeps its report of the step.
    pub report: PathBuf,
    pub env: Vec<(String, String)>,
    pub limits: StepLimits,
}

/// The sandbox could not carry out or measure a step (never the program's own failure).
#[derive(Debug, thiserror::Error)]
pub enum SandboxFailure {
    #[error("cannot start `{program}': {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open `{path}' for the step: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the sandbox failed (runguard exit status {status}): {message}")]
    Internal { status: String, message: String },
    #[error("runguard's report `{path}' is unreadable: {message}")]
    BadReport { path: PathBuf, message: String },
}

pub trait Sandbox: Sync {
    fn run(&self, spec: &RunSpec) -> Result<Report, SandboxFailure>;
}

/// Runs each step through the `runguard` binary.
pub struct Runguard {
    pub binary: PathBuf,
    pub user: RunUser,
}

const KIB: u64 = 1024;

/// runguard's options for `spec`, DOMjudge style, followed by `--` and the command.
pub fn runguard_args(spec: &RunSpec, user: &RunUser) -> Vec<OsString> {
    let limits = &spec.limits;
    let seconds = |d: Duration| format!("{:.3}", d.as_secs_f64());
    let output_kb = limits.output_bytes.div_ceil(KIB).to_string();
    let mut args: Vec<OsString> = vec![
        "--user".into(),
        user.name.clone().into(),
        "--group".into(),
        user.gid.to_string().into(),
        "--memsize".into(),
        limits.memory_bytes.div_ceil(KIB).to_string().into(),
        "--filesize".into(),
        output_kb.clone().into(),
        "--streamsize".into(),
        output_kb.into(),
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
    ];
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
        let output = Command::new(&self.binary)
            .args(runguard_args(spec, &self.user))
            .current_dir(&spec.cwd)
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| SandboxFailure::Spawn {
                program: self.binary.clone(),
                source,
            })?;
        let runguard_stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        // 255 is runguard's own failure; a program's exit status never reaches it.
        if output.status.code() == Some(255) || output.status.code().is_none() {
            return Err(SandboxFailure::Internal {
                status: output.status.to_string(),
                message: runguard_stderr,
            });
        }
        let bad_report = |message: String| SandboxFailure::BadReport {
            path: spec.report.clone(),
            message,
        };
        let json = std::fs::read(&spec.report).map_err(|e| bad_report(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| bad_report(e.to_string()))
    }
}

/// Where the runguard binary is: `--runguard`, else `JUDGED_RUNGUARD`, else beside our own
/// executable.
pub fn locate_runguard(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let exe = std::env::current_exe()?;
    let beside = exe.with_file_name("runguard");
    anyhow::ensure!(
        beside.is_file(),
        "runguard not found at `{}': build it (cargo build -p runner) or pass --runguard PATH",
        beside.display()
    );
    Ok(beside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runguard_gets_domjudge_style_options_then_the_command() {
        let spec = RunSpec {
            argv: vec!["/w/build/program".into(), "x".into()],
            cwd: "/w/run".into(),
            stdin: None,
            stdout: "/w/out".into(),
            stderr: "/w/err".into(),
            report: "/w/report.json".into(),
            env: vec![("HOME".into(), "/tmp".into())],
            limits: StepLimits::with_time(Duration::from_millis(1500), 256 << 20, 8 << 20, 64),
        };
        let user = RunUser {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
        };
        let args: Vec<String> = runguard_args(&spec, &user)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let joined = args.join(" ");
        for expected in [
            "--user nobody --group 65534",
            "--memsize 262144",
            "--filesize 8192 --streamsize 8192",
            "--nproc 64 --no-core",
            "--walltime 2.500:2.500 --cputime 1.500:2.500",
            "--stdout /w/out --stderr /w/err --json /w/report.json",
            "--variable HOME=/tmp -- /w/build/program x",
        ] {
            assert!(joined.contains(expected), "{expected:?} not in {joined:?}");
        }
        assert!(joined.ends_with("-- /w/build/program x"));
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
}
