//! What the environment tells a benchmark: counts of runs, and where its results go.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// Whether this process is a real benchmark run. `cargo test` also runs bench targets, without
/// `--bench`: then only the statistics helpers are checked, and this says so.
pub fn is_bench_run(bench: &str) -> bool {
    if std::env::args().any(|arg| arg == "--bench") {
        return true;
    }
    let checks = crate::stats::self_test();
    println!(
        "{bench} bench: not run by `cargo bench`: checked the statistics helpers only \
         ({checks} checks passed)"
    );
    false
}

/// A positive count from the environment variable `name`, else `default`.
pub fn count(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(value) => match value.parse() {
            Ok(count) if count > 0 => Ok(count),
            _ => bail!("{name}=`{value}' is not a positive count"),
        },
        Err(_) => Ok(default),
    }
}

/// Cargo's target directory: the bench binary runs from `<target>/<profile>/deps/`.
pub fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the bench binary's own path")?;
    match exe.ancestors().nth(3) {
        Some(target) => Ok(target.to_owned()),
        None => bail!(
            "bench binary `{}' is not inside cargo's target directory",
            exe.display()
        ),
    }
}
