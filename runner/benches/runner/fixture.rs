//! The benchmark's scratch directory: a chroot holding the static programs of `testdata/bench/`,
//! a runguard config that allows it, and the files runguard writes. Removed when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// User and group the runs switch to: present on every Debian system, unprivileged.
pub const RUN_USER: &str = "nobody";
pub const RUN_GROUP: &str = "nogroup";

pub struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    /// Creates the directory under the system's temp dir and compiles the programs into its
    /// chroot with `gcc -static` (a chroot has no shared libraries).
    pub fn create() -> Result<Fixture> {
        let dir = std::env::temp_dir().join(format!("judged-bench-{}", std::process::id()));
        // Owns the directory from here on, so a failure below still removes it.
        let fixture = Fixture { dir };
        fs::create_dir_all(fixture.chroot())
            .with_context(|| format!("cannot create `{}'", fixture.chroot().display()))?;
        for program in ["true", "spin"] {
            compile(program, &fixture.chroot().join(program))?;
        }
        let config = format!(
            "valid_users = [\"{RUN_USER}\"]\nchroot_prefixes = [\"{}\"]\n",
            fixture.dir.display()
        );
        fs::write(fixture.config(), config)
            .with_context(|| format!("cannot write `{}'", fixture.config().display()))?;
        Ok(fixture)
    }

    /// The chroot of the runs; the programs sit at its top (`/true`, `/spin`).
    pub fn chroot(&self) -> PathBuf {
        self.dir.join("chroot")
    }

    /// A program's path on the host, for runs outside the sandbox.
    pub fn host_path(&self, program: &str) -> PathBuf {
        self.chroot().join(program)
    }

    /// runguard's `--config` file: the run user and the chroot are allowed.
    pub fn config(&self) -> PathBuf {
        self.dir.join("runguard.toml")
    }

    /// Where runguard writes a file of ours (`program.meta`, `program.err`).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Err(err) = fs::remove_dir_all(&self.dir) {
            eprintln!("warning: cannot remove `{}': {err}", self.dir.display());
        }
    }
}

fn compile(program: &str, output: &Path) -> Result<()> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/bench")
        .join(format!("{program}.c"));
    let result = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(output)
        .arg(&source)
        .output()
        .context("cannot run gcc (install it with ci/setup)")?;
    if !result.status.success() {
        bail!(
            "gcc -static failed on `{}' (static libc comes with libc6-dev: ci/setup installs it):\n{}",
            source.display(),
            String::from_utf8_lossy(&result.stderr)
        );
    }
    Ok(())
}
