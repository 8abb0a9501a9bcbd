//! What the judged benchmarks share: a generated problem and the figures file.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

/// The release runguard beside the release `judged` that runs the benchmark.
pub fn runguard_beside(judged: &Path) -> Result<PathBuf> {
    let runguard = judged.with_file_name("runguard");
    ensure!(
        runguard.is_file(),
        "no runguard beside `{}': build it with `cargo build --release -p runner'",
        judged.display()
    );
    Ok(runguard)
}

/// The trivial correct C submission of `testdata/problems/aplusb`.
pub fn correct_submission() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/problems/aplusb/submissions/correct.c")
}

/// A problem package in a temporary directory: `cases` secret test cases `a b` → `a+b`.
pub fn generate_problem(cases: usize) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("judged-bench-").tempdir()?;
    let secret = dir.path().join("data/secret");
    std::fs::create_dir_all(&secret)?;
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text).with_context(|| format!("cannot write `{}'", path.display()))
    };
    write(
        dir.path().join("problem.yaml"),
        "name: Many tiny test cases\nlimits:\n  time_limit: 1.0\n".into(),
    )?;
    for case in 0..cases {
        let (a, b) = (case, 2 * case + 1);
        write(secret.join(format!("{case:04}.in")), format!("{a} {b}\n"))?;
        write(
            secret.join(format!("{case:04}.ans")),
            format!("{}\n", a + b),
        )?;
    }
    Ok(dir)
}

/// Print one `name=value` line per figure and write them to `target/bench/NAME.json` (the
/// target directory of the `judged` that ran).
pub fn report(judged: &Path, name: &str, figures: &[(&str, f64)]) -> Result<()> {
    println!();
    for (figure, value) in figures {
        println!("{figure}={value:.3}");
    }
    let target = judged
        .ancestors()
        .nth(2)
        .context("judged is not inside cargo's target directory")?;
    write_json(&target.join(format!("bench/{name}.json")), figures)
}

fn write_json(path: &Path, figures: &[(&str, f64)]) -> Result<()> {
    let object: serde_json::Map<String, serde_json::Value> = figures
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                serde_json::json!((value * 1000.0).round() / 1000.0),
            )
        })
        .collect();
    let dir = path.parent().expect("the JSON file is inside target/bench");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}'", dir.display()))?;
    let text = serde_json::to_string_pretty(&object)? + "\n";
    std::fs::write(path, text).with_context(|| format!("cannot write `{}'", path.display()))
}
