//! Sandbox profiles: the namespaces, filesystem view, environment and seccomp policy of a run,
//! kept as data in `profiles/sandbox/*.toml` (each entry commented with why it is there).
//!
//! Loading resolves and validates a profile once (unknown keys, relative or `..` targets,
//! missing sources and policies are refused with the file, the key and what to do);
//! [`Profile::apply`] then writes it into a [`Plan`] without touching the system. The mounts
//! themselves are made by the child (`sys`), from `plan.filesystem`, in the order listed:
//! the profile's binds, the writable work dir, the tmpfs mounts, then `/proc` when the run gets
//! its own pid namespace (a procfs without one would show the host's processes).
//!
//! A profile file:
//!
//! ```toml
//! namespaces = ["mount", "uts", "ipc", "net"]   # exactly these; the rest are off
//! seccomp = "../seccomp/default.json"           # optional; relative to the profile's directory
//!
//! [env]                                         # added to the run's environment (overriding)
//! TMPDIR = "/tmp"
//!
//! [filesystem]                                  # optional; needs the mount namespace
//! work_dir = "/work"                            # where the run's work dir appears, writable
//!
//! [[filesystem.bind]]                           # read-only unless `writable = true`
//! source = "/usr"                               # on the host; `target` defaults to it
//! optional = false                              # true: skipped where the source is missing
//!
//! [[filesystem.tmpfs]]
//! target = "/tmp"
//! size_mib = 64
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::plan::{Filesystem, Mount, Namespaces, Plan};
use crate::seccomp::{self, SeccompError};

/// Where the assembled root is built. The runner makes sure the directory exists (a plain
/// `mkdir -p`, shared by all runs and never removed); each child, inside its own mount
/// namespace, covers it with a private tmpfs to hold the mount points, so concurrent runs share
/// the path without seeing each other and nothing is left to clean up.
pub const NEW_ROOT: &str = "/run/judged/root";

/// A profile file that cannot be used, or a profile that does not fit the run.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    // The cause is in the message, deliberately not a `source`: `{:#}` would print it twice.
    #[error("cannot read sandbox profile `{path}`: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "sandbox profile `{origin}` is not valid: {message}\n\
         (the keys are documented in profiles/sandbox/default.toml)"
    )]
    Syntax { origin: PathBuf, message: String },
    #[error("sandbox profile `{origin}`, key `{key}`: {problem}")]
    Invalid {
        origin: PathBuf,
        key: String,
        problem: String,
    },
    #[error("sandbox profile `{origin}`, key `seccomp`: {source}")]
    Seccomp {
        origin: PathBuf,
        #[source]
        source: SeccompError,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("unknown namespace `{name}`: use one of {}", Namespaces::NAMES.join(", "))]
pub struct UnknownNamespace {
    pub name: String,
}

/// A loaded, validated sandbox profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    origin: PathBuf,
    namespaces: Namespaces,
    seccomp_policy: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    filesystem: Option<Layout>,
}

/// The profile's filesystem view, before the work dir (known only per run) is added.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    work_dir_target: PathBuf,
    /// Binds then tmpfs mounts, in the profile's order.
    mounts: Vec<Mount>,
}

impl Profile {
    /// Read and validate the profile at `path`.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|error| ProfileError::Read {
            path: path.to_owned(),
            error,
        })?;
        Profile::parse(&text, path)
    }

    /// Validate profile `text` read from `origin`: errors name `origin`, and relative paths in
    /// the profile are resolved against its directory. Checks that sources and the seccomp
    /// policy exist on this host, and compiles the policy.
    pub fn parse(text: &str, origin: &Path) -> Result<Profile, ProfileError> {
        let file: ProfileFile = toml::from_str(text).map_err(|error| ProfileError::Syntax {
            origin: origin.to_owned(),
            message: error.to_string().trim_end().to_owned(),
        })?;
        let resolver = Resolver {
            origin,
            base: origin.parent().unwrap_or(Path::new("")),
        };
        Ok(Profile {
            origin: origin.to_owned(),
            namespaces: resolver.namespaces(&file.namespaces)?,
            seccomp_policy: file
                .seccomp
                .map(|policy| resolver.seccomp_policy(&policy))
                .transpose()?,
            env: resolver.env(file.env)?,
            filesystem: file
                .filesystem
                .map(|filesystem| resolver.layout(filesystem))
                .transpose()?,
        })
    }

    /// The file the profile came from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    pub fn namespaces(&self) -> Namespaces {
        self.namespaces
    }

    /// Where the run's work dir appears inside the sandbox (`None` without [filesystem]): the
    /// path a caller gives for files it put in the work dir.
    pub fn work_dir(&self) -> Option<&Path> {
        self.filesystem
            .as_ref()
            .map(|layout| layout.work_dir_target.as_path())
    }

    /// Switch one namespace on or off (command-line overrides); call before [`Profile::apply`].
    pub fn switch_namespace(&mut self, name: &str, on: bool) -> Result<(), UnknownNamespace> {
        switch_namespace(&mut self.namespaces, name, on)
    }

    /// Write the profile into `plan` for a run whose work dir (on the host) is `work_dir`:
    /// namespaces, seccomp policy, environment additions and, when the profile has a filesystem,
    /// `plan.filesystem` (and `plan.chdir`, if unset, to the work dir inside the sandbox).
    pub fn apply(&self, plan: &mut Plan, work_dir: &Path) -> Result<(), ProfileError> {
        plan.namespaces = self.namespaces;
        plan.seccomp_policy.clone_from(&self.seccomp_policy);
        for (name, value) in &self.env {
            match plan.env.iter_mut().find(|(existing, _)| existing == name) {
                Some((_, existing)) => existing.clone_from(value),
                None => plan.env.push((name.clone(), value.clone())),
            }
        }
        let Some(layout) = &self.filesystem else {
            return Ok(());
        };
        let invalid = |key: &str, problem: String| ProfileError::Invalid {
            origin: self.origin.clone(),
            key: key.to_owned(),
            problem,
        };
        if !self.namespaces.mount {
            return Err(invalid(
                "filesystem",
                "a filesystem view needs the mount namespace: do not switch `mount` off with \
                 this profile, or use a profile without [filesystem]"
                    .to_owned(),
            ));
        }
        if let Some(root) = &plan.root {
            return Err(invalid(
                "filesystem",
                format!(
                    "the run also asks for a chroot into `{}`; a profile with [filesystem] \
                     builds its own root: drop one of the two",
                    root.display()
                ),
            ));
        }
        if !work_dir.is_absolute() {
            return Err(invalid(
                "filesystem.work_dir",
                format!(
                    "the run's work dir `{}` must be an absolute host path",
                    work_dir.display()
                ),
            ));
        }
        let mut mounts = layout.mounts.clone();
        mounts.push(Mount::Bind {
            source: work_dir.to_owned(),
            target: layout.work_dir_target.clone(),
            writable: true,
        });
        if self.namespaces.pid {
            mounts.push(Mount::Proc {
                target: PathBuf::from("/proc"),
            });
        }
        plan.filesystem = Some(Filesystem {
            new_root: PathBuf::from(NEW_ROOT),
            mounts,
        });
        if plan.chdir.is_none() {
            plan.chdir = Some(layout.work_dir_target.clone());
        }
        Ok(())
    }
}

/// Switch namespace `name` (as in [`Namespaces::NAMES`]) on or off.
pub fn switch_namespace(
    namespaces: &mut Namespaces,
    name: &str,
    on: bool,
) -> Result<(), UnknownNamespace> {
    let switch = namespaces.get_mut(name).ok_or_else(|| UnknownNamespace {
        name: name.to_owned(),
    })?;
    *switch = on;
    Ok(())
}

/// The names of the namespaces that are on, in [`Namespaces::NAMES`] order (for `--help`,
/// `--verbose` and reports).
pub fn enabled_namespaces(namespaces: &Namespaces) -> Vec<&'static str> {
    let mut lookup = *namespaces;
    Namespaces::NAMES
        .into_iter()
        .filter(|name| lookup.get_mut(name).is_some_and(|on| *on))
        .collect()
}

// The file's shape. Unknown keys are errors: a misspelt key must not silently weaken a sandbox.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    namespaces: Vec<String>,
    seccomp: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    filesystem: Option<FilesystemFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesystemFile {
    work_dir: PathBuf,
    #[serde(default)]
    bind: Vec<BindFile>,
    #[serde(default)]
    tmpfs: Vec<TmpfsFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BindFile {
    source: PathBuf,
    target: Option<PathBuf>,
    #[serde(default)]
    writable: bool,
    #[serde(default)]
    optional: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TmpfsFile {
    target: PathBuf,
    size_mib: u64,
}

/// Turns the file's values into checked ones, naming `origin` and the key in every error.
struct Resolver<'a> {
    origin: &'a Path,
    /// The profile's directory: relative host paths are relative to it.
    base: &'a Path,
}

impl Resolver<'_> {
    fn invalid(&self, key: impl Into<String>, problem: impl Into<String>) -> ProfileError {
        ProfileError::Invalid {
            origin: self.origin.to_owned(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    fn namespaces(&self, names: &[String]) -> Result<Namespaces, ProfileError> {
        let mut namespaces = Namespaces::NONE;
        for name in names {
            switch_namespace(&mut namespaces, name, true)
                .map_err(|unknown| self.invalid("namespaces", unknown.to_string()))?;
        }
        Ok(namespaces)
    }

    fn seccomp_policy(&self, policy: &Path) -> Result<PathBuf, ProfileError> {
        let path = self.base.join(policy);
        // Canonical, so that plans and reports name the policy plainly.
        let Some(path) = path.canonicalize().ok().filter(|path| path.is_file()) else {
            return Err(self.invalid(
                "seccomp",
                format!(
                    "policy file `{}` does not exist: fix the path (a relative one is taken \
                     from the profile's directory) or remove the key to run without a filter",
                    path.display()
                ),
            ));
        };
        // Compiled here only to refuse a broken policy when the profile is loaded, not at a run.
        seccomp::compile(&path).map_err(|source| ProfileError::Seccomp {
            origin: self.origin.to_owned(),
            source,
        })?;
        Ok(path)
    }

    fn env(
        &self,
        env: BTreeMap<String, String>,
    ) -> Result<Vec<(OsString, OsString)>, ProfileError> {
        env.into_iter()
            .map(|(name, value)| {
                if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
                    return Err(self.invalid(
                        format!("env.{name}"),
                        "a variable name must be non-empty without `=` or NUL, and a value \
                         without NUL: rename or remove it",
                    ));
                }
                Ok((OsString::from(name), OsString::from(value)))
            })
            .collect()
    }

    fn layout(&self, filesystem: FilesystemFile) -> Result<Layout, ProfileError> {
        let mut targets = BTreeSet::new();
        let mut claim = |key: &str, target: &Path| -> Result<PathBuf, ProfileError> {
            self.check_target(key, target)?;
            if !targets.insert(target.to_owned()) {
                return Err(self.invalid(
                    key,
                    format!(
                        "`{}` is already a target of another entry: keep one",
                        target.display()
                    ),
                ));
            }
            Ok(target.to_owned())
        };
        let work_dir_target = claim("filesystem.work_dir", &filesystem.work_dir)?;
        let mut mounts = Vec::new();
        for (index, bind) in filesystem.bind.into_iter().enumerate() {
            let key = format!("filesystem.bind[{index}]");
            let source = self.base.join(&bind.source);
            if !source.exists() {
                if bind.optional {
                    continue;
                }
                return Err(self.invalid(
                    format!("{key}.source"),
                    format!(
                        "`{}` does not exist on this host: fix the path, or add \
                         `optional = true` if only some hosts have it",
                        source.display()
                    ),
                ));
            }
            let target = bind.target.as_deref().unwrap_or(&bind.source);
            let target = claim(&format!("{key}.target"), target)?;
            mounts.push(Mount::Bind {
                source,
                target,
                writable: bind.writable,
            });
        }
        for (index, tmpfs) in filesystem.tmpfs.into_iter().enumerate() {
            let key = format!("filesystem.tmpfs[{index}]");
            if tmpfs.size_mib == 0 {
                return Err(self.invalid(
                    format!("{key}.size_mib"),
                    "must be at least 1 (a tmpfs of size 0 would be unlimited)",
                ));
            }
            mounts.push(Mount::Tmpfs {
                target: claim(&format!("{key}.target"), &tmpfs.target)?,
                size_bytes: tmpfs.size_mib << 20,
            });
        }
        Ok(Layout {
            work_dir_target,
            mounts,
        })
    }

    /// A place inside the sandbox: absolute, not the root itself, without `..`.
    fn check_target(&self, key: &str, target: &Path) -> Result<(), ProfileError> {
        let problem = if !target.is_absolute() {
            "is not absolute: give the path inside the sandbox, starting with `/`"
        } else if target.components().any(|part| part == Component::ParentDir) {
            "contains `..`: write the path inside the sandbox without it"
        } else if target == Path::new("/") {
            "is the root itself, which the runner builds: mount below it"
        } else {
            return Ok(());
        };
        Err(self.invalid(key, format!("`{}` {problem}", target.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::repo_path;

    fn fixtures() -> PathBuf {
        repo_path("testdata/profiles")
    }

    fn shipped(name: &str) -> Profile {
        let path = repo_path("profiles/sandbox").join(name);
        Profile::load(&path).unwrap_or_else(|error| panic!("{error}"))
    }

    fn good_fixture() -> Profile {
        Profile::load(&fixtures().join("good.toml")).unwrap_or_else(|error| panic!("{error}"))
    }

    fn commented_policy() -> PathBuf {
        fixtures()
            .join("policies/commented.json")
            .canonicalize()
            .unwrap()
    }

    fn plan() -> Plan {
        Plan::new("./program", Vec::new())
    }

    #[test]
    fn every_shipped_profile_loads() {
        let mut loaded = 0;
        for entry in std::fs::read_dir(repo_path("profiles/sandbox")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                Profile::load(&path).unwrap_or_else(|error| panic!("{error}"));
                loaded += 1;
            }
        }
        assert!(loaded >= 3, "only {loaded} profiles under profiles/sandbox");
    }

    #[test]
    fn default_profile_is_runguard_like_with_a_filesystem_and_a_policy() {
        let profile = shipped("default.toml");
        assert_eq!(profile.namespaces(), Namespaces::default());
        assert_eq!(profile.work_dir(), Some(Path::new("/work")));
        let mut plan = plan();
        profile
            .apply(&mut plan, Path::new("/srv/judged/run/1"))
            .unwrap();
        assert!(plan.seccomp_policy.as_deref().is_some_and(|path| path
            == repo_path("profiles/seccomp/default.json")
                .canonicalize()
                .unwrap()));
        let filesystem = plan.filesystem.expect("default.toml has a filesystem");
        assert_eq!(filesystem.new_root, Path::new(NEW_ROOT));
        let usr = Mount::Bind {
            source: PathBuf::from("/usr"),
            target: PathBuf::from("/usr"),
            writable: false,
        };
        let work = Mount::Bind {
            source: PathBuf::from("/srv/judged/run/1"),
            target: PathBuf::from("/work"),
            writable: true,
        };
        let tmp = Mount::Tmpfs {
            target: PathBuf::from("/tmp"),
            size_bytes: 64 << 20,
        };
        for mount in [&usr, &work, &tmp] {
            assert!(filesystem.mounts.contains(mount), "{mount:?} missing");
        }
        assert!(!filesystem
            .mounts
            .iter()
            .any(|mount| matches!(mount, Mount::Proc { .. })));
        assert_eq!(plan.chdir.as_deref(), Some(Path::new("/work")));
    }

    #[test]
    fn compile_profile_adds_a_pid_namespace_and_its_proc() {
        let profile = shipped("compile.toml");
        assert_eq!(
            enabled_namespaces(&profile.namespaces()),
            ["mount", "uts", "ipc", "net", "pid"]
        );
        let mut plan = plan();
        profile.apply(&mut plan, Path::new("/srv/compile")).unwrap();
        let mounts = plan.filesystem.unwrap().mounts;
        assert_eq!(
            mounts.last(),
            Some(&Mount::Proc {
                target: PathBuf::from("/proc")
            })
        );
    }

    #[test]
    fn minimal_profile_only_sets_runguards_namespaces() {
        let mut plan = plan();
        let before = plan.clone();
        let minimal = shipped("minimal.toml");
        assert_eq!(minimal.work_dir(), None);
        minimal.apply(&mut plan, Path::new("/srv/run")).unwrap();
        assert_eq!(
            plan,
            Plan {
                namespaces: Namespaces::default(),
                ..before
            }
        );
    }

    #[test]
    fn apply_resolves_the_fixture_into_the_plan() {
        let mut plan = plan();
        plan.env
            .push((OsString::from("LANG"), OsString::from("C.UTF-8")));
        good_fixture()
            .apply(&mut plan, Path::new("/srv/run/7"))
            .unwrap();

        let mut expected_namespaces = Namespaces::NONE;
        expected_namespaces.mount = true;
        expected_namespaces.net = true;
        expected_namespaces.pid = true;
        assert_eq!(plan.namespaces, expected_namespaces);
        assert_eq!(plan.seccomp_policy, Some(commented_policy()));
        let env = |name: &str, value: &str| (OsString::from(name), OsString::from(value));
        // PATH is overridden in place, LANG kept, TMPDIR added.
        assert_eq!(
            plan.env,
            [
                env("PATH", "/usr/bin"),
                env("LANG", "C.UTF-8"),
                env("TMPDIR", "/tmp")
            ]
        );
        assert_eq!(
            plan.filesystem,
            Some(Filesystem {
                new_root: PathBuf::from(NEW_ROOT),
                mounts: vec![
                    Mount::Bind {
                        source: fixtures().join("tree/usr"),
                        target: PathBuf::from("/usr"),
                        writable: false,
                    },
                    // tree/opt is missing and optional: skipped.
                    Mount::Bind {
                        source: fixtures().join("tree/data"),
                        target: PathBuf::from("/data"),
                        writable: true,
                    },
                    Mount::Tmpfs {
                        target: PathBuf::from("/tmp"),
                        size_bytes: 16 << 20,
                    },
                    Mount::Bind {
                        source: PathBuf::from("/srv/run/7"),
                        target: PathBuf::from("/sandbox/work"),
                        writable: true,
                    },
                    Mount::Proc {
                        target: PathBuf::from("/proc"),
                    },
                ],
            })
        );
        assert_eq!(plan.chdir, Some(PathBuf::from("/sandbox/work")));
    }

    #[test]
    fn apply_keeps_a_chdir_the_caller_chose() {
        let mut plan = plan();
        plan.chdir = Some(PathBuf::from("/work/compile"));
        good_fixture()
            .apply(&mut plan, Path::new("/srv/run"))
            .unwrap();
        assert_eq!(plan.chdir, Some(PathBuf::from("/work/compile")));
    }

    #[test]
    fn switching_pid_off_drops_proc() {
        let mut profile = good_fixture();
        profile.switch_namespace("pid", false).unwrap();
        let mut plan = plan();
        profile.apply(&mut plan, Path::new("/srv/run")).unwrap();
        assert!(!plan.namespaces.pid);
        assert!(!plan
            .filesystem
            .unwrap()
            .mounts
            .iter()
            .any(|mount| matches!(mount, Mount::Proc { .. })));
    }

    #[test]
    fn apply_refuses_what_cannot_be_built() {
        let mut without_mount_namespace = good_fixture();
        without_mount_namespace
            .switch_namespace("mount", false)
            .unwrap();
        let error = without_mount_namespace
            .apply(&mut plan(), Path::new("/srv/run"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("needs the mount namespace"), "{error}");

        let mut chrooted = plan();
        chrooted.root = Some(PathBuf::from("/chroot"));
        let error = good_fixture()
            .apply(&mut chrooted, Path::new("/srv/run"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("chroot into `/chroot`"), "{error}");

        let error = good_fixture()
            .apply(&mut plan(), Path::new("run/7"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`run/7` must be an absolute host path"),
            "{error}"
        );
    }

    /// Each bad fixture's error names the file, the key and what to do.
    #[test]
    fn bad_profiles_are_refused_with_file_key_and_remedy() {
        let cases = [
            (
                "unknown-key.toml",
                "size_mb",
                "documented in profiles/sandbox/default.toml",
            ),
            (
                "relative-target.toml",
                "filesystem.bind[0].target",
                "starting with `/`",
            ),
            (
                "dotdot-target.toml",
                "filesystem.bind[0].target",
                "without it",
            ),
            (
                "missing-source.toml",
                "filesystem.bind[1].source",
                "`optional = true`",
            ),
            (
                "duplicate-target.toml",
                "filesystem.bind[0].target",
                "already a target",
            ),
            ("missing-seccomp.toml", "seccomp", "fix the path"),
            (
                "uncommented-seccomp.toml",
                "seccomp",
                "add a non-empty \"comment\"",
            ),
            (
                "unknown-namespace.toml",
                "namespaces",
                "use one of mount, uts, ipc, net",
            ),
        ];
        for (file, key, remedy) in cases {
            let path = fixtures().join("bad").join(file);
            let message = match Profile::load(&path) {
                Ok(_) => panic!("{file} was accepted"),
                Err(error) => error.to_string(),
            };
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(key), "{file}: no `{key}` in: {message}");
            assert!(
                message.contains(remedy),
                "{file}: no `{remedy}` in: {message}"
            );
        }
    }

    #[test]
    fn parse_resolves_relative_paths_against_the_origins_directory() {
        let origin = fixtures().join("inline.toml");
        let text = "namespaces = []\nseccomp = \"policies/commented.json\"\n";
        let mut plan = plan();
        Profile::parse(text, &origin)
            .unwrap()
            .apply(&mut plan, Path::new("/srv/run"))
            .unwrap();
        assert_eq!(plan.namespaces, Namespaces::NONE);
        assert_eq!(plan.seccomp_policy, Some(commented_policy()));
    }

    #[test]
    fn namespace_names_round_trip() {
        assert_eq!(
            enabled_namespaces(&Namespaces::default()),
            ["mount", "uts", "ipc", "net"]
        );
        assert!(enabled_namespaces(&Namespaces::NONE).is_empty());
        let mut namespaces = Namespaces::NONE;
        for name in Namespaces::NAMES {
            switch_namespace(&mut namespaces, name, true).unwrap();
        }
        assert_eq!(enabled_namespaces(&namespaces), Namespaces::NAMES);
        let error = switch_namespace(&mut namespaces, "network", true).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown namespace `network`: use one of mount, uts, ipc, net, pid, user, cgroup, time"
        );
    }
}
