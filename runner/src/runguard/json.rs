//! The JSON report (`--json FILE`): every field of the [`Report`] at the top level (so it reads
//! back as a `Report`), plus what the meta file derives (exit code, time used, time result,
//! signal), so a reader needs neither the meta file nor runguard's rules.

use serde::Serialize;

use crate::plan::TimeKind;
use crate::report::Report;

use super::meta::{self, MetaSettings};

#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    /// runguard's exit status: the child's, or 128 + signal.
    exit_code: i32,
    /// The clock the jury sees (`time-used`).
    time_used: TimeKind,
    /// Its value in seconds.
    time_used_seconds: f64,
    /// `time-result` of the meta file: "", "soft-timelimit" or "hard-timelimit".
    meta_time_result: &'static str,
    /// `signal` of the meta file.
    signal: Option<i32>,
    #[serde(flatten)]
    report: &'a Report,
}

/// The JSON report of a finished run.
pub fn render(report: &Report, settings: &MetaSettings) -> String {
    let json = JsonReport {
        exit_code: report.termination.exit_code(),
        time_used: settings.time_used,
        time_used_seconds: meta::time_used(report, settings.time_used).as_secs_f64(),
        meta_time_result: meta::time_result(&report.time_result, settings.time_used),
        signal: meta::runner_signal(report),
        report,
    };
    let mut text = serde_json::to_string_pretty(&json).expect("a Report always serializes");
    text.push('\n');
    text
}

/// The JSON report when runguard or the sandbox failed.
pub fn render_internal_error(message: &str) -> String {
    let mut text = serde_json::json!({ "internal_error": message }).to_string();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::report::{Termination, TimeResult};
    use crate::runguard::meta::tests::sample_report;

    #[test]
    fn report_with_derived_fields() {
        let report_value = Report {
            termination: Termination::Signaled(9),
            time_result: TimeResult {
                cpu_hard: true,
                ..TimeResult::default()
            },
            ..sample_report()
        };
        let settings = MetaSettings {
            time_used: TimeKind::WallTime,
            ..MetaSettings::default()
        };
        let json: Value = serde_json::from_str(&render(&report_value, &settings)).unwrap();
        assert_eq!(json["exit_code"], 137);
        assert_eq!(json["time_used"], "wall-time");
        assert_eq!(json["time_used_seconds"], 1.002499);
        assert_eq!(json["meta_time_result"], "hard-timelimit");
        assert_eq!(json["signal"], Value::Null);
        let report = &json;
        assert_eq!(report["memory_bytes"], 2_359_296);
        assert_eq!(report["cpu_time"], 0.0156);
        assert_eq!(report["termination"]["signaled"], 9);
        assert_eq!(report["time_result"]["cpu_hard"], true);
        assert_eq!(report["stdout"]["bytes"], 9);
        assert_eq!(report["cgroup_layout"], "hybrid");
        let read_back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(read_back, report_value);
    }

    #[test]
    fn internal_error_object() {
        let json: Value = serde_json::from_str(&render_internal_error("cannot fork")).unwrap();
        assert_eq!(json, serde_json::json!({ "internal_error": "cannot fork" }));
    }
}
