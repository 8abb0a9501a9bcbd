//! `judged serve`'s configuration: one TOML file, read and validated before anything starts.
//!
//! Unknown keys are rejected (`deny_unknown_fields`) and every error names the file and the
//! key at fault. Validation is pure: [`Config::parse`] turns text into a [`Config`], and
//! [`Config::validate`] into [`Settings`] (plain, resolved values); nothing here touches the
//! system except [`Config::load`] reading the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::diagnostics::hostwatcher;
use crate::topology::{parse_housekeeping, Cpus};

use super::upload::{UploadLimits, DEFAULT_LIMITS};

/// Where `judged serve` looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/judged/serve.toml";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "/var/lib/judged";
/// The database's file name in the data directory.
pub const DATABASE_FILE: &str = "judged.db";
pub const DEFAULT_MAX_SOURCE_BYTES: u64 = 256 * 1024;
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;
/// How long a claim holds without a heartbeat (renewed every third of it).
pub const DEFAULT_LEASE_SECS: u64 = 30;

/// A config that cannot be used: the file and what is wrong, by key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config `{path}'")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// toml's message names the key (`unknown field `wrokers'`) and the line.
    #[error("`{path}' is not a valid judged serve config: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("`{path}': {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// The file as written. Every key is optional; see the defaults above.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `HOST:PORT` the HTTP API listens on.
    pub listen: Option<String>,
    /// Holds the database (`judged.db`) and the lock file.
    pub data_dir: Option<PathBuf>,
    /// The workers: a `[workers]` table, or `workers = N` for `[workers] count = N`.
    #[serde(default, deserialize_with = "count_or_table")]
    pub workers: WorkersConfig,
    /// Most bytes of source (all files of a submission together) a submission may have.
    pub max_source_bytes: Option<u64>,
    /// How long a shutdown waits for running judgings before handing them back to the queue.
    pub shutdown_grace_secs: Option<u64>,
    /// This host's name in the queue (`claimed_by`); default: the kernel's hostname.
    pub host_id: Option<String>,
    /// Keep judging after the first test case that fails (`judged run --all`).
    pub all_test_cases: Option<bool>,
    /// Run a time limit again when a finding says its timing was disturbed, up to this many
    /// times (`judged run --rerun-disturbed`; default 1).
    pub rerun_disturbed: Option<u32>,
    /// Where judgings make scratch directories (default: `DATA_DIR/scratch`, emptied at start).
    pub scratch_dir: Option<PathBuf>,
    /// As `judged run`: --runguard, --profiles, --languages, --user.
    pub runguard: Option<PathBuf>,
    pub profiles: Option<PathBuf>,
    pub languages: Option<PathBuf>,
    pub run_user: Option<String>,
    #[serde(default)]
    pub problems: ProblemsConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub diagnostics: DiagnosticsConfig,
}

/// `[diagnostics]`: the host watcher inside the daemon.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticsConfig {
    /// Run the host watcher (eBPF where it can, else the host readings; default true).
    pub host_watch: Option<bool>,
    /// Seconds per window (fractions allowed; default 1).
    pub host_window: Option<f64>,
}

/// `[api]`: who may use the HTTP API.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Bearer tokens, one `ROLE TOKEN` a line (roles `submit`, `admin`). Absent: no
    /// authentication (keep `listen` on loopback then).
    pub tokens_file: Option<PathBuf>,
    /// Routes open without a token when tokens are on: of `health`, `metrics` (default both).
    pub public: Option<Vec<String>>,
}

/// `[api]` resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    pub tokens_file: Option<PathBuf>,
    pub public_health: bool,
    pub public_metrics: bool,
}

/// `[workers]`: how many judgings run at once, and where (`judged topology` prints the plan).
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkersConfig {
    /// `topology` (default): one worker per free physical core, its steps pinned to the core
    /// and its memory to the core's node; `none`: `count` workers, unpinned.
    pub placement: Option<Placement>,
    /// `none`: exactly this many (default 1); `topology`: at most this many (default: one
    /// per free core), taken from the nodes in turn.
    pub count: Option<usize>,
    /// As `judged topology --housekeeping`: CPUs no worker gets (whole cores), or `none`.
    pub housekeeping: Option<String>,
    /// As `judged topology --smt`: SMT siblings get workers of their own.
    pub smt: Option<bool>,
    /// `oneshot` (default): every step a runguard process; `warm`: each worker's test case
    /// runs in a warm sandbox of its own, built once with the worker's cpuset.
    pub sandbox: Option<SandboxKind>,
}

/// What runs a worker's test cases.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SandboxKind {
    /// A `runguard` process per step.
    #[default]
    Oneshot,
    /// The worker's warm sandbox (a `keeper`), reused from one test case to the next.
    Warm,
}

/// Where the workers run.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// As `judged topology` plans it.
    #[default]
    Topology,
    /// Anywhere the kernel puts them (no cpuset).
    None,
}

/// `workers = N` (the short form of `[workers] count = N`) or a `[workers]` table, read
/// straight from the file's deserializer so that a table's errors keep their key and line.
fn count_or_table<'de, D: Deserializer<'de>>(deserializer: D) -> Result<WorkersConfig, D::Error> {
    use serde::de::{self, MapAccess, Visitor};

    struct CountOrTable;

    impl<'de> Visitor<'de> for CountOrTable {
        type Value = WorkersConfig;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number of workers, or a [workers] table")
        }

        fn visit_i64<E: de::Error>(self, count: i64) -> Result<WorkersConfig, E> {
            let count = usize::try_from(count)
                .map_err(|_| E::custom(format!("{count} is not a number of workers")))?;
            Ok(WorkersConfig {
                count: Some(count),
                ..WorkersConfig::default()
            })
        }

        fn visit_u64<E: de::Error>(self, count: u64) -> Result<WorkersConfig, E> {
            self.visit_i64(i64::try_from(count).unwrap_or(i64::MAX))
        }

        fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<WorkersConfig, M::Error> {
            WorkersConfig::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }

    deserializer.deserialize_any(CountOrTable)
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`: the queue in PostgreSQL, shared by
    /// several hosts. Absent: SQLite in the data directory (one host).
    pub url: Option<String>,
    /// Seconds a claim holds without a heartbeat; a host that stops renewing (killed, cut off)
    /// loses its judgings to the others after this long. Default 30.
    pub lease_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProblemsConfig {
    /// Problem package directories; a problem's id is its directory's name.
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
    /// Uploads (`PUT /problems/{id}`): the largest archive, in bytes.
    pub max_archive_bytes: Option<u64>,
    /// The most bytes an uploaded archive may unpack to.
    pub max_unpacked_bytes: Option<u64>,
    /// The most files and directories an uploaded archive may hold.
    pub max_entries: Option<usize>,
}

/// A validated config: every value resolved, defaults applied, paths relative to the config
/// file's directory made absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The file the settings came from (`None`: built-in defaults).
    pub source: Option<PathBuf>,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub workers: WorkerSettings,
    pub max_source_bytes: u64,
    pub shutdown_grace: Duration,
    pub host_id: String,
    pub all_test_cases: bool,
    pub rerun_disturbed: u32,
    /// Where judgings make their scratch directories: `scratch_dir`, else `DATA_DIR/scratch`.
    pub scratch_dir: PathBuf,
    /// The scratch directory is the daemon's own (the default): emptied at each start of
    /// what a killed daemon left there.
    pub scratch_is_private: bool,
    pub runguard: Option<PathBuf>,
    pub profiles: Option<PathBuf>,
    pub languages: Option<PathBuf>,
    pub run_user: Option<String>,
    /// `(id, directory)`, in the config's order.
    pub problems: Vec<(String, PathBuf)>,
    /// `[database] url`: PostgreSQL; `None`: SQLite at [`Settings::database`].
    pub database_url: Option<String>,
    /// `[database] lease_secs`.
    pub lease: Duration,
    /// `[problems] max_*`: what an uploaded package may be.
    pub uploads: UploadLimits,
    pub api: ApiSettings,
    /// `[diagnostics]`: the host watcher's window length, `None` when it is off.
    pub host_window: Option<Duration>,
}

/// `[workers]`, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerSettings {
    pub placement: Placement,
    /// `None`: the default of the placement (1; one per free core).
    pub count: Option<usize>,
    /// `None`: `judged topology`'s default (the first physical core).
    pub housekeeping: Option<Cpus>,
    pub smt: bool,
    pub sandbox: SandboxKind,
}

impl WorkersConfig {
    fn validate(
        self,
        invalid: impl Fn(&str, String) -> ConfigError,
    ) -> Result<WorkerSettings, ConfigError> {
        if self.count == Some(0) {
            return Err(invalid("workers.count", "must be at least 1".into()));
        }
        let placement = self.placement.unwrap_or_default();
        if placement == Placement::None {
            for (key, given) in [
                ("workers.housekeeping", self.housekeeping.is_some()),
                ("workers.smt", self.smt.is_some()),
            ] {
                if given {
                    return Err(invalid(
                        key,
                        "only means something with placement = \"topology\": remove it, or \
                         place the workers by topology"
                            .into(),
                    ));
                }
            }
        }
        let housekeeping = self
            .housekeeping
            .map(|list| {
                parse_housekeeping(&list)
                    .map(|housekeeping| housekeeping.0)
                    .map_err(|why| invalid("workers.housekeeping", format!("`{list}': {why}")))
            })
            .transpose()?;
        Ok(WorkerSettings {
            placement,
            count: self.count,
            housekeeping,
            smt: self.smt.unwrap_or(false),
            sandbox: self.sandbox.unwrap_or_default(),
        })
    }
}

impl Settings {
    /// The SQLite file (used when no `[database] url` is given).
    pub fn database(&self) -> PathBuf {
        self.data_dir.join(DATABASE_FILE)
    }

    /// The database as messages show it: the file, or the URL without its password.
    pub fn database_shown(&self) -> String {
        match &self.database_url {
            Some(url) => redact_password(url),
            None => self.database().display().to_string(),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Check a `[database] url` without connecting: a PostgreSQL URL the client can parse.
fn check_database_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!(
            "`{}' is not a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE); leave \
             [database] out to use SQLite in the data directory",
            redact_password(url)
        ));
    }
    let config: postgres::Config = url
        .parse()
        .map_err(|e| format!("`{}': {e}", redact_password(url)))?;
    if config.get_hosts().is_empty() {
        return Err(format!("`{}' names no host", redact_password(url)));
    }
    if config.get_dbname().is_none() {
        return Err(format!(
            "`{}' names no database (…/DATABASE)",
            redact_password(url)
        ));
    }
    Ok(())
}

/// What the command line overrides (`--listen`, `--data-dir`, `--problem`).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub problems: Vec<PathBuf>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Only the `[workers]` of the config at `path`, validated (for `judged topology
    /// --config`; the daemon validates the whole file).
    pub fn load_workers(path: &Path) -> Result<WorkerSettings, ConfigError> {
        Config::load(path)?
            .workers
            .validate(|key: &str, message| ConfigError::Invalid {
                path: path.to_path_buf(),
                key: key.to_owned(),
                message,
            })
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: error.to_string().trim_end().replace('\n', " "),
        })
    }

    /// Check every value and apply the defaults. `path` is the file (for messages and for
    /// relative paths); `hostname` the default host id.
    pub fn validate(
        self,
        path: Option<&Path>,
        overrides: &Overrides,
        hostname: &str,
    ) -> Result<Settings, ConfigError> {
        let shown = path.map_or_else(|| PathBuf::from("(built-in defaults)"), Path::to_path_buf);
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: shown.clone(),
            key: key.to_owned(),
            message,
        };
        let base = path
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let resolve = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let listen_text = overrides
            .listen
            .clone()
            .or(self.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("`{listen_text}' is not an address and port (e.g. 127.0.0.1:8080)"),
            )
        })?;
        let workers = self.workers.validate(invalid)?;
        let max_source_bytes = self.max_source_bytes.unwrap_or(DEFAULT_MAX_SOURCE_BYTES);
        if max_source_bytes == 0 {
            return Err(invalid("max_source_bytes", "must be at least 1".into()));
        }
        let host_id = self.host_id.unwrap_or_else(|| hostname.to_owned());
        if host_id.trim().is_empty() {
            return Err(invalid("host_id", "must not be empty".into()));
        }
        let data_dir = match &overrides.data_dir {
            Some(dir) => dir.clone(),
            None => self
                .data_dir
                .map(resolve)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        };
        let mut problems: Vec<(String, PathBuf)> = Vec::new();
        let dirs = self
            .problems
            .dirs
            .into_iter()
            .map(resolve)
            .enumerate()
            .map(|(i, dir)| (format!("problems.dirs[{i}]"), dir))
            .chain(
                overrides
                    .problems
                    .iter()
                    .map(|dir| ("--problem".to_owned(), dir.clone())),
            );
        for (key, dir) in dirs {
            let id = problem_id(&dir).ok_or_else(|| {
                invalid(
                    &key,
                    format!(
                        "`{}' has no directory name to be the problem's id",
                        dir.display()
                    ),
                )
            })?;
            if let Some((_, other)) = problems.iter().find(|(known, _)| *known == id) {
                return Err(invalid(
                    &key,
                    format!(
                        "problem id `{id}' of `{}' is already that of `{}' (ids are directory \
                         names)",
                        dir.display(),
                        other.display()
                    ),
                ));
            }
            problems.push((id, dir));
        }
        if let Some(url) = &self.database.url {
            check_database_url(url).map_err(|message| invalid("database.url", message))?;
        }
        let lease_secs = self.database.lease_secs.unwrap_or(DEFAULT_LEASE_SECS);
        if lease_secs < 2 {
            return Err(invalid(
                "database.lease_secs",
                "must be at least 2 (the heartbeat renews a lease every third of it)".into(),
            ));
        }
        let positive = |key: &str, value: Option<u64>, default: u64| match value {
            Some(0) => Err(invalid(key, "must be at least 1".into())),
            value => Ok(value.unwrap_or(default)),
        };
        let uploads = UploadLimits {
            max_archive_bytes: positive(
                "problems.max_archive_bytes",
                self.problems.max_archive_bytes,
                DEFAULT_LIMITS.max_archive_bytes,
            )?,
            max_unpacked_bytes: positive(
                "problems.max_unpacked_bytes",
                self.problems.max_unpacked_bytes,
                DEFAULT_LIMITS.max_unpacked_bytes,
            )?,
            max_entries: positive(
                "problems.max_entries",
                self.problems.max_entries.map(|n| n as u64),
                DEFAULT_LIMITS.max_entries as u64,
            )? as usize,
        };
        let public = self
            .api
            .public
            .unwrap_or_else(|| vec!["health".into(), "metrics".into()]);
        if let Some(other) = public
            .iter()
            .find(|r| !["health", "metrics"].contains(&r.as_str()))
        {
            return Err(invalid(
                "api.public",
                format!("`{other}' is not a route that may be public (health, metrics)"),
            ));
        }
        let api = ApiSettings {
            tokens_file: self.api.tokens_file.map(resolve),
            public_health: public.iter().any(|r| r == "health"),
            public_metrics: public.iter().any(|r| r == "metrics"),
        };
        let host_window = hostwatcher::window_length(
            self.diagnostics
                .host_window
                .unwrap_or(hostwatcher::DEFAULT_WINDOW_SECS),
        )
        .map_err(|message| invalid("diagnostics.host_window", message))?;
        if self.diagnostics.host_watch == Some(false) && self.diagnostics.host_window.is_some() {
            return Err(invalid(
                "diagnostics.host_window",
                "only means something with host_watch = true: remove one of them".into(),
            ));
        }
        let host_window = (self.diagnostics.host_watch != Some(false)).then_some(host_window);
        let scratch_is_private = self.scratch_dir.is_none();
        let scratch_dir = self
            .scratch_dir
            .map(resolve)
            .unwrap_or_else(|| data_dir.join("scratch"));
        Ok(Settings {
            source: path.map(Path::to_path_buf),
            listen,
            data_dir,
            workers,
            max_source_bytes,
            shutdown_grace: Duration::from_secs(
                self.shutdown_grace_secs
                    .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS),
            ),
            host_id,
            all_test_cases: self.all_test_cases.unwrap_or(false),
            rerun_disturbed: self.rerun_disturbed.unwrap_or(1),
            scratch_is_private,
            scratch_dir,
            runguard: self.runguard.map(resolve),
            profiles: self.profiles.map(resolve),
            languages: self.languages.map(resolve),
            run_user: self.run_user,
            problems,
            database_url: self.database.url,
            lease: Duration::from_secs(lease_secs),
            uploads,
            api,
            host_window,
        })
    }
}

/// A problem's id: its directory's name (`.../aplusb/` → `aplusb`), URL-safe.
fn problem_id(dir: &Path) -> Option<String> {
    let name = dir.components().next_back()?.as_os_str().to_str()?;
    let ok = !name.is_empty()
        && name != ".."
        && name != "."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    ok.then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(text: &str) -> Result<Settings, ConfigError> {
        let path = Path::new("/etc/judged/serve.toml");
        Config::parse(text, path)?.validate(Some(path), &Overrides::default(), "host1")
    }

    #[test]
    fn defaults_apply_to_an_empty_file() {
        let settings = validate("").unwrap();
        assert_eq!(settings.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(settings.data_dir, Path::new(DEFAULT_DATA_DIR));
        assert_eq!(settings.database(), Path::new("/var/lib/judged/judged.db"));
        assert_eq!(settings.workers, WorkerSettings::default());
        assert_eq!(settings.workers.placement, Placement::Topology);
        assert_eq!(settings.max_source_bytes, DEFAULT_MAX_SOURCE_BYTES);
        assert_eq!(settings.shutdown_grace, Duration::from_secs(30));
        assert_eq!(settings.host_id, "host1");
        assert_eq!(settings.scratch_dir, Path::new("/var/lib/judged/scratch"));
        assert!(settings.scratch_is_private);
        assert!(settings.problems.is_empty());
        assert_eq!(settings.database_url, None);
        assert_eq!(settings.lease, Duration::from_secs(DEFAULT_LEASE_SECS));
        assert_eq!(settings.uploads, DEFAULT_LIMITS);
        assert_eq!(
            settings.api,
            ApiSettings {
                tokens_file: None,
                public_health: true,
                public_metrics: true
            }
        );
        assert_eq!(settings.host_window, Some(Duration::from_secs(1)));
    }

    #[test]
    fn the_diagnostics_section_sets_the_host_watcher() {
        let window = |text: &str| validate(text).unwrap().host_window;
        assert_eq!(
            window("[diagnostics]\nhost_window = 0.5\n"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            window("[diagnostics]\nhost_watch = true\nhost_window = 2\n"),
            Some(Duration::from_secs(2))
        );
        assert_eq!(window("[diagnostics]\nhost_watch = false\n"), None);
    }

    #[test]
    fn upload_limits_and_the_api_section_are_read() {
        let settings = validate(
            "[problems]\nmax_archive_bytes = 10\nmax_unpacked_bytes = 20\nmax_entries = 3\n\
             [api]\ntokens_file = \"tokens\"\npublic = [\"health\"]\n",
        )
        .unwrap();
        assert_eq!(
            settings.uploads,
            UploadLimits {
                max_archive_bytes: 10,
                max_unpacked_bytes: 20,
                max_entries: 3
            }
        );
        assert_eq!(
            settings.api,
            ApiSettings {
                tokens_file: Some(PathBuf::from("/etc/judged/tokens")),
                public_health: true,
                public_metrics: false
            }
        );
    }

    #[test]
    fn a_postgres_database_is_taken_and_shown_without_its_password() {
        let settings = validate(
            "[database]\nurl = \"postgres://judged:s3cret@db.example:5433/judged\"\n\
             lease_secs = 6\n",
        )
        .unwrap();
        assert_eq!(settings.lease, Duration::from_secs(6));
        assert_eq!(
            settings.database_shown(),
            "postgres://judged:***@db.example:5433/judged"
        );
        let cases = [
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://u:p@h/db?x=a@b", "postgres://u:***@h/db?x=a@b"),
            ("postgresql://h/db", "postgresql://h/db"),
            ("not a url", "not a url"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_password(url), shown, "{url}");
        }
    }

    #[test]
    fn a_full_config_is_read_with_paths_relative_to_its_file() {
        let settings = validate(
            "listen = \"0.0.0.0:9000\"\ndata_dir = \"data\"\nworkers = 4\n\
             max_source_bytes = 1000\nshutdown_grace_secs = 5\nhost_id = \"j1\"\n\
             [problems]\ndirs = [\"problems/aplusb\", \"/srv/hello/\"]\n",
        )
        .unwrap();
        assert_eq!(settings.listen.port(), 9000);
        assert_eq!(settings.data_dir, Path::new("/etc/judged/data"));
        assert_eq!(settings.workers.count, Some(4));
        assert_eq!(settings.shutdown_grace, Duration::from_secs(5));
        assert_eq!(
            settings.problems,
            [
                (
                    "aplusb".to_owned(),
                    PathBuf::from("/etc/judged/problems/aplusb")
                ),
                ("hello".to_owned(), PathBuf::from("/srv/hello/"))
            ]
        );
    }

    #[test]
    fn the_workers_table_is_read() {
        let settings = validate(
            "[workers]\nplacement = \"topology\"\ncount = 3\nhousekeeping = \"0,40\"\n\
             smt = true\n",
        )
        .unwrap();
        assert_eq!(
            settings.workers,
            WorkerSettings {
                placement: Placement::Topology,
                count: Some(3),
                housekeeping: Some(Cpus::from([0, 40])),
                smt: true,
                sandbox: SandboxKind::Oneshot,
            }
        );
        let warm = validate("[workers]\nsandbox = \"warm\"\n").unwrap();
        assert_eq!(warm.workers.sandbox, SandboxKind::Warm);
        let none = validate("[workers]\nplacement = \"none\"\ncount = 2\n").unwrap();
        assert_eq!(
            (none.workers.placement, none.workers.count),
            (Placement::None, Some(2))
        );
        let no_housekeeping = validate("[workers]\nhousekeeping = \"none\"\n").unwrap();
        assert_eq!(no_housekeeping.workers.housekeeping, Some(Cpus::new()));
    }

    /// Each bad config, and what its error must name.
    #[test]
    fn errors_name_the_file_and_the_key() {
        let cases: &[(&str, &[&str])] = &[
            ("wrokers = 2\n", &["wrokers", "serve.toml"]),
            ("[problems]\ndir = []\n", &["dir", "serve.toml"]),
            (
                "[database]\nurl = \"x\"\n",
                &["database.url", "not a PostgreSQL URL"],
            ),
            (
                "[database]\nurl = \"postgres://u:secret@h:notaport/db\"\n",
                &["database.url", "u:***@h"],
            ),
            (
                "[database]\nurl = \"postgres://u@h:5432\"\n",
                &["database.url", "no database"],
            ),
            ("[database]\nlease_secs = 1\n", &["database.lease_secs"]),
            ("[database]\nleas_secs = 5\n", &["leas_secs"]),
            ("workers = \"two\"\n", &["workers", "a number of workers"]),
            ("workers = 0\n", &["workers.count", "at least 1"]),
            (
                "workers = -1\n",
                &["workers", "-1 is not a number of workers"],
            ),
            ("[workers]\ncount = 0\n", &["workers.count", "at least 1"]),
            ("[workers]\ncuont = 2\n", &["cuont", "placement"]),
            (
                "[workers]\nplacement = \"numa\"\n",
                &["placement", "numa", "topology", "none"],
            ),
            (
                "[workers]\nsandbox = \"hot\"\n",
                &["sandbox", "hot", "oneshot", "warm"],
            ),
            (
                "[workers]\nhousekeeping = \"0-\"\n",
                &["workers.housekeeping", "`0-'"],
            ),
            (
                "[workers]\nplacement = \"none\"\nsmt = true\n",
                &["workers.smt", "placement = \"topology\""],
            ),
            (
                "[workers]\nplacement = \"none\"\nhousekeeping = \"0\"\n",
                &["workers.housekeeping"],
            ),
            ("listen = \"localhost\"\n", &["listen", "localhost"]),
            ("max_source_bytes = 0\n", &["max_source_bytes"]),
            ("host_id = \" \"\n", &["host_id"]),
            (
                "[problems]\ndirs = [\"a/p\", \"b/p\"]\n",
                &["problems.dirs[1]", "`p'"],
            ),
            ("[problems]\ndirs = [\"/\"]\n", &["problems.dirs[0]"]),
            ("[problems]\nmax_entries = 0\n", &["problems.max_entries"]),
            (
                "[diagnostics]\nhost_window = 0.01\n",
                &["diagnostics.host_window", "0.01", "from 0.1 to 60"],
            ),
            (
                "[diagnostics]\nhost_window = \"1s\"\n",
                &["host_window", "serve.toml"],
            ),
            ("[diagnostics]\nhost_wach = true\n", &["host_wach"]),
            (
                "[diagnostics]\nhost_watch = false\nhost_window = 2\n",
                &["diagnostics.host_window", "host_watch = true"],
            ),
            (
                "[problems]\nmax_unpacked_bytes = 0\n",
                &["problems.max_unpacked_bytes"],
            ),
            (
                "[api]\npublic = [\"judgings\"]\n",
                &["api.public", "`judgings'"],
            ),
            ("[api]\ntoken_file = \"x\"\n", &["token_file"]),
        ];
        for (text, needles) in cases {
            let message = validate(text).unwrap_err().to_string();
            for needle in *needles {
                assert!(
                    message.contains(needle),
                    "{text:?}: {message:?} lacks {needle:?}"
                );
            }
            assert!(message.contains("/etc/judged/serve.toml"), "{message}");
        }
    }

    #[test]
    fn the_command_line_overrides_the_file() {
        let path = Path::new("/x/serve.toml");
        let overrides = Overrides {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some("/tmp/d".into()),
            problems: vec!["/p/extra".into()],
        };
        let settings = Config::parse("listen = \"1.2.3.4:5\"\n", path)
            .unwrap()
            .validate(Some(path), &overrides, "h")
            .unwrap();
        assert_eq!(settings.listen.port(), 0);
        assert_eq!(settings.data_dir, Path::new("/tmp/d"));
        assert_eq!(settings.problems[0].0, "extra");
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("serve.example.toml");
        let settings = Config::load(&path)
            .unwrap()
            .validate(Some(&path), &Overrides::default(), "h")
            .unwrap();
        assert!(!settings.problems.is_empty());
    }
}
