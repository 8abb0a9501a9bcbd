//! `key: value` lines (runguard's meta file) and `key=value` lines (the `probe` program).

use std::fmt;

/// Ordered `key<separator>value` pairs. Readers split at the first separator and trim both
/// sides, as DOMjudge's judgedaemon does, so a value may itself contain the separator.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyValues {
    entries: Vec<(String, String)>,
}

impl KeyValues {
    /// Parse `text`; blank lines are ignored, a line without `separator` is an error.
    pub fn parse(text: &str, separator: char) -> Result<KeyValues, String> {
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once(separator)
                .ok_or_else(|| format!("line {} has no `{separator}': {line:?}", number + 1))?;
            entries.push((key.trim().to_string(), value.trim().to_string()));
        }
        Ok(KeyValues { entries })
    }

    /// A runguard meta file.
    pub fn parse_meta(text: &str) -> Result<KeyValues, String> {
        KeyValues::parse(text, ':')
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`; panics naming the key and showing everything when it is missing.
    pub fn require(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| panic!("key `{key}' missing in:\n{self}"))
    }

    /// A value in seconds (`%.3f`).
    pub fn seconds(&self, key: &str) -> f64 {
        let value = self.require(key);
        value
            .parse()
            .unwrap_or_else(|_| panic!("`{key}: {value}' is not a number of seconds in:\n{self}"))
    }

    pub fn integer(&self, key: &str) -> i64 {
        let value = self.require(key);
        value
            .parse()
            .unwrap_or_else(|_| panic!("`{key}: {value}' is not an integer in:\n{self}"))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }
}

impl fmt::Display for KeyValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, value) in &self.entries {
            writeln!(f, "{key}: {value}")?;
        }
        Ok(())
    }
}
