//! `runguard`: DOMjudge's runguard command line on top of the judged sandbox.
//! See `runguard --help` for the manual and `runner::runguard` for how the pieces fit.

use std::ffi::OsString;
use std::fs::File;
use std::path::Path;
use std::process::exit;

use anyhow::Context;
use runner::profile::Profile;
use runner::runguard::cli::{self, Options, Parsed, Verbosity};
use runner::runguard::config::Config;
use runner::runguard::host::System;
use runner::runguard::resolve::resolve;
use runner::runguard::{help, json, meta, report_file, warnings};

/// runguard's exit status when it failed itself, whatever the command did.
const INTERNAL_ERROR: i32 = 255;
/// `RUNGUARD_BACKEND=warm` carries the run out in a warm sandbox built for it (the black-box
/// suite runs again this way, so that warm runs keep every promise of one-shot runs).
const BACKEND_VARIABLE: &str = "RUNGUARD_BACKEND";

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let status = match cli::parse(&args) {
        Ok(Parsed::Help) => {
            print!("{}", help::manual());
            0
        }
        Ok(Parsed::Version) => {
            print!("{}", help::version());
            0
        }
        Ok(Parsed::ClearNetnsPool { config }) => clear_netns_pool(config.as_deref()),
        Ok(Parsed::Run(options)) => run(&options),
        Err(err) => {
            // Report into the meta file if one was named before the bad option.
            let mut reports = Reports::default();
            if let Some(path) = &err.meta {
                reports.meta = report_file::open(path, &unfinished_meta()).ok();
            }
            report_failure(&err.error.into(), &mut reports);
            INTERNAL_ERROR
        }
    };
    exit(status)
}

/// The files runguard reports into. Opened before anything else can fail, as DOMjudge does,
/// so every failure after that still reaches the meta file.
#[derive(Default)]
struct Reports {
    meta: Option<File>,
    json: Option<File>,
    /// The meta file of a finished run, kept in front of a later `internal-error` line.
    finished_meta: String,
}

impl Reports {
    fn open(&mut self, options: &Options) -> anyhow::Result<()> {
        if let Some(path) = &options.meta {
            self.meta = Some(report_file::open(path, &unfinished_meta())?);
        }
        if let Some(path) = &options.json {
            let unfinished = json::render_internal_error(UNFINISHED);
            self.json = Some(report_file::open(path, &unfinished)?);
        }
        Ok(())
    }
}

/// What a report file says while the run is on: what a runguard killed before it reported
/// leaves (it makes a judgehost look, instead of reading an earlier run's report).
const UNFINISHED: &str = "runguard was stopped before it finished the run";

fn unfinished_meta() -> String {
    meta::render_internal_error(UNFINISHED, "")
}

/// Write a report over an opened report file.
fn overwrite(file: &File, text: &str, path: Option<&Path>) -> anyhow::Result<()> {
    let name = path.map_or_else(String::new, |path| path.display().to_string());
    report_file::overwrite(file, text).with_context(|| format!("cannot write to file `{name}'"))
}

/// `--clear-netns-pool`: unpin the pooled network namespaces no run holds.
fn clear_netns_pool(config: Option<&Path>) -> i32 {
    let cleared = Config::load(config)
        .map_err(anyhow::Error::from)
        .and_then(|config| match config.netns_pool() {
            Some(pool) => Ok(Some((
                runner::sys::netns_pool::clear(&pool)?,
                pool.dir.display().to_string(),
            ))),
            None => Ok(None),
        });
    match cleared {
        Ok(Some((cleared, dir))) => {
            println!(
                "runguard: netns pool {dir}: {} namespaces unpinned, {} in use by runs",
                cleared.unpinned, cleared.in_use
            );
            0
        }
        Ok(None) => {
            println!("runguard: the netns pool is off (netns_pool_size = 0)");
            0
        }
        Err(err) => {
            eprintln!("runguard: error: {err:#}");
            INTERNAL_ERROR
        }
    }
}

fn run(options: &Options) -> i32 {
    let mut reports = Reports::default();
    match run_and_report(options, &mut reports) {
        Ok(status) => status,
        Err(err) => {
            report_failure(&err, &mut reports);
            INTERNAL_ERROR
        }
    }
}

fn run_and_report(options: &Options, reports: &mut Reports) -> anyhow::Result<i32> {
    reports.open(options)?;
    let config = Config::load(options.config.as_deref())?;
    let mut invocation = resolve(options, &config, &System::default())?;
    if let Some(path) = &options.profile {
        apply_profile(path, options, &mut invocation.plan)?;
    }
    if options.verbosity == Verbosity::Verbose {
        eprintln!("runguard: plan: {:#?}", invocation.plan);
    }

    let report = match std::env::var(BACKEND_VARIABLE) {
        Ok(backend) if backend == "warm" => warm::run(&invocation.plan)?,
        _ => runner::launch::run(&invocation.plan)?,
    };

    let settings = &invocation.settings;
    if options.verbosity != Verbosity::Quiet {
        for warning in warnings::warnings(&report) {
            eprintln!("runguard: warning: {warning}");
        }
    }
    reports.finished_meta = meta::render(&report, settings);
    if let Some(file) = &mut reports.json {
        overwrite(
            file,
            &json::render(&report, settings),
            settings.json_path.as_deref(),
        )?;
    }
    if let Some(file) = &mut reports.meta {
        overwrite(file, &reports.finished_meta, settings.meta_path.as_deref())?;
    }
    Ok(report.termination.exit_code())
}

/// A sandbox profile fills in namespaces, filesystem, environment and seccomp; the work dir is
/// the directory runguard was started in. `--namespaces` on the command line still wins.
fn apply_profile(
    path: &Path,
    options: &Options,
    plan: &mut runner::plan::Plan,
) -> anyhow::Result<()> {
    let mut profile = Profile::load(path)?;
    if let Some(mut namespaces) = options.namespaces {
        for name in runner::plan::Namespaces::NAMES {
            let on = *namespaces
                .get_mut(name)
                .expect("NAMES are known namespaces");
            profile.switch_namespace(name, on)?;
        }
    }
    let work_dir = std::env::current_dir().context("cannot find the current directory")?;
    profile.apply(plan, &work_dir)?;
    Ok(())
}

/// Tell the caller runguard failed: on stderr, and as `internal-error` in the meta file (which
/// makes a judgehost disable itself) and in the JSON report.
fn report_failure(err: &anyhow::Error, reports: &mut Reports) {
    let message = format!("{err:#}");
    eprintln!("runguard: error: {message}");
    // Best effort: there is nobody left to tell if these writes fail too.
    if let Some(file) = &mut reports.meta {
        let text = meta::render_internal_error(&message, &reports.finished_meta);
        let _ = overwrite(file, &text, None);
    }
    if let Some(file) = &mut reports.json {
        let _ = overwrite(file, &json::render_internal_error(&message), None);
    }
}

/// The warm backend: the same plan, run by a keeper in a sandbox built for it alone.
mod warm {
    use std::path::PathBuf;

    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use runner::plan::{OutputTarget, Plan};
    use runner::report::Report;
    use runner::sys::signals::StopSignals;
    use runner::warm::{default_keeper_binary, Request, Sandbox, SandboxSpec};

    pub fn run(plan: &Plan) -> anyhow::Result<Report> {
        let mut plan = plan.clone();
        // The keeper cannot write into our stdout and stderr: streams we inherit go through
        // private files, copied out after the run. Our stdin it opens through /proc.
        let mut copied = Vec::new();
        for (target, stream) in [
            (&mut plan.stdout, Stream::Out),
            (&mut plan.stderr, Stream::Err),
        ] {
            if *target == OutputTarget::Inherit {
                let file = std::env::temp_dir()
                    .join(format!("runguard-{}-{stream:?}", std::process::id()));
                *target = OutputTarget::File(file.clone());
                copied.push((file, stream));
            }
        }
        let request = Request {
            stdin: Some(PathBuf::from(format!("/proc/{}/fd/0", std::process::id()))),
            files: Vec::new(),
            plan,
        };
        let outcome = run_request(&request);
        for (file, stream) in copied {
            if let Ok(mut output) = std::fs::File::open(&file) {
                let _ = match stream {
                    Stream::Out => std::io::copy(&mut output, &mut std::io::stdout()),
                    Stream::Err => std::io::copy(&mut output, &mut std::io::stderr()),
                };
            }
            let _ = std::fs::remove_file(&file);
        }
        outcome
    }

    #[derive(Debug, Clone, Copy)]
    enum Stream {
        Out,
        Err,
    }

    fn run_request(request: &Request) -> anyhow::Result<Report> {
        let mut sandbox = Sandbox::create(
            SandboxSpec::of_plan(&request.plan, None),
            &default_keeper_binary(),
        )?;
        if let Some(keeper) = sandbox.keeper_pid() {
            forward_stop_signals(keeper)?;
        }
        let report = sandbox.run(request);
        sandbox.destroy()?;
        Ok(report?)
    }

    /// Our SIGTERM (SIGINT, SIGHUP) goes to the keeper, which stops the run and reports it as
    /// `signal`, as a one-shot runguard does. (A keeper rebuilt after a failure is not
    /// followed: runguard runs one plan.)
    fn forward_stop_signals(keeper: i32) -> anyhow::Result<()> {
        let signals = StopSignals::block()?;
        std::thread::spawn(move || loop {
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&signals.fd),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE);
            if let Some(signal) = signals.received().and_then(|s| Signal::try_from(s).ok()) {
                let _ = kill(Pid::from_raw(keeper), signal);
            }
        });
        Ok(())
    }
}
