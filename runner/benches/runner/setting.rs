//! What the environment tells a benchmark: counts of runs, and where its results go.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

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
