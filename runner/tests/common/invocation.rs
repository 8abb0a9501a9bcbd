//! One runguard command line, run with a watchdog, and what came out of it.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::keyvalues::KeyValues;
use super::privilege::runguard_binary;
use super::INTERNAL_ERROR_STATUS;

/// How long a runguard may take before the test kills it and fails: far above any limit the
/// tests set, so only a runguard that hangs hits it.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// After runguard exits, its stdout and stderr must reach EOF promptly: a leftover process of
/// the run that still holds them would keep them open.
const STREAM_EOF_GRACE: Duration = Duration::from_secs(5);

pub struct Invocation {
    cwd: PathBuf,
    args: Vec<OsString>,
    meta: Option<PathBuf>,
    json: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
}

impl Invocation {
    /// runguard without options, started in `cwd`.
    pub fn new(cwd: &Path) -> Invocation {
        Invocation {
            cwd: cwd.to_path_buf(),
            args: Vec::new(),
            meta: None,
            json: None,
            env: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Invocation {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Invocation
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// `-M path`; the outcome then carries the parsed meta file.
    pub fn meta_file(mut self, path: impl Into<PathBuf>) -> Invocation {
        let path = path.into();
        self.args.extend(["-M".into(), path.clone().into()]);
        self.meta = Some(path);
        self
    }

    /// `--json path`; the outcome then carries the JSON report.
    pub fn json_file(mut self, path: impl Into<PathBuf>) -> Invocation {
        let path = path.into();
        self.args.extend(["--json".into(), path.clone().into()]);
        self.json = Some(path);
        self
    }

    /// Set a variable in runguard's own environment (which `-E` passes on).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Invocation {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Run `-- command...` to completion.
    pub fn run<I, S>(self, command: I) -> Outcome
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.arg("--").args(command).run_as_given()
    }

    /// Run with exactly the arguments given so far (option errors, getopt's stop at the first
    /// non-option).
    pub fn run_as_given(self) -> Outcome {
        self.spawn_as_given().finish()
    }

    /// Start `-- command...` and return at once (to signal runguard while it runs).
    pub fn spawn<I, S>(self, command: I) -> Running
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.arg("--").args(command).spawn_as_given()
    }

    fn spawn_as_given(self) -> Running {
        let binary = runguard_binary().expect("tests check require_runguard() first");
        // A stale meta or JSON file of an earlier run must not pass for this run's.
        for path in self.meta.iter().chain(&self.json) {
            let _ = std::fs::remove_file(path);
        }
        let description = describe(binary, &self.args);
        let mut child = Command::new(binary)
            .args(&self.args)
            .current_dir(&self.cwd)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {description}: {e}"));
        Running {
            stdout: read_in_background(child.stdout.take().expect("piped")),
            stderr: read_in_background(child.stderr.take().expect("piped")),
            child,
            started: Instant::now(),
            meta: self.meta,
            json: self.json,
            timeout: self.timeout,
            description,
        }
    }
}

/// A runguard that was started and not yet waited for.
pub struct Running {
    child: Child,
    stdout: mpsc::Receiver<Vec<u8>>,
    stderr: mpsc::Receiver<Vec<u8>>,
    started: Instant,
    meta: Option<PathBuf>,
    json: Option<PathBuf>,
    timeout: Duration,
    description: String,
}

impl Running {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pids fit in i32")
    }

    /// Wait for runguard (killing it and failing the test past the timeout) and collect all.
    pub fn finish(mut self) -> Outcome {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for runguard") {
                break status;
            }
            if self.started.elapsed() > self.timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not end within {:?}", self.description, self.timeout);
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let elapsed = self.started.elapsed();
        let collect = |stream: &mpsc::Receiver<Vec<u8>>, name: &str| {
            stream.recv_timeout(STREAM_EOF_GRACE).unwrap_or_else(|_| {
                panic!(
                    "runguard exited but its {name} stayed open: a process of the run is left \
                     ({})",
                    self.description
                )
            })
        };
        let stdout = collect(&self.stdout, "stdout");
        let stderr = String::from_utf8_lossy(&collect(&self.stderr, "stderr")).into_owned();
        let meta_requested = self.meta.is_some();
        let meta = self.meta.as_deref().and_then(read_meta);
        let json = self.json.as_deref().and_then(|path| {
            let text = std::fs::read_to_string(path).ok()?;
            Some(serde_json::from_str(&text).unwrap_or_else(|e| {
                panic!("JSON report {} does not parse: {e}\n{text}", path.display())
            }))
        });
        Outcome {
            status,
            stdout,
            stderr,
            meta,
            json,
            elapsed,
            meta_requested,
            description: self.description,
        }
    }
}

/// Everything one runguard invocation produced.
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// The meta file, when one was asked for and written.
    pub meta: Option<KeyValues>,
    /// The JSON report, when one was asked for and written.
    pub json: Option<serde_json::Value>,
    /// Wall time of the whole runguard process, as the caller sees it.
    pub elapsed: Duration,
    meta_requested: bool,
    description: String,
}

impl Outcome {
    /// runguard's exit status; fails the test when runguard itself died of a signal.
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("runguard itself was killed: {self}"))
    }

    pub fn meta(&self) -> &KeyValues {
        self.meta
            .as_ref()
            .unwrap_or_else(|| panic!("no meta file written: {self}"))
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The JSON report as the library's type (extra keys are allowed).
    pub fn report(&self) -> runner::report::Report {
        let json = self
            .json
            .clone()
            .unwrap_or_else(|| panic!("no JSON report written: {self}"));
        serde_json::from_value(json).unwrap_or_else(|e| panic!("JSON report is no Report: {e}"))
    }

    /// The run was carried out: no internal error, and the exit status is the meta exitcode.
    pub fn assert_ran(&self) {
        let meta = self.meta();
        assert_eq!(meta.get("internal-error"), None, "internal error: {self}");
        assert_ne!(self.code(), INTERNAL_ERROR_STATUS, "{self}");
        assert_eq!(i64::from(self.code()), meta.integer("exitcode"), "{self}");
    }

    /// The run ended normally with exit status `code`.
    pub fn assert_exit(&self, code: i32) {
        self.assert_ran();
        assert_eq!(self.code(), code, "{self}");
    }

    /// runguard refused or failed: exit status 255, `message` on stderr and, when a meta file
    /// was asked for, in its `internal-error` key.
    pub fn assert_internal_error(&self, message: &str) {
        assert_eq!(self.code(), INTERNAL_ERROR_STATUS, "{self}");
        assert!(
            self.stderr.contains(message),
            "stderr lacks {message:?}: {self}"
        );
        if self.meta_requested {
            let error = self.meta().require("internal-error");
            assert!(
                error.contains(message),
                "internal-error lacks {message:?}: {self}"
            );
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n  command: {}", self.description)?;
        writeln!(f, "  status: {} after {:?}", self.status, self.elapsed)?;
        writeln!(f, "  stderr: {}", self.stderr.trim_end())?;
        match &self.meta {
            Some(meta) => write!(f, "  meta:\n{meta}"),
            None => write!(f, "  meta: none"),
        }
    }
}

fn read_meta(path: &Path) -> Option<KeyValues> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        KeyValues::parse_meta(&text)
            .unwrap_or_else(|e| panic!("meta file {} does not parse: {e}\n{text}", path.display())),
    )
}

fn read_in_background(mut stream: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        // Close the pipe before reporting, so the caller never counts it as still open.
        drop(stream);
        let _ = sender.send(bytes);
    });
    receiver
}

fn describe(binary: &Path, args: &[OsString]) -> String {
    std::iter::once(binary.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}
