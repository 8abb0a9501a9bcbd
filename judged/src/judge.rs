//! A judging: build the output validator (if the problem has one), compile the submission,
//! run every test case in its own sandboxed step, validate, and give verdicts.
//!
//! Directories, all under one scratch directory removed at the end:
//! `build/` (owned by the run user while compiling, then handed back to us read-only so runs
//! cannot change the program), `validator/` (the same for the output validator), and per test
//! case `test-N/` (ours, world-readable: the output files, a copy of the input and answer for
//! the validator) with `run/` (the program's working directory) and `feedback/` (the
//! validator's) owned by the run user. Each test case's directory is removed when it is done.
//!
//! Confinement: compiles and test case runs go through a sandbox profile that shows them only
//! their own working directory, at the profile's work dir (`/work`), so the judge decides what
//! a step can read by what it puts there. A compile gets `build/` (the sources); a run gets
//! `run/`, holding hard links to the built program (ours and read-only) and nothing else: the
//! answers, the package and the other test cases' directories stay out of its sight, and the
//! test input comes in on stdin, opened by us. `{build}` in a language's commands is therefore
//! the profile's work dir. The output validator is the problem's own, trusted code: it runs
//! without a profile, from `validator/` by its host path.
//!
//! Diagnostics: every test case run is classified from its runguard report (`--activity`:
//! stalls, memory activity, throttling) into findings, kept with its result. A time-limit
//! verdict whose run has a finding that disturbs timing (`Kind::disturbs_timing`) cannot be
//! trusted: the test case is run again, up to `Options::rerun_disturbed` times, and the result
//! says how often; a verdict still disturbed after that keeps its findings for people to see.
//!
//! Host findings (`Options::host`, the host watcher of the daemon or `judged run`): each test
//! case run's interval (`CLOCK_MONOTONIC`, around the run and its validation) is matched
//! against the watcher's windows, and a disturbing finding of a window it overlaps counts as
//! one of the run's own.
//! Only a time-limit verdict is decided on them (run again or not), and it waits until the
//! window holding the run's end is closed, so that a stall late in the run is not missed: at
//! most one window, against a run that already took its time limit. (Closing the window early
//! instead would make the windows short, and the watcher's thresholds are totals per window:
//! short windows would hide the contention they are there to catch.) The other results decide
//! nothing on them and wait for nothing: when all test cases are done they are given the
//! findings of the windows closed by then, so a fast judging is not held for up to a window,
//! at the cost of not showing the findings of the window still open at its end.
//!
//! With [`Options::lanes`], each job thread's test case runs live in a run lane of its own
//! (runguard's `--cgroup-parent`), and the kernel's account of each run (D-state time per
//! stack, taskstats delays: [`KernelRun`]) is kept with its result and explains its
//! `dstate-io` finding.

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use runner::report::{Report, Termination};

use crate::default_validator::{self, Flags};
use crate::diagnostics::code_files::{code_files, program_on_host};
use crate::diagnostics::hostwatch::{monotonic_now, HostFinding, HostFindings, Interval};
use crate::diagnostics::lanes::{KernelRun, RunTracing};
use crate::diagnostics::run::{self, RunSample};
use crate::diagnostics::thresholds::RunThresholds;
use crate::diagnostics::Finding;
use crate::language::{Expansion, Language, Languages};
use crate::problem::{Problem, TestCase, Validation};
use crate::sandbox::{RunSpec, Sandbox, SandboxFailure, SandboxProfiles, StepLimits};
use crate::topology::cpulist::parse_cpu_list;
use crate::users::RunUser;
use crate::verdict::{self, Validated, Verdict};

/// Processes and threads of a step whose profile does not say (DOMjudge's default).
pub const DEFAULT_NPROC: u64 = 64;
/// How much of a compiler's or program's output is kept for people to read.
const SHOWN_OUTPUT_BYTES: u64 = 64 * 1024;
const MIB: u64 = 1024 * 1024;
/// Largest file a compile step may write (objects, the program): DOMjudge's default
/// `script_filesize_limit`. The problem's output limit caps the program's output, not its
/// executable: a linker writing a static Rust program outgrows 8 MiB.
const COMPILE_FILE_BYTES: u64 = 2560 * MIB;

pub struct Options {
    /// Test cases run at the same time.
    pub jobs: usize,
    /// Keep judging after the first test case that fails.
    pub all: bool,
    /// Where the scratch directory is made.
    pub scratch_parent: PathBuf,
    /// When a test case's run reaches its time limit while a finding says its timing was
    /// disturbed, run it again up to this many times.
    pub rerun_disturbed: u32,
    /// When a measurement becomes a finding.
    pub thresholds: RunThresholds,
    /// Pin every step of the judging to these CPUs (runguard's -P), like `1`; `None`: the
    /// host's CPUs.
    pub cpuset: Option<String>,
    /// Take every step's memory from these NUMA nodes (runguard's --cpuset-mems), like `0`;
    /// `None`: the kernel's choice.
    pub cpuset_mems: Option<String>,
    /// The host watcher's findings over each run (`None`: runs are judged by their own
    /// findings only).
    pub host: Option<Arc<dyn HostFindings>>,
    /// Where test case runs are measured by the kernel; `None`: not measured.
    pub lanes: Option<Lanes>,
}

/// The run lanes of a judging: job thread `t` runs its test cases in lane `first + t` of
/// `tracing` (one at a time, as a lane needs); threads past its last lane go unmeasured.
#[derive(Clone)]
pub struct Lanes {
    pub tracing: Arc<RunTracing>,
    pub first: usize,
}

/// One job thread's lane: the tracing and the lane's index.
type Lane<'a> = Option<(&'a RunTracing, usize, &'a [PathBuf])>;

/// Told about each test case as it starts and ends (the live progress display, the daemon's
/// events), and asked before each test case whether to stop.
pub trait Progress: Sync {
    fn started(&self, index: usize, test_case: &TestCase);
    fn finished(&self, index: usize, result: &TestResult);
    /// `true`: start no more test cases (the daemon's cancel); those running finish, the rest
    /// are skipped.
    fn cancelled(&self) -> bool {
        false
    }
}

/// A progress sink that shows nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn started(&self, _: usize, _: &TestCase) {}
    fn finished(&self, _: usize, _: &TestResult) {}
}

#[derive(Debug, Clone)]
pub struct Judgement {
    pub verdict: Verdict,
    /// The compiler's output when it failed (or warned).
    pub compile_output: String,
    /// In test case order; test cases not run (after a failure, without `--all`) are absent.
    pub tests: Vec<TestResult>,
    pub skipped: usize,
}

#[derive(Debug, Clone)]
pub struct TestResult {
    pub name: String,
    pub verdict: Verdict,
    /// The time limit the run had (the problem's times the language's factor).
    pub time_limit: Duration,
    /// `None` when the sandbox itself failed.
    pub report: Option<Report>,
    /// What explains the verdict: the validator's message, the program's stderr, or the
    /// sandbox's failure.
    pub message: String,
    /// What disturbed the (last) run's timing, if anything.
    pub findings: Vec<Finding>,
    /// The (last) run's interval, around the run and its validation (`CLOCK_MONOTONIC`).
    pub interval: Interval,
    /// The disturbing findings of the host windows the (last) run overlapped, each with its
    /// window (empty without a host watcher).
    pub host_findings: Vec<HostFinding>,
    /// Runs made again because a time-limit verdict came with a disturbing finding.
    pub reruns: u32,
    /// What the kernel told about the (last) run; `None` when it was not measured.
    pub kernel: Option<KernelRun>,
}

impl TestResult {
    /// A time-limit verdict that a finding says may not be the program's doing.
    pub fn disturbed_timelimit(&self) -> bool {
        self.verdict == Verdict::Timelimit
            && self
                .findings
                .iter()
                .chain(self.host_findings.iter().map(|host| &host.finding))
                .any(|finding| finding.kind.disturbs_timing())
    }
}

pub struct Judge<'a> {
    pub problem: &'a Problem,
    pub languages: &'a Languages,
    pub sandbox: &'a dyn Sandbox,
    /// What confines the submission's compile and runs.
    pub profiles: &'a SandboxProfiles,
    pub user: &'a RunUser,
    pub options: Options,
}

/// A compiled (or prepared) program: its build directory and source file names.
struct Built<'a> {
    language: &'a Language,
    dir: PathBuf,
    sources: Vec<String>,
}

enum BuildFailure {
    /// The compiler rejected the sources; its output.
    Rejected(String),
    Sandbox(SandboxFailure),
}

/// The output validator of a judging, ready to run.
enum Validator<'a> {
    Default(Flags),
    Custom {
        built: Built<'a>,
        flags: Vec<String>,
    },
}

impl Judge<'_> {
    pub fn judge(
        &self,
        language: &Language,
        sources: &[PathBuf],
        progress: &dyn Progress,
    ) -> anyhow::Result<Judgement> {
        let scratch = tempfile::Builder::new()
            .prefix("judged-")
            .tempdir_in(&self.options.scratch_parent)
            .with_context(|| {
                format!(
                    "cannot make a scratch directory in `{}'",
                    self.options.scratch_parent.display()
                )
            })?;
        set_mode(scratch.path(), 0o755)?;
        ensure_searchable(scratch.path(), self.user)?;
        let validator = self.prepare_validator(scratch.path())?;
        let built = match self.build(language, sources, &scratch.path().join("build")) {
            Ok(built) => built,
            Err(BuildFailure::Rejected(output)) => {
                return Ok(Judgement {
                    verdict: Verdict::CompileError,
                    compile_output: output,
                    tests: Vec::new(),
                    skipped: self.problem.test_cases.len(),
                })
            }
            Err(BuildFailure::Sandbox(failure)) => {
                return Ok(Judgement {
                    verdict: Verdict::JudgeError,
                    compile_output: format!("compilation could not be run: {failure}"),
                    tests: Vec::new(),
                    skipped: self.problem.test_cases.len(),
                })
            }
        };
        let results = self.run_test_cases(&built, &validator, scratch.path(), progress);
        let skipped = results.iter().filter(|r| r.is_none()).count();
        let mut tests: Vec<TestResult> = results.into_iter().flatten().collect();
        if let Some(host) = &self.options.host {
            // Time limits were given theirs, waiting, to decide on a rerun.
            for test in tests.iter_mut().filter(|t| t.verdict != Verdict::Timelimit) {
                test.host_findings = host.closed_over(test.interval);
            }
        }
        Ok(Judgement {
            verdict: verdict::overall(tests.iter().map(|t| &t.verdict)),
            compile_output: String::new(),
            tests,
            skipped,
        })
    }

    fn prepare_validator(&self, scratch: &Path) -> anyhow::Result<Validator<'_>> {
        match &self.problem.validation {
            Validation::Default { flags } => {
                Ok(Validator::Default(Flags::parse(flags).with_context(
                    || format!("`{}'", self.problem.dir.join("problem.yaml").display()),
                )?))
            }
            Validation::Custom { dir, flags } => {
                let (language, sources) = self.validator_sources(dir)?;
                match self.build(language, &sources, &scratch.join("validator")) {
                    Ok(built) => Ok(Validator::Custom {
                        built,
                        flags: flags.clone(),
                    }),
                    Err(BuildFailure::Rejected(output)) => Err(anyhow::anyhow!(
                        "output validator `{}' does not build:\n{output}",
                        dir.display()
                    )),
                    Err(BuildFailure::Sandbox(failure)) => Err(anyhow::anyhow!(
                        "output validator `{}' could not be built: {failure}",
                        dir.display()
                    )),
                }
            }
        }
    }

    /// The validator's language is that of its first source file (sorted by name) with a known
    /// extension; its sources are the files of that language.
    fn validator_sources(&self, dir: &Path) -> anyhow::Result<(&Language, Vec<PathBuf>)> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read output validator `{}'", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        let language = files
            .iter()
            .find_map(|file| self.languages.detect(file).ok())
            .with_context(|| {
                format!(
                    "output validator `{}' has no source file of a known language",
                    dir.display()
                )
            })?;
        language.check_toolchain()?;
        let sources = files
            .into_iter()
            .filter(|file| {
                file.extension()
                    .is_some_and(|ext| language.extensions.iter().any(|e| e.as_str() == ext))
            })
            .collect();
        Ok((language, sources))
    }

    /// Copy `sources` into `dir`, compile them there as the run user under the compile
    /// profile (which shows it `dir` only), then take the directory back so later runs can
    /// read but not change it.
    fn build<'l>(
        &self,
        language: &'l Language,
        sources: &[PathBuf],
        dir: &Path,
    ) -> Result<Built<'l>, BuildFailure> {
        let io = |what: &str, path: &Path, error: std::io::Error| {
            BuildFailure::Sandbox(SandboxFailure::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(error.kind(), format!("{what}: {error}")),
            })
        };
        std::fs::create_dir(dir).map_err(|e| io("create", dir, e))?;
        let mut names = Vec::new();
        for source in sources {
            let name = source
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = dir.join(&name);
            std::fs::copy(source, &target).map_err(|e| io("copy", source, e))?;
            set_mode(&target, 0o644).map_err(|e| io("chmod", &target, std::io::Error::other(e)))?;
            names.push(name);
        }
        let built = Built {
            language,
            dir: dir.to_path_buf(),
            sources: names,
        };
        if let Some(compile) = &language.compile {
            give(dir, self.user).map_err(|e| io("chown", dir, e))?;
            let limits = &self.problem.limits;
            let log = dir.with_extension("compile.log");
            let profile = &self.profiles.compile;
            let spec = RunSpec {
                argv: self
                    .expansion(&built, &profile.work_dir)
                    .expand(&compile.command),
                cwd: dir.to_path_buf(),
                profile: Some(profile.path.clone()),
                stdin: None,
                stdout: log.clone(),
                stderr: log.clone(),
                report: dir.with_extension("compile.json"),
                cgroup_parent: None,
                env: compile.env.clone().into_iter().collect(),
                limits: StepLimits {
                    file_bytes: COMPILE_FILE_BYTES,
                    ..StepLimits::with_time(
                        limits.compilation_time,
                        limits.compilation_memory_bytes + compile.extra_memory_mb * MIB,
                        limits.output_bytes.max(SHOWN_OUTPUT_BYTES),
                        compile.nproc.unwrap_or(DEFAULT_NPROC),
                    )
                },
            };
            create_output_file(&log).map_err(|e| io("create", &log, e))?;
            let report = self.run_step(spec).map_err(BuildFailure::Sandbox)?;
            let output = read_shown(&log);
            take_back(dir).map_err(|e| io("chown", dir, e))?;
            if let Some(why) = compile_failure(&report) {
                return Err(BuildFailure::Rejected(format!("{why}\n{output}")));
            }
        }
        Ok(built)
    }

    /// The placeholders for a step that sees `built`'s directory at `build`.
    fn expansion<'b>(&self, built: &'b Built, build: &'b Path) -> Expansion<'b> {
        Expansion {
            sources: &built.sources,
            build,
            memory_mb: self.problem.limits.memory_bytes / MIB,
        }
    }

    /// Every test case, `jobs` at a time. Without `--all`, test cases after the first failure
    /// are not started (`None`); earlier ones still finish, since the overall verdict is that
    /// of the first failure in order.
    fn run_test_cases(
        &self,
        program: &Built,
        validator: &Validator,
        scratch: &Path,
        progress: &dyn Progress,
    ) -> Vec<Option<TestResult>> {
        let cases = &self.problem.test_cases;
        let next = AtomicUsize::new(0);
        let first_failure = AtomicUsize::new(usize::MAX);
        let results: Mutex<Vec<Option<TestResult>>> = Mutex::new(vec![None; cases.len()]);
        let (next, first_failure, results_ref) = (&next, &first_failure, &results);
        // The same program runs every test case: its code files are found once.
        let code = match self.options.lanes {
            Some(_) => self.code_of(program),
            None => Vec::new(),
        };
        std::thread::scope(|scope| {
            for job in 0..self.options.jobs.max(1) {
                let lane = self.lane(job, &code);
                scope.spawn(move || loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index >= cases.len()
                        || (!self.options.all && index > first_failure.load(Ordering::SeqCst))
                        || progress.cancelled()
                    {
                        break;
                    }
                    progress.started(index, &cases[index]);
                    let result = self.run_test_case(index, program, validator, scratch, lane);
                    if result.verdict != Verdict::Correct {
                        first_failure.fetch_min(index, Ordering::SeqCst);
                    }
                    progress.finished(index, &result);
                    results_ref.lock().expect("a judging thread panicked")[index] = Some(result);
                });
            }
        });
        results.into_inner().expect("a judging thread panicked")
    }

    /// Job thread `job`'s run lane, if it has one.
    fn lane<'a>(&'a self, job: usize, code: &'a [PathBuf]) -> Lane<'a> {
        let lanes = self.options.lanes.as_ref()?;
        let lane = lanes.first + job;
        (lane < lanes.tracing.lane_count()).then_some((&*lanes.tracing, lane, code))
    }

    /// The files `program` is paged in from, as host paths: its command found in its own
    /// directory (which every test case's working directory links) or the run's PATH, with
    /// its interpreter and libraries; none if it is not found.
    fn code_of(&self, program: &Built) -> Vec<PathBuf> {
        let run = &program.language.run;
        let work_dir = &self.profiles.run.work_dir;
        let argv = self.expansion(program, work_dir).expand(&run.command);
        let search_path = run
            .env
            .get("PATH")
            .map_or(runner::plan::DEFAULT_PATH, String::as_str);
        argv.first()
            .and_then(|command| program_on_host(command, work_dir, &program.dir, search_path))
            .map(|program| code_files(Path::new("/"), &program))
            .unwrap_or_default()
    }

    fn run_test_case(
        &self,
        index: usize,
        program: &Built,
        validator: &Validator,
        scratch: &Path,
        lane: Lane<'_>,
    ) -> TestResult {
        let test_case = &self.problem.test_cases[index];
        let limits = &self.problem.limits;
        let time_limit = limits.time.mul_f64(program.language.time_factor);
        let dir = scratch.join(format!("test-{index}"));
        let mut reruns = 0;
        loop {
            let start = monotonic_now();
            let outcome =
                self.run_and_validate(test_case, program, validator, &dir, time_limit, lane);
            let interval = Interval {
                start,
                end: monotonic_now(),
            };
            // Clean up whatever happened; a failure to clean is not the program's fault.
            let _ = std::fs::remove_dir_all(&dir);
            let (verdict, report, message, kernel) = match outcome {
                Ok(result) => result,
                Err(failure) => (Verdict::JudgeError, None, failure.to_string(), None),
            };
            let mut findings = report.as_ref().map_or_else(Vec::new, |report| {
                run::classify(
                    &RunSample::of_report(report, self.allowed_cpus()),
                    &self.options.thresholds,
                )
            });
            let host_findings = match &self.options.host {
                Some(host) if verdict == Verdict::Timelimit => host.over(interval),
                _ => Vec::new(),
            };
            if let Some(kernel) = &kernel {
                kernel.explain(&mut findings, &self.options.thresholds);
            }
            let result = TestResult {
                name: test_case.name.clone(),
                verdict,
                time_limit,
                report,
                message,
                findings,
                interval,
                host_findings,
                reruns,
                kernel,
            };
            if !result.disturbed_timelimit() || reruns >= self.options.rerun_disturbed {
                return result;
            }
            reruns += 1;
        }
    }

    fn run_and_validate(
        &self,
        test_case: &TestCase,
        program: &Built,
        validator: &Validator,
        dir: &Path,
        time_limit: Duration,
        lane: Lane<'_>,
    ) -> Result<(Verdict, Option<Report>, String, Option<KernelRun>), SandboxFailure> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SandboxFailure::Io { path, source }
        };
        let run_dir = dir.join("run");
        std::fs::create_dir_all(&run_dir).map_err(io(&run_dir))?;
        set_mode(dir, 0o755).map_err(|e| SandboxFailure::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        // The program is all the run sees of the host: links, so no copying per test case;
        // they stay ours and read-only, so the run cannot change them for the next test case.
        link_tree(&program.dir, &run_dir).map_err(io(&run_dir))?;
        give(&run_dir, self.user).map_err(io(&run_dir))?;
        let stdout = dir.join("program.out");
        let stderr = dir.join("program.err");
        create_output_file(&stdout).map_err(io(&stdout))?;
        create_output_file(&stderr).map_err(io(&stderr))?;
        let run = &program.language.run;
        let limits = &self.problem.limits;
        let profile = &self.profiles.run;
        let spec = RunSpec {
            argv: self
                .expansion(program, &profile.work_dir)
                .expand(&run.command),
            cwd: run_dir,
            profile: Some(profile.path.clone()),
            stdin: Some(test_case.input.clone()),
            stdout: stdout.clone(),
            stderr: stderr.clone(),
            report: dir.join("program.json"),
            cgroup_parent: lane.map(|(tracing, lane, _)| tracing.lane_parent(lane).to_path_buf()),
            env: run.env.clone().into_iter().collect(),
            limits: StepLimits::with_time(
                time_limit,
                limits.memory_bytes + run.extra_memory_mb * MIB,
                limits.output_bytes,
                run.nproc.unwrap_or(DEFAULT_NPROC),
            ),
        };
        let (report, kernel) = match lane {
            Some((tracing, lane, code)) => {
                tracing.begin(lane, code);
                let report = self.run_step(spec);
                (report, Some(tracing.finish(lane)))
            }
            None => (self.run_step(spec), None),
        };
        let report = report?;
        if let Some(verdict) = verdict::from_run(&report) {
            let message = describe_run_end(&report, &read_shown(&stderr));
            return Ok((verdict, Some(report), message, kernel));
        }
        let output_was_empty = std::fs::metadata(&stdout).map_err(io(&stdout))?.len() == 0;
        let (validated, message) = self.validate(validator, test_case, dir, &stdout)?;
        let verdict = verdict::from_validation(&validated, output_was_empty);
        Ok((verdict, Some(report), message, kernel))
    }

    /// One sandboxed step, pinned where the judging is.
    fn run_step(&self, mut spec: RunSpec) -> Result<Report, SandboxFailure> {
        spec.limits.cpuset.clone_from(&self.options.cpuset);
        spec.limits
            .cpuset_mems
            .clone_from(&self.options.cpuset_mems);
        self.sandbox.run(&spec)
    }

    /// CPUs a test case run may use: its cpuset's, else the host's.
    fn allowed_cpus(&self) -> u32 {
        match self.options.cpuset.as_deref().map(parse_cpu_list) {
            Some(Ok(cpus)) => cpus.len() as u32,
            _ => std::thread::available_parallelism().map_or(1, |cpus| cpus.get() as u32),
        }
    }

    fn validate(
        &self,
        validator: &Validator,
        test_case: &TestCase,
        dir: &Path,
        team_output: &Path,
    ) -> Result<(Validated, String), SandboxFailure> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| SandboxFailure::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        match validator {
            Validator::Default(flags) => {
                let answer = read(&test_case.answer)?;
                let team = read(team_output)?;
                Ok(match default_validator::compare(&answer, &team, flags) {
                    default_validator::Outcome::Correct => (Validated::Accepted, String::new()),
                    default_validator::Outcome::Wrong(why) => (Validated::Rejected, why),
                })
            }
            Validator::Custom { built, flags } => {
                self.run_custom_validator(built, flags, test_case, dir, team_output)
            }
        }
    }

    /// `validator input answer feedback_dir [flags] < team_output`; 42 accepts, 43 rejects.
    ///
    /// No sandbox profile: the validator is the problem's trusted code and needs the answer,
    /// which it gets by host path. It runs as the run user all the same, after every process
    /// of the program is gone; the program's `run/` is still the run user's then, but nothing
    /// is read from it afterwards.
    fn run_custom_validator(
        &self,
        built: &Built,
        flags: &[String],
        test_case: &TestCase,
        dir: &Path,
        team_output: &Path,
    ) -> Result<(Validated, String), SandboxFailure> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SandboxFailure::Io { path, source }
        };
        // Copies the run user can read, whatever the permissions of the package.
        let input = dir.join("testdata.in");
        let answer = dir.join("testdata.ans");
        std::fs::copy(&test_case.input, &input).map_err(io(&input))?;
        std::fs::copy(&test_case.answer, &answer).map_err(io(&answer))?;
        for file in [&input, &answer, &team_output.to_path_buf()] {
            set_mode(file, 0o644).map_err(|e| SandboxFailure::Io {
                path: file.to_path_buf(),
                source: std::io::Error::other(e),
            })?;
        }
        let feedback = dir.join("feedback");
        std::fs::create_dir(&feedback).map_err(io(&feedback))?;
        give(&feedback, self.user).map_err(io(&feedback))?;
        let stdout = dir.join("validator.out");
        let stderr = dir.join("validator.err");
        create_output_file(&stdout).map_err(io(&stdout))?;
        create_output_file(&stderr).map_err(io(&stderr))?;
        let mut argv = self
            .expansion(built, &built.dir)
            .expand(&built.language.run.command);
        argv.extend([&input, &answer, &feedback].map(|p| p.to_string_lossy().into_owned()));
        argv.extend(flags.iter().cloned());
        let limits = &self.problem.limits;
        let run = &built.language.run;
        let spec = RunSpec {
            argv,
            cwd: feedback.clone(),
            profile: None,
            stdin: Some(team_output.to_path_buf()),
            stdout,
            stderr: stderr.clone(),
            report: dir.join("validator.json"),
            cgroup_parent: None,
            env: run.env.clone().into_iter().collect(),
            limits: StepLimits::with_time(
                limits.validation_time,
                limits.validation_memory_bytes + run.extra_memory_mb * MIB,
                limits.validation_output_bytes,
                run.nproc.unwrap_or(DEFAULT_NPROC),
            ),
        };
        let report = self.run_step(spec)?;
        let judge_message = read_shown(&feedback.join("judgemessage.txt"));
        // Its exit status only counts when it ended on its own, within its limits.
        let time = report.time_result;
        let within_limits = !(time.cpu_soft || time.any_hard()) && report.oom_kills == 0;
        Ok(match report.termination {
            Termination::Exited(42) if within_limits => (Validated::Accepted, judge_message),
            Termination::Exited(43) if within_limits => (Validated::Rejected, judge_message),
            _ => {
                let why = describe_run_end(&report, &read_shown(&stderr));
                (
                    Validated::Failed(why.clone()),
                    format!("output validator failed: {why}"),
                )
            }
        })
    }
}

/// Why a compile step failed, or `None` when it succeeded.
fn compile_failure(report: &Report) -> Option<String> {
    if report.time_result.any_hard() || report.time_result.cpu_soft {
        return Some("compilation took too long".into());
    }
    if report.oom_kills > 0 {
        return Some("compilation ran out of memory".into());
    }
    match report.termination {
        Termination::Exited(0) => None,
        Termination::Exited(code) => Some(format!("compiler exited with status {code}")),
        Termination::Signaled(signal) => Some(format!("compiler killed by signal {signal}")),
    }
}

/// How a run ended, for people: the exit or signal, then what it wrote on stderr.
fn describe_run_end(report: &Report, stderr: &str) -> String {
    let end = match report.termination {
        Termination::Exited(code) => format!("exited with status {code}"),
        Termination::Signaled(signal) => format!("killed by signal {signal}"),
    };
    if stderr.trim().is_empty() {
        end
    } else {
        format!("{end}; stderr: {}", stderr.trim())
    }
}

/// At most the first `SHOWN_OUTPUT_BYTES` of a file, as text; empty if it is missing.
fn read_shown(path: &Path) -> String {
    use std::io::Read;
    let mut bytes = Vec::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(SHOWN_OUTPUT_BYTES).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Output files are made by us before the step (runguard truncates them, keeping us owner).
fn create_output_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod `{}'", path.display()))
}

/// The run user must be able to reach the scratch directory (its programs and work dirs are
/// inside): every directory above it must be searchable by it. Otherwise every step fails in
/// ways that look like the submission's fault (a compiler that cannot write its output).
pub(crate) fn ensure_searchable(dir: &Path, user: &RunUser) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    for ancestor in dir.ancestors().skip(1) {
        let metadata = std::fs::metadata(ancestor)
            .with_context(|| format!("cannot inspect `{}'", ancestor.display()))?;
        let search_bit = if metadata.uid() == user.uid {
            0o100
        } else if metadata.gid() == user.gid {
            0o010
        } else {
            0o001
        };
        anyhow::ensure!(
            metadata.mode() & search_bit != 0,
            "the run user `{}' cannot reach the scratch directory `{}': `{}' has mode {:o}; \
             pass --scratch a directory every user can reach (e.g. /tmp)",
            user.name,
            dir.display(),
            ancestor.display(),
            metadata.mode() & 0o7777
        );
    }
    Ok(())
}

/// Hand a directory to the run user (it may write there during the step).
pub(crate) fn give(dir: &Path, user: &RunUser) -> std::io::Result<()> {
    chown(dir, Some(user.uid), Some(user.gid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
}

/// Recreate the tree of `from` (directories and regular files, as [`take_back`] leaves a build)
/// in the existing directory `to`, with hard links to its files.
fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir(&target)?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
            link_tree(&entry.path(), &target)?;
        } else {
            std::fs::hard_link(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Take a build directory back from the run user: everything becomes ours and read-only to
/// others, so the programs that run from it later cannot change it.
fn take_back(dir: &Path) -> std::io::Result<()> {
    let ours = std::fs::metadata(dir.parent().unwrap_or(dir))?;
    use std::os::unix::fs::MetadataExt;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path)?;
        if metadata.file_type().is_symlink() {
            std::fs::remove_file(&path)?;
            continue;
        }
        chown(&path, Some(ours.uid()), Some(ours.gid()))?;
        // Readable by all; executable by all where the owner could execute.
        let mode = metadata.permissions().mode() & 0o777;
        let mode = if mode & 0o100 != 0 || metadata.is_dir() {
            0o755
        } else {
            0o644
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::diagnostics::hostwatch::{disturbing_over, WindowSpan};
    use crate::diagnostics::thresholds::Thresholds;
    use crate::diagnostics::Kind;
    use crate::verdict::tests::clean_report;
    use runner::report::{Activity, Stalls};

    /// Plays the program: compile steps (no stdin) succeed unless `compile_fails`; runs get
    /// `behave(input)` → (report, stdout).
    struct FakeSandbox<F> {
        behave: F,
        compile_fails: bool,
    }

    impl<F: Fn(&str) -> (Report, String) + Sync> Sandbox for FakeSandbox<F> {
        fn run(&self, spec: &RunSpec) -> Result<Report, SandboxFailure> {
            let Some(stdin) = &spec.stdin else {
                if self.compile_fails {
                    std::fs::write(&spec.stdout, "sol.c:1: error: expected ';'").unwrap();
                    return Ok(Report {
                        termination: Termination::Exited(1),
                        ..clean_report()
                    });
                }
                return Ok(clean_report());
            };
            let input = std::fs::read_to_string(stdin).unwrap();
            let (report, output) = (self.behave)(&input);
            std::fs::write(&spec.stdout, output).unwrap();
            Ok(report)
        }
    }

    fn sum(input: &str) -> i64 {
        input
            .split_whitespace()
            .map(|t| t.parse::<i64>().unwrap())
            .sum()
    }

    /// Judge `problems/aplusb` with a fake sandbox; also checks the scratch space is left empty.
    fn judge_aplusb(sandbox: &dyn Sandbox, jobs: usize, all: bool) -> Judgement {
        judge_aplusb_with(sandbox, jobs, all, 1, None)
    }

    fn judge_aplusb_with(
        sandbox: &dyn Sandbox,
        jobs: usize,
        all: bool,
        rerun_disturbed: u32,
        cpuset: Option<&str>,
    ) -> Judgement {
        judge_aplusb_watched(sandbox, jobs, all, rerun_disturbed, cpuset, None)
    }

    fn judge_aplusb_watched(
        sandbox: &dyn Sandbox,
        jobs: usize,
        all: bool,
        rerun_disturbed: u32,
        cpuset: Option<&str>,
        host: Option<Arc<dyn HostFindings>>,
    ) -> Judgement {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let problem = Problem::load(&root.join("testdata/problems/aplusb")).unwrap();
        let languages = Languages::load_dir(&root.join("profiles/languages")).unwrap();
        let profiles = SandboxProfiles::load(&root.join("profiles/sandbox")).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let owner = std::fs::metadata(scratch.path()).unwrap();
        let user = RunUser {
            name: "test".into(),
            uid: owner.uid(),
            gid: owner.gid(),
        };
        let source = scratch.path().join("sol.c");
        std::fs::write(&source, "int main(){}").unwrap();
        let judge = Judge {
            problem: &problem,
            languages: &languages,
            sandbox,
            profiles: &profiles,
            user: &user,
            options: Options {
                jobs,
                all,
                scratch_parent: scratch.path().to_path_buf(),
                rerun_disturbed,
                thresholds: Thresholds::default().run,
                cpuset: cpuset.map(str::to_owned),
                cpuset_mems: cpuset.map(|_| "0".to_owned()),
                host,
                lanes: None,
            },
        };
        let language = languages.by_id("c").unwrap();
        let judgement = judge.judge(language, &[source], &Quiet).unwrap();
        let left: Vec<_> = std::fs::read_dir(scratch.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["sol.c"], "scratch directories left behind");
        judgement
    }

    /// What a step was given, as seen when it ran.
    #[derive(Debug)]
    struct SeenStep {
        profile: Option<PathBuf>,
        argv: Vec<String>,
        cpuset: Option<String>,
        cpuset_mems: Option<String>,
        /// Every path under its working directory, relative to it.
        visible: Vec<PathBuf>,
    }

    /// Records each step; compiles succeed and runs answer correctly.
    #[derive(Default)]
    struct Recording {
        compiles: Mutex<Vec<SeenStep>>,
        runs: Mutex<Vec<SeenStep>>,
    }

    fn tree(dir: &Path, below: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = below.join(path.file_name().unwrap());
            if path.is_dir() {
                tree(&path, &relative, found);
            }
            found.push(relative);
        }
    }

    impl Sandbox for Recording {
        fn run(&self, spec: &RunSpec) -> Result<Report, SandboxFailure> {
            let mut visible = Vec::new();
            tree(&spec.cwd, Path::new(""), &mut visible);
            let seen = SeenStep {
                profile: spec.profile.clone(),
                argv: spec.argv.clone(),
                cpuset: spec.limits.cpuset.clone(),
                cpuset_mems: spec.limits.cpuset_mems.clone(),
                visible,
            };
            let Some(stdin) = &spec.stdin else {
                self.compiles.lock().unwrap().push(seen);
                return Ok(clean_report());
            };
            self.runs.lock().unwrap().push(seen);
            let input = std::fs::read_to_string(stdin).unwrap();
            std::fs::write(&spec.stdout, format!("{}\n", sum(&input))).unwrap();
            Ok(clean_report())
        }
    }

    #[test]
    fn a_pinned_judging_pins_every_step() {
        let sandbox = Recording::default();
        let judgement = judge_aplusb_with(&sandbox, 2, true, 1, Some("1"));
        assert_eq!(judgement.verdict, Verdict::Correct);
        let steps: Vec<SeenStep> = [sandbox.compiles, sandbox.runs]
            .into_iter()
            .flat_map(|steps| steps.into_inner().unwrap())
            .collect();
        assert_eq!(steps.len(), 5, "a compile and four runs: {steps:?}");
        assert!(
            steps.iter().all(|step| step.cpuset.as_deref() == Some("1")
                && step.cpuset_mems.as_deref() == Some("0")),
            "{steps:?}"
        );
        let unpinned = Recording::default();
        judge_aplusb(&unpinned, 2, true);
        assert!(unpinned
            .runs
            .into_inner()
            .unwrap()
            .iter()
            .all(|step| step.cpuset.is_none() && step.cpuset_mems.is_none()));
    }

    #[test]
    fn steps_see_only_their_own_files_at_the_profiles_work_dir() {
        let sandbox = Recording::default();
        assert_eq!(judge_aplusb(&sandbox, 2, true).verdict, Verdict::Correct);
        let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/sandbox");
        let compiles = sandbox.compiles.into_inner().unwrap();
        let [compile] = compiles.as_slice() else {
            panic!("one compile expected: {compiles:?}");
        };
        assert_eq!(compile.profile, Some(profiles.join("compile.toml")));
        assert!(
            compile
                .argv
                .ends_with(&["-o", "/work/program", "sol.c", "-lm"].map(String::from)),
            "{compile:?}"
        );
        assert_eq!(compile.visible, [Path::new("sol.c")]);
        let runs = sandbox.runs.into_inner().unwrap();
        assert_eq!(runs.len(), 4);
        let run_profile = profiles.join("default.toml");
        for run in runs {
            assert_eq!(run.profile.as_deref(), Some(run_profile.as_path()));
            assert_eq!(run.argv, ["/work/program"]);
            // The fake compile leaves the sources only: they are the whole build.
            assert_eq!(run.visible, [Path::new("sol.c")], "{run:?}");
        }
    }

    #[test]
    fn correct_program_is_correct_on_every_test_case() {
        let sandbox = FakeSandbox {
            behave: |input: &str| (clean_report(), format!("{}\n", sum(input))),
            compile_fails: false,
        };
        let judgement = judge_aplusb(&sandbox, 2, false);
        assert_eq!(judgement.verdict, Verdict::Correct);
        assert_eq!(judgement.tests.len(), 4);
        assert!(judgement
            .tests
            .iter()
            .all(|t| t.verdict == Verdict::Correct));
    }

    /// A run killed at its CPU time limit, with nothing else to say.
    fn timed_out() -> Report {
        let mut report = clean_report();
        report.time_result.cpu_hard = true;
        report.termination = Termination::Signaled(9);
        report
    }

    /// Times out on secret/01 (input `10 20`), correct elsewhere.
    fn slow_on_secret_01(input: &str) -> (Report, String) {
        if sum(input) == 30 {
            return (timed_out(), String::new());
        }
        (clean_report(), format!("{}\n", sum(input)))
    }

    #[test]
    fn judging_stops_after_the_first_failure_without_all() {
        let sandbox = FakeSandbox {
            behave: slow_on_secret_01,
            compile_fails: false,
        };
        let judgement = judge_aplusb(&sandbox, 1, false);
        assert_eq!(judgement.verdict, Verdict::Timelimit);
        let names: Vec<_> = judgement.tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["sample/1", "secret/01"]);
        assert_eq!(judgement.skipped, 2);
    }

    #[test]
    fn all_runs_every_test_case_and_keeps_the_first_failure() {
        let sandbox = FakeSandbox {
            behave: slow_on_secret_01,
            compile_fails: false,
        };
        let judgement = judge_aplusb(&sandbox, 2, true);
        assert_eq!(judgement.verdict, Verdict::Timelimit);
        assert_eq!(judgement.tests.len(), 4);
        assert_eq!(judgement.skipped, 0);
        assert_eq!(judgement.tests[3].verdict, Verdict::Correct);
    }

    /// A time-limit run whose wall time went to waiting for a CPU held by others.
    fn delayed_by_others() -> Report {
        let mut report = clean_report();
        report.time_result.wall_hard = true;
        report.termination = Termination::Signaled(9);
        report.cpu_time = Duration::from_millis(400);
        report.wall_time = Duration::from_millis(2000);
        report.activity = Some(Activity {
            stalls: Some(Stalls {
                cpu: Duration::from_millis(1500),
                ..Stalls::default()
            }),
            memory: None,
        });
        report
    }

    /// secret/01 (input `10 20`) hits its time limit on its first run only, with the report
    /// `first`.
    struct DisturbedOnce {
        runs_of_secret_01: AtomicUsize,
        first: Report,
    }

    impl DisturbedOnce {
        fn new(first: Report) -> DisturbedOnce {
            DisturbedOnce {
                runs_of_secret_01: AtomicUsize::new(0),
                first,
            }
        }
    }

    impl Sandbox for DisturbedOnce {
        fn run(&self, spec: &RunSpec) -> Result<Report, SandboxFailure> {
            let Some(stdin) = &spec.stdin else {
                return Ok(clean_report());
            };
            let input = std::fs::read_to_string(stdin).unwrap();
            if sum(&input) == 30 && self.runs_of_secret_01.fetch_add(1, Ordering::SeqCst) == 0 {
                return Ok(self.first.clone());
            }
            std::fs::write(&spec.stdout, format!("{}\n", sum(&input))).unwrap();
            Ok(clean_report())
        }
    }

    #[test]
    fn a_disturbed_time_limit_is_run_again_and_the_rerun_decides() {
        let sandbox = DisturbedOnce::new(delayed_by_others());
        let judgement = judge_aplusb_with(&sandbox, 1, true, 1, None);
        assert_eq!(judgement.verdict, Verdict::Correct);
        let secret = &judgement.tests[1];
        assert_eq!(secret.name, "secret/01");
        assert_eq!((secret.verdict, secret.reruns), (Verdict::Correct, 1));
        assert!(secret.findings.is_empty(), "{:?}", secret.findings);
        assert_eq!(sandbox.runs_of_secret_01.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn without_reruns_a_disturbed_time_limit_is_kept_and_marked() {
        let sandbox = DisturbedOnce::new(delayed_by_others());
        let judgement = judge_aplusb_with(&sandbox, 1, true, 0, None);
        assert_eq!(judgement.verdict, Verdict::Timelimit);
        let secret = &judgement.tests[1];
        assert_eq!(secret.reruns, 0);
        assert!(secret.disturbed_timelimit(), "{secret:?}");
        let kinds: Vec<String> = secret.findings.iter().map(|f| f.kind.name()).collect();
        assert!(kinds.contains(&"runqueue-delay".to_owned()), "{kinds:?}");
    }

    /// A host watcher with one closed window, holding `kind`, over `window`; what it was
    /// asked, and whether waiting.
    struct FakeHost {
        window: WindowSpan,
        kind: Kind,
        asked: Mutex<Vec<(Interval, bool)>>,
    }

    impl FakeHost {
        fn new(window: Interval, kind: Kind) -> Arc<FakeHost> {
            Arc::new(FakeHost {
                window: WindowSpan {
                    window: 7,
                    monotonic: window,
                    wall_start: 0.0,
                    wall_end: 0.0,
                },
                kind,
                asked: Mutex::default(),
            })
        }
    }

    impl FakeHost {
        fn answer(&self, run: Interval, waiting: bool) -> Vec<HostFinding> {
            self.asked.lock().unwrap().push((run, waiting));
            let finding = Finding {
                kind: self.kind,
                summary: "the host was busy".to_owned(),
                evidence: Default::default(),
                remedy: "wait".to_owned(),
            };
            let findings = [finding];
            disturbing_over([(&self.window, &findings[..])], run)
        }
    }

    impl HostFindings for FakeHost {
        fn over(&self, run: Interval) -> Vec<HostFinding> {
            self.answer(run, true)
        }

        fn closed_over(&self, run: Interval) -> Vec<HostFinding> {
            self.answer(run, false)
        }
    }

    /// From now on, for a day.
    fn from_now() -> Interval {
        let now = monotonic_now();
        Interval {
            start: now,
            end: now + Duration::from_secs(86_400),
        }
    }

    #[test]
    fn a_time_limit_in_a_window_with_a_disturbing_host_finding_is_run_again() {
        let host = FakeHost::new(from_now(), Kind::IpcNsTeardown);
        let sandbox = DisturbedOnce::new(timed_out());
        let judgement = judge_aplusb_watched(&sandbox, 1, true, 1, None, Some(host.clone()));
        assert_eq!(judgement.verdict, Verdict::Correct);
        let secret = &judgement.tests[1];
        assert_eq!((secret.verdict, secret.reruns), (Verdict::Correct, 1));
        assert!(secret.findings.is_empty(), "{:?}", secret.findings);
        assert_eq!(sandbox.runs_of_secret_01.load(Ordering::SeqCst), 2);
        // Every result carries the window's finding, the rerun's too.
        for test in &judgement.tests {
            let kinds: Vec<(u64, Kind)> = test
                .host_findings
                .iter()
                .map(|h| (h.window.window, h.finding.kind))
                .collect();
            assert_eq!(kinds, [(7, Kind::IpcNsTeardown)], "{}", test.name);
        }
        // Asked once per run, with the run's own interval: the time limit at once and waiting
        // for its window, the others after the last test case and not waiting.
        let asked = host.asked.lock().unwrap();
        let waiting: Vec<bool> = asked.iter().map(|(_, waiting)| *waiting).collect();
        assert_eq!(waiting, [true, false, false, false, false], "{asked:?}");
        assert!(asked.iter().all(|(run, _)| run.start <= run.end));
    }

    #[test]
    fn a_time_limit_outside_the_windows_findings_is_kept() {
        // A window that closed long before the judging, and one now that only saw dying
        // cgroups (which do not stretch a run).
        let long_ago = Interval {
            start: Duration::ZERO,
            end: monotonic_now() - Duration::from_millis(1),
        };
        for host in [
            FakeHost::new(long_ago, Kind::IpcNsTeardown),
            FakeHost::new(from_now(), Kind::DyingCgroups),
        ] {
            let sandbox = DisturbedOnce::new(timed_out());
            let judgement = judge_aplusb_watched(&sandbox, 1, true, 1, None, Some(host));
            assert_eq!(judgement.verdict, Verdict::Timelimit);
            let secret = &judgement.tests[1];
            assert_eq!((secret.verdict, secret.reruns), (Verdict::Timelimit, 0));
            assert!(secret.host_findings.is_empty(), "{secret:?}");
            assert!(!secret.disturbed_timelimit());
        }
    }

    #[test]
    fn an_undisturbed_time_limit_is_not_run_again() {
        let sandbox = FakeSandbox {
            behave: slow_on_secret_01,
            compile_fails: false,
        };
        let judgement = judge_aplusb_with(&sandbox, 1, true, 3, None);
        let secret = &judgement.tests[1];
        assert_eq!((secret.verdict, secret.reruns), (Verdict::Timelimit, 0));
        assert!(!secret.disturbed_timelimit());
    }

    #[test]
    fn empty_output_is_no_output_and_wrong_output_is_wrong_answer() {
        let silent = FakeSandbox {
            behave: |_: &str| (clean_report(), String::new()),
            compile_fails: false,
        };
        assert_eq!(judge_aplusb(&silent, 1, false).verdict, Verdict::NoOutput);
        let off_by_one = FakeSandbox {
            behave: |input: &str| (clean_report(), format!("{}\n", sum(input) + 1)),
            compile_fails: false,
        };
        let judgement = judge_aplusb(&off_by_one, 1, false);
        assert_eq!(judgement.verdict, Verdict::WrongAnswer);
        assert!(judgement.tests[0].message.contains("\"3\""));
    }

    #[test]
    fn scratch_below_a_private_directory_is_refused_naming_it() {
        let private = tempfile::tempdir().unwrap();
        std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let nobody = RunUser {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
        };
        let scratch = private.path().join("scratch");
        let message = ensure_searchable(&scratch, &nobody)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(&format!("`{}' has mode 700", private.path().display())),
            "{message}"
        );
        std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        ensure_searchable(&scratch, &nobody).unwrap();
    }

    #[test]
    fn compile_error_shows_the_compiler_output() {
        let sandbox = FakeSandbox {
            behave: |_: &str| panic!("nothing runs after a compile error"),
            compile_fails: true,
        };
        let judgement = judge_aplusb(&sandbox, 1, false);
        assert_eq!(judgement.verdict, Verdict::CompileError);
        assert!(judgement.compile_output.contains("expected ';'"));
        assert!(judgement.tests.is_empty());
    }
}
