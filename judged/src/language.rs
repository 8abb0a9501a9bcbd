//! Language profiles: data files (`profiles/languages/<id>.toml`) saying how to compile and run
//! a submission, its time-limit factor, and what its toolchain needs inside the sandbox.
//!
//! Commands are argument vectors with placeholders, expanded by [`Expansion::expand`]:
//! `{sources}` (every source file name, one argument each), `{main_file}` (the first source's
//! file name), `{main}` (its name without extension: Java's class), `{build}` (the build
//! directory as the step sees it: the sandbox profile's work dir, `/work`, for compiles and test
//! case runs; its host path for an output validator, which runs unconfined) and `{memory_mb}`
//! (the problem's memory limit in MiB). Compiles and runs start in the build directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum LanguageError {
    /// The source is shown by the error chain (`{:#}`), not repeated here.
    #[error("cannot read language profiles in `{path}' (pass --languages DIR)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("language profile `{path}': {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("unknown language `{0}' (known: {1})")]
    Unknown(String, String),
    #[error("cannot tell the language of `{0}' from its extension: pass --language (known: {1})")]
    Undetected(PathBuf, String),
    #[error("language `{language}' needs `{program}', which is not installed on this machine")]
    MissingToolchain { language: String, program: PathBuf },
}

/// One language, as written in its profile file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Language {
    /// The file's stem (`cpp`); the `--language` name.
    #[serde(skip)]
    pub id: String,
    /// For people (`C++`).
    pub name: String,
    /// File extensions without the dot.
    pub extensions: Vec<String>,
    /// The problem's time limit is multiplied by this for this language.
    pub time_factor: f64,
    /// Absent for interpreted languages that need no preparation.
    pub compile: Option<Step>,
    pub run: Step,
}

/// One sandboxed step of a language.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub command: Vec<String>,
    /// Environment variables the toolchain needs (the sandbox clears all but PATH).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Processes and threads the step may use; the judge's default when absent.
    pub nproc: Option<u64>,
    /// Memory added to the problem's limit for the runtime itself (a JVM's own overhead beside
    /// the heap the problem allows), MiB.
    #[serde(default)]
    pub extra_memory_mb: u64,
}

impl Language {
    fn parse(text: &str, path: &Path) -> Result<Language, LanguageError> {
        let invalid = |message: String| LanguageError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut language: Language = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        language.id = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !language.time_factor.is_finite() || language.time_factor <= 0.0 {
            return Err(invalid("time_factor must be positive".into()));
        }
        if language
            .compile
            .iter()
            .chain([&language.run])
            .any(|step| step.command.is_empty())
        {
            return Err(invalid("a command must not be empty".into()));
        }
        Ok(language)
    }

    /// Programs the profile names by absolute path (compilers, interpreters): the toolchain.
    pub fn toolchain(&self) -> impl Iterator<Item = &Path> {
        self.compile
            .iter()
            .chain([&self.run])
            .map(|step| Path::new(&step.command[0]))
            .filter(|program| program.is_absolute())
    }

    /// Fails, naming the program, when part of the toolchain is not installed.
    pub fn check_toolchain(&self) -> Result<(), LanguageError> {
        match self.toolchain().find(|program| !program.is_file()) {
            Some(program) => Err(LanguageError::MissingToolchain {
                language: self.id.clone(),
                program: program.to_path_buf(),
            }),
            None => Ok(()),
        }
    }
}

/// Values of the placeholders of one submission.
pub struct Expansion<'a> {
    pub sources: &'a [String],
    pub build: &'a Path,
    pub memory_mb: u64,
}

impl Expansion<'_> {
    pub fn expand(&self, command: &[String]) -> Vec<String> {
        let main_file = self.sources.first().map(String::as_str).unwrap_or("");
        let main = Path::new(main_file)
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut argv = Vec::with_capacity(command.len());
        for argument in command {
            if argument == "{sources}" {
                argv.extend(self.sources.iter().cloned());
                continue;
            }
            argv.push(
                argument
                    .replace("{main_file}", main_file)
                    .replace("{main}", &main)
                    .replace("{build}", &self.build.to_string_lossy())
                    .replace("{memory_mb}", &self.memory_mb.to_string()),
            );
        }
        argv
    }
}

/// Every profile of a directory, by id.
#[derive(Debug, Clone)]
pub struct Languages {
    by_id: BTreeMap<String, Language>,
}

impl Languages {
    pub fn load_dir(dir: &Path) -> Result<Languages, LanguageError> {
        let read_error = |source| LanguageError::Read {
            path: dir.to_path_buf(),
            source,
        };
        let mut by_id = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(read_error)? {
            let path = entry.map_err(read_error)?.path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                let text =
                    std::fs::read_to_string(&path).map_err(|source| LanguageError::Read {
                        path: path.clone(),
                        source,
                    })?;
                let language = Language::parse(&text, &path)?;
                by_id.insert(language.id.clone(), language);
            }
        }
        Ok(Languages { by_id })
    }

    /// Every language's id, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    fn known(&self) -> String {
        self.by_id.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    pub fn by_id(&self, id: &str) -> Result<&Language, LanguageError> {
        self.by_id
            .get(id)
            .ok_or_else(|| LanguageError::Unknown(id.to_owned(), self.known()))
    }

    /// The language of a source file, from its extension.
    pub fn detect(&self, source: &Path) -> Result<&Language, LanguageError> {
        let extension = source
            .extension()
            .map(|ext| ext.to_string_lossy().into_owned());
        extension
            .and_then(|extension| {
                self.by_id
                    .values()
                    .find(|language| language.extensions.contains(&extension))
            })
            .ok_or_else(|| LanguageError::Undetected(source.to_path_buf(), self.known()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Languages {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/languages");
        Languages::load_dir(&dir).unwrap()
    }

    #[test]
    fn shipped_profiles_load_with_the_required_languages() {
        let languages = shipped();
        for id in ["c", "cpp", "python3", "java", "rust"] {
            assert!(languages.by_id(id).is_ok(), "no profile for {id}");
        }
    }

    #[test]
    fn language_is_detected_by_extension() {
        let languages = shipped();
        let detect = |file: &str| languages.detect(Path::new(file)).map(|l| l.id.clone());
        assert_eq!(detect("a/sol.c").unwrap(), "c");
        assert_eq!(detect("sol.cc").unwrap(), "cpp");
        assert_eq!(detect("sol.cpp").unwrap(), "cpp");
        assert_eq!(detect("Main.java").unwrap(), "java");
        assert_eq!(detect("sol.py").unwrap(), "python3");
        assert_eq!(detect("sol.rs").unwrap(), "rust");
        let message = detect("sol.xyz").unwrap_err().to_string();
        assert!(message.contains("--language"), "{message}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = "name = \"C\"\nextensions = [\"c\"]\ntime_factor = 1.0\ntimefactor = 2\n[run]\ncommand = [\"./a\"]\n";
        let error = Language::parse(text, Path::new("c.toml")).unwrap_err();
        assert!(error.to_string().contains("timefactor"), "{error}");
    }

    #[test]
    fn missing_toolchain_is_reported_by_program() {
        let text = "name = \"X\"\nextensions = [\"x\"]\ntime_factor = 1.0\n[run]\ncommand = [\"/nonexistent/xlang\", \"{main_file}\"]\n";
        let language = Language::parse(text, Path::new("x.toml")).unwrap();
        let message = language.check_toolchain().unwrap_err().to_string();
        assert!(message.contains("/nonexistent/xlang"), "{message}");
    }

    #[test]
    fn placeholders_expand() {
        let sources = vec!["Main.java".to_owned(), "Util.java".to_owned()];
        let expansion = Expansion {
            sources: &sources,
            build: Path::new("/w/build"),
            memory_mb: 512,
        };
        let command: Vec<String> = [
            "javac",
            "-d",
            "{build}",
            "{sources}",
            "-Xmx{memory_mb}m",
            "{main}",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            expansion.expand(&command),
            [
                "javac",
                "-d",
                "/w/build",
                "Main.java",
                "Util.java",
                "-Xmx512m",
                "Main"
            ]
        );
    }
}
