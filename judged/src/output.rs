//! What `judged run` shows: JSON for programs (`--json`), a live progress line per test case
//! on a terminal and a summary table for people.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use runner::report::Termination;
use serde::Serialize;

use crate::diagnostics::hostwatch::HostFinding;
use crate::diagnostics::hostwatcher::WatchState;
use crate::diagnostics::lanes::{KernelRun, KernelSummary};
use crate::diagnostics::Finding;
use crate::judge::{Judgement, Progress, TestResult};
use crate::problem::TestCase;
use crate::verdict::Verdict;

/// The `--json` document.
#[derive(Debug, Serialize)]
pub struct JsonJudgement<'a> {
    pub verdict: Verdict,
    pub problem: &'a str,
    pub language: &'a str,
    /// Compiler output when compilation failed.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub compile_output: &'a str,
    pub tests: Vec<JsonTest<'a>>,
    /// Test cases not run because an earlier one failed (run again with --all).
    pub skipped: usize,
    /// The host watcher's window and what it could set up; `null` with --no-host-watch.
    pub host_watch: Option<&'a WatchState>,
}

#[derive(Debug, Serialize)]
pub struct JsonTest<'a> {
    pub name: &'a str,
    pub verdict: Verdict,
    pub time_limit: f64,
    /// Absent when the sandbox itself failed (verdict judge-error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// The validator's message, the program's stderr or the sandbox's failure.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub message: &'a str,
    /// The run's diagnostics: setup time, throttling, OOM kills, stream sizes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Diagnostics>,
    /// The kernel's account of the run: `dstate_ms` with the top stacks, taskstats `delays`
    /// (or why not); absent when the run was not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelSummary>,
    /// What disturbed the run's timing (see `judged diagnose`); empty when nothing did.
    pub findings: &'a [Finding],
    /// The disturbing findings of the host watcher's windows the run overlapped, each with
    /// its window.
    pub host_findings: &'a [HostFinding],
    /// Runs made again because a time limit came with a disturbing finding.
    pub reruns: u32,
}

#[derive(Debug, Serialize)]
pub struct Diagnostics {
    pub setup_time: f64,
    pub oom_kills: u64,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttled_periods: Option<u64>,
}

pub fn to_json<'a>(
    judgement: &'a Judgement,
    problem: &'a str,
    language: &'a str,
    host_watch: Option<&'a WatchState>,
) -> JsonJudgement<'a> {
    JsonJudgement {
        verdict: judgement.verdict,
        problem,
        language,
        compile_output: &judgement.compile_output,
        tests: judgement.tests.iter().map(json_test).collect(),
        skipped: judgement.skipped,
        host_watch,
    }
}

fn json_test(test: &TestResult) -> JsonTest<'_> {
    let report = test.report.as_ref();
    let termination = report.map(|r| r.termination);
    JsonTest {
        name: &test.name,
        verdict: test.verdict,
        time_limit: test.time_limit.as_secs_f64(),
        cpu_time: report.map(|r| r.cpu_time.as_secs_f64()),
        wall_time: report.map(|r| r.wall_time.as_secs_f64()),
        memory_bytes: report.map(|r| r.memory_bytes),
        exit_code: termination.and_then(|t| match t {
            Termination::Exited(code) => Some(code),
            Termination::Signaled(_) => None,
        }),
        signal: termination.and_then(|t| match t {
            Termination::Signaled(signal) => Some(signal),
            Termination::Exited(_) => None,
        }),
        message: &test.message,
        diagnostics: report.map(|r| Diagnostics {
            setup_time: r.setup_time.as_secs_f64(),
            oom_kills: r.oom_kills,
            stdout_bytes: r.stdout.bytes,
            stderr_bytes: r.stderr.bytes,
            throttled_periods: r.throttling.map(|t| t.throttled_periods),
        }),
        kernel: test.kernel.as_ref().map(KernelRun::summary),
        findings: &test.findings,
        host_findings: &test.host_findings,
        reruns: test.reruns,
    }
}

/// One line per test case: name, verdict, CPU and wall time, memory, how it ended.
pub fn test_line(test: &TestResult) -> String {
    let verdict = test.verdict.name();
    match &test.report {
        Some(report) => format!(
            "{:<24} {:<14} cpu {:>7} wall {:>7} mem {:>9} {}",
            test.name,
            verdict,
            seconds(report.cpu_time),
            seconds(report.wall_time),
            mebibytes(report.memory_bytes),
            match report.termination {
                Termination::Exited(code) => format!("exit {code}"),
                Termination::Signaled(signal) => format!("signal {signal}"),
            }
        ),
        None => format!("{:<24} {:<14} {}", test.name, verdict, test.message),
    }
}

/// The summary for people at the end.
pub fn summary(judgement: &Judgement, problem: &str, language: &str) -> String {
    let mut text = String::new();
    for test in &judgement.tests {
        text.push_str(&test_line(test));
        text.push('\n');
        if test.verdict != Verdict::Correct && !test.message.is_empty() {
            text.push_str(&format!("    {}\n", first_lines(&test.message, 5)));
        }
        if test.reruns > 0 {
            text.push_str(&format!(
                "    run {} more time(s): its time limit came with a disturbed timing\n",
                test.reruns
            ));
        }
        // The kernel's account, where it saw the run sleep in D state.
        if let Some(kernel) = test.kernel.as_ref().filter(|k| k.slept()) {
            text.push_str(&kernel.show_lines(10, "    "));
        }
        for finding in &test.findings {
            text.push_str(&format!(
                "    {}: {}\n",
                finding.kind.name(),
                finding.summary
            ));
        }
        for line in host_lines(&test.host_findings) {
            text.push_str(&format!("    {line}\n"));
        }
        if test.disturbed_timelimit() {
            text.push_str("    do not trust this time limit: its timing was disturbed\n");
        }
    }
    if let Some(reason) = judgement
        .tests
        .iter()
        .find_map(|t| t.kernel.as_ref()?.dstate_unavailable.as_deref())
    {
        text.push_str(&format!("D state not measured: {reason}\n"));
    }
    if !judgement.compile_output.is_empty() {
        text.push_str(&judgement.compile_output);
        if !judgement.compile_output.ends_with('\n') {
            text.push('\n');
        }
    }
    let slowest = judgement
        .tests
        .iter()
        .filter_map(|t| t.report.as_ref())
        .map(|r| r.cpu_time)
        .max()
        .unwrap_or_default();
    text.push_str(&format!(
        "{problem} / {language}: {} ({} test cases run, {} skipped, slowest cpu {})\n",
        judgement.verdict.name(),
        judgement.tests.len(),
        judgement.skipped,
        seconds(slowest)
    ));
    text
}

/// One line per kind of host finding, in the order they first appear: the windows they came
/// from and the first one's summary (`--json` has them all).
fn host_lines(found: &[HostFinding]) -> Vec<String> {
    let mut kinds: Vec<(&HostFinding, u64, usize)> = Vec::new();
    for host in found {
        match kinds
            .iter_mut()
            .find(|(first, _, _)| first.finding.kind == host.finding.kind)
        {
            Some((_, last, count)) => {
                *last = host.window.window;
                *count += 1;
            }
            None => kinds.push((host, host.window.window, 1)),
        }
    }
    kinds
        .into_iter()
        .map(|(first, last, count)| {
            let windows = match count {
                1 => format!("host window {last}"),
                _ => format!(
                    "host windows {}-{last}, {count} findings",
                    first.window.window
                ),
            };
            format!(
                "{} ({windows}): {}",
                first.finding.kind.name(),
                first.finding.summary
            )
        })
        .collect()
}

fn first_lines(text: &str, count: usize) -> String {
    text.lines().take(count).collect::<Vec<_>>().join("\n    ")
}

fn seconds(duration: Duration) -> String {
    format!("{:.3}s", duration.as_secs_f64())
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1}MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A live line per test case on stderr; draws nothing when stderr is not a terminal.
pub struct LiveProgress {
    lines: MultiProgress,
    bars: std::sync::Mutex<std::collections::HashMap<usize, ProgressBar>>,
}

impl Default for LiveProgress {
    fn default() -> Self {
        LiveProgress {
            lines: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Default::default(),
        }
    }
}

impl Progress for LiveProgress {
    fn started(&self, index: usize, test_case: &TestCase) {
        let bar = self.lines.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .expect("a valid progress template"),
        );
        bar.set_message(format!("{:<24} running", test_case.name));
        bar.enable_steady_tick(Duration::from_millis(100));
        self.bars.lock().expect("progress lock").insert(index, bar);
    }

    fn finished(&self, index: usize, result: &TestResult) {
        if let Some(bar) = self.bars.lock().expect("progress lock").remove(&index) {
            bar.set_style(ProgressStyle::with_template("  {msg}").expect("a valid template"));
            bar.finish_with_message(test_line(result));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::tests::clean_report;

    #[test]
    fn json_has_overall_and_per_test_verdicts_with_times_memory_and_exit() {
        let judgement = Judgement {
            verdict: Verdict::RunError,
            compile_output: String::new(),
            tests: vec![
                TestResult {
                    name: "sample/1".into(),
                    verdict: Verdict::Correct,
                    time_limit: Duration::from_secs(1),
                    report: Some(clean_report()),
                    message: String::new(),
                    findings: Vec::new(),
                    interval: Default::default(),
                    host_findings: Vec::new(),
                    reruns: 0,
                    kernel: None,
                },
                TestResult {
                    name: "secret/1".into(),
                    verdict: Verdict::RunError,
                    time_limit: Duration::from_secs(1),
                    report: Some(runner::report::Report {
                        termination: Termination::Signaled(11),
                        ..clean_report()
                    }),
                    message: "killed by signal 11".into(),
                    findings: Vec::new(),
                    interval: Default::default(),
                    host_findings: Vec::new(),
                    reruns: 0,
                    kernel: None,
                },
            ],
            skipped: 2,
        };
        let json = serde_json::to_value(to_json(&judgement, "aplusb", "c", None)).unwrap();
        assert_eq!(json["verdict"], "run-error");
        assert_eq!(json["skipped"], 2);
        let tests = json["tests"].as_array().unwrap();
        assert_eq!(tests[0]["verdict"], "correct");
        assert_eq!(tests[0]["exit_code"], 0);
        assert_eq!(tests[0]["cpu_time"], 0.015);
        assert_eq!(tests[0]["memory_bytes"], 1 << 20);
        assert!(tests[0].get("signal").is_none());
        assert_eq!(tests[1]["verdict"], "run-error");
        assert_eq!(tests[1]["signal"], 11);
        assert_eq!(tests[1]["diagnostics"]["setup_time"], 0.001);
    }

    #[test]
    fn host_findings_show_with_their_window_in_json_and_the_summary() {
        use crate::diagnostics::hostwatch::{Interval, WindowSpan};
        use crate::diagnostics::Kind;
        let host_finding = |window: u64, kind: Kind, summary: &str| HostFinding {
            window: WindowSpan {
                window,
                monotonic: Interval {
                    start: Duration::from_secs(10),
                    end: Duration::from_secs(11),
                },
                wall_start: 1_700_000_010.0,
                wall_end: 1_700_000_011.0,
            },
            finding: Finding {
                kind,
                summary: summary.into(),
                evidence: Default::default(),
                remedy: "wait".into(),
            },
        };
        let short = "the host was short of CPU";
        let judgement = Judgement {
            verdict: Verdict::Timelimit,
            compile_output: String::new(),
            tests: vec![TestResult {
                name: "sample/1".into(),
                verdict: Verdict::Timelimit,
                time_limit: Duration::from_secs(1),
                report: Some(clean_report()),
                message: String::new(),
                findings: Vec::new(),
                interval: Default::default(),
                host_findings: vec![
                    host_finding(7, Kind::HostPressure, short),
                    host_finding(8, Kind::WorkqueueLatency, "free_ipc waited"),
                    host_finding(8, Kind::HostPressure, "a PSI trigger fired"),
                    host_finding(9, Kind::HostPressure, short),
                ],
                reruns: 1,
                kernel: None,
            }],
            skipped: 0,
        };
        let watch = WatchState {
            window_s: 0.5,
            ebpf: Some("eBPF programs: workqueue yes".into()),
            psi: None,
        };
        let json = serde_json::to_value(to_json(&judgement, "aplusb", "c", Some(&watch))).unwrap();
        assert_eq!(json["host_watch"]["window_s"], 0.5);
        let found = &json["tests"][0]["host_findings"][0];
        assert_eq!(found["finding"]["kind"], "host-pressure");
        assert_eq!(found["window"]["window"], 7);
        assert_eq!(found["window"]["monotonic_start_s"], 10.0);
        let off = serde_json::to_value(to_json(&judgement, "aplusb", "c", None)).unwrap();
        assert!(off["host_watch"].is_null(), "{off}");
        let text = summary(&judgement, "aplusb", "c");
        assert!(
            text.contains(
                "    host-pressure (host windows 7-9, 3 findings): the host was short of CPU\n    \
                 workqueue-latency (host window 8): free_ipc waited\n"
            ),
            "{text}"
        );
        assert!(text.contains("do not trust this time limit"), "{text}");
    }
}
