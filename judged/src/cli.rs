//! The command line: argument parsing (clap) and the `run` subcommand's top level.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::diagnostics::hostwatch::HostFindings;
use crate::diagnostics::hostwatcher::{self, HostWatcher};
use crate::diagnostics::lanes::{CgroupMounts, RunTracing};
use crate::diagnostics::thresholds::Thresholds;
use crate::judge::{Judge, Lanes, Options, Progress, Quiet};
use crate::language::Languages;
use crate::output::{self, LiveProgress};
use crate::problem::Problem;
use crate::sandbox::{self, Runguard, SandboxProfiles};
use crate::users;

#[derive(Debug, Parser)]
#[command(
    name = "judged",
    version,
    about = "Judge host for programming contests"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Judge a submission against a problem package.
    #[command(after_long_help = RUN_HELP)]
    Run(RunArgs),
    /// Check this host before a contest: CPU, memory, kernel, cgroups, tracing.
    #[command(after_long_help = crate::doctor::DOCTOR_HELP)]
    Doctor(crate::doctor::DoctorArgs),
    /// Run one command in a sandbox with every per-run diagnostic on; report what disturbed it.
    #[command(after_long_help = crate::diagnose::DIAGNOSE_HELP)]
    Diagnose(crate::diagnose::DiagnoseArgs),
    /// Print the CPU topology and where the workers go: one per physical core, by NUMA node.
    #[command(after_long_help = crate::topology::TOPOLOGY_HELP)]
    Topology(crate::topology::TopologyArgs),
    /// Watch the host: workqueue latency, kernel lock contention (eBPF), dying cgroups, PSI.
    #[command(after_long_help = crate::watch::WATCH_HELP)]
    Watch(crate::watch::WatchArgs),
    /// Run the judging daemon: an HTTP API, a durable queue and results in SQLite or PostgreSQL.
    #[command(after_long_help = crate::serve::SERVE_HELP)]
    Serve(crate::serve::ServeArgs),
}

const RUN_HELP: &str = "\
Judges one submission the way a DOMjudge judgehost does and prints the verdict.

Examples:
  sudo judged run testdata/problems/aplusb testdata/problems/aplusb/submissions/correct.c
  sudo judged run PROBLEM Main.java Util.java --json --all
  sudo judged run PROBLEM solution.txt --language python3 --user judge-run

Problem package (Kattis / ICPC format):
  PROBLEM/problem.yaml     limits.time_limit in seconds (or a legacy PROBLEM/.timelimit file);
                           limits.memory in MiB (default 2048), limits.output in MiB (default
                           8); validation: default (validator_flags: case_sensitive,
                           space_change_sensitive, float_tolerance E, ...) or custom
  PROBLEM/data/sample/, PROBLEM/data/secret/
                           test cases as NAME.in with NAME.ans, judged samples first, each
                           directory in name order
  PROBLEM/output_validators/NAME/ (or output_validator/)
                           the custom validator's sources; it is compiled first and run as
                           `validator INPUT ANSWER FEEDBACK_DIR [FLAGS] < OUTPUT', exit 42
                           accepts, 43 rejects, anything else is a judge-error

Profiles: data files in the profiles directory (--profiles DIR, else the `profiles'
directory of the first ancestor of the judged executable that has one with `sandbox/' and
`languages/' in it: the source tree for target/*/judged). PROFILES/languages/ (or --languages)
has one TOML profile per language (compile and run commands, time factor, extra memory); the
language comes from --language or the first source's extension. A language whose compiler or
interpreter is missing is refused (exit status 2). PROFILES/sandbox/compile.toml confines
compiling and PROFILES/sandbox/default.toml each test case run (see Sandbox).

Sandbox: each step (compiling, each test case, the output validator) is one `runguard'
process, run as an unprivileged run user: --user, else `domjudge-run' if it exists, else
`nobody' (with a note on stderr). judged must run as root. Compiling and test case runs get
runguard's --profile (a sandbox profile that must have a [filesystem]): a read-only root of
system directories, a private /tmp, no network, and as the only host directory the step's own
work dir, at /work: the sources for a compile, hard links to the compiled program for a run
(the test input arrives on stdin). So a submission sees neither the answers nor the other
test cases; `{build}' in a language's commands is /work. Output validators are the problem's
trusted code and run without a profile. runguard accepts only the users its
config names (built in: domjudge-run and domjudge-run-*), so judged gives every step a config of
its own (--config, a temporary file): the site's config (/etc/judged/runguard.toml, when it
exists) with valid_users narrowed to exactly the run user. Test case runs get the problem's
time limit times the language's factor as soft CPU limit, killed at that plus max(1 s, 10 %)
of CPU or wall time; the memory limit covers the whole run (cgroup), and stdout is cut at the
output limit. Scratch directories (judged-*) under --scratch are removed at the end.

Verdicts (DOMjudge's names), decided in this order for a test case: timelimit, memory-limit
(the kernel's OOM killer stopped the run), run-error (non-zero exit or a signal),
output-limit, then the validator: correct, wrong-answer, no-output (wrong and empty).
compile-error and judge-error concern the whole submission. The overall verdict is that of the
first test case, in order, that is not correct; later ones are skipped unless --all.

Output: a table (a live line per test case on a terminal), or with --json one object:
verdict, problem, language, compile_output, skipped, host_watch ({window_s, ebpf, psi}, or
null with --no-host-watch), and tests[] with name, verdict, time_limit, cpu_time, wall_time
(seconds), memory_bytes, exit_code or signal, message and diagnostics (setup_time, oom_kills,
stdout_bytes, stderr_bytes, throttled_periods), kernel (dstate_ms and dstate_top_stacks,
delays, code_pages {evicted_pages, read_pages, files_watched, files[]}, or
dstate_unavailable / delays_unavailable / code_pages_unavailable), findings, host_findings
([{window, finding}]) and reruns.

Diagnostics: every test case run is measured for what else held it back (waiting for a CPU,
for IO, in memory reclaim, CFS throttling, evicted page cache), and what crosses the
thresholds (profiles/diagnostics.toml, or --thresholds) is shown with the test case as a
finding (kind, cause, evidence, remedy; in the JSON too). With eBPF (root, a cgroup2 mount,
judged built with clang) each run's time in D state is summed per kernel stack, in the kernel,
for the run's tasks only: each job runs its test cases under a cgroup parent of its own
(judged-PID-N below the runguard config's cgroup_parent); the text shows it for runs that
slept in D state, and a dstate-io finding names the top stacks. Where delay accounting is on
(kernel.task_delayacct=1) the runs' block IO, swap-in, reclaim and thrashing delays come from
taskstats. With eBPF the page-cache pages of each run's own code (the program, its ELF
interpreter and the libraries it needs) evicted and read in while it ran are counted
(filemap tracepoints); enough of them evicted (code_pages_evicted_min) is a
page-cache-thrash finding. Without these, the results say why. A time limit reached while such a
finding says the timing was disturbed is not trusted: the test case runs again, up to
--rerun-disturbed times (default 1), and the result says how often it was re-run.

Host watcher: while it judges, judged watches the host as `judged serve' does ([diagnostics]
host_watch) and `judged watch' shows: windows of --host-window seconds (default 1) with
workqueue latency and kernel lock contention (eBPF), PSI triggers and the host's pressure,
throttling of judged's own cgroup. A test case run overlapping a window with a finding that
disturbs timing (ipc-ns-teardown, cgroup-lock-contention, workqueue-latency, host-pressure,
cfs-throttling) counts as disturbed: a time limit waits for the window of its run's end, then
runs again as above, and its result shows the host findings with their windows; the other
results show those of the windows closed when the judging ends. It starts (its eBPF
programs loaded) before the first step, so that every run overlaps its windows, and says on
stderr what it could set up. --no-host-watch turns it off.

Exit status:
  0  correct
  1  rejected: wrong-answer, no-output, timelimit, memory-limit, run-error or output-limit
  2  nothing judged: bad command line, problem package, source, language or toolchain,
     run user, runguard binary; the message names the thing at fault
  3  compile-error
  4  judge-error: the sandbox or the output validator failed; do not trust the verdict
  128+N  stopped by signal N (SIGTERM 143, SIGINT 130, SIGHUP 129): the runs going on were
     stopped, no other started, their cgroups and the scratch directories removed

Environment: JUDGED_RUNGUARD (the runguard binary), JUDGED_PROFILES (the profiles directory),
JUDGED_LANGUAGES (the language profiles directory), JUDGED_RUN_USER (the run user).";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The problem package directory.
    pub problem: PathBuf,
    /// Source files of the submission; the first is the main file (Java: its class).
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// Language id (a profile's file name: c, cpp, python3, java, rust ...); default: from the
    /// first source's extension.
    #[arg(long, short)]
    pub language: Option<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Test cases run at the same time (default: one per core).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Keep judging after the first test case that fails.
    #[arg(long)]
    pub all: bool,
    /// The runguard binary (default: beside judged).
    #[arg(long, env = "JUDGED_RUNGUARD")]
    pub runguard: Option<PathBuf>,
    /// The profiles directory, with sandbox/ and languages/ (default: the `profiles' directory
    /// of the source tree judged was built in, found upwards from the executable).
    #[arg(long, env = "JUDGED_PROFILES")]
    pub profiles: Option<PathBuf>,
    /// Directory of language profiles (default: PROFILES/languages).
    #[arg(long, env = "JUDGED_LANGUAGES")]
    pub languages: Option<PathBuf>,
    /// The unprivileged user programs run as (default: domjudge-run if it exists, else nobody).
    #[arg(long, env = "JUDGED_RUN_USER")]
    pub user: Option<String>,
    /// Where scratch directories are made (removed afterwards).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    pub scratch: PathBuf,
    /// Run a test case again, up to N times, when it reached its time limit while a finding
    /// says its timing was disturbed (0: never).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub rerun_disturbed: u32,
    /// Thresholds file of the diagnostics (default: the embedded profiles/diagnostics.toml).
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    /// Pin every step (compile, test case runs, validator) to these CPUs, like `1` or `2-3`
    /// (runguard's -P), as a judgehost gives each judging a core of its own; see `judged
    /// topology` for the cores to use.
    #[arg(long, short = 'P', value_name = "LIST", value_parser = cpu_list)]
    pub cpuset: Option<String>,
    /// Seconds per window of the host watcher (0.1 to 60, default 1): a time limit waits for
    /// the window holding its run's end before it is decided (see Host watcher).
    #[arg(long, value_name = "SECONDS", value_parser = host_window)]
    pub host_window: Option<Duration>,
    /// Do not watch the host: runs are judged on their own findings only.
    #[arg(long, conflicts_with = "host_window")]
    pub no_host_watch: bool,
}

/// A CPU list as the kernel writes it, checked (runguard checks the CPUs are online).
fn cpu_list(text: &str) -> Result<String, String> {
    crate::topology::cpulist::parse_cpu_list(text).map(|_| text.to_owned())
}

/// A host window's length in seconds, checked.
fn host_window(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}' is not a number of seconds"))?;
    hostwatcher::window_length(seconds)
}

/// Run the command; the exit status on success.
pub fn execute(cli: Cli) -> anyhow::Result<u8> {
    // The commands that start runs or attach programs stop and remove them on SIGTERM,
    // SIGINT and SIGHUP (the daemon drains on its own signals instead).
    if matches!(
        cli.command,
        Command::Run(_) | Command::Diagnose(_) | Command::Watch(_)
    ) {
        crate::interrupt::install()?;
    }
    match cli.command {
        Command::Run(args) => run(args),
        Command::Doctor(args) => crate::doctor::execute(args),
        Command::Diagnose(args) => crate::diagnose::execute(args),
        Command::Topology(args) => crate::topology::execute(args),
        Command::Watch(args) => crate::watch::execute(args),
        Command::Serve(args) => crate::serve::execute(args),
    }
}

fn run(args: RunArgs) -> anyhow::Result<u8> {
    // Everything the caller named is checked before anything runs (exit status 2).
    let problem = Problem::load(&args.problem)?;
    for source in &args.sources {
        anyhow::ensure!(
            source.is_file(),
            "source file `{}' not found",
            source.display()
        );
    }
    let profiles_dir = match &args.profiles {
        Some(dir) => dir.clone(),
        None => default_profiles_dir()?,
    };
    let sandbox_profiles = SandboxProfiles::load(&profiles_dir.join("sandbox"))?;
    let languages_dir = match &args.languages {
        Some(dir) => dir.clone(),
        None => profiles_dir.join("languages"),
    };
    let languages = Languages::load_dir(&languages_dir)?;
    let language = match &args.language {
        Some(id) => languages.by_id(id)?,
        None => languages.detect(&args.sources[0])?,
    };
    language.check_toolchain()?;
    let (user, note) = users::resolve(args.user.as_deref(), Path::new("/"))?;
    if let Some(note) = note {
        eprintln!("{note}");
    }
    let runguard = Runguard::new(
        sandbox::locate_runguard(args.runguard.as_deref())?,
        user.clone(),
        &args.scratch,
    )?;
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let tracing = RunTracing::for_process(
        CgroupMounts::read().map_err(anyhow::Error::msg)?,
        runguard.cgroup_parent(),
        jobs,
    );
    let thresholds = Thresholds::load_or_default(args.thresholds.as_deref())?;
    let host = (!args.no_host_watch).then(|| {
        HostWatcher::new(
            "judged run",
            args.host_window
                .unwrap_or(Duration::from_secs_f64(hostwatcher::DEFAULT_WINDOW_SECS)),
            0,
        )
    });
    let judge = Judge {
        problem: &problem,
        languages: &languages,
        sandbox: &runguard,
        profiles: &sandbox_profiles,
        user: &user,
        options: Options {
            jobs,
            all: args.all,
            scratch_parent: args.scratch.clone(),
            rerun_disturbed: args.rerun_disturbed,
            thresholds: thresholds.run,
            cpuset: args.cpuset.clone(),
            cpuset_mems: None,
            host: host.clone().map(|host| -> Arc<dyn HostFindings> { host }),
            lanes: Some(Lanes {
                tracing: Arc::new(tracing),
                first: 0,
            }),
        },
    };
    let live;
    let progress: &dyn Progress = if !args.json && std::io::stderr().is_terminal() {
        live = LiveProgress::default();
        &live
    } else {
        &Quiet
    };
    // For the judging's duration: started before the first step, so that every run overlaps
    // its windows, and stopped (its last window closed) before the output.
    let watching = host
        .as_ref()
        .map(|host| {
            let running = host.start(thresholds.host, |_| {});
            host.wait_started();
            running
        })
        .transpose()
        .context("cannot start the host watcher's thread")?;
    let judgement = judge.judge(language, &args.sources, progress);
    drop(watching);
    // Stopped: runguard stopped the runs going on, the rest did not start; nothing to show.
    crate::interrupt::check()?;
    let judgement = judgement?;
    let host_watch = host.as_ref().map(|host| host.watch_state());
    if args.json {
        let json = output::to_json(&judgement, &problem.name, &language.id, host_watch.as_ref());
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!(
            "{}",
            output::summary(&judgement, &problem.name, &language.id)
        );
    }
    Ok(judgement.verdict.exit_status())
}

/// `profiles` in the first ancestor of the executable that has one with both kinds of
/// profiles (the source tree for `target/debug/judged`).
pub(crate) fn default_profiles_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find our own executable")?;
    find_profiles_dir(&exe).with_context(|| {
        format!(
            "no profiles directory (with sandbox/ and languages/) above `{}': pass \
             --profiles DIR",
            exe.display()
        )
    })
}

fn find_profiles_dir(exe: &Path) -> Option<PathBuf> {
    exe.ancestors()
        .map(|dir| dir.join("profiles"))
        .find(|dir| dir.join("sandbox").is_dir() && dir.join("languages").is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_arguments_parse() {
        let cli = Cli::try_parse_from([
            "judged",
            "run",
            "prob",
            "a.cpp",
            "b.cpp",
            "--json",
            "--jobs",
            "3",
            "--all",
            "--language",
            "cpp",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not parsed as run");
        };
        assert_eq!(args.problem, Path::new("prob"));
        assert_eq!(args.sources.len(), 2);
        assert!(args.json && args.all);
        assert_eq!(args.jobs, Some(3));
        assert_eq!(args.language.as_deref(), Some("cpp"));
    }

    #[test]
    fn the_profiles_of_the_source_tree_are_found_above_the_executable() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let found = find_profiles_dir(&root.join("target/debug/judged")).unwrap();
        assert_eq!(found, root.join("profiles"));
    }

    #[test]
    fn the_host_watcher_is_on_unless_turned_off() {
        let run = |extra: &[&str]| {
            let cli = Cli::try_parse_from(["judged", "run", "prob", "a.c"].iter().chain(extra));
            let Command::Run(args) = cli.unwrap().command else {
                panic!("not parsed as run");
            };
            (args.host_window, args.no_host_watch)
        };
        assert_eq!(run(&[]), (None, false));
        assert_eq!(
            run(&["--host-window", "0.25"]),
            (Some(Duration::from_millis(250)), false)
        );
        assert_eq!(run(&["--no-host-watch"]), (None, true));
    }

    #[test]
    fn a_source_is_required() {
        assert!(Cli::try_parse_from(["judged", "run", "prob"]).is_err());
    }

    #[test]
    fn help_documents_exit_statuses() {
        let help = <Cli as clap::CommandFactory>::command()
            .find_subcommand_mut("run")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("Exit status") && help.contains("compile-error"));
        assert!(help.contains("valid_users") && help.contains("Examples"));
    }
}
