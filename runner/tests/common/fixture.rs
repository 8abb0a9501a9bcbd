//! One privileged test's world: its own temp dir, its own cgroup parent (`--cgroup-parent`)
//! and its own tag in the environment of its runs, so that tests running in parallel threads
//! can check "nothing of *my* runs is left" without seeing each other.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::invocation::Invocation;
use super::testdir::{unique_name, TestDir};
use super::{cgroupfs, procfs, programs, RUN_GROUP, RUN_USER};

const PROC: &str = "/proc";

/// The environment variable that tags the processes of a fixture's runs (`-V`).
pub const TAG_VARIABLE: &str = "JUDGED_TEST_TAG";

pub struct Fixture {
    dir: TestDir,
    /// `judged-test-<label>-<pid>-<n>`, unique on the machine.
    name: String,
    /// `--cgroup-parent`: the name, under `$JUDGED_CGROUP` when set (see
    /// [`cgroupfs::host_test_parent`]).
    cgroup_parent: String,
    /// `JUDGED_TEST_TAG=<unique>`, passed to every run with `-V`.
    tag: String,
    /// Orphan zombies that existed before this test, not its fault.
    zombies_before: BTreeSet<i32>,
}

impl Fixture {
    pub fn new(label: &str) -> Fixture {
        let name = unique_name(label);
        Fixture {
            dir: TestDir::new(label),
            tag: format!("{TAG_VARIABLE}={name}"),
            cgroup_parent: cgroupfs::host_test_parent(&name)
                .to_str()
                .expect("cgroup paths of the tests are UTF-8")
                .to_owned(),
            name,
            zombies_before: procfs::orphan_zombies(Path::new(PROC))
                .into_iter()
                .map(|p| p.pid)
                .collect(),
        }
    }

    /// A path in the test's own directory.
    pub fn path(&self, name: impl AsRef<Path>) -> PathBuf {
        self.dir.join(name)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A name unique to this test on the machine, for things it makes outside its directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `KEY=VALUE` present in the environment of every run of this fixture.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// The meta file of this fixture's runs.
    pub fn meta_path(&self) -> PathBuf {
        self.path("meta")
    }

    /// runguard with the options every privileged test passes: the test config (run user
    /// `nobody`, chroot prefix `/`), this test's cgroup parent, the meta file, `-u nobody
    /// -g nogroup` and the tag. Add options, then `run` a command.
    pub fn runguard(&self) -> Invocation {
        self.runguard_with_config(config_file())
    }

    /// As [`Fixture::runguard`] with another config file (see [`write_config`]).
    pub fn runguard_with_config(&self, config: &Path) -> Invocation {
        Invocation::new(self.dir())
            .args(self.standard_args(config))
            .meta_file(self.meta_path())
    }

    /// The options of [`Fixture::runguard`] but the meta file, for tests that must put another
    /// option first (`-U` right after the program name).
    pub fn standard_args(&self, config: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--config".into(), config.into()];
        args.extend(
            [
                "--cgroup-parent",
                &self.cgroup_parent,
                "-u",
                RUN_USER,
                "-g",
                RUN_GROUP,
                "-V",
                &self.tag,
            ]
            .map(OsString::from),
        );
        args
    }

    /// The run cgroups left under this test's cgroup parent, in every hierarchy.
    pub fn run_cgroups(&self) -> Vec<PathBuf> {
        self.parent_dirs()
            .iter()
            .flat_map(|dir| cgroupfs::child_dirs(dir))
            .collect()
    }

    /// Nothing of this test's runs is left: no live process with its tag, no new unreaped
    /// zombie of a test program, no run cgroup.
    pub fn assert_clean(&self) {
        let proc_root = Path::new(PROC);
        let live = procfs::processes_with_env(proc_root, &self.tag);
        assert!(live.is_empty(), "processes of the run left alive: {live:?}");

        let program_names = programs::names();
        let new_zombies: Vec<_> = procfs::orphan_zombies(proc_root)
            .into_iter()
            .filter(|p| !self.zombies_before.contains(&p.pid) && program_names.contains(&p.comm))
            .collect();
        assert!(
            new_zombies.is_empty(),
            "unreaped zombies left: {new_zombies:?}"
        );

        let cgroups = self.run_cgroups();
        assert!(cgroups.is_empty(), "run cgroups left: {cgroups:?}");
    }

    fn parent_dirs(&self) -> Vec<PathBuf> {
        let self_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        cgroupfs::parent_dirs(
            Path::new(cgroupfs::CGROUP_ROOT),
            &cgroupfs::own_cgroup_paths(&self_cgroup),
            &self.cgroup_parent,
        )
    }
}

impl Drop for Fixture {
    /// Leave the machine as found: remove the cgroup parent runguard made for this test.
    fn drop(&mut self) {
        for dir in self.parent_dirs() {
            if let Err(e) = cgroupfs::remove_tree(&dir) {
                eprintln!("warning: removing cgroup {}: {e}", dir.display());
            }
        }
    }
}

/// The runguard config of the tests: `nobody` is a valid run user, any directory may be a
/// chroot. Written once per test binary run into Cargo's target temp dir.
pub fn config_file() -> &'static Path {
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("runguard-tests.toml");
        write_config(&path, Path::new("/"));
        path
    })
}

/// Write a runguard config at `path` with the test run user and `chroot_prefix`. Written to a
/// temporary name and renamed, since test binaries may read it concurrently.
pub fn write_config(path: &Path, chroot_prefix: &Path) {
    let text = format!(
        "# runguard config of the black-box tests (runner/tests/common/fixture.rs)\n\
         valid_users = [\"{RUN_USER}\"]\n\
         chroot_prefixes = [\"{}\"]\n",
        chroot_prefix.display()
    );
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, path))
        .unwrap_or_else(|e| panic!("writing runguard config {}: {e}", path.display()));
}
