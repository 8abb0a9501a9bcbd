//! The warnings runguard prints on stderr after a run (unless `-q`), in DOMjudge's words:
//! scripts and DOMjudge's own test grep for them (`timelimit exceeded`, `hard wall time`).

use crate::report::{Report, Termination};

const SIGTERM: i32 = 15;

/// What went wrong with the run, one message per line, most important first.
pub fn warnings(report: &Report) -> Vec<String> {
    let limits = &report.time_result;
    let mut messages = Vec::new();
    if report.runner_signal == Some(SIGTERM) {
        messages.push("received signal: aborting command".to_string());
    }
    if limits.wall_hard {
        messages.push("timelimit exceeded (hard wall time): aborting command".into());
    }
    if limits.cpu_hard {
        messages.push("timelimit exceeded (hard cpu time)".into());
    }
    if let Termination::Signaled(signal) = report.termination {
        messages.push(format!("command terminated with signal {signal}"));
    }
    if limits.wall_soft {
        messages.push("timelimit exceeded (soft wall time)".into());
    }
    if limits.cpu_soft {
        messages.push("timelimit exceeded (soft cpu time)".into());
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::TimeResult;
    use crate::runguard::meta::tests::sample_report;

    #[test]
    fn clean_run_has_no_warnings() {
        assert!(warnings(&sample_report()).is_empty());
    }

    #[test]
    fn hard_wall_kill_is_reported_as_domjudge_does() {
        let report = Report {
            termination: Termination::Signaled(15),
            time_result: TimeResult {
                wall_soft: true,
                wall_hard: true,
                ..TimeResult::default()
            },
            ..sample_report()
        };
        assert_eq!(
            warnings(&report),
            [
                "timelimit exceeded (hard wall time): aborting command",
                "command terminated with signal 15",
                "timelimit exceeded (soft wall time)",
            ]
        );
    }

    #[test]
    fn cpu_limits_and_sigterm() {
        let report = Report {
            runner_signal: Some(15),
            time_result: TimeResult {
                cpu_soft: true,
                cpu_hard: true,
                ..TimeResult::default()
            },
            ..sample_report()
        };
        assert_eq!(
            warnings(&report),
            [
                "received signal: aborting command",
                "timelimit exceeded (hard cpu time)",
                "timelimit exceeded (soft cpu time)",
            ]
        );
    }
}
