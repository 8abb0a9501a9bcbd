//! The figures of a benchmark: printed as `name=value` lines and written as a JSON object.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

/// The figures in the order they were measured; `None` for one that was skipped.
#[derive(Default)]
pub struct Figures(Vec<(String, Option<f64>)>);

impl Figures {
    pub fn add(&mut self, name: String, value: f64) {
        self.0.push((name, Some(value)));
    }

    pub fn skip(&mut self, name: String) {
        self.0.push((name, None));
    }

    pub fn print(&self) {
        for (name, value) in &self.0 {
            match value {
                Some(value) => println!("{name}={value:.3}"),
                None => println!("{name}=skipped"),
            }
        }
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        let object: serde_json::Map<String, serde_json::Value> = self
            .0
            .iter()
            .map(|(name, value)| {
                let rounded = value.map(|value| (value * 1000.0).round() / 1000.0);
                (name.clone(), serde_json::json!(rounded))
            })
            .collect();
        let dir = path.parent().expect("the JSON file is inside target/bench");
        fs::create_dir_all(dir).with_context(|| format!("cannot create `{}'", dir.display()))?;
        let text = serde_json::to_string_pretty(&object)? + "\n";
        fs::write(path, text).with_context(|| format!("cannot write `{}'", path.display()))
    }
}
