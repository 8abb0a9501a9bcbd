//! Thresholds of the diagnostics, as data: `profiles/diagnostics.toml` is embedded as the
//! defaults; a site's own file replaces it whole (every key required, unknown keys rejected,
//! so a misspelt key is an error instead of a silently ignored setting).

use std::path::Path;

use serde::{Deserialize, Serialize};

const DEFAULTS: &str = include_str!("../../../profiles/diagnostics.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub run: RunThresholds,
    pub host: HostThresholds,
}

/// Per-run thresholds; see `profiles/diagnostics.toml` for why each is where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunThresholds {
    pub drift_min_ms: f64,
    pub drift_min_fraction: f64,
    pub drift_min_explained_fraction: f64,
    pub runqueue_min_ms: f64,
    pub runqueue_min_fraction: f64,
    pub throttled_min_ms: f64,
    pub io_stall_min_ms: f64,
    pub io_stall_min_fraction: f64,
    pub memory_stall_min_ms: f64,
    pub memory_stall_min_fraction: f64,
    pub file_refaults_min: u64,
    pub major_faults_min: u64,
    pub code_pages_evicted_min: u64,
    pub setup_min_ms: f64,
}

/// Host-wide thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostThresholds {
    pub mqueue_inodes_max: u64,
    pub dying_cgroups_max: u64,
    pub throttled_min_ms: f64,
    pub pressure_min_fraction: f64,
    pub pressure_min_ms: f64,
    pub ipc_free_latency_max_ms: f64,
    pub ipc_free_exec_max_ms: f64,
    pub cgroup_lock_wait_total_ms: f64,
    pub cgroup_lock_frames: Vec<String>,
    pub workqueue_latency_max_ms: f64,
    pub fork_mean_max_ms: f64,
    pub psi_trigger_window_ms: f64,
    pub psi_trigger_cpu_some_ms: f64,
    pub psi_trigger_io_some_ms: f64,
    pub psi_trigger_memory_some_ms: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ThresholdsError {
    #[error("cannot read thresholds `{path}': {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("thresholds `{path}': {source}")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds::parse(DEFAULTS, "profiles/diagnostics.toml (embedded)")
            .expect("the embedded profiles/diagnostics.toml is valid (tested)")
    }
}

impl Thresholds {
    /// Parse thresholds from TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Thresholds, ThresholdsError> {
        toml::from_str(text).map_err(|source| ThresholdsError::Parse {
            path: origin.to_owned(),
            source,
        })
    }

    pub fn load(path: &Path) -> Result<Thresholds, ThresholdsError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ThresholdsError::Read {
            path: origin.clone(),
            source,
        })?;
        Thresholds::parse(&text, &origin)
    }

    /// The thresholds in `path`, or the embedded defaults without one.
    pub fn load_or_default(path: Option<&Path>) -> Result<Thresholds, ThresholdsError> {
        path.map_or_else(|| Ok(Thresholds::default()), Thresholds::load)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse() {
        let thresholds = Thresholds::default();
        assert_eq!(thresholds.run.drift_min_ms, 50.0);
        assert_eq!(thresholds.host.dying_cgroups_max, 500);
        assert_eq!(thresholds.host.ipc_free_exec_max_ms, 100.0);
        assert_eq!(thresholds.host.fork_mean_max_ms, 10.0);
        assert_eq!(thresholds.host.psi_trigger_window_ms, 2000.0);
        assert!(thresholds
            .host
            .cgroup_lock_frames
            .iter()
            .any(|p| p == "cgroup_"));
    }

    #[test]
    fn unknown_host_keys_are_rejected_too() {
        let text = DEFAULTS.replace("workqueue_latency_max_ms", "workqueue_latency_ms");
        let error = Thresholds::parse(&text, "site.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("workqueue_latency_ms"), "{error}");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let text = DEFAULTS.replace("setup_min_ms", "setup_min_msec");
        let error = Thresholds::parse(&text, "site.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("site.toml"), "{error}");
        assert!(error.contains("setup_min_msec"), "{error}");
    }

    #[test]
    fn a_missing_key_is_an_error() {
        let text = DEFAULTS.replace("pressure_min_ms = 50.0", "");
        let error = Thresholds::parse(&text, "site.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("pressure_min_ms"), "{error}");
    }
}
