//! The C programs of `testdata/programs`, compiled with `gcc -O2 -static` once per test binary
//! run into Cargo's target temp dir. Static, so they also run inside a bare chroot.
//!
//! Where there is no compiler (the VM lane's guest, `ci/vm/`), env [`PREBUILT_VARIABLE`] names a
//! directory holding them already built with the same flags: they are taken from there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where the sources live: `<workspace>/testdata/programs`.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/programs")
}

/// The directory of prebuilt test programs, when the environment names one.
pub const PREBUILT_VARIABLE: &str = "RUNNER_TESTDATA_BIN";

/// `$RUNNER_TESTDATA_BIN` when set and not empty.
pub fn prebuilt_dir() -> Option<PathBuf> {
    std::env::var_os(PREBUILT_VARIABLE)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
}

/// The built program `name` (the stem of `testdata/programs/<name>.c`).
pub fn program(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT
        .get_or_init(|| match prebuilt_dir() {
            Some(dir) => Ok(dir),
            None => build_all(
                &source_dir(),
                &Path::new(env!("CARGO_TARGET_TMPDIR")).join("programs"),
            ),
        })
        .as_ref()
        .unwrap_or_else(|e| panic!("building testdata/programs: {e}"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "no test program `{name}' in {} (is testdata/programs/{name}.c missing?)",
        dir.display()
    );
    path
}

/// Compile every `*.c` of `sources` into `out_dir`, skipping programs already newer than
/// their source (they are rebuilt when the source changes).
fn build_all(sources: &Path, out_dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
    let entries =
        std::fs::read_dir(sources).map_err(|e| format!("reading {}: {e}", sources.display()))?;
    for entry in entries {
        let source = entry
            .map_err(|e| format!("reading {}: {e}", sources.display()))?
            .path();
        if source.extension().is_some_and(|ext| ext == "c") {
            let stem = source.file_stem().expect("a .c file has a stem");
            build_one(&source, &out_dir.join(stem))?;
        }
    }
    Ok(out_dir.to_path_buf())
}

fn build_one(source: &Path, output: &Path) -> Result<(), String> {
    if is_newer(output, source) {
        return Ok(());
    }
    // Build beside the target and rename: another test binary may be using the old one.
    let partial = output.with_extension(format!("partial-{}", std::process::id()));
    let result = Command::new("gcc")
        .args(["-O2", "-static", "-pthread", "-Wall", "-Wextra", "-o"])
        .arg(&partial)
        .arg(source)
        .output()
        .map_err(|e| format!("running gcc: {e}"))?;
    if !result.status.success() {
        return Err(format!(
            "gcc {} failed:\n{}",
            source.display(),
            String::from_utf8_lossy(&result.stderr)
        ));
    }
    std::fs::rename(&partial, output).map_err(|e| {
        format!(
            "renaming {} to {}: {e}",
            partial.display(),
            output.display()
        )
    })
}

fn is_newer(path: &Path, than: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(path), modified(than)), (Some(a), Some(b)) if a > b)
}

/// The names of all test programs, as their processes' `comm` shows them.
pub fn names() -> BTreeSet<String> {
    std::fs::read_dir(source_dir())
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|ext| ext == "c"))
                .filter_map(|p| Some(p.file_stem()?.to_str()?.chars().take(COMM_LEN).collect()))
                .collect()
        })
        .unwrap_or_default()
}

/// The kernel keeps the first 15 bytes of a program's name as its `comm`.
const COMM_LEN: usize = 15;
