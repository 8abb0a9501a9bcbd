//! Gates of the tests: a test that cannot run here says so (`skipping: <reason>`) and returns;
//! under `CI=true` a skip is a failure, so nothing silently stops being tested.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::programs;

/// The runguard binary under test: `RUNGUARD_UNDER_TEST` when set (ci/test runs the black-box
/// suites again against the statically linked build, `ci/static-runguard`), else this
/// package's own, when it has one (Cargo sets the variable for integration tests of a package
/// with a `runguard` bin target; looked up at compile time without failing the build, so the
/// tests compile before the binary exists).
pub fn runguard_binary() -> Option<&'static Path> {
    static UNDER_TEST: OnceLock<Option<PathBuf>> = OnceLock::new();
    UNDER_TEST
        .get_or_init(|| {
            std::env::var_os("RUNGUARD_UNDER_TEST")
                .map(PathBuf::from)
                .or_else(|| option_env!("CARGO_BIN_EXE_runguard").map(PathBuf::from))
        })
        .as_deref()
}

/// Print why the test does not run, or panic under `CI=true`. Always returns false.
pub fn skip(reason: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("cannot run this test: {reason} (CI=true makes a skip a failure)");
    }
    eprintln!("skipping: {reason}");
    false
}

/// True when the runguard binary exists (enough for tests of option parsing).
pub fn require_runguard() -> bool {
    match runguard_binary() {
        Some(path) if path.exists() => true,
        Some(path) => skip(&format!("runguard binary {} was not built", path.display())),
        None => skip("this package has no `runguard` binary target yet"),
    }
}

/// True when runs can really be carried out here: root, a cgroup filesystem, the test programs
/// (a C compiler, or prebuilt ones), and the runguard binary.
pub fn require_root() -> bool {
    if !nix::unistd::geteuid().is_root() {
        return skip("not root: runguard must run as root to confine a run");
    }
    if !has_cgroupfs(Path::new("/sys/fs/cgroup")) {
        return skip("no cgroup filesystem at /sys/fs/cgroup");
    }
    require_c_compiler() && require_runguard()
}

/// A cgroup v1 memory hierarchy or a cgroup2 root under `cgroup_root`.
fn has_cgroupfs(cgroup_root: &Path) -> bool {
    cgroup_root.join("memory/memory.limit_in_bytes").exists()
        || cgroup_root.join("cgroup.controllers").exists()
}

/// True when the test programs of `testdata/programs` can be had: prebuilt in
/// `$RUNNER_TESTDATA_BIN` (see [`programs`]), or built by `gcc`.
pub fn require_c_compiler() -> bool {
    if let Some(dir) = programs::prebuilt_dir() {
        return dir.is_dir()
            || skip(&format!(
                "{} names {}, which is not a directory",
                programs::PREBUILT_VARIABLE,
                dir.display()
            ));
    }
    let found = Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    found || skip("no `gcc' to build testdata/programs (apt-get install -y gcc libc6-dev)")
}
