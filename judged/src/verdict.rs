//! Verdicts in DOMjudge's names, the order in which a run's facts decide them, and the exit
//! status of `judged run`.
//!
//! Order (DOMjudge's "verdict from meta", with memory-limit placed before run-error): a
//! validator that fails → judge-error; a time limit → timelimit; an OOM kill in the run's
//! cgroup → memory-limit; any other unclean end → run-error; stdout cut → output-limit; then
//! the validator decides correct or wrong-answer (no-output when the output was empty).

use runner::report::{Report, Termination};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Correct,
    WrongAnswer,
    NoOutput,
    Timelimit,
    MemoryLimit,
    RunError,
    OutputLimit,
    CompileError,
    JudgeError,
}

impl Verdict {
    /// The lowercase name DOMjudge uses (`wrong-answer` ...).
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::WrongAnswer => "wrong-answer",
            Verdict::NoOutput => "no-output",
            Verdict::Timelimit => "timelimit",
            Verdict::MemoryLimit => "memory-limit",
            Verdict::RunError => "run-error",
            Verdict::OutputLimit => "output-limit",
            Verdict::CompileError => "compile-error",
            Verdict::JudgeError => "judge-error",
        }
    }

    /// Parse a name as written in `@EXPECTED_RESULTS@:` (either case, `-` or `_`).
    pub fn from_name(name: &str) -> Option<Verdict> {
        let name = name.trim().to_ascii_lowercase().replace('_', "-");
        ALL.into_iter().find(|verdict| verdict.name() == name)
    }

    /// The exit status of `judged run` for this overall verdict (documented in `--help`).
    pub fn exit_status(self) -> u8 {
        match self {
            Verdict::Correct => exit_status::CORRECT,
            Verdict::CompileError => exit_status::COMPILE_ERROR,
            Verdict::JudgeError => exit_status::JUDGE_ERROR,
            _ => exit_status::REJECTED,
        }
    }
}

pub const ALL: [Verdict; 9] = [
    Verdict::Correct,
    Verdict::WrongAnswer,
    Verdict::NoOutput,
    Verdict::Timelimit,
    Verdict::MemoryLimit,
    Verdict::RunError,
    Verdict::OutputLimit,
    Verdict::CompileError,
    Verdict::JudgeError,
];

/// Exit statuses of `judged run`.
pub mod exit_status {
    pub const CORRECT: u8 = 0;
    /// The program ran and was rejected (wrong-answer, no-output, timelimit, memory-limit,
    /// run-error, output-limit).
    pub const REJECTED: u8 = 1;
    /// Bad command line, problem package, language or toolchain: nothing was judged.
    pub const USAGE: u8 = 2;
    pub const COMPILE_ERROR: u8 = 3;
    /// The judge itself failed (sandbox or output validator): the verdict is not to be trusted.
    pub const JUDGE_ERROR: u8 = 4;
}

/// The verdict a test case's run alone decides, before its output is validated; `None` when
/// the run ended cleanly within its limits and the validator must decide.
pub fn from_run(report: &Report) -> Option<Verdict> {
    // The time used is CPU time; the wall clock only counts when its hard limit killed the run
    // (a sleeping program), as runguard's `time-result` does.
    let time = report.time_result;
    if time.cpu_soft || time.cpu_hard || time.wall_hard {
        return Some(Verdict::Timelimit);
    }
    if report.oom_kills > 0 {
        return Some(Verdict::MemoryLimit);
    }
    if report.termination != Termination::Exited(0) {
        return Some(Verdict::RunError);
    }
    if report.stdout.truncated {
        return Some(Verdict::OutputLimit);
    }
    None
}

/// What the output validator said about a run's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validated {
    Accepted,
    Rejected,
    /// The validator did not answer 42 or 43 (or could not be run): the message says why.
    Failed(String),
}

/// The verdict of a run that `from_run` left to the validator.
pub fn from_validation(validated: &Validated, output_was_empty: bool) -> Verdict {
    match validated {
        Validated::Accepted => Verdict::Correct,
        Validated::Rejected if output_was_empty => Verdict::NoOutput,
        Validated::Rejected => Verdict::WrongAnswer,
        Validated::Failed(_) => Verdict::JudgeError,
    }
}

/// The overall verdict: that of the first test case, in order, that was not correct.
pub fn overall<'a>(verdicts: impl IntoIterator<Item = &'a Verdict>) -> Verdict {
    verdicts
        .into_iter()
        .copied()
        .find(|verdict| *verdict != Verdict::Correct)
        .unwrap_or(Verdict::Correct)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use runner::cgroup::Layout;
    use runner::report::{StreamStats, TimeResult};

    use super::*;

    /// A clean run: exited 0, within every limit.
    pub(crate) fn clean_report() -> Report {
        Report {
            termination: Termination::Exited(0),
            wall_time: Duration::from_millis(20),
            user_time: Duration::from_millis(10),
            sys_time: Duration::from_millis(5),
            cpu_time: Duration::from_millis(15),
            setup_time: Duration::from_millis(1),
            memory_bytes: 1 << 20,
            time_result: TimeResult::default(),
            stdout: StreamStats::default(),
            stderr: StreamStats::default(),
            oom_kills: 0,
            throttling: None,
            cgroup_layout: Layout::Hybrid,
            runner_signal: None,
            activity: None,
        }
    }

    #[test]
    fn run_facts_decide_in_domjudge_order() {
        let timed_out_killed_oom = Report {
            time_result: TimeResult {
                cpu_hard: true,
                ..TimeResult::default()
            },
            termination: Termination::Signaled(9),
            oom_kills: 1,
            ..clean_report()
        };
        assert_eq!(from_run(&timed_out_killed_oom), Some(Verdict::Timelimit));

        let oom_killed = Report {
            termination: Termination::Signaled(9),
            oom_kills: 1,
            ..clean_report()
        };
        assert_eq!(from_run(&oom_killed), Some(Verdict::MemoryLimit));

        let crashed_with_cut_output = Report {
            termination: Termination::Signaled(11),
            stdout: StreamStats {
                bytes: 1 << 30,
                truncated: true,
            },
            ..clean_report()
        };
        assert_eq!(from_run(&crashed_with_cut_output), Some(Verdict::RunError));

        let nonzero_exit = Report {
            termination: Termination::Exited(1),
            ..clean_report()
        };
        assert_eq!(from_run(&nonzero_exit), Some(Verdict::RunError));

        let cut_output = Report {
            stdout: StreamStats {
                bytes: 1 << 30,
                truncated: true,
            },
            ..clean_report()
        };
        assert_eq!(from_run(&cut_output), Some(Verdict::OutputLimit));

        assert_eq!(from_run(&clean_report()), None);
    }

    #[test]
    fn wall_time_counts_only_when_its_hard_limit_killed_the_run() {
        let slow_wall = Report {
            time_result: TimeResult {
                wall_soft: true,
                ..TimeResult::default()
            },
            ..clean_report()
        };
        assert_eq!(from_run(&slow_wall), None);
        let sleeper = Report {
            time_result: TimeResult {
                wall_soft: true,
                wall_hard: true,
                ..TimeResult::default()
            },
            termination: Termination::Signaled(9),
            ..clean_report()
        };
        assert_eq!(from_run(&sleeper), Some(Verdict::Timelimit));
    }

    #[test]
    fn validator_answer_decides_clean_runs() {
        assert_eq!(
            from_validation(&Validated::Accepted, true),
            Verdict::Correct
        );
        assert_eq!(
            from_validation(&Validated::Rejected, false),
            Verdict::WrongAnswer
        );
        assert_eq!(
            from_validation(&Validated::Rejected, true),
            Verdict::NoOutput
        );
        assert_eq!(
            from_validation(&Validated::Failed("exit 1".into()), false),
            Verdict::JudgeError
        );
    }

    #[test]
    fn overall_is_the_first_failure_in_order() {
        use Verdict::*;
        assert_eq!(overall(&[Correct, Correct]), Correct);
        assert_eq!(overall(&[]), Correct);
        assert_eq!(overall(&[Correct, Timelimit, WrongAnswer]), Timelimit);
    }

    #[test]
    fn names_round_trip_in_both_spellings() {
        for verdict in ALL {
            assert_eq!(Verdict::from_name(verdict.name()), Some(verdict));
            let upper = verdict.name().to_ascii_uppercase().replace('-', "_");
            assert_eq!(Verdict::from_name(&upper), Some(verdict));
            assert_eq!(
                serde_json::to_value(verdict).unwrap(),
                serde_json::json!(verdict.name())
            );
        }
        assert_eq!(Verdict::from_name("accepted"), None);
    }

    #[test]
    fn exit_status_tells_the_verdict_class() {
        assert_eq!(Verdict::Correct.exit_status(), 0);
        assert_eq!(Verdict::MemoryLimit.exit_status(), exit_status::REJECTED);
        assert_eq!(
            Verdict::CompileError.exit_status(),
            exit_status::COMPILE_ERROR
        );
        assert_eq!(Verdict::JudgeError.exit_status(), exit_status::JUDGE_ERROR);
    }
}
