//! Reading a problem in the Kattis / ICPC problem package format: `problem.yaml` (limits and
//! validation), the test cases under `data/`, and the optional output validator.
//!
//! Pure apart from reading the package's files: nothing here runs anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A problem package that cannot be judged, with the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ProblemError {
    #[error(
        "problem package `{0}' is not a directory (give the directory with problem.yaml and data/)"
    )]
    NotADirectory(PathBuf),
    /// The source is shown by the error chain (`{:#}`), not repeated here.
    #[error("cannot read `{path}'")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}' is not a valid problem.yaml: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("`{path}': {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ProblemError {
    fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ProblemError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// Limits of a problem after the format's defaults are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ProblemLimits {
    /// CPU time per test case, before the language's factor.
    pub time: Duration,
    pub memory_bytes: u64,
    pub output_bytes: u64,
    pub compilation_time: Duration,
    pub compilation_memory_bytes: u64,
    pub validation_time: Duration,
    pub validation_memory_bytes: u64,
    pub validation_output_bytes: u64,
}

/// One `.in`/`.ans` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// Path below `data/` without the extension, e.g. `secret/group1/03`.
    pub name: String,
    pub input: PathBuf,
    pub answer: PathBuf,
}

/// How team output is checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Validation {
    /// The format's default token comparison, with its flags (`float_tolerance 1e-6` ...).
    Default { flags: Vec<String> },
    /// The package's own validator: its source directory, and the flags passed after
    /// `input answer feedback_dir`.
    Custom { dir: PathBuf, flags: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub dir: PathBuf,
    pub name: String,
    pub limits: ProblemLimits,
    pub test_cases: Vec<TestCase>,
    pub validation: Validation,
}

/// The parts of `problem.yaml` we use; other keys are allowed (the format has many).
#[derive(Debug, Default, Deserialize)]
struct ProblemYaml {
    name: Option<ProblemName>,
    #[serde(default)]
    limits: LimitsYaml,
    /// Legacy format: `default` or `custom` (optionally followed by `interactive` / `score`).
    validation: Option<String>,
    /// Legacy format: one string of whitespace-separated flags.
    validator_flags: Option<String>,
}

/// `name` is a string, or a map from language code to string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ProblemName {
    Plain(String),
    PerLanguage(BTreeMap<String, String>),
}

/// Sizes in MiB and times in seconds, as the format writes them.
#[derive(Debug, Default, Deserialize)]
struct LimitsYaml {
    time_limit: Option<f64>,
    memory: Option<u64>,
    output: Option<u64>,
    compilation_time: Option<f64>,
    compilation_memory: Option<u64>,
    validation_time: Option<f64>,
    validation_memory: Option<u64>,
    validation_output: Option<u64>,
}

/// The format's defaults.
const DEFAULT_MEMORY_MIB: u64 = 2048;
const DEFAULT_OUTPUT_MIB: u64 = 8;
const DEFAULT_COMPILATION_SECS: f64 = 60.0;
const DEFAULT_VALIDATION_SECS: f64 = 60.0;

impl Problem {
    /// Read the package in `dir`.
    pub fn load(dir: &Path) -> Result<Problem, ProblemError> {
        if !dir.is_dir() {
            return Err(ProblemError::NotADirectory(dir.to_path_buf()));
        }
        let yaml_path = dir.join("problem.yaml");
        let text = read_text(&yaml_path)?;
        let yaml = parse_problem_yaml(&text, &yaml_path)?;
        let limits = resolve_limits(&yaml.limits, dir)?;
        let name = match &yaml.name {
            Some(ProblemName::Plain(name)) => name.clone(),
            Some(ProblemName::PerLanguage(names)) => names
                .get("en")
                .or_else(|| names.values().next())
                .cloned()
                .unwrap_or_default(),
            None => String::new(),
        };
        let name = if name.is_empty() {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            name
        };
        let validation = resolve_validation(&yaml, dir)?;
        let test_cases = discover_test_cases(&dir.join("data"))?;
        Ok(Problem {
            dir: dir.to_path_buf(),
            name,
            limits,
            test_cases,
            validation,
        })
    }
}

fn read_text(path: &Path) -> Result<String, ProblemError> {
    std::fs::read_to_string(path).map_err(|source| ProblemError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_problem_yaml(text: &str, path: &Path) -> Result<ProblemYaml, ProblemError> {
    // An empty problem.yaml is valid: every key has a default.
    if text.trim().is_empty() {
        return Ok(ProblemYaml::default());
    }
    serde_saphyr::from_str(text).map_err(|error| ProblemError::Yaml {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}

fn resolve_limits(yaml: &LimitsYaml, dir: &Path) -> Result<ProblemLimits, ProblemError> {
    let yaml_path = dir.join("problem.yaml");
    let time = match yaml.time_limit {
        Some(seconds) => seconds_from(seconds, &yaml_path, "limits.time_limit")?,
        None => legacy_time_limit(dir)?,
    };
    let mib = |value: Option<u64>, default: u64| value.unwrap_or(default) * MIB;
    let seconds = |value: Option<f64>, default: f64, key: &str| {
        seconds_from(value.unwrap_or(default), &yaml_path, key)
    };
    Ok(ProblemLimits {
        time,
        memory_bytes: mib(yaml.memory, DEFAULT_MEMORY_MIB),
        output_bytes: mib(yaml.output, DEFAULT_OUTPUT_MIB),
        compilation_time: seconds(
            yaml.compilation_time,
            DEFAULT_COMPILATION_SECS,
            "limits.compilation_time",
        )?,
        compilation_memory_bytes: mib(yaml.compilation_memory, DEFAULT_MEMORY_MIB),
        validation_time: seconds(
            yaml.validation_time,
            DEFAULT_VALIDATION_SECS,
            "limits.validation_time",
        )?,
        validation_memory_bytes: mib(yaml.validation_memory, DEFAULT_MEMORY_MIB),
        validation_output_bytes: mib(yaml.validation_output, DEFAULT_OUTPUT_MIB),
    })
}

fn seconds_from(seconds: f64, path: &Path, key: &str) -> Result<Duration, ProblemError> {
    match Duration::try_from_secs_f64(seconds) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        _ => Err(ProblemError::invalid(
            path,
            format!("{key} must be a positive number of seconds, not {seconds}"),
        )),
    }
}

/// DOMjudge's and older Kattis packages keep the time limit in a `.timelimit` file.
fn legacy_time_limit(dir: &Path) -> Result<Duration, ProblemError> {
    let path = dir.join(".timelimit");
    if !path.exists() {
        return Err(ProblemError::invalid(
            dir.join("problem.yaml"),
            "no time limit: set limits.time_limit (seconds) here or write the seconds to .timelimit",
        ));
    }
    let text = read_text(&path)?;
    let seconds: f64 = text.trim().parse().map_err(|_| {
        ProblemError::invalid(
            &path,
            format!("expected a number of seconds, found {:?}", text.trim()),
        )
    })?;
    seconds_from(seconds, &path, "the time limit")
}

fn resolve_validation(yaml: &ProblemYaml, dir: &Path) -> Result<Validation, ProblemError> {
    let flags: Vec<String> = yaml
        .validator_flags
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let wants_custom = yaml
        .validation
        .as_deref()
        .is_some_and(|v| v.split_whitespace().next() == Some("custom"));
    // The 2023 format names the directory `output_validator/`; the legacy one
    // `output_validators/<name>/` with exactly one validator.
    let singular = dir.join("output_validator");
    if singular.is_dir() {
        return Ok(Validation::Custom {
            dir: singular,
            flags,
        });
    }
    if !wants_custom {
        return Ok(Validation::Default { flags });
    }
    let plural = dir.join("output_validators");
    let entries = std::fs::read_dir(&plural).map_err(|source| ProblemError::Read {
        path: plural.clone(),
        source,
    })?;
    let mut validators: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .collect();
    match validators.len() {
        1 => Ok(Validation::Custom {
            dir: validators.remove(0),
            flags,
        }),
        0 => Err(ProblemError::invalid(
            &plural,
            "problem.yaml asks for a custom validator but this directory holds none",
        )),
        n => Err(ProblemError::invalid(
            &plural,
            format!("holds {n} validators; only one is supported"),
        )),
    }
}

/// Test cases of `data/sample` then `data/secret`, each tree in lexicographic order of paths
/// (the format's order). Every `.in` needs its `.ans`.
fn discover_test_cases(data: &Path) -> Result<Vec<TestCase>, ProblemError> {
    if !data.is_dir() {
        return Err(ProblemError::invalid(
            data,
            "missing: the package needs data/sample and/or data/secret with .in/.ans pairs",
        ));
    }
    let mut cases = Vec::new();
    for group in ["sample", "secret"] {
        let group_dir = data.join(group);
        if group_dir.is_dir() {
            let mut inputs = Vec::new();
            collect_inputs(&group_dir, &mut inputs)?;
            inputs.sort();
            for input in inputs {
                cases.push(test_case(data, input)?);
            }
        }
    }
    if cases.is_empty() {
        return Err(ProblemError::invalid(
            data,
            "no test cases: expected .in/.ans pairs under data/sample or data/secret",
        ));
    }
    Ok(cases)
}

fn collect_inputs(dir: &Path, inputs: &mut Vec<PathBuf>) -> Result<(), ProblemError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ProblemError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| ProblemError::Read {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if path.is_dir() {
            collect_inputs(&path, inputs)?;
        } else if path.extension().is_some_and(|ext| ext == "in") {
            inputs.push(path);
        }
    }
    Ok(())
}

fn test_case(data: &Path, input: PathBuf) -> Result<TestCase, ProblemError> {
    let answer = input.with_extension("ans");
    if !answer.is_file() {
        return Err(ProblemError::invalid(
            &input,
            format!("has no answer file (expected `{}')", answer.display()),
        ));
    }
    let name = input
        .strip_prefix(data)
        .unwrap_or(&input)
        .with_extension("")
        .to_string_lossy()
        .into_owned();
    Ok(TestCase {
        name,
        input,
        answer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/problems")
            .join(name)
    }

    /// A throwaway package: `files` are (path, contents) pairs.
    fn package(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, contents) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        dir
    }

    #[test]
    fn plain_problem_gets_the_format_defaults() {
        let problem = Problem::load(&testdata("aplusb")).unwrap();
        assert_eq!(problem.name, "A plus B");
        assert_eq!(problem.limits.time, Duration::from_secs(1));
        assert_eq!(problem.limits.memory_bytes, 256 * MIB);
        let float = Problem::load(&testdata("float")).unwrap();
        assert_eq!(float.limits.memory_bytes, 2048 * MIB);
        assert_eq!(problem.limits.output_bytes, 8 * MIB);
        assert_eq!(problem.limits.compilation_time, Duration::from_secs(60));
        assert_eq!(problem.validation, Validation::Default { flags: vec![] });
    }

    #[test]
    fn test_cases_are_samples_then_secret_in_lexicographic_order() {
        let problem = Problem::load(&testdata("aplusb")).unwrap();
        let names: Vec<_> = problem.test_cases.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["sample/1", "secret/01", "secret/02", "secret/10"]);
    }

    #[test]
    fn float_problem_reads_its_validator_flags() {
        let problem = Problem::load(&testdata("float")).unwrap();
        assert_eq!(
            problem.validation,
            Validation::Default {
                flags: vec!["float_tolerance".into(), "1e-6".into()]
            }
        );
    }

    #[test]
    fn custom_validator_is_found_in_output_validators() {
        let problem = Problem::load(&testdata("custom")).unwrap();
        let Validation::Custom { dir, .. } = problem.validation else {
            panic!("expected a custom validator");
        };
        assert!(dir.ends_with("output_validators/sum_check"));
    }

    #[test]
    fn limits_come_from_problem_yaml() {
        let dir = package(&[
            (
                "problem.yaml",
                "limits:\n  time_limit: 2.5\n  memory: 256\n  output: 1\n",
            ),
            ("data/secret/a.in", ""),
            ("data/secret/a.ans", ""),
        ]);
        let limits = Problem::load(dir.path()).unwrap().limits;
        assert_eq!(limits.time, Duration::from_millis(2500));
        assert_eq!(limits.memory_bytes, 256 * MIB);
        assert_eq!(limits.output_bytes, MIB);
    }

    #[test]
    fn legacy_timelimit_file_is_used_without_limits_time_limit() {
        let dir = package(&[
            ("problem.yaml", "name: x\n"),
            (".timelimit", "3\n"),
            ("data/sample/a.in", ""),
            ("data/sample/a.ans", ""),
        ]);
        assert_eq!(
            Problem::load(dir.path()).unwrap().limits.time,
            Duration::from_secs(3)
        );
    }

    #[test]
    fn missing_time_limit_is_an_error_naming_both_places() {
        let dir = package(&[
            ("problem.yaml", "name: x\n"),
            ("data/sample/a.in", ""),
            ("data/sample/a.ans", ""),
        ]);
        let message = Problem::load(dir.path()).unwrap_err().to_string();
        assert!(message.contains("limits.time_limit") && message.contains(".timelimit"));
    }

    #[test]
    fn input_without_answer_is_an_error_naming_the_file() {
        let dir = package(&[
            ("problem.yaml", "limits: {time_limit: 1}\n"),
            ("data/secret/lonely.in", ""),
        ]);
        let message = Problem::load(dir.path()).unwrap_err().to_string();
        assert!(message.contains("lonely.in") && message.contains("lonely.ans"));
    }

    #[test]
    fn missing_data_is_an_error() {
        let dir = package(&[("problem.yaml", "limits: {time_limit: 1}\n")]);
        let message = Problem::load(dir.path()).unwrap_err().to_string();
        assert!(message.contains("data"), "{message}");
    }

    #[test]
    fn unreadable_problem_yaml_is_an_error_naming_it() {
        let dir = package(&[("problem.yaml", "limits: [unclosed\n")]);
        let message = Problem::load(dir.path()).unwrap_err().to_string();
        assert!(message.contains("problem.yaml"), "{message}");
        let missing = package(&[]);
        let message = Problem::load(missing.path()).unwrap_err().to_string();
        assert!(message.contains("cannot read") && message.contains("problem.yaml"));
    }

    #[test]
    fn missing_package_directory_is_an_error_naming_it() {
        let message = Problem::load(Path::new("no/such/problem"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("`no/such/problem' is not a directory"),
            "{message}"
        );
    }

    #[test]
    fn custom_validation_without_validator_is_an_error() {
        let dir = package(&[
            (
                "problem.yaml",
                "validation: custom\nlimits: {time_limit: 1}\n",
            ),
            ("data/secret/a.in", ""),
            ("data/secret/a.ans", ""),
        ]);
        let message = Problem::load(dir.path()).unwrap_err().to_string();
        assert!(message.contains("output_validators"), "{message}");
    }
}
