//! From parsed options, the site config and facts about the host to a [`Plan`]: every check
//! DOMjudge's runguard makes before it forks (users, groups, chroot prefix, online CPUs,
//! privileges), in its words, and the child's environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::plan::{Credentials, OutputTarget, Plan};

use super::cli::{EnvEdit, Options};
use super::config::Config;
use super::cpuset::{check_memory_nodes, check_pinning, parse_cpu_list};
use super::host::Host;
use super::meta::MetaSettings;
use super::{Error, Result};

/// A resolved runguard invocation: what to run, and how to report it.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub plan: Plan,
    pub settings: MetaSettings,
}

pub fn resolve(options: &Options, config: &Config, host: &impl Host) -> Result<Invocation> {
    let credentials = resolve_credentials(options, config, host)?;
    let root = match &options.root {
        Some(root) => Some(check_root(root, config, host)?),
        None => None,
    };
    if let Some(list) = options.cpuset.as_deref().filter(|list| !list.is_empty()) {
        let requested = parse_cpu_list(list).map_err(Error::Usage)?;
        check_pinning(&requested, &host.online_cpus()?)
            .map_err(|why| Error::Refused(format!("-P {list}: {why}")))?;
    }
    if let Some(list) = options
        .cpuset_mems
        .as_deref()
        .filter(|list| !list.is_empty())
    {
        let requested = parse_cpu_list(list).map_err(Error::Usage)?;
        check_memory_nodes(&requested, &host.memory_nodes()?)
            .map_err(|why| Error::Refused(format!("--cpuset-mems {list}: {why}")))?;
    }

    let mut plan = Plan::new(options.command.clone(), options.args.clone());
    // DOMjudge only changes directory inside a chroot.
    plan.chdir = root.as_ref().and(options.chdir.clone());
    plan.root = root;
    plan.credentials = credentials;
    plan.env = child_environment(
        options.keep_environment,
        host.environment(),
        &options.variables,
    );
    let limits = &mut plan.limits;
    limits.wall = options.wall_time;
    limits.cpu = options.cpu_time;
    limits.memory_bytes = options.memory_bytes;
    limits.file_size_bytes = options.file_size_bytes;
    limits.nproc = options.nproc;
    limits.cpuset = options.cpuset.clone().filter(|list| !list.is_empty());
    limits.cpuset_mems = options.cpuset_mems.clone().filter(|list| !list.is_empty());
    limits.cpu_bandwidth = options.cpu_bandwidth;
    limits.stream_bytes = options.stream_bytes;
    limits.no_core = options.no_core;
    plan.measure_activity = options.activity;
    plan.namespaces = options.namespaces.unwrap_or_default();
    plan.stdout = output_target(&options.stdout);
    plan.stderr = output_target(&options.stderr);
    plan.cgroup_parent = options
        .cgroup_parent
        .clone()
        .unwrap_or_else(|| config.cgroup_parent.clone());
    plan.runpipe_pid = options.runpipe_pid;
    plan.netns_pool = config.netns_pool();

    let settings = MetaSettings {
        time_used: options.time_used,
        meta_path: options.meta.clone(),
        json_path: options.json.clone(),
        streamsize_given: options.stream_bytes.is_some(),
    };
    Ok(Invocation { plan, settings })
}

fn output_target(file: &Option<PathBuf>) -> OutputTarget {
    match file {
        Some(path) => OutputTarget::File(path.clone()),
        None => OutputTarget::Inherit,
    }
}

/// Who the command runs as. With `-u`: that user, if the config allows it, and `-g` or the
/// group named like the user. Without: our real user (dropping a setuid root), never root.
fn resolve_credentials(
    options: &Options,
    config: &Config,
    host: &impl Host,
) -> Result<Option<Credentials>> {
    let group = options
        .group
        .as_deref()
        .map(|group| resolve_group(group, host))
        .transpose()?;
    let Some(given) = options.user.as_deref() else {
        if host.real_uid() == 0 {
            return Err(Error::Refused(
                "root privileges not dropped. Do not run judgedaemon as root. \
                 (give -u/--user to run the command as an unprivileged user)"
                    .into(),
            ));
        }
        // Unprivileged and no -g: nothing to change.
        let change = host.effective_uid() == 0 || group.is_some();
        return Ok(change.then(|| Credentials {
            uid: host.real_uid(),
            gid: group.unwrap_or(host.real_gid()),
        }));
    };
    let (uid, name) = resolve_user(given, host)?;
    if !config.allows_user(given, uid, |pattern| host.uid_of_user(pattern)) {
        return Err(Error::Refused(format!(
            "illegal user specified: {uid} (allowed: {}; see valid_users in the config)",
            config.valid_users.join(", ")
        )));
    }
    let gid = match group {
        Some(gid) => gid,
        // Without -g the command must not keep our group (root): use the user's namesake.
        None => {
            let name = name.unwrap_or_else(|| given.to_owned());
            host.gid_of_group(&name).ok_or_else(|| {
                Error::Refused(format!(
                    "invalid groupname or ID specified: `{name}' (no group named like the \
                     user; give -g/--group)"
                ))
            })?
        }
    };
    Ok(Some(Credentials { uid, gid }))
}

/// A uid given as a number or a name, and the user's name when known.
fn resolve_user(given: &str, host: &impl Host) -> Result<(u32, Option<String>)> {
    let invalid = || Error::Refused(format!("invalid username or ID specified: `{given}'"));
    if let Ok(number) = given.parse::<i64>() {
        let uid = u32::try_from(number).map_err(|_| invalid())?;
        return Ok((uid, host.name_of_uid(uid)));
    }
    if !is_posix_user_name(given) {
        return Err(Error::Refused(format!(
            "username `{given}' does not match POSIX pattern"
        )));
    }
    let uid = host.uid_of_user(given).ok_or_else(invalid)?;
    Ok((uid, Some(given.to_owned())))
}

fn resolve_group(given: &str, host: &impl Host) -> Result<u32> {
    let invalid = || Error::Refused(format!("invalid groupname or ID specified: `{given}'"));
    match given.parse::<i64>() {
        Ok(number) => u32::try_from(number).map_err(|_| invalid()),
        Err(_) => host.gid_of_group(given).ok_or_else(invalid),
    }
}

/// DOMjudge's `^[A-Za-z][A-Za-z0-9._-]*$`.
fn is_posix_user_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The chroot directory with symlinks resolved, if it lies inside a configured prefix.
fn check_root(root: &Path, config: &Config, host: &impl Host) -> Result<PathBuf> {
    let canonical = host
        .canonicalize(root)
        .map_err(|source| Error::io("cannot chdir to", root, source))?;
    // A prefix that does not exist holds nothing.
    let inside = config.chroot_prefixes.iter().any(|prefix| {
        host.canonicalize(prefix)
            .is_ok_and(|prefix| canonical.starts_with(prefix))
    });
    if !inside {
        let prefixes: Vec<String> = config
            .chroot_prefixes
            .iter()
            .map(|prefix| format!("`{}'", prefix.display()))
            .collect();
        return Err(Error::Refused(format!(
            "invalid root: must be within {} (see chroot_prefixes in the config)",
            prefixes.join(" or ")
        )));
    }
    Ok(canonical)
}

/// Our PATH only (or our whole environment with `-E`), then the `-V` edits in order.
pub fn child_environment(
    keep_all: bool,
    ours: Vec<(OsString, OsString)>,
    edits: &[EnvEdit],
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = ours
        .into_iter()
        .filter(|(key, _)| keep_all || key == "PATH")
        .collect();
    for edit in edits {
        match edit {
            EnvEdit::Set(key, value) => match env.iter_mut().find(|(k, _)| k == key) {
                Some(entry) => entry.1 = value.clone(),
                None => env.push((key.clone(), value.clone())),
            },
            EnvEdit::Unset(key) => env.retain(|(k, _)| k != key),
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io;
    use std::time::Duration;

    use super::*;
    use crate::plan::{Namespaces, TimeKind, TimeLimit};
    use crate::runguard::cli::{parse, Parsed};
    use crate::runguard::cpuset::Cpus;

    /// A judgehost with DOMjudge's users, run through sudo (real uid 0).
    struct FakeHost {
        users: HashMap<&'static str, u32>,
        groups: HashMap<&'static str, u32>,
        real_uid: u32,
        effective_uid: u32,
        /// Paths that exist, with what they resolve to.
        paths: HashMap<&'static str, &'static str>,
        online: &'static [u32],
    }

    impl Default for FakeHost {
        fn default() -> Self {
            FakeHost {
                users: HashMap::from([
                    ("root", 0),
                    ("domjudge-run", 1001),
                    ("domjudge-run-0", 1002),
                    ("domjudge-run-1", 1003),
                    ("nobody", 65534),
                ]),
                groups: HashMap::from([
                    ("root", 0),
                    ("domjudge-run", 2001),
                    ("domjudge-run-0", 2002),
                    ("nogroup", 65534),
                ]),
                real_uid: 0,
                effective_uid: 0,
                paths: HashMap::from([
                    (
                        "/opt/domjudge/judgehost/judgings",
                        "/opt/domjudge/judgehost/judgings",
                    ),
                    (
                        "/opt/domjudge/judgehost/judgings/1/c",
                        "/opt/domjudge/judgehost/judgings/1/c",
                    ),
                    (
                        "/link-into-judgings",
                        "/opt/domjudge/judgehost/judgings/1/c",
                    ),
                    (
                        "/opt/domjudge/judgehost/judgings2",
                        "/opt/domjudge/judgehost/judgings2",
                    ),
                    ("/tmp", "/tmp"),
                ]),
                online: &[0, 1],
            }
        }
    }

    impl Host for FakeHost {
        fn uid_of_user(&self, name: &str) -> Option<u32> {
            self.users.get(name).copied()
        }
        fn name_of_uid(&self, uid: u32) -> Option<String> {
            self.users
                .iter()
                .find(|(_, &id)| id == uid)
                .map(|(name, _)| name.to_string())
        }
        fn gid_of_group(&self, name: &str) -> Option<u32> {
            self.groups.get(name).copied()
        }
        fn real_uid(&self) -> u32 {
            self.real_uid
        }
        fn effective_uid(&self) -> u32 {
            self.effective_uid
        }
        fn real_gid(&self) -> u32 {
            self.real_uid + 100
        }
        fn environment(&self) -> Vec<(OsString, OsString)> {
            [("HOME", "/root"), ("PATH", "/usr/bin:/bin"), ("LANG", "C")]
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect()
        }
        fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
            let path = path.to_str().unwrap().trim_end_matches('/');
            self.paths
                .get(path)
                .map(PathBuf::from)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
        fn online_cpus(&self) -> crate::runguard::Result<Cpus> {
            Ok(self.online.iter().copied().collect())
        }
        fn memory_nodes(&self) -> crate::runguard::Result<Cpus> {
            Ok(Cpus::from([0]))
        }
    }

    fn options(words: &[&str]) -> Options {
        let args: Vec<OsString> = words.iter().map(OsString::from).collect();
        match parse(&args) {
            Ok(Parsed::Run(options)) => *options,
            other => panic!("{words:?}: {other:?}"),
        }
    }

    fn resolve_on(host: &FakeHost, words: &[&str]) -> Result<Invocation> {
        resolve(&options(words), &Config::default(), host)
    }

    fn plan(words: &[&str]) -> Plan {
        resolve_on(&FakeHost::default(), words).unwrap().plan
    }

    fn refusal(host: &FakeHost, words: &[&str]) -> String {
        match resolve_on(host, words) {
            Err(err) => err.to_string(),
            Ok(invocation) => panic!("{words:?}: expected a refusal, got {invocation:?}"),
        }
    }

    fn creds(uid: u32, gid: u32) -> Option<Credentials> {
        Some(Credentials { uid, gid })
    }

    #[test]
    fn domjudge_test_run_resolves_to_a_full_plan() {
        let invocation = resolve_on(
            &FakeHost::default(),
            &[
                "-V",
                "TMPDIR=/tmp",
                "-P",
                "1",
                "-r",
                "/opt/domjudge/judgehost/judgings/1/c",
                "--nproc=64",
                "--no-core",
                "--streamsize=8192",
                "--user=domjudge-run-0",
                "--group=domjudge-run",
                "--walltime=1:1.5",
                "--cputime=1:1.5",
                "--memsize=2097152",
                "--filesize=8192",
                "--stderr=program.err",
                "--outmeta=program.meta",
                "--",
                "/testcase00001/1/execdir/program",
            ],
        )
        .unwrap();
        let plan = invocation.plan;
        assert_eq!(
            plan.command,
            OsString::from("/testcase00001/1/execdir/program")
        );
        assert!(plan.args.is_empty());
        assert_eq!(
            plan.root,
            Some("/opt/domjudge/judgehost/judgings/1/c".into())
        );
        assert_eq!(plan.credentials, creds(1002, 2001));
        let wanted_time = TimeLimit {
            soft: Duration::from_secs(1),
            hard: Duration::from_millis(1500),
        };
        assert_eq!(plan.limits.wall, Some(wanted_time));
        assert_eq!(plan.limits.cpu, Some(wanted_time));
        assert_eq!(plan.limits.memory_bytes, Some(2_147_483_648));
        assert_eq!(plan.limits.file_size_bytes, Some(8_388_608));
        assert_eq!(plan.limits.stream_bytes, Some(8_388_608));
        assert_eq!(plan.limits.nproc, Some(64));
        assert_eq!(plan.limits.cpuset.as_deref(), Some("1"));
        assert!(plan.limits.no_core);
        assert_eq!(plan.stdout, OutputTarget::Inherit);
        assert_eq!(plan.stderr, OutputTarget::File("program.err".into()));
        assert_eq!(plan.namespaces, Namespaces::default());
        assert_eq!(plan.cgroup_parent, PathBuf::from("judged"));
        assert_eq!(
            invocation.settings,
            MetaSettings {
                time_used: TimeKind::CpuTime,
                meta_path: Some("program.meta".into()),
                json_path: None,
                streamsize_given: true,
            }
        );
    }

    #[test]
    fn group_defaults_to_the_users_namesake() {
        assert_eq!(
            plan(&["-u", "domjudge-run", "p"]).credentials,
            creds(1001, 2001)
        );
        // Given as a number: the group named like the user with that uid.
        assert_eq!(plan(&["-u", "1001", "p"]).credentials, creds(1001, 2001));
        assert_eq!(
            plan(&["-u", "1001", "-g", "65534", "p"]).credentials,
            creds(1001, 65534)
        );
        let message = refusal(&FakeHost::default(), &["-u", "domjudge-run-1", "p"]);
        assert!(
            message.contains("invalid groupname or ID specified: `domjudge-run-1'"),
            "{message}"
        );
    }

    #[test]
    fn users_outside_the_valid_list_are_illegal() {
        let host = FakeHost::default();
        let cases: &[(&[&str], &str)] = &[
            (&["-u", "nobody", "p"], "illegal user specified: 65534"),
            (&["-u", "root", "p"], "illegal user specified: 0"),
            (&["-u", "0", "p"], "illegal user specified: 0"),
            (&["-u", "1003", "p"], "illegal user specified: 1003"),
            (
                &["-u", "ghost", "p"],
                "invalid username or ID specified: `ghost'",
            ),
            (&["-u", "-5", "p"], "invalid username or ID specified: `-5'"),
            (
                &["-u", "bad name", "p"],
                "username `bad name' does not match POSIX pattern",
            ),
            (
                &["-u", "domjudge-run", "-g", "nosuch", "p"],
                "invalid groupname or ID specified: `nosuch'",
            ),
        ];
        for (words, expected) in cases {
            let message = refusal(&host, words);
            assert!(message.contains(expected), "{words:?}: {message}");
        }
    }

    #[test]
    fn without_user_root_is_refused_and_others_keep_their_ids() {
        let message = refusal(&FakeHost::default(), &["ls"]);
        assert!(message.contains("root privileges not dropped"), "{message}");

        let unprivileged = FakeHost {
            real_uid: 1000,
            effective_uid: 1000,
            ..FakeHost::default()
        };
        let plan = resolve_on(&unprivileged, &["ls"]).unwrap().plan;
        assert_eq!(plan.credentials, None);
        let plan = resolve_on(&unprivileged, &["-g", "nogroup", "ls"])
            .unwrap()
            .plan;
        assert_eq!(plan.credentials, creds(1000, 65534));

        let setuid_root = FakeHost {
            real_uid: 1000,
            ..FakeHost::default()
        };
        let plan = resolve_on(&setuid_root, &["ls"]).unwrap().plan;
        assert_eq!(plan.credentials, creds(1000, 1100));
    }

    #[test]
    fn root_must_lie_within_a_chroot_prefix() {
        let host = FakeHost::default();
        // Symlinks are resolved before the check.
        assert_eq!(
            plan(&[
                "-u",
                "domjudge-run",
                "-r",
                "/link-into-judgings",
                "-d",
                "/compile",
                "p"
            ])
            .root,
            Some("/opt/domjudge/judgehost/judgings/1/c".into())
        );
        let message = refusal(&host, &["-u", "domjudge-run", "-r", "/tmp", "p"]);
        assert!(
            message.contains("invalid root: must be within `/opt/domjudge/judgehost/judgings'"),
            "{message}"
        );
        // Components, not characters: judgings2 is not inside judgings.
        let message = refusal(
            &host,
            &[
                "-u",
                "domjudge-run",
                "-r",
                "/opt/domjudge/judgehost/judgings2",
                "p",
            ],
        );
        assert!(message.contains("invalid root"), "{message}");
        let message = refusal(&host, &["-u", "domjudge-run", "-r", "/nonexistent", "p"]);
        assert!(
            message.contains("cannot chdir to `/nonexistent'"),
            "{message}"
        );
    }

    #[test]
    fn chdir_only_with_root() {
        assert_eq!(
            plan(&["-u", "domjudge-run", "-d", "/compile", "p"]).chdir,
            None
        );
        let plan = plan(&[
            "-u",
            "domjudge-run",
            "-r",
            "/opt/domjudge/judgehost/judgings/1/c",
            "-d",
            "/compile",
            "p",
        ]);
        assert_eq!(plan.chdir, Some("/compile".into()));
    }

    #[test]
    fn pinning_is_checked_against_online_cpus() {
        let host = FakeHost::default();
        assert_eq!(
            plan(&["-u", "domjudge-run", "-P", "0-1", "p"])
                .limits
                .cpuset
                .as_deref(),
            Some("0-1")
        );
        assert_eq!(
            plan(&["-u", "domjudge-run", "-P", "", "p"]).limits.cpuset,
            None
        );
        let message = refusal(&host, &["-u", "domjudge-run", "-P", "1-2", "p"]);
        assert_eq!(
            message,
            "-P 1-2: requested pinning on CPU 2 which is not online"
        );
    }

    #[test]
    fn memory_nodes_are_checked_against_the_nodes_with_memory() {
        let host = FakeHost::default();
        let limits = plan(&["-u", "domjudge-run", "--cpuset-mems", "0", "p"]).limits;
        assert_eq!(limits.cpuset_mems.as_deref(), Some("0"));
        assert_eq!(limits.cpuset, None);
        assert_eq!(
            plan(&["-u", "domjudge-run", "--cpuset-mems=", "p"])
                .limits
                .cpuset_mems,
            None
        );
        let message = refusal(&host, &["-u", "domjudge-run", "--cpuset-mems", "0-1", "p"]);
        assert_eq!(
            message,
            "--cpuset-mems 0-1: memory node 1 has no memory here (nodes with memory: 0)"
        );
    }

    #[test]
    fn environment_is_path_only_unless_kept_then_variables() {
        let env = |words: &[&str]| -> Vec<(String, String)> {
            plan(words)
                .env
                .into_iter()
                .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
                .collect()
        };
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            env(&["-u", "domjudge-run", "p"]),
            [pair("PATH", "/usr/bin:/bin")]
        );
        assert_eq!(
            env(&["-u", "domjudge-run", "-E", "p"]),
            [
                pair("HOME", "/root"),
                pair("PATH", "/usr/bin:/bin"),
                pair("LANG", "C")
            ]
        );
        assert_eq!(
            env(&[
                "-u",
                "domjudge-run",
                "-VDOMjudgeA=A;DOMjudgeB=BB",
                "-VDOMjudgeC=CCC",
                "p"
            ]),
            [
                pair("PATH", "/usr/bin:/bin"),
                pair("DOMjudgeA", "A"),
                pair("DOMjudgeB", "BB"),
                pair("DOMjudgeC", "CCC"),
            ]
        );
        // Later entries override in place; a bare name removes the variable.
        assert_eq!(
            env(&[
                "-u",
                "domjudge-run",
                "-E",
                "-V",
                "HOME=/h;LANG",
                "-V",
                "PATH=/x",
                "p"
            ]),
            [pair("HOME", "/h"), pair("PATH", "/x")]
        );
    }

    #[test]
    fn our_own_options_reach_the_plan() {
        let plan = plan(&[
            "-u",
            "domjudge-run",
            "--no-namespaces",
            "--cgroup-parent=judged/w3",
            "-U",
            "77",
            "p",
        ]);
        assert_eq!(plan.namespaces, Namespaces::NONE);
        assert_eq!(plan.cgroup_parent, PathBuf::from("judged/w3"));
        assert_eq!(plan.runpipe_pid, Some(77));
        let from_config = resolve(
            &options(&["-u", "domjudge-run", "p"]),
            &Config {
                cgroup_parent: "site/runs".into(),
                ..Config::default()
            },
            &FakeHost::default(),
        )
        .unwrap();
        assert_eq!(from_config.plan.cgroup_parent, PathBuf::from("site/runs"));
    }
}
