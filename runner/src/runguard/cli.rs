//! runguard's command line, parsed exactly as DOMjudge's `getopt_long("+...")` does.
//!
//! Why not clap: getopt's rules that callers rely on cannot all be expressed in it. An option
//! that takes a value consumes the next word whatever it is (`-o -x`, `-o --`); parsing stops
//! at the first word that is not an option (`+`), so the command's own options are never ours;
//! long options may be abbreviated to any unique prefix; and every error must become runguard's
//! internal error in our own words. The whole of getopt is the small [`tokenize`] below; the
//! manual (`--help`) is hand-written in [`super::help`] as DOMjudge's is.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::plan::{CpuBandwidth, Namespaces, TimeKind, TimeLimit};

use super::config::validate_cgroup_parent;
use super::cpuset::parse_cpu_list;
use super::{Error, Result};

/// Every option runguard knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Root,
    User,
    Group,
    Chdir,
    WallTime,
    CpuTime,
    MemSize,
    FileSize,
    Nproc,
    CpuSet,
    NoCore,
    Stdout,
    Stderr,
    StreamSize,
    Environment,
    Variable,
    OutMeta,
    RunpipePid,
    Verbose,
    Quiet,
    Help,
    Version,
    ClearNetnsPool,
    Namespaces,
    NoNamespaces,
    Profile,
    Json,
    CgroupParent,
    Config,
    CpuQuota,
    Activity,
    CpusetMems,
}

struct Spec {
    opt: Opt,
    short: Option<u8>,
    long: &'static str,
    takes_value: bool,
}

const fn spec(opt: Opt, short: Option<u8>, long: &'static str, takes_value: bool) -> Spec {
    Spec {
        opt,
        short,
        long,
        takes_value,
    }
}

/// DOMjudge's options (its getopt string `+r:u:g:d:t:C:m:f:p:P:co:e:s:EV:M:vqU:` and long
/// names), then our own long-only ones.
const SPECS: &[Spec] = &[
    spec(Opt::Root, Some(b'r'), "root", true),
    spec(Opt::User, Some(b'u'), "user", true),
    spec(Opt::Group, Some(b'g'), "group", true),
    spec(Opt::Chdir, Some(b'd'), "chdir", true),
    spec(Opt::WallTime, Some(b't'), "walltime", true),
    spec(Opt::CpuTime, Some(b'C'), "cputime", true),
    spec(Opt::MemSize, Some(b'm'), "memsize", true),
    spec(Opt::FileSize, Some(b'f'), "filesize", true),
    spec(Opt::Nproc, Some(b'p'), "nproc", true),
    spec(Opt::CpuSet, Some(b'P'), "cpuset", true),
    spec(Opt::NoCore, Some(b'c'), "no-core", false),
    spec(Opt::Stdout, Some(b'o'), "stdout", true),
    spec(Opt::Stderr, Some(b'e'), "stderr", true),
    spec(Opt::StreamSize, Some(b's'), "streamsize", true),
    spec(Opt::Environment, Some(b'E'), "environment", false),
    spec(Opt::Variable, Some(b'V'), "variable", true),
    spec(Opt::OutMeta, Some(b'M'), "outmeta", true),
    spec(Opt::RunpipePid, Some(b'U'), "runpipepid", true),
    spec(Opt::Verbose, Some(b'v'), "verbose", false),
    spec(Opt::Quiet, Some(b'q'), "quiet", false),
    spec(Opt::Help, None, "help", false),
    spec(Opt::Version, None, "version", false),
    spec(Opt::ClearNetnsPool, None, "clear-netns-pool", false),
    spec(Opt::Namespaces, None, "namespaces", true),
    spec(Opt::NoNamespaces, None, "no-namespaces", false),
    spec(Opt::Profile, None, "profile", true),
    spec(Opt::Json, None, "json", true),
    spec(Opt::CgroupParent, None, "cgroup-parent", true),
    spec(Opt::Config, None, "config", true),
    spec(Opt::CpuQuota, None, "cpu-quota", true),
    spec(Opt::Activity, None, "activity", false),
    spec(Opt::CpusetMems, None, "cpuset-mems", true),
];

impl Opt {
    fn spec(self) -> &'static Spec {
        SPECS
            .iter()
            .find(|spec| spec.opt == self)
            .expect("every Opt has a Spec")
    }

    /// How messages name the option: `-t/--walltime`, or `--json` for long-only ones.
    fn display(self) -> String {
        let spec = self.spec();
        match spec.short {
            Some(short) => format!("-{}/--{}", short as char, spec.long),
            None => format!("--{}", spec.long),
        }
    }
}

/// How chatty runguard is on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    Quiet,
    #[default]
    Normal,
    Verbose,
}

/// One `-V` entry. glibc's `putenv` (which DOMjudge uses) removes a variable given without `=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvEdit {
    Set(OsString, OsString),
    Unset(OsString),
}

/// The command line as given, values checked for syntax only. What needs the system (users,
/// groups, CPUs, paths) is checked by `resolve`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Options {
    pub root: Option<PathBuf>,
    /// As given: a name or a numeric id.
    pub user: Option<String>,
    pub group: Option<String>,
    pub chdir: Option<PathBuf>,
    pub wall_time: Option<TimeLimit>,
    pub cpu_time: Option<TimeLimit>,
    /// Whichever of `-t`/`-C` came last; CPU time when neither is given.
    pub time_used: TimeKind,
    /// `None`: unlimited (also when kB * 1024 overflows, as in DOMjudge).
    pub memory_bytes: Option<u64>,
    pub file_size_bytes: Option<u64>,
    pub nproc: Option<u64>,
    /// As given; empty means no pinning (DOMjudge ignores an empty `-P`).
    pub cpuset: Option<String>,
    /// `--cpuset-mems`, as given; empty means no binding, like `-P`.
    pub cpuset_mems: Option<String>,
    pub no_core: bool,
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
    pub stream_bytes: Option<u64>,
    pub keep_environment: bool,
    /// `-V` entries in command-line order.
    pub variables: Vec<EnvEdit>,
    pub meta: Option<PathBuf>,
    /// Only positive pids: DOMjudge never signals 0 or a negative pid.
    pub runpipe_pid: Option<i32>,
    pub verbosity: Verbosity,
    /// `None`: DOMjudge's set ([`Namespaces::default`]).
    pub namespaces: Option<Namespaces>,
    pub profile: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub cgroup_parent: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub cpu_bandwidth: Option<CpuBandwidth>,
    /// `--activity`: measure stalls and memory activity for the JSON report.
    pub activity: bool,
    pub command: OsString,
    pub args: Vec<OsString>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Help,
    Version,
    /// Unpin the pooled network namespaces no run holds (of the config's pool).
    ClearNetnsPool {
        config: Option<PathBuf>,
    },
    Run(Box<Options>),
}

/// A bad command line. Carries the meta file named before the error, so that runguard can
/// still report `internal-error` there.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ParseError {
    pub error: Error,
    pub meta: Option<PathBuf>,
}

/// Parse runguard's arguments (without the program name).
pub fn parse(args: &[OsString]) -> Result<Parsed, ParseError> {
    let mut options = Options::default();
    let Tokens {
        options: found,
        command_start,
    } = match tokenize(args) {
        Ok(tokens) => tokens,
        Err((message, before)) => {
            let meta = before
                .into_iter()
                .rev()
                .find_map(|(opt, value)| (opt == Opt::OutMeta).then_some(value).flatten());
            return Err(ParseError {
                error: Error::Usage(message),
                meta: meta.map(PathBuf::from),
            });
        }
    };
    let mut help = false;
    let mut version = false;
    let mut clear_netns_pool = false;
    for (opt, value) in found {
        match opt {
            Opt::Help => help = true,
            Opt::Version => version = true,
            Opt::ClearNetnsPool => clear_netns_pool = true,
            _ => {
                if let Err(message) = apply(&mut options, opt, value) {
                    return Err(ParseError {
                        error: Error::Usage(message),
                        meta: options.meta,
                    });
                }
            }
        }
    }
    // As in DOMjudge: --help and --version win over a missing command.
    if help {
        return Ok(Parsed::Help);
    }
    if version {
        return Ok(Parsed::Version);
    }
    if clear_netns_pool {
        return Ok(Parsed::ClearNetnsPool {
            config: options.config,
        });
    }
    let Some((command, args)) = args[command_start..].split_first() else {
        return Err(ParseError {
            error: Error::Usage("no command specified".into()),
            meta: options.meta,
        });
    };
    options.command = command.clone();
    options.args = args.to_vec();
    Ok(Parsed::Run(Box::new(options)))
}

/// The command line split as getopt splits it.
/// One option with its value.
type Token = (Opt, Option<OsString>);

struct Tokens {
    /// The options in order, with their values.
    options: Vec<Token>,
    /// Index of the first word of the command (`args.len()` when there is none).
    command_start: usize,
}

/// getopt_long in `+` mode. On an error, the options before it are returned too: a meta file
/// named there still gets the `internal-error`.
fn tokenize(args: &[OsString]) -> Result<Tokens, (String, Vec<Token>)> {
    let mut found = Vec::new();
    match tokenize_into(args, &mut found) {
        Ok(command_start) => Ok(Tokens {
            options: found,
            command_start,
        }),
        Err(message) => Err((message, found)),
    }
}

/// Push the options of `args` onto `found`; the index of the command's first word.
fn tokenize_into(
    args: &[OsString],
    found: &mut Vec<(Opt, Option<OsString>)>,
) -> Result<usize, String> {
    let mut index = 0;
    while let Some(word) = args.get(index) {
        let bytes = word.as_bytes();
        index += 1;
        if bytes == b"--" {
            return Ok(index);
        }
        if let Some(long) = bytes.strip_prefix(b"--") {
            let (name, attached) = match long.iter().position(|&b| b == b'=') {
                Some(eq) => (&long[..eq], Some(os(&long[eq + 1..]))),
                None => (long, None),
            };
            let spec = find_long(name)?;
            let value = match (spec.takes_value, attached) {
                (true, Some(value)) => Some(value),
                (true, None) => Some(next_value(args, &mut index, spec)?),
                (false, Some(_)) => {
                    return Err(format!(
                        "option `--{}' doesn't allow an argument",
                        spec.long
                    ))
                }
                (false, None) => None,
            };
            found.push((spec.opt, value));
        } else if bytes.len() > 1 && bytes[0] == b'-' {
            // A bundle of short options; the first one that takes a value takes the rest of
            // the word, or the next word.
            for (at, &letter) in bytes.iter().enumerate().skip(1) {
                let spec = SPECS
                    .iter()
                    .find(|spec| spec.short == Some(letter))
                    .ok_or_else(|| {
                        format!(
                            "unknown option `-{}'",
                            String::from_utf8_lossy(&bytes[at..at + 1])
                        )
                    })?;
                if !spec.takes_value {
                    found.push((spec.opt, None));
                    continue;
                }
                let value = match &bytes[at + 1..] {
                    [] => next_value(args, &mut index, spec)?,
                    rest => os(rest),
                };
                found.push((spec.opt, Some(value)));
                break;
            }
        } else {
            // The first non-option (also a lone `-`) starts the command.
            return Ok(index - 1);
        }
    }
    Ok(args.len())
}

fn os(bytes: &[u8]) -> OsString {
    OsStr::from_bytes(bytes).to_owned()
}

/// An exact long name, else a unique prefix of one (getopt_long's abbreviations).
fn find_long(name: &[u8]) -> Result<&'static Spec, String> {
    if let Some(spec) = SPECS.iter().find(|spec| spec.long.as_bytes() == name) {
        return Ok(spec);
    }
    let shown = String::from_utf8_lossy(name);
    let candidates: Vec<&Spec> = SPECS
        .iter()
        .filter(|spec| !name.is_empty() && spec.long.as_bytes().starts_with(name))
        .collect();
    match candidates[..] {
        [spec] => Ok(spec),
        [] => Err(format!("unknown option `--{shown}'")),
        _ => Err(format!(
            "option `--{shown}' is ambiguous; possibilities: {}",
            candidates
                .iter()
                .map(|spec| format!("--{}", spec.long))
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
}

fn next_value(args: &[OsString], index: &mut usize, spec: &Spec) -> Result<OsString, String> {
    let value = args
        .get(*index)
        .ok_or_else(|| format!("option {} requires an argument", spec.opt.display()))?;
    *index += 1;
    Ok(value.clone())
}

/// Check one option's value and record it. A repeated option overrides the earlier one, except
/// `-V`, which accumulates.
fn apply(options: &mut Options, opt: Opt, value: Option<OsString>) -> Result<(), String> {
    let value = value.unwrap_or_default();
    let text = || utf8(opt, &value);
    match opt {
        Opt::Root => options.root = Some(value.into()),
        Opt::User => options.user = Some(text()?.to_owned()),
        Opt::Group => options.group = Some(text()?.to_owned()),
        Opt::Chdir => options.chdir = Some(value.into()),
        Opt::WallTime => {
            options.wall_time =
                Some(parse_time_limit(text()?).map_err(|why| bad(opt, &value, &why))?);
            options.time_used = TimeKind::WallTime;
        }
        Opt::CpuTime => {
            options.cpu_time =
                Some(parse_time_limit(text()?).map_err(|why| bad(opt, &value, &why))?);
            options.time_used = TimeKind::CpuTime;
        }
        Opt::MemSize => options.memory_bytes = kilobytes(opt, text()?, 1)?,
        Opt::FileSize => options.file_size_bytes = kilobytes(opt, text()?, 1)?,
        Opt::StreamSize => {
            // DOMjudge caps an overflowing stream size at LONG_MAX rather than unlimited.
            let bytes = kilobytes(opt, text()?, 0)?.unwrap_or(i64::MAX as u64);
            options.stream_bytes = Some(bytes);
        }
        Opt::Nproc => {
            options.nproc = Some(whole_number(opt, text()?, 1)?);
        }
        Opt::CpuSet => {
            // Syntax only here; whether the CPUs are online is the host's to say (resolve).
            let list = text()?;
            if !list.is_empty() {
                parse_cpu_list(list).map_err(|why| bad(opt, &value, &why))?;
            }
            options.cpuset = Some(list.to_owned());
        }
        Opt::CpusetMems => {
            // Syntax only, as for -P; whether the nodes have memory is resolve's to say.
            let list = text()?;
            if !list.is_empty() {
                parse_cpu_list(list).map_err(|why| bad(opt, &value, &why))?;
            }
            options.cpuset_mems = Some(list.to_owned());
        }
        Opt::NoCore => options.no_core = true,
        Opt::Stdout => options.stdout = Some(value.into()),
        Opt::Stderr => options.stderr = Some(value.into()),
        Opt::Environment => options.keep_environment = true,
        Opt::Variable => options.variables.extend(parse_variables(opt, &value)?),
        Opt::OutMeta => options.meta = Some(value.into()),
        Opt::RunpipePid => {
            let pid: i32 = text()?
                .parse()
                .map_err(|_| bad(opt, &value, "expected a process id"))?;
            options.runpipe_pid = (pid > 0).then_some(pid);
        }
        Opt::Verbose => options.verbosity = Verbosity::Verbose,
        Opt::Quiet => options.verbosity = Verbosity::Quiet,
        Opt::Namespaces => options.namespaces = Some(parse_namespaces(opt, text()?)?),
        Opt::NoNamespaces => options.namespaces = Some(Namespaces::NONE),
        Opt::Profile => options.profile = Some(value.into()),
        Opt::Json => options.json = Some(value.into()),
        Opt::CgroupParent => {
            let parent = PathBuf::from(&value);
            validate_cgroup_parent(&parent).map_err(|why| bad(opt, &value, &why))?;
            options.cgroup_parent = Some(parent);
        }
        Opt::Config => options.config = Some(value.into()),
        Opt::CpuQuota => {
            let cpus: f64 = text()?
                .parse()
                .map_err(|_| bad(opt, &value, "expected a number of CPUs, like 0.5"))?;
            let bandwidth = CpuBandwidth::of_cpus(cpus).map_err(|why| bad(opt, &value, &why))?;
            options.cpu_bandwidth = Some(bandwidth);
        }
        Opt::Activity => options.activity = true,
        Opt::Help | Opt::Version | Opt::ClearNetnsPool => unreachable!("handled by parse"),
    }
    Ok(())
}

fn bad(opt: Opt, value: &OsStr, why: &str) -> String {
    format!(
        "invalid value `{}' for {}: {why}",
        value.to_string_lossy(),
        opt.display()
    )
}

fn utf8(opt: Opt, value: &OsStr) -> Result<&str, String> {
    value
        .to_str()
        .ok_or_else(|| bad(opt, value, "not valid UTF-8"))
}

/// A whole number >= `min` (DOMjudge's `read_optarg_int`, up to LONG_MAX).
fn whole_number(opt: Opt, text: &str, min: u64) -> Result<u64, String> {
    match text.parse::<i64>() {
        Ok(n) if n >= 0 && n as u64 >= min => Ok(n as u64),
        _ => Err(bad(
            opt,
            OsStr::new(text),
            &format!("expected a whole number >= {min}"),
        )),
    }
}

/// A size in kB, as bytes; `None` when the byte count overflows.
fn kilobytes(opt: Opt, text: &str, min: u64) -> Result<Option<u64>, String> {
    let kb = whole_number(opt, text, min)?;
    Ok(kb
        .checked_mul(1024)
        .filter(|&bytes| bytes <= i64::MAX as u64))
}

/// `SOFT[:HARD]` in seconds, floats > 0, HARD >= SOFT, HARD defaulting to SOFT.
pub fn parse_time_limit(text: &str) -> Result<TimeLimit, String> {
    let (soft, hard) = match text.split_once(':') {
        Some((soft, hard)) => (seconds(soft)?, seconds(hard)?),
        None => {
            let soft = seconds(text)?;
            (soft, soft)
        }
    };
    if hard < soft {
        return Err("hard limit is lower than soft limit".into());
    }
    Ok(TimeLimit { soft, hard })
}

fn seconds(text: &str) -> Result<Duration, String> {
    let expected = "expected SECONDS or SOFT:HARD, seconds > 0 (e.g. 2 or 1.5:2.5)";
    let secs: f64 = text.parse().map_err(|_| expected.to_string())?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(expected.into());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{secs} seconds is too long"))
}

/// `K=V[;K2=V2]`: split on `;`, empty entries skipped (DOMjudge uses strtok).
fn parse_variables(opt: Opt, value: &OsStr) -> Result<Vec<EnvEdit>, String> {
    value
        .as_bytes()
        .split(|&b| b == b';')
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.iter().position(|&b| b == b'=') {
            Some(0) => Err(bad(opt, value, "a variable needs a name before `='")),
            Some(eq) => Ok(EnvEdit::Set(os(&entry[..eq]), os(&entry[eq + 1..]))),
            None => Ok(EnvEdit::Unset(os(entry))),
        })
        .collect()
}

/// A comma-separated list of namespace names; the empty list means none.
fn parse_namespaces(opt: Opt, text: &str) -> Result<Namespaces, String> {
    let mut namespaces = Namespaces::NONE;
    for name in text.split(',').filter(|name| !name.is_empty()) {
        let flag = namespaces.get_mut(name).ok_or_else(|| {
            bad(
                opt,
                OsStr::new(text),
                &format!(
                    "unknown namespace `{name}' (known: {})",
                    Namespaces::NAMES.join(",")
                ),
            )
        })?;
        *flag = true;
    }
    Ok(namespaces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn run(words: &[&str]) -> Options {
        match parse(&argv(words)) {
            Ok(Parsed::Run(options)) => *options,
            other => panic!("{words:?}: expected a run, got {other:?}"),
        }
    }

    fn error(words: &[&str]) -> String {
        match parse(&argv(words)) {
            Err(err) => err.to_string(),
            Ok(parsed) => panic!("{words:?}: expected an error, got {parsed:?}"),
        }
    }

    fn secs(soft: f64, hard: f64) -> TimeLimit {
        TimeLimit {
            soft: Duration::from_secs_f64(soft),
            hard: Duration::from_secs_f64(hard),
        }
    }

    fn command_of(options: &Options) -> Vec<&str> {
        std::iter::once(&options.command)
            .chain(&options.args)
            .map(|word| word.to_str().unwrap())
            .collect()
    }

    #[test]
    fn every_short_option_with_separate_values() {
        let options = run(&[
            "-r",
            "/j",
            "-u",
            "domjudge-run",
            "-g",
            "grp",
            "-d",
            "/compile",
            "-t",
            "2:3",
            "-C",
            "1.5",
            "-m",
            "65536",
            "-f",
            "100",
            "-p",
            "16",
            "-P",
            "0-1",
            "-c",
            "-o",
            "out",
            "-e",
            "err",
            "-s",
            "8",
            "-E",
            "-V",
            "A=1",
            "-M",
            "meta",
            "-U",
            "1234",
            "-v",
            "prog",
            "x",
        ]);
        assert_eq!(options.root, Some("/j".into()));
        assert_eq!(options.user.as_deref(), Some("domjudge-run"));
        assert_eq!(options.group.as_deref(), Some("grp"));
        assert_eq!(options.chdir, Some("/compile".into()));
        assert_eq!(options.wall_time, Some(secs(2.0, 3.0)));
        assert_eq!(options.cpu_time, Some(secs(1.5, 1.5)));
        assert_eq!(options.time_used, TimeKind::CpuTime);
        assert_eq!(options.memory_bytes, Some(65536 * 1024));
        assert_eq!(options.file_size_bytes, Some(100 * 1024));
        assert_eq!(options.nproc, Some(16));
        assert_eq!(options.cpuset.as_deref(), Some("0-1"));
        assert!(options.no_core);
        assert_eq!(options.stdout, Some("out".into()));
        assert_eq!(options.stderr, Some("err".into()));
        assert_eq!(options.stream_bytes, Some(8 * 1024));
        assert!(options.keep_environment);
        assert_eq!(
            options.variables,
            vec![EnvEdit::Set("A".into(), "1".into())]
        );
        assert_eq!(options.meta, Some("meta".into()));
        assert_eq!(options.runpipe_pid, Some(1234));
        assert_eq!(options.verbosity, Verbosity::Verbose);
        assert_eq!(command_of(&options), ["prog", "x"]);
    }

    #[test]
    fn every_long_option_with_equals_and_separate_values() {
        let options = run(&[
            "--root=/j",
            "--user",
            "7",
            "--group=8",
            "--chdir=d",
            "--cputime",
            "1",
            "--walltime=4",
            "--memsize=1",
            "--filesize",
            "2",
            "--nproc=3",
            "--cpuset=1",
            "--no-core",
            "--stdout=o",
            "--stderr",
            "e",
            "--streamsize=0",
            "--environment",
            "--variable=B=2",
            "--outmeta",
            "m",
            "--runpipepid=99",
            "--quiet",
            "--namespaces=pid,net",
            "--profile=p.toml",
            "--json",
            "r.json",
            "--cgroup-parent=judged/w1",
            "--config=c.toml",
            "--cpu-quota",
            "0.5",
            "--activity",
            "--",
            "prog",
        ]);
        assert_eq!(options.root, Some("/j".into()));
        assert_eq!(options.user.as_deref(), Some("7"));
        assert_eq!(options.group.as_deref(), Some("8"));
        assert_eq!(options.chdir, Some("d".into()));
        assert_eq!(options.time_used, TimeKind::WallTime);
        assert_eq!(options.wall_time, Some(secs(4.0, 4.0)));
        assert_eq!(options.cpu_time, Some(secs(1.0, 1.0)));
        assert_eq!(options.memory_bytes, Some(1024));
        assert_eq!(options.file_size_bytes, Some(2048));
        assert_eq!(options.nproc, Some(3));
        assert_eq!(options.cpuset.as_deref(), Some("1"));
        assert_eq!(
            options.cpu_bandwidth,
            Some(CpuBandwidth {
                quota_us: 50_000,
                period_us: 100_000
            })
        );
        assert!(options.activity);
        assert!(options.no_core);
        assert_eq!(options.stdout, Some("o".into()));
        assert_eq!(options.stderr, Some("e".into()));
        assert_eq!(options.stream_bytes, Some(0));
        assert!(options.keep_environment);
        assert_eq!(
            options.variables,
            vec![EnvEdit::Set("B".into(), "2".into())]
        );
        assert_eq!(options.meta, Some("m".into()));
        assert_eq!(options.runpipe_pid, Some(99));
        assert_eq!(options.verbosity, Verbosity::Quiet);
        let expected = Namespaces {
            pid: true,
            net: true,
            ..Namespaces::NONE
        };
        assert_eq!(options.namespaces, Some(expected));
        assert_eq!(options.profile, Some("p.toml".into()));
        assert_eq!(options.json, Some("r.json".into()));
        assert_eq!(options.cgroup_parent, Some("judged/w1".into()));
        assert_eq!(options.config, Some("c.toml".into()));
        assert_eq!(command_of(&options), ["prog"]);
    }

    #[test]
    fn defaults_without_options() {
        let options = run(&["true"]);
        assert_eq!(options.time_used, TimeKind::CpuTime);
        assert_eq!(options.memory_bytes, None);
        assert_eq!(options.stream_bytes, None);
        assert_eq!(options.namespaces, None);
        assert_eq!(options.verbosity, Verbosity::Normal);
        assert_eq!(command_of(&options), ["true"]);
    }

    #[test]
    fn short_values_attached_and_flags_bundled() {
        let options = run(&["-t1.5", "-m65536", "-cq", "-cEs4", "-V", "X=1", "prog"]);
        assert_eq!(options.wall_time, Some(secs(1.5, 1.5)));
        assert_eq!(options.memory_bytes, Some(65536 * 1024));
        assert!(options.no_core && options.keep_environment);
        assert_eq!(options.verbosity, Verbosity::Quiet);
        assert_eq!(options.stream_bytes, Some(4096));
    }

    #[test]
    fn bundle_ending_in_a_value_option_takes_the_next_word() {
        let options = run(&["-cM", "meta", "prog"]);
        assert!(options.no_core);
        assert_eq!(options.meta, Some("meta".into()));
        assert_eq!(command_of(&options), ["prog"]);
    }

    #[test]
    fn parsing_stops_at_the_first_non_option() {
        let options = run(&["-c", "prog", "-t", "5", "--", "--help"]);
        assert_eq!(options.wall_time, None);
        assert_eq!(command_of(&options), ["prog", "-t", "5", "--", "--help"]);
    }

    #[test]
    fn double_dash_ends_options_and_is_dropped() {
        let options = run(&["-c", "--", "-t", "5"]);
        assert_eq!(options.wall_time, None);
        assert_eq!(command_of(&options), ["-t", "5"]);
    }

    #[test]
    fn lone_dash_is_the_command() {
        assert_eq!(command_of(&run(&["-c", "-", "x"])), ["-", "x"]);
    }

    #[test]
    fn a_value_is_taken_even_when_it_looks_like_an_option() {
        let options = run(&["-o", "-q", "-e", "--", "prog"]);
        assert_eq!(options.stdout, Some("-q".into()));
        assert_eq!(options.stderr, Some("--".into()));
        assert_eq!(options.verbosity, Verbosity::Normal);
        assert_eq!(command_of(&options), ["prog"]);
    }

    #[test]
    fn runpipe_pid_is_accepted_first_and_anywhere_before_the_command() {
        for words in [
            &["-U", "42", "-t", "1", "prog"][..],
            &["-t", "1", "-U42", "prog"][..],
            &["-t", "1", "--runpipepid", "42", "prog"][..],
        ] {
            assert_eq!(run(words).runpipe_pid, Some(42), "{words:?}");
        }
        assert_eq!(run(&["prog", "-U", "42"]).runpipe_pid, None);
        assert_eq!(run(&["-U", "0", "prog"]).runpipe_pid, None);
        assert_eq!(run(&["-U", "-1", "prog"]).runpipe_pid, None);
    }

    #[test]
    fn last_of_walltime_and_cputime_decides_time_used() {
        let cases: &[(&[&str], TimeKind)] = &[
            (&["-t", "1", "-C", "1", "p"], TimeKind::CpuTime),
            (&["-C", "1", "-t", "1", "p"], TimeKind::WallTime),
            (&["-C1", "-t1", "-C2", "p"], TimeKind::CpuTime),
            (&["--cputime=1", "--walltime=1", "p"], TimeKind::WallTime),
            (&["-t", "1", "p"], TimeKind::WallTime),
            (&["p"], TimeKind::CpuTime),
        ];
        for (words, expected) in cases {
            assert_eq!(run(words).time_used, *expected, "{words:?}");
        }
    }

    #[test]
    fn repeated_variables_accumulate_split_on_semicolons() {
        let options = run(&["-VA=1;B=2", "-V", ";C=x=y;;", "--variable=D", "p"]);
        assert_eq!(
            options.variables,
            vec![
                EnvEdit::Set("A".into(), "1".into()),
                EnvEdit::Set("B".into(), "2".into()),
                EnvEdit::Set("C".into(), "x=y".into()),
                EnvEdit::Unset("D".into()),
            ]
        );
    }

    #[test]
    fn repeated_single_options_keep_the_last() {
        let options = run(&["-m", "1", "-m", "2", "-v", "-q", "-v", "p"]);
        assert_eq!(options.memory_bytes, Some(2048));
        assert_eq!(options.verbosity, Verbosity::Verbose);
    }

    #[test]
    fn long_options_may_be_abbreviated_uniquely() {
        let options = run(&["--wall=2", "--mem", "1", "--no-c", "p"]);
        assert_eq!(options.wall_time, Some(secs(2.0, 2.0)));
        assert_eq!(options.memory_bytes, Some(1024));
        assert!(options.no_core);
    }

    #[test]
    fn namespace_options() {
        assert_eq!(
            run(&["--no-namespaces", "p"]).namespaces,
            Some(Namespaces::NONE)
        );
        assert_eq!(
            run(&["--namespaces=", "p"]).namespaces,
            Some(Namespaces::NONE)
        );
        let all = run(&["--namespaces=mount,uts,ipc,net,pid,user,cgroup,time", "p"]);
        assert!(Namespaces::NAMES.iter().all(|name| *all
            .namespaces
            .unwrap()
            .get_mut(name)
            .unwrap()));
        let last_wins = run(&["--namespaces=pid", "--no-namespaces", "p"]);
        assert_eq!(last_wins.namespaces, Some(Namespaces::NONE));
    }

    #[test]
    fn oversized_kilobytes_mean_unlimited_like_domjudge() {
        let huge = (i64::MAX / 1000).to_string();
        let options = run(&["-m", &huge, "-f", &huge, "-s", &huge, "p"]);
        assert_eq!(options.memory_bytes, None);
        assert_eq!(options.file_size_bytes, None);
        assert_eq!(options.stream_bytes, Some(i64::MAX as u64));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(&argv(&["--help"])).unwrap(), Parsed::Help);
        assert_eq!(
            parse(&argv(&["--config", "/c.toml", "--clear-netns-pool"])).unwrap(),
            Parsed::ClearNetnsPool {
                config: Some("/c.toml".into())
            }
        );
        assert_eq!(parse(&argv(&["-c", "--help", "p"])).unwrap(), Parsed::Help);
        assert_eq!(parse(&argv(&["--version"])).unwrap(), Parsed::Version);
        // After the command they belong to the command.
        assert!(matches!(
            parse(&argv(&["p", "--help"])).unwrap(),
            Parsed::Run(_)
        ));
    }

    #[test]
    fn errors_name_the_option_and_the_value() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "no command specified"),
            (&["-c"], "no command specified"),
            (&["-x", "p"], "unknown option `-x'"),
            (&["-cx", "p"], "unknown option `-x'"),
            (&["--frobnicate", "p"], "unknown option `--frobnicate'"),
            (&["--no", "p"], "option `--no' is ambiguous"),
            (&["-t"], "option -t/--walltime requires an argument"),
            (&["--memsize"], "option -m/--memsize requires an argument"),
            (&["--json"], "option --json requires an argument"),
            (
                &["--no-core=1", "p"],
                "option `--no-core' doesn't allow an argument",
            ),
            (&["-m", "0", "p"], "invalid value `0' for -m/--memsize"),
            (&["-m", "1k", "p"], "invalid value `1k' for -m/--memsize"),
            (&["-f", "-5", "p"], "invalid value `-5' for -f/--filesize"),
            (&["-p", "x", "p"], "invalid value `x' for -p/--nproc"),
            (&["-s", "", "p"], "invalid value `' for -s/--streamsize"),
            (&["-t", "0", "p"], "invalid value `0' for -t/--walltime"),
            (
                &["-C", "2:1", "p"],
                "invalid value `2:1' for -C/--cputime: hard limit is lower",
            ),
            (
                &["-U", "pid", "p"],
                "invalid value `pid' for -U/--runpipepid",
            ),
            (&["-P", "0-x", "p"], "invalid value `0-x' for -P/--cpuset"),
            (
                &["--cpuset-mems", "0,", "p"],
                "invalid value `0,' for --cpuset-mems",
            ),
            (
                &["--cpu-quota=half", "p"],
                "invalid value `half' for --cpu-quota: expected a number of CPUs",
            ),
            (
                &["--cpu-quota=0", "p"],
                "invalid value `0' for --cpu-quota: expected a number of CPUs above 0",
            ),
            (
                &["--cpu-quota=0.001", "p"],
                "invalid value `0.001' for --cpu-quota: below the kernel's smallest quota",
            ),
            (&["-V", "=x", "p"], "invalid value `=x' for -V/--variable"),
            (
                &["--namespaces=pid,bogus", "p"],
                "unknown namespace `bogus'",
            ),
            (
                &["--cgroup-parent=/abs", "p"],
                "invalid value `/abs' for --cgroup-parent",
            ),
            (
                &["--cgroup-parent=a/../b", "p"],
                "invalid value `a/../b' for --cgroup-parent",
            ),
        ];
        for (words, expected) in cases {
            let message = error(words);
            assert!(
                message.contains(expected),
                "{words:?}: {message:?} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn error_after_outmeta_remembers_the_meta_file() {
        let err = parse(&argv(&["-M", "m", "-m", "zero", "p"])).unwrap_err();
        assert_eq!(err.meta, Some("m".into()));
        let err = parse(&argv(&["-M", "m"])).unwrap_err();
        assert_eq!(err.meta, Some("m".into()));
        let err = parse(&argv(&["-m", "zero", "-M", "m", "p"])).unwrap_err();
        assert_eq!(err.meta, None);
    }

    #[test]
    fn time_limit_syntax() {
        let ok: &[(&str, f64, f64)] = &[
            ("1", 1.0, 1.0),
            ("1.5", 1.5, 1.5),
            ("0.001", 0.001, 0.001),
            ("1:2", 1.0, 2.0),
            ("1.5:1.5", 1.5, 1.5),
            (".5:2.", 0.5, 2.0),
            ("1e1", 10.0, 10.0),
        ];
        for (text, soft, hard) in ok {
            assert_eq!(parse_time_limit(text), Ok(secs(*soft, *hard)), "{text}");
        }
        for text in [
            "", "0", "-1", "1:", ":1", "1:0", "2:1", "a", "1:2:3", "inf", "nan", "1e400",
        ] {
            assert!(parse_time_limit(text).is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn non_utf8_paths_and_command_pass_through() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![b'f', 0xff]);
        let args = vec![OsString::from("-o"), odd.clone(), odd.clone()];
        let Ok(Parsed::Run(options)) = parse(&args) else {
            panic!("expected a run")
        };
        assert_eq!(options.stdout, Some(PathBuf::from(&odd)));
        assert_eq!(options.command, odd);
    }
}
