//! runguard's meta file: one `key: value` line per key, in DOMjudge's order. Judgehosts split
//! each line at the first `:` and trim, so our extra key (`setup-time`, last) is harmless.

use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::plan::TimeKind;
use crate::report::{Report, TimeResult};

/// SIGALRM: what DOMjudge's runguard reports as `signal` after a hard wall-time kill.
const SIGALRM: i32 = 14;

/// What shapes runguard's output besides the report.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetaSettings {
    /// The clock reported as `time-used` (the last of `-t`/`-C`).
    pub time_used: TimeKind,
    /// `-M`.
    pub meta_path: Option<PathBuf>,
    /// `--json`.
    pub json_path: Option<PathBuf>,
    /// `-s` was given: only then is `output-truncated` written.
    pub streamsize_given: bool,
}

/// The meta file of a finished run.
pub fn render(report: &Report, settings: &MetaSettings) -> String {
    let mut meta = String::new();
    let mut line = |key: &str, value: &dyn std::fmt::Display| {
        writeln!(meta, "{key}: {value}").expect("writing to a String cannot fail");
    };
    line("memory-bytes", &report.memory_bytes);
    line("exitcode", &report.termination.exit_code());
    if let Some(signal) = runner_signal(report) {
        line("signal", &signal);
    }
    line("wall-time", &seconds(report.wall_time));
    line("user-time", &seconds(report.user_time));
    line("sys-time", &seconds(report.sys_time));
    line("cpu-time", &seconds(report.cpu_time));
    line("time-used", &time_kind_name(settings.time_used));
    line(
        "time-result",
        &time_result(&report.time_result, settings.time_used),
    );
    if settings.streamsize_given {
        line("output-truncated", &output_truncated(report));
    }
    // stdin is inherited, never proxied: nothing counted, as in DOMjudge.
    line("stdin-bytes", &0);
    line("stdout-bytes", &report.stdout.bytes);
    line("stderr-bytes", &report.stderr.bytes);
    line("setup-time", &seconds(report.setup_time));
    meta
}

/// The meta file after a failure of runguard or of the sandbox: what was already written
/// (`partial`, possibly empty) and the `internal-error` line a judgehost acts on.
pub fn render_internal_error(message: &str, partial: &str) -> String {
    // One line whatever the message holds: a reader splits the file into lines.
    let message = message.replace(['\n', '\r'], " ");
    format!("{partial}internal-error: {message}\n")
}

/// `signal` is written when runguard itself stopped the run because of a signal: SIGTERM to
/// us, or DOMjudge's SIGALRM at the hard wall-time limit (its test expects `signal: 14`).
pub fn runner_signal(report: &Report) -> Option<i32> {
    report
        .runner_signal
        .or(report.time_result.wall_hard.then_some(SIGALRM))
}

/// `%.3f` seconds.
pub fn seconds(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64())
}

pub fn time_kind_name(kind: TimeKind) -> &'static str {
    match kind {
        TimeKind::WallTime => "wall-time",
        TimeKind::CpuTime => "cpu-time",
    }
}

/// The runtime the jury sees: the value of the key named by `time-used`.
pub fn time_used(report: &Report, kind: TimeKind) -> Duration {
    match kind {
        TimeKind::WallTime => report.wall_time,
        TimeKind::CpuTime => report.cpu_time,
    }
}

/// The bits of the `time-used` clock, and `hard-timelimit` whenever any hard limit fired.
pub fn time_result(result: &TimeResult, kind: TimeKind) -> &'static str {
    let (soft, hard) = match kind {
        TimeKind::WallTime => (result.wall_soft, result.wall_hard),
        TimeKind::CpuTime => (result.cpu_soft, result.cpu_hard),
    };
    if hard || result.any_hard() {
        "hard-timelimit"
    } else if soft {
        "soft-timelimit"
    } else {
        ""
    }
}

/// `stdout`, `stderr`, `stdout,stderr` or empty.
pub fn output_truncated(report: &Report) -> String {
    [("stdout", report.stdout), ("stderr", report.stderr)]
        .into_iter()
        .filter(|(_, stats)| stats.truncated)
        .map(|(name, _)| name)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cgroup::Layout;
    use crate::report::{StreamStats, Termination};

    /// A run of `sleep 1`-like shape; tests change what they look at.
    pub(crate) fn sample_report() -> Report {
        Report {
            termination: Termination::Exited(0),
            wall_time: Duration::from_micros(1_002_499),
            user_time: Duration::from_millis(12),
            sys_time: Duration::from_micros(3_600),
            cpu_time: Duration::from_micros(15_600),
            setup_time: Duration::from_micros(1_234),
            memory_bytes: 2_359_296,
            time_result: TimeResult::default(),
            stdout: StreamStats {
                bytes: 9,
                truncated: false,
            },
            stderr: StreamStats::default(),
            oom_kills: 0,
            throttling: None,
            cgroup_layout: Layout::Hybrid,
            runner_signal: None,
            activity: None,
        }
    }

    #[test]
    fn golden_plain_run() {
        let settings = MetaSettings::default();
        assert_eq!(
            render(&sample_report(), &settings),
            "memory-bytes: 2359296\n\
             exitcode: 0\n\
             wall-time: 1.002\n\
             user-time: 0.012\n\
             sys-time: 0.004\n\
             cpu-time: 0.016\n\
             time-used: cpu-time\n\
             time-result: \n\
             stdin-bytes: 0\n\
             stdout-bytes: 9\n\
             stderr-bytes: 0\n\
             setup-time: 0.001\n"
        );
    }

    #[test]
    fn golden_hard_wall_kill_with_streamsize() {
        let report = Report {
            termination: Termination::Signaled(15),
            wall_time: Duration::from_millis(1_403),
            cpu_time: Duration::from_millis(2_790),
            time_result: TimeResult {
                wall_hard: true,
                ..TimeResult::default()
            },
            stdout: StreamStats {
                bytes: 1_000_000,
                truncated: true,
            },
            stderr: StreamStats {
                bytes: 70_000,
                truncated: true,
            },
            ..sample_report()
        };
        let settings = MetaSettings {
            time_used: TimeKind::CpuTime,
            streamsize_given: true,
            ..MetaSettings::default()
        };
        assert_eq!(
            render(&report, &settings),
            "memory-bytes: 2359296\n\
             exitcode: 143\n\
             signal: 14\n\
             wall-time: 1.403\n\
             user-time: 0.012\n\
             sys-time: 0.004\n\
             cpu-time: 2.790\n\
             time-used: cpu-time\n\
             time-result: hard-timelimit\n\
             output-truncated: stdout,stderr\n\
             stdin-bytes: 0\n\
             stdout-bytes: 1000000\n\
             stderr-bytes: 70000\n\
             setup-time: 0.001\n"
        );
    }

    #[test]
    fn output_truncated_only_with_streamsize_and_keeps_empty_line() {
        let with = MetaSettings {
            streamsize_given: true,
            ..MetaSettings::default()
        };
        assert!(render(&sample_report(), &with).contains("\noutput-truncated: \n"));
        assert!(!render(&sample_report(), &MetaSettings::default()).contains("output-truncated"));
        let mut report = sample_report();
        report.stderr.truncated = true;
        assert!(render(&report, &with).contains("\noutput-truncated: stderr\n"));
    }

    #[test]
    fn signal_line_from_runner_signal() {
        let mut report = sample_report();
        assert!(!render(&report, &MetaSettings::default()).contains("signal"));
        report.runner_signal = Some(15);
        assert!(render(&report, &MetaSettings::default()).contains("\nsignal: 15\n"));
        // A SIGTERM to us before the wall limit is what DOMjudge reports, not SIGALRM.
        report.time_result.wall_hard = true;
        assert!(render(&report, &MetaSettings::default()).contains("\nsignal: 15\n"));
    }

    #[test]
    fn time_result_follows_time_used_and_any_hard_limit() {
        let bits = |wall_soft, wall_hard, cpu_soft, cpu_hard| TimeResult {
            wall_soft,
            wall_hard,
            cpu_soft,
            cpu_hard,
        };
        let cases = [
            (bits(false, false, false, false), TimeKind::CpuTime, ""),
            (bits(true, false, false, false), TimeKind::CpuTime, ""),
            (
                bits(true, false, false, false),
                TimeKind::WallTime,
                "soft-timelimit",
            ),
            (
                bits(false, false, true, false),
                TimeKind::CpuTime,
                "soft-timelimit",
            ),
            (bits(false, false, true, false), TimeKind::WallTime, ""),
            (
                bits(true, true, false, false),
                TimeKind::WallTime,
                "hard-timelimit",
            ),
            (
                bits(false, true, false, false),
                TimeKind::CpuTime,
                "hard-timelimit",
            ),
            (
                bits(false, false, false, true),
                TimeKind::WallTime,
                "hard-timelimit",
            ),
            (
                bits(false, false, true, true),
                TimeKind::CpuTime,
                "hard-timelimit",
            ),
        ];
        for (result, kind, expected) in cases {
            assert_eq!(time_result(&result, kind), expected, "{result:?} {kind:?}");
        }
    }

    #[test]
    fn time_used_names_the_clock() {
        let settings = MetaSettings {
            time_used: TimeKind::WallTime,
            ..MetaSettings::default()
        };
        assert!(render(&sample_report(), &settings).contains("\ntime-used: wall-time\n"));
        assert_eq!(
            time_used(&sample_report(), TimeKind::WallTime),
            Duration::from_micros(1_002_499)
        );
        assert_eq!(
            time_used(&sample_report(), TimeKind::CpuTime),
            Duration::from_micros(15_600)
        );
    }

    #[test]
    fn internal_error_appends_one_line() {
        assert_eq!(
            render_internal_error("cannot fork: out of memory", ""),
            "internal-error: cannot fork: out of memory\n"
        );
        assert_eq!(
            render_internal_error("a\nb", "exitcode: 0\n"),
            "exitcode: 0\ninternal-error: a b\n"
        );
    }
}
