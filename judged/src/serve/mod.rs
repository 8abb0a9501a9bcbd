//! `judged serve`: the judging daemon.
//!
//! Shape (fixed; see ARCHITECTURE.md):
//!
//! 1. Before any runtime exists: the config is read and validated ([`config`]), the worker
//!    slots planned from the host's topology, the problems (the config's, and the uploads
//!    kept in the data directory: [`problems`]), the API's tokens ([`auth`]), languages,
//!    sandbox profiles, run user and runguard are loaded, the data directory is locked (one
//!    daemon per data directory), the database opened ([`store`]; other hosts' uploads
//!    installed from it) and the
//!    judgings this host left `judging` are put back in the queue (crash recovery), as are
//!    any host's whose lease ran out, and the listening socket is bound. Any failure here exits with status 2 naming the thing.
//! 2. The runtime runs three things under one cancellation signal (SIGTERM, SIGINT, or the
//!    server failing): the HTTP API ([`api`]), the dispatcher ([`worker`]: the worker slots
//!    of [`slots`], placed by topology, bound the judgings run at once and pin their steps),
//!    and the judging tasks it spawns on a tracker; beside
//!    them the heartbeat renews the leases of the judgings running here (until the drain
//!    ends) and reclaims expired ones.
//! 3. Drain: on the signal the server stops accepting (in-flight requests finish, event
//!    streams end), the dispatcher claims nothing more, and the running judgings get
//!    `shutdown_grace_secs` to finish; those still running then are handed back to the queue
//!    and run again from the start on the next start.

pub mod api;
pub mod auth;
pub mod config;
pub mod hostwatch;
pub mod hub;
pub mod metrics;
pub mod problems;
pub mod slots;
pub mod store;
pub mod upload;
pub mod warm;
pub mod worker;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::diagnostics::lanes::{CgroupMounts, RunTracing};
use crate::diagnostics::thresholds::Thresholds;
use crate::language::Languages;
use crate::problem::Problem;
use crate::sandbox::{self, Runguard, SandboxProfiles};
use crate::users;
use config::{Config, Overrides, Placement, SandboxKind, Settings};
use slots::{Slot, SlotPool};
use store::{PostgresStore, SqliteStore, Store};
use worker::{Daemon, JudgeEnv};

pub const SERVE_HELP: &str = "\
Runs the judging daemon: judgings are submitted over HTTP, queued in an embedded SQLite
database under the data directory, judged by the workers exactly as `judged run' judges, and
their results kept there. A daemon killed mid-judging loses nothing: on its next start the
judgings it had claimed run again from the start, and each is recorded exactly once. With
[database] url, several daemons (one host_id each) share one PostgreSQL queue: a claim is a
lease renewed by a heartbeat, and a daemon that dies has its judgings reclaimed by the others
once its leases run out; a submission on one host wakes the idle others at once (LISTEN/NOTIFY).
Problems come from package directories ([problems] dirs) or are uploaded as .zip archives
(PUT /problems/ID), kept under the data directory and registered again at each start.

Examples:
  sudo judged serve --config /etc/judged/serve.toml
  judged serve --config serve.toml --check-config
  sudo judged serve --problem testdata/problems/aplusb --data-dir /tmp/judged

Config (TOML, every key optional; unknown keys are refused, errors name the key):
  listen = \"127.0.0.1:8080\"          the API's address
  data_dir = \"/var/lib/judged\"       holds judged.db (queue and results), judged.lock and
                                     problems/ (the uploaded problems)
  max_source_bytes = 262144          all files of a submission together
  shutdown_grace_secs = 30           how long a shutdown waits for running judgings
  host_id = \"HOSTNAME\"               this host's name in the queue
  all_test_cases = false             keep judging after the first failing test case
  rerun_disturbed = 1                run a time limit again (up to N times) when a finding
                                     says its timing was disturbed
  scratch_dir = \"DATA_DIR/scratch\"   where judgings make their scratch directories; the
                                     default one is emptied of leftovers at each start
  runguard, profiles, languages, run_user
                                     as judged run's --runguard, --profiles, --languages,
                                     --user
  [workers]                          one judging per worker at a time (`workers = N' is
                                     short for count = N)
  placement = \"topology\"             one worker per free physical core as `judged topology'
                                     plans it: every step of its judgings pinned to the
                                     core (runguard --cpuset) and its memory to the core's
                                     NUMA node (--cpuset-mems); \"none\": unpinned
  count                              topology: at most N (default one per free core, taken
                                     from the nodes in turn); none: exactly N (default 1)
  housekeeping = \"0\"                 CPUs no worker gets (whole cores; default the first
                                     core, `none': no housekeeping), as judged topology's
  smt = false                        SMT siblings get workers of their own
  sandbox = \"oneshot\"                every step a runguard process; \"warm\": each worker
                                     runs its test cases in a warm sandbox of its own (a
                                     keeper, built once with the worker's cpuset, reset
                                     between runs); compiles and validators stay one-shot
  [problems]
  dirs = [\"/srv/problems/aplusb\"]    problem packages; a problem's id is its directory name
  max_archive_bytes = 268435456      an uploaded archive at most (256 MiB)
  max_unpacked_bytes = 1073741824    what it may unpack to (1 GiB, bytes really written)
  max_entries = 10000                files and directories it may hold
  [database]
  url = \"postgres://USER@HOST/DB\"   the queue in PostgreSQL, shared by several hosts (each
                                     with a host_id of its own); default: SQLite in DATA_DIR
  lease_secs = 30                    a claim holds this long without a heartbeat (renewed
                                     every third of it); a dead host's judgings are reclaimed
                                     by the others after it
  [api]
  tokens_file = \"/etc/judged/tokens\" bearer tokens, one `ROLE TOKEN' a line (submit: judgings
                                     and GET /problems; admin: also uploads); default: none,
                                     every request allowed (a warning when listen is not
                                     loopback)
  public = [\"health\", \"metrics\"]     routes open without a token when tokens are on
  [diagnostics]
  host_watch = true                  watch the host (as `judged watch' does, eBPF where it
                                     can): a test case run overlapping a window with a
                                     finding that disturbs timing (ipc-ns-teardown,
                                     cgroup-lock-contention, workqueue-latency,
                                     host-pressure) counts as disturbed, so a time limit is
                                     run again (rerun_disturbed); its result shows them
  host_window = 1                    seconds per window (0.1 to 60); a time limit waits for
                                     the window of its run's end before it is decided; the
                                     other results show the windows closed when the judging
                                     ends, waiting for none
Relative paths are relative to the config file. Without --config, /etc/judged/serve.toml is
read when it exists, else the defaults apply. --listen, --data-dir and --problem override.

API (JSON; a refused request gets 4xx and {\"error\": \"...\"} naming the field at fault; with
[api] tokens_file every request but the public ones needs `Authorization: Bearer TOKEN', else
401, or 403 for an upload with a submit token):
  POST /judgings                {\"problem\": ID, \"language\": ID (default: from the first
                                file's extension), \"files\": [{\"name\", \"content\"}]} -> 201 {\"id\"}
  GET  /judgings/ID             status (queued, judging, done, cancelled, failed), verdict,
                                tests[] (name, verdict, time_limit, cpu_time, wall_time,
                                memory_bytes, message, kernel: dstate_ms with
                                dstate_top_stacks, delays, or why not, as judged run --json;
                                reruns, host_findings[] ({window {window,
                                monotonic_start_s, monotonic_end_s, wall_start, wall_end},
                                finding {kind, summary, evidence, remedy}}); while it runs,
                                only its time limits' host_findings are in)
  GET  /judgings?status=S&limit=N
  POST /judgings/ID/cancel      queued: cancelled at once; judging: stops at its next test case
  GET  /judgings/ID/events      server-sent events: status, one test per test case, final
  GET  /problems                {\"problems\": [{\"id\", \"name\", \"origin\" (config, upload),
                                \"test_cases\", \"time_limit\"}]}
  PUT  /problems/ID             body: a .zip of a problem package (problem.yaml at its top,
                                or in its one top-level directory) -> 201, or 200 when it
                                replaced an upload; refused: 400 (unsafe entry: absolute
                                path, `..', symlink, device, a name twice; not a zip), 413
                                (a limit above), 422 (not a valid package), 409 (judgings of
                                it queued or running on any host, or a problem of [problems]
                                dirs). Nothing of a refused archive stays on disk. With
                                PostgreSQL the archive is kept in the database too, and
                                every host installs it (at once, and at its start).
  GET  /health                  200 {\"status\": \"ok\"}, 503 while draining
  GET  /workers                 the worker slots: index, cpus, mems, state (idle, busy),
                                judging (the id it runs)
  GET  /host?limit=N            the host watcher: enabled, window_s, ebpf (and ebpf_state,
                                one line), psi_triggers {registered[], unavailable[]} (and
                                psi_state), stopped, windows[] (newest N, default 60, of the
                                last 30 minutes: window, monotonic_start_s,
                                monotonic_end_s, wall_start, wall_end, window_s, host
                                {dying_cgroups, mqueue_inodes, pressure_some_ms}, findings[])
  GET  /metrics                 Prometheus text: queue depth, judgings by status, workers by
                                state and per slot (worker_busy{worker, cpus, mems}),
                                test case runs and verdicts, run CPU, wall and
                                wall-minus-CPU histograms, queue notifications heard,
                                host watcher findings by kind (host_findings_total{kind})

Signals: SIGTERM or SIGINT stop taking work and drain (see shutdown_grace_secs).

Exit status: 0 after a clean shutdown (or a valid --check-config), 2 when nothing started
(bad config, problem (configured or uploaded), tokens file, language, profiles, run user,
runguard, database, busy address or data directory; the message names it).";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The config file (default: /etc/judged/serve.toml when it exists, else the defaults).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Validate the config and everything it names, print a summary, and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Listen on this address instead of the config's `listen' (port 0: any free port).
    #[arg(long)]
    pub listen: Option<String>,
    /// Keep the database here instead of the config's `data_dir'.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also register this problem package (repeatable).
    #[arg(long = "problem", value_name = "DIR")]
    pub problems: Vec<PathBuf>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn settings(args: &ServeArgs) -> anyhow::Result<Settings> {
    let path = match &args.config {
        Some(path) => Some(path.clone()),
        None => Some(PathBuf::from(config::DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
    };
    let file = match &path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let overrides = Overrides {
        listen: args.listen.clone(),
        data_dir: args.data_dir.clone(),
        problems: args.problems.clone(),
    };
    Ok(file.validate(path.as_deref(), &overrides, &hostname())?)
}

/// The problems, languages and profiles the settings name.
struct Loaded {
    problems: HashMap<String, Problem>,
    languages: Languages,
    available: BTreeSet<String>,
    profiles: SandboxProfiles,
    tokens: Option<auth::Tokens>,
}

fn load(settings: &Settings) -> anyhow::Result<Loaded> {
    let shown = settings.source.as_ref().map_or_else(
        || "(no config file)".to_owned(),
        |p| p.display().to_string(),
    );
    let mut problems = HashMap::new();
    for (id, dir) in &settings.problems {
        let problem = Problem::load(dir)
            .with_context(|| format!("problem `{id}' (`{}', from `{shown}')", dir.display()))?;
        problems.insert(id.clone(), problem);
    }
    let profiles_dir = match &settings.profiles {
        Some(dir) => dir.clone(),
        None => crate::cli::default_profiles_dir()?,
    };
    let profiles = SandboxProfiles::load(&profiles_dir.join("sandbox"))?;
    let languages_dir = settings
        .languages
        .clone()
        .unwrap_or_else(|| profiles_dir.join("languages"));
    let languages = Languages::load_dir(&languages_dir)?;
    let available = languages
        .ids()
        .filter(|id| {
            languages
                .by_id(id)
                .is_ok_and(|l| l.check_toolchain().is_ok())
        })
        .map(str::to_owned)
        .collect();
    let tokens = match &settings.api.tokens_file {
        Some(path) => Some(auth::Tokens::load(path)?),
        None => None,
    };
    Ok(Loaded {
        problems,
        languages,
        available,
        profiles,
        tokens,
    })
}

pub fn execute(args: ServeArgs) -> anyhow::Result<u8> {
    let settings = settings(&args)?;
    let slots = slots::plan(&settings.workers, || {
        Ok(crate::topology::sysfs::read(Path::new("/"))?)
    })
    .context(
        "cannot place the workers by topology ([workers]; `judged topology' shows the plan, \
         placement = \"none\" runs them unpinned)",
    )?;
    let loaded = load(&settings)?;
    let runguard_binary = sandbox::locate_runguard(settings.runguard.as_deref())?;
    let (user, note) = users::resolve(settings.run_user.as_deref(), Path::new("/"))?;
    if args.check_config {
        let mut ids: Vec<&String> = loaded.problems.keys().collect();
        ids.sort();
        println!(
            "config OK: {}\n  listen {}\n  database {}\n  workers {}, max_source_bytes {}, \
             shutdown grace {} s, host id {}\n  problems: {}\n  languages installed: {}\n  \
             run user {}, runguard {}\n  host watcher: {}\n{}",
            settings
                .source
                .as_ref()
                .map_or_else(|| "(defaults)".to_owned(), |p| p.display().to_string()),
            settings.listen,
            settings.database_shown(),
            slots.len(),
            settings.max_source_bytes,
            settings.shutdown_grace.as_secs(),
            settings.host_id,
            ids.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            loaded
                .available
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            user.name,
            runguard_binary.display(),
            settings.host_window.map_or_else(
                || "off".to_owned(),
                |window| format!("{} s windows", window.as_secs_f64())
            ),
            shown_slots(&settings.workers, &slots),
        );
        return Ok(0);
    }
    if let Some(note) = note {
        eprintln!("{note}");
    }
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot make the data directory `{}'",
            settings.data_dir.display()
        )
    })?;
    // One daemon per data directory: the kernel drops the lock when the process dies, even
    // by kill -9, so a crash never leaves it stuck.
    let lock_path = settings.data_dir.join("judged.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot create `{}'", lock_path.display()))?;
    lock.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another judged serve uses the data directory `{}' (`{}' is locked)",
            settings.data_dir.display(),
            lock_path.display()
        )
    })?;
    prepare_scratch(&settings)?;
    let problems = problems::Problems::fixed(loaded.problems)
        .with_uploads(&settings.data_dir.join("problems"), settings.uploads)?;
    // Checked once here rather than failing every judging.
    crate::judge::ensure_searchable(&settings.scratch_dir.join("judged-x"), &user)
        .context("scratch_dir (default DATA_DIR/scratch) must be reachable by the run user")?;
    let runguard = Runguard::new(runguard_binary, user.clone(), &settings.scratch_dir)?;
    let warm = match settings.workers.sandbox {
        SandboxKind::Oneshot => Vec::new(),
        SandboxKind::Warm => {
            let keeper = runner::warm::default_keeper_binary();
            slots
                .iter()
                .map(|slot| {
                    warm::WarmSandbox::new(
                        &keeper,
                        &loaded.profiles,
                        &runguard,
                        settings
                            .scratch_dir
                            .join(format!("warm-worker-{}", slot.index)),
                    )
                })
                .collect::<anyhow::Result<_>>()
                .context("[workers] sandbox = \"warm\"")?
        }
    };
    // One run lane per slot: the kernel's account of each test case run (D state, delays).
    let tracing = Arc::new(RunTracing::for_process(
        CgroupMounts::read().map_err(anyhow::Error::msg)?,
        runguard.cgroup_parent(),
        slots.len(),
    ));
    if let Some(reason) = tracing.dstate_unavailable() {
        eprintln!("judged serve: D-state time of test case runs not measured: {reason}");
    }
    let store: Arc<dyn Store> = match &settings.database_url {
        Some(url) => {
            Arc::new(PostgresStore::open(url, &settings.host_id)?.with_lease(settings.lease))
        }
        None => Arc::new(SqliteStore::open(&settings.database())?.with_lease(settings.lease)),
    };
    let recovered = store.recover(&settings.host_id)?;
    if recovered.requeued + recovered.cancelled > 0 {
        eprintln!(
            "judged serve: recovered {} interrupted judging(s) into the queue, {} cancelled",
            recovered.requeued, recovered.cancelled
        );
    }
    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("cannot listen on {} (listen)", settings.listen))?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let slots = SlotPool::new(slots);
    let host = settings.host_window.map(hostwatch::watcher);
    let daemon = Arc::new(Daemon {
        env: JudgeEnv {
            problems,
            languages: loaded.languages,
            available: loaded.available,
            runguard,
            profiles: loaded.profiles,
            user,
            scratch: settings.scratch_dir.clone(),
            all_test_cases: settings.all_test_cases,
            rerun_disturbed: settings.rerun_disturbed,
            thresholds: Thresholds::default().run,
            warm,
            tracing,
        },
        host: host.clone(),
        store,
        hub: hub::Hub::default(),
        metrics: metrics::Metrics::new(slots.clone()),
        host_id: settings.host_id.clone(),
        slots,
        max_source_bytes: settings.max_source_bytes,
        lease: settings.lease,
        wake: tokio::sync::Notify::new(),
        shutdown: CancellationToken::new(),
    });
    // Problems other hosts uploaded (PostgreSQL) and this one lacks.
    daemon.env.problems.sync(daemon.store.as_ref());
    // Other hosts' submissions (PostgreSQL NOTIFY) wake the dispatcher at once, and their
    // uploads are installed. Weak: the store's listener must not keep the daemon (and so the
    // store) alive.
    let weak = Arc::downgrade(&daemon);
    daemon.store.watch(Box::new(move |notice| {
        let Some(daemon) = weak.upgrade() else {
            return;
        };
        match notice {
            store::Notice::Queued => {
                daemon.metrics.queue_notifications.inc();
                daemon.wake.notify_one();
            }
            store::Notice::Problems => {
                daemon.env.problems.sync(daemon.store.as_ref());
            }
        }
    }));
    // Other hosts' judgings whose lease ran out while no daemon watched.
    worker::reclaim_expired(&daemon);
    // The host watcher's thread, until the drain is over (judgings finishing in the grace
    // period still get their windows).
    let host_running = match &host {
        Some(host) => Some(
            hostwatch::start(
                host,
                Thresholds::default().host,
                daemon.metrics.host_findings.clone(),
            )
            .context("cannot start the host watcher's thread")?,
        ),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("judged-serve")
        .build()
        .context("cannot start the async runtime")?;
    // Before the daemon says it listens: from then on SIGTERM drains it, never kills it.
    let stop_signals = register_stop_signals(&runtime);
    let auth = Arc::new(auth::Auth::new(&settings.api, loaded.tokens));
    if !auth.is_on() && !address.ip().is_loopback() {
        eprintln!(
            "judged serve: warning: listening on {address}, not a loopback address, without \
             [api] tokens_file: anyone who reaches it can submit, cancel and upload problems"
        );
    }
    if daemon.env.problems.is_empty() {
        eprintln!("judged serve: no problems yet: upload one with PUT /problems/ID");
    }
    eprintln!(
        "judged serve: listening on http://{address} ({} problem(s), {} {} worker(s) placed by \
         {}, database {}, {})",
        daemon.env.problems.len(),
        daemon.slots.len(),
        match settings.workers.sandbox {
            SandboxKind::Oneshot => "one-shot",
            SandboxKind::Warm => "warm",
        },
        match settings.workers.placement {
            Placement::Topology => "topology",
            Placement::None => "nothing (unpinned)",
        },
        settings.database_shown(),
        if auth.is_on() {
            "bearer tokens required"
        } else {
            "no authentication"
        }
    );
    // Kept out here: the store (a PostgreSQL client runs a runtime of its own) must not be
    // dropped on the runtime's threads.
    let kept = daemon.clone();
    let result = runtime.block_on(run(
        daemon,
        auth,
        listener,
        stop_signals,
        settings.shutdown_grace,
    ));
    // Blocking threads of judgings handed back may still wait on a runguard step: do not
    // wait for them, the queue has them.
    runtime.shutdown_timeout(Duration::from_secs(1));
    // It closes its last window and detaches its eBPF programs on the way out.
    drop(host_running);
    drop(kept);
    drop(lock);
    result.map(|()| 0)
}

/// The slots for `--check-config`: one line each, where its steps run.
fn shown_slots(workers: &config::WorkerSettings, slots: &[Slot]) -> String {
    let mut out = format!(
        "  {} workers placed by {}:",
        match workers.sandbox {
            SandboxKind::Oneshot => "one-shot",
            SandboxKind::Warm => "warm",
        },
        match workers.placement {
            Placement::Topology => "topology (cpuset.cpus, cpuset.mems of every step)",
            Placement::None => "nothing: unpinned",
        }
    );
    for slot in slots {
        out.push_str(&format!(
            "\n    worker {}: cpus {}, mems {}",
            slot.index,
            slot.cpus.as_deref().unwrap_or("any"),
            slot.mems.as_deref().unwrap_or("any")
        ));
    }
    out
}

/// Make the scratch directory; when it is the daemon's own, remove what a killed daemon left
/// there (we hold the data directory's lock, so no other daemon uses it).
fn prepare_scratch(settings: &Settings) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let scratch = &settings.scratch_dir;
    std::fs::create_dir_all(scratch)
        .with_context(|| format!("cannot make the scratch directory `{}'", scratch.display()))?;
    // A daemon killed with SIGKILL could not remove its warm sandboxes' groups.
    let groups = warm::remove_leftover_cgroups(scratch)?;
    if groups > 0 {
        eprintln!(
            "judged serve: removed {groups} cgroup director(ies) of warm sandboxes of an earlier \
             run"
        );
    }
    if !settings.scratch_is_private {
        return Ok(());
    }
    // The run user reaches its step's directories through it.
    std::fs::set_permissions(scratch, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot chmod `{}'", scratch.display()))?;
    let entries = std::fs::read_dir(scratch)
        .with_context(|| format!("cannot read `{}'", scratch.display()))?;
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        let result = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        result.with_context(|| format!("cannot remove the leftover `{}'", path.display()))?;
        removed += 1;
    }
    if removed > 0 {
        eprintln!(
            "judged serve: removed {removed} leftover(s) of an earlier run from `{}'",
            scratch.display()
        );
    }
    Ok(())
}

async fn run(
    daemon: Arc<Daemon>,
    auth: Arc<auth::Auth>,
    listener: std::net::TcpListener,
    stop_signals: Option<StopSignals>,
    grace: Duration,
) -> anyhow::Result<()> {
    let shutdown = daemon.shutdown.clone();
    if let Some(stop_signals) = stop_signals {
        tokio::spawn(signals(stop_signals, shutdown.clone()));
    }
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let server = {
        let app = api::router(daemon.clone(), auth);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.clone().cancelled_owned())
                .await;
            // The server ending for any reason ends the daemon.
            shutdown.cancel();
            result
        })
    };
    let tracker = TaskTracker::new();
    let dispatcher = tokio::spawn(worker::dispatch(daemon.clone(), tracker.clone()));
    let leases_stop = CancellationToken::new();
    let leases = tokio::spawn(worker::keep_leases(daemon.clone(), leases_stop.clone()));
    shutdown.cancelled().await;
    eprintln!(
        "judged serve: shutting down: taking no more work, {} s for running judgings",
        grace.as_secs()
    );
    let _ = dispatcher.await;
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        let handed = worker::hand_back_running(&daemon).await;
        eprintln!(
            "judged serve: grace period over: {handed} running judging(s) handed back to the queue"
        );
    }
    leases_stop.cancel();
    let _ = leases.await;
    let served = match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(result)) => result.context("the HTTP server failed"),
        Ok(Err(_)) => Err(anyhow::anyhow!("the HTTP server panicked")),
        Err(_) => Ok(()), // Connections still open after the drain are dropped.
    };
    eprintln!("judged serve: stopped");
    served
}

/// SIGTERM and SIGINT, taken from their default action (death) once registered.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

fn register_stop_signals(runtime: &tokio::runtime::Runtime) -> Option<StopSignals> {
    use tokio::signal::unix::{signal, SignalKind};
    let _context = runtime.enter();
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => Some(StopSignals { term, int }),
        _ => {
            eprintln!("judged serve: cannot handle signals; stop it with SIGKILL");
            None
        }
    }
}

/// SIGTERM or SIGINT → the cancellation signal.
async fn signals(mut stop: StopSignals, shutdown: CancellationToken) {
    tokio::select! {
        _ = stop.term.recv() => eprintln!("judged serve: SIGTERM"),
        _ = stop.int.recv() => eprintln!("judged serve: SIGINT"),
        _ = shutdown.cancelled() => {}
    }
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_is_a_manual() {
        assert!(SERVE_HELP.contains("Exit status") && SERVE_HELP.contains("POST /judgings"));
        assert!(SERVE_HELP.contains("shutdown_grace_secs") && SERVE_HELP.contains("Examples"));
        for key in [
            "tokens_file",
            "max_unpacked_bytes",
            "PUT  /problems/ID",
            "GET  /problems",
            "host_window",
            "GET  /host",
        ] {
            assert!(SERVE_HELP.contains(key), "{key}");
        }
    }

    #[test]
    fn a_broken_problem_is_named() {
        let settings = Config::default()
            .validate(
                None,
                &Overrides {
                    problems: vec!["/nonexistent/broken".into()],
                    ..Overrides::default()
                },
                "h",
            )
            .unwrap();
        let error = format!("{:#}", load(&settings).err().unwrap());
        assert!(error.contains("problem `broken'"), "{error}");
    }
}
