//! Site configuration of runguard: what DOMjudge compiles in (`VALID_USERS`, `CHROOT_PREFIX`)
//! plus where our cgroups go. Read from a TOML file:
//!
//! ```toml
//! # Users a command may run as: names, `*` and `?` match any run / one character.
//! valid_users = ["domjudge-run", "domjudge-run-*"]
//! # -r/--root must lie inside one of these directories.
//! chroot_prefixes = ["/opt/domjudge/judgehost/judgings"]
//! # Parent of the runs' cgroups, relative to each hierarchy's root.
//! cgroup_parent = "judged"
//! # Empty network namespaces reused by runs (see `sys::netns_pool`); 0 turns the pool off.
//! netns_pool_dir = "/run/judged/netns"
//! netns_pool_size = 64
//! ```
//!
//! Every key is optional; unknown keys are an error, so a typo never silently loosens a check.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::plan::{NetnsPool, DEFAULT_CGROUP_PARENT};

use super::{Error, Result};

/// Read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/judged/runguard.toml";

/// DOMjudge's judgings directory with its default installation prefix (`/opt/domjudge`):
/// the `CHROOT_PREFIX` its `configure` compiles in and where its test chroots live. A site with
/// another prefix (e.g. Debian's `/var/lib/domjudge/judgings`) says so in the config file.
pub const DEFAULT_CHROOT_PREFIX: &str = "/opt/domjudge/judgehost/judgings";

/// The pool of empty network namespaces runs enter instead of making one each.
pub const DEFAULT_NETNS_POOL_DIR: &str = "/run/judged/netns";
/// One per concurrent run is what is used; a judgehost rarely runs more than this at once.
pub const DEFAULT_NETNS_POOL_SIZE: usize = 64;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Patterns of user names a command may run as (`*`, `?` wildcards). A numeric `-u` is
    /// allowed when it is the uid of a user named exactly by one of them.
    pub valid_users: Vec<String>,
    /// `-r` must lie inside one of these directories (compared after resolving symlinks).
    pub chroot_prefixes: Vec<PathBuf>,
    /// Parent of the runs' cgroups, relative to each hierarchy's root.
    pub cgroup_parent: PathBuf,
    /// Where the pooled network namespaces are pinned (an absolute path on a filesystem
    /// that goes away at reboot, like `/run`).
    pub netns_pool_dir: PathBuf,
    /// At most this many pooled network namespaces; 0: every run makes its own.
    pub netns_pool_size: usize,
}

impl Default for Config {
    /// DOMjudge's defaults.
    fn default() -> Self {
        Config {
            valid_users: vec!["domjudge-run".into(), "domjudge-run-*".into()],
            chroot_prefixes: vec![DEFAULT_CHROOT_PREFIX.into()],
            cgroup_parent: DEFAULT_CGROUP_PARENT.into(),
            netns_pool_dir: DEFAULT_NETNS_POOL_DIR.into(),
            netns_pool_size: DEFAULT_NETNS_POOL_SIZE,
        }
    }
}

impl Config {
    /// The file given with `--config` (which must exist), else [`DEFAULT_CONFIG_PATH`] if it
    /// exists, else the built-in defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        match explicit {
            Some(path) => Config::from_file(path),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                Config::from_file(Path::new(DEFAULT_CONFIG_PATH))
            }
            None => Ok(Config::default()),
        }
    }

    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::io("cannot read config file", path, source))?;
        Config::from_toml(&text, path)
    }

    /// Parse and check the text of a config file; `path` only names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config> {
        let error = |message: String| Error::Config {
            path: path.to_owned(),
            message,
        };
        let config: Config = toml::from_str(text).map_err(|err| error(err.to_string()))?;
        for pattern in &config.valid_users {
            if pattern.is_empty() || pattern.contains(['[', ']', ',']) {
                return Err(error(format!(
                    "valid_users: pattern `{pattern}' is not a user name with `*'/`?' wildcards"
                )));
            }
        }
        for prefix in &config.chroot_prefixes {
            if !prefix.is_absolute() {
                return Err(error(format!(
                    "chroot_prefixes: `{}' is not an absolute path",
                    prefix.display()
                )));
            }
        }
        validate_cgroup_parent(&config.cgroup_parent)
            .map_err(|why| error(format!("cgroup_parent: {why}")))?;
        if !config.netns_pool_dir.is_absolute() {
            return Err(error(format!(
                "netns_pool_dir: `{}' is not an absolute path",
                config.netns_pool_dir.display()
            )));
        }
        Ok(config)
    }

    /// The network namespace pool runs use, `None` when turned off.
    pub fn netns_pool(&self) -> Option<NetnsPool> {
        (self.netns_pool_size > 0).then(|| NetnsPool {
            dir: self.netns_pool_dir.clone(),
            size: self.netns_pool_size,
        })
    }

    /// Whether the user given as `given` (a name or a number) with uid `uid` may run commands,
    /// as DOMjudge decides it: `given` matches a pattern, or `uid` is that of a user named by a
    /// pattern (`uid_of` looks names up). Never uid 0.
    pub fn allows_user(&self, given: &str, uid: u32, uid_of: impl Fn(&str) -> Option<u32>) -> bool {
        uid != 0
            && self
                .valid_users
                .iter()
                .any(|pattern| wildcard_match(pattern, given) || uid_of(pattern) == Some(uid))
    }
}

/// A cgroup parent must stay inside the hierarchy: relative, without `..`.
pub fn validate_cgroup_parent(parent: &Path) -> Result<(), String> {
    let inside = parent
        .components()
        .all(|component| matches!(component, Component::Normal(_) | Component::CurDir));
    if parent.as_os_str().is_empty() || !inside {
        return Err("expected a relative path without `..' (e.g. judged)".into());
    }
    Ok(())
}

/// fnmatch(3) without brackets: `*` matches any run of characters, `?` one character.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Classic greedy match with backtracking to the last `*`.
    let (mut p, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                last_star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match last_star {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    last_star = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        crate::repo_path("testdata/runguard/config").join(name)
    }

    #[test]
    fn full_fixture_loads() {
        let config = Config::from_file(&fixture("full.toml")).unwrap();
        assert_eq!(config.valid_users, ["judge-run", "judge-run-?"]);
        assert_eq!(
            config.chroot_prefixes,
            [
                PathBuf::from("/var/lib/domjudge/judgings"),
                PathBuf::from("/srv/chroots")
            ]
        );
        assert_eq!(config.cgroup_parent, PathBuf::from("judged/runguard"));
    }

    #[test]
    fn missing_keys_take_domjudge_defaults() {
        let config = Config::from_file(&fixture("partial.toml")).unwrap();
        assert_eq!(config.valid_users, ["someone"]);
        assert_eq!(config.chroot_prefixes, Config::default().chroot_prefixes);
        assert_eq!(config.cgroup_parent, PathBuf::from("judged"));
        assert_eq!(
            Config::from_toml("", Path::new("empty")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn unknown_key_is_rejected_naming_file_and_key() {
        let path = fixture("unknown-key.toml");
        let message = Config::from_file(&path).unwrap_err().to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("valid_user"), "{message}");
    }

    #[test]
    fn invalid_values_are_rejected() {
        let cases = [
            ("cgroup_parent = \"/abs\"", "cgroup_parent"),
            ("cgroup_parent = \"../x\"", "cgroup_parent"),
            ("chroot_prefixes = [\"relative\"]", "chroot_prefixes"),
            ("valid_users = [\"a,b\"]", "valid_users"),
            ("valid_users = \"notalist\"", "valid_users"),
            ("netns_pool_dir = \"run/pool\"", "netns_pool_dir"),
            ("netns_pool_size = -1", "netns_pool_size"),
        ];
        for (text, key) in cases {
            let message = Config::from_toml(text, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                message.contains(key) && message.contains("t.toml"),
                "{text}: {message}"
            );
        }
    }

    #[test]
    fn a_netns_pool_of_size_0_is_off() {
        let off = Config::from_toml("netns_pool_size = 0", Path::new("t.toml")).unwrap();
        assert_eq!(off.netns_pool(), None);
        let pool = Config::default().netns_pool().unwrap();
        assert_eq!(pool.dir, PathBuf::from(DEFAULT_NETNS_POOL_DIR));
        assert_eq!(pool.size, DEFAULT_NETNS_POOL_SIZE);
    }

    #[test]
    fn explicit_config_file_must_exist() {
        let missing = fixture("does-not-exist.toml");
        let message = Config::load(Some(&missing)).unwrap_err().to_string();
        assert!(message.contains("does-not-exist.toml"), "{message}");
    }

    #[test]
    fn wildcards() {
        let cases = [
            ("domjudge-run", "domjudge-run", true),
            ("domjudge-run", "domjudge-run-0", false),
            ("domjudge-run-*", "domjudge-run-0", true),
            ("domjudge-run-*", "domjudge-run-", true),
            ("domjudge-run-*", "domjudge-run", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("*", "", true),
            ("run-?", "run-1", true),
            ("run-?", "run-12", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                wildcard_match(pattern, text),
                expected,
                "{pattern} vs {text}"
            );
        }
    }

    #[test]
    fn allowed_users_follow_domjudge() {
        let config = Config::default();
        let uid_of = |name: &str| (name == "domjudge-run").then_some(1001);
        assert!(config.allows_user("domjudge-run", 1001, uid_of));
        assert!(config.allows_user("domjudge-run-3", 1004, uid_of));
        // A number is allowed when it is the uid of a listed user.
        assert!(config.allows_user("1001", 1001, uid_of));
        assert!(!config.allows_user("1004", 1004, uid_of));
        assert!(!config.allows_user("nobody", 65534, uid_of));
        // Never root, even when listed.
        let root_listed = Config {
            valid_users: vec!["*".into()],
            ..Config::default()
        };
        assert!(!root_listed.allows_user("root", 0, uid_of));
    }
}
