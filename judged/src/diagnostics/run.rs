//! Per-run findings from plain numbers: what one run measured about itself.

use std::time::Duration;

use runner::cgroup::Throttling;
use runner::report::Report;
use serde::Serialize;

use super::procfs::Pressure;
use super::thresholds::RunThresholds;
use super::{millis, Finding, Kind};

/// What one run measured, as plain numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSample {
    #[serde(with = "runner::report::seconds")]
    pub wall: Duration,
    /// CPU time of all the run's processes and threads.
    #[serde(with = "runner::report::seconds")]
    pub cpu: Duration,
    /// From fork to exec (the sandbox's own work).
    #[serde(with = "runner::report::seconds")]
    pub setup: Duration,
    /// CPUs the run may use (its cpuset, else the host's).
    pub allowed_cpus: u32,
    pub throttling: Option<Throttling>,
    /// PSI "some" stalls of the run's own cgroup (setup and exit included); `None` where the
    /// host has no per-cgroup PSI.
    pub stalls: Option<Pressure>,
    /// Memory activity of the run's memory cgroup; `None` when unreadable.
    pub memory: Option<MemoryActivity>,
}

pub use runner::report::MemoryActivity;

impl RunSample {
    /// What a runguard report (made with `--activity`) tells of its run; `allowed_cpus` as in
    /// [`RunSample::allowed_cpus`].
    pub fn of_report(report: &Report, allowed_cpus: u32) -> RunSample {
        let activity = report.activity.unwrap_or_default();
        RunSample {
            wall: report.wall_time,
            cpu: report.cpu_time,
            setup: report.setup_time,
            allowed_cpus,
            throttling: report.throttling,
            stalls: activity.stalls.map(Pressure::from),
            memory: activity.memory,
        }
    }
}

/// Whether `value_ms` is beyond both an absolute and a relative (to `wall`) threshold.
fn beyond(value: Duration, min_ms: f64, min_fraction: f64, wall: Duration) -> bool {
    millis(value) >= min_ms && value.as_secs_f64() >= min_fraction * wall.as_secs_f64()
}

/// The findings of one run.
pub fn classify(sample: &RunSample, thresholds: &RunThresholds) -> Vec<Finding> {
    let t = thresholds;
    let wall = sample.wall;
    let mut findings = Vec::new();

    if let Some(stalls) = &sample.stalls {
        let waited_for_cpu = runqueue_wait(sample, stalls);
        if beyond(
            waited_for_cpu,
            t.runqueue_min_ms,
            t.runqueue_min_fraction,
            wall,
        ) {
            findings.push(
                Finding::new(
                    Kind::RunqueueDelay,
                    format!(
                        "the run waited {:.1} ms for a CPU held by other work",
                        millis(waited_for_cpu)
                    ),
                    "run fewer jobs per core, pin each run to a core of its own (--cpuset) and keep other work off the judging cores",
                )
                .with("runqueue_wait_ms", millis(waited_for_cpu))
                .with("cpu_some_stall_ms", millis(stalls.cpu))
                .with("wall_ms", millis(wall)),
            );
        }
        if beyond(stalls.io, t.io_stall_min_ms, t.io_stall_min_fraction, wall) {
            findings.push(
                Finding::new(
                    Kind::DstateIo,
                    format!("the run was stalled {:.1} ms waiting for block IO", millis(stalls.io)),
                    "keep test data and the program on tmpfs or in page cache (warm them before timing), and keep other IO off the judging disk",
                )
                .with("io_some_stall_ms", millis(stalls.io))
                .with("wall_ms", millis(wall)),
            );
        }
        if beyond(
            stalls.memory,
            t.memory_stall_min_ms,
            t.memory_stall_min_fraction,
            wall,
        ) {
            findings.push(
                Finding::new(
                    Kind::MemcgReclaim,
                    format!(
                        "the run was stalled {:.1} ms in memory reclaim",
                        millis(stalls.memory)
                    ),
                    "the run is near its memory limit or the host is short of memory: raise the limit's headroom or run fewer jobs at once",
                )
                .with("memory_some_stall_ms", millis(stalls.memory))
                .with("wall_ms", millis(wall)),
            );
        }
        if let Some(drift) = drift_explained_by_stalls(sample, stalls, t) {
            findings.push(drift);
        }
    }

    if let Some(throttling) = &sample.throttling {
        if millis(throttling.throttled_time) >= t.throttled_min_ms {
            let percent = if throttling.periods == 0 {
                0.0
            } else {
                100.0 * throttling.throttled_periods as f64 / throttling.periods as f64
            };
            findings.push(
                Finding::new(
                    Kind::CfsThrottling,
                    format!(
                        "the run's CPU quota throttled it {} of {} periods ({percent:.0} %), {:.1} ms in all",
                        throttling.throttled_periods,
                        throttling.periods,
                        millis(throttling.throttled_time)
                    ),
                    "give the run whole CPUs (a cpuset) instead of a CFS quota, or a quota of at least its thread count",
                )
                .with("periods", throttling.periods)
                .with("throttled_periods", throttling.throttled_periods)
                .with("throttled_percent", (percent * 10.0).round() / 10.0)
                .with("throttled_ms", millis(throttling.throttled_time)),
            );
        }
    }

    if let Some(memory) = &sample.memory {
        if memory.file_refaults >= t.file_refaults_min || memory.major_faults >= t.major_faults_min
        {
            findings.push(
                Finding::new(
                    Kind::PageCacheThrash,
                    format!(
                        "the run re-read {} evicted file pages and took {} major faults",
                        memory.file_refaults, memory.major_faults
                    ),
                    "the page cache is too small for the runs: run fewer jobs at once, keep executables and test data on tmpfs, or add memory",
                )
                .with("file_refaults", memory.file_refaults)
                .with("major_faults", memory.major_faults),
            );
        }
    }

    if millis(sample.setup) >= t.setup_min_ms {
        findings.push(
            Finding::new(
                Kind::SlowSetup,
                format!(
                    "the sandbox took {:.1} ms from fork to exec (not billed to the program)",
                    millis(sample.setup)
                ),
                "cgroup or namespace creation was slow: reuse warm sandboxes, and see `judged doctor` for the kernel's known problems",
            )
            .with("setup_ms", millis(sample.setup)),
        );
    }
    findings
}

/// Time the run waited for a CPU that something else held. PSI counts a group's CPU stall
/// while any of its tasks is runnable and not running, which includes the run's own threads
/// queueing behind each other on its CPUs; the CPU capacity others took (allowed CPUs × wall −
/// the run's CPU time) bounds what outsiders can have caused.
fn runqueue_wait(sample: &RunSample, stalls: &Pressure) -> Duration {
    let capacity = sample.wall * sample.allowed_cpus.max(1);
    let taken_by_others = capacity.saturating_sub(sample.cpu);
    // A throttled group's runnable tasks stall for a CPU too: that is its quota, not others.
    stalls
        .cpu
        .saturating_sub(throttled_time(sample))
        .min(taken_by_others)
}

fn throttled_time(sample: &RunSample) -> Duration {
    sample
        .throttling
        .map_or(Duration::ZERO, |throttling| throttling.throttled_time)
}

/// `wall-cpu-drift`: a gap between wall and CPU time beyond the thresholds that measured stalls
/// explain (otherwise the program slept, which is its own business).
fn drift_explained_by_stalls(
    sample: &RunSample,
    stalls: &Pressure,
    t: &RunThresholds,
) -> Option<Finding> {
    let gap = sample.wall.saturating_sub(sample.cpu);
    if !beyond(gap, t.drift_min_ms, t.drift_min_fraction, sample.wall) {
        return None;
    }
    let runqueue = runqueue_wait(sample, stalls);
    let throttled = throttled_time(sample);
    // The stalls overlap in time (a task waiting on IO while another waits for a CPU), so
    // their sum may exceed the gap; it is capped at the gap.
    let explained = (runqueue + throttled + stalls.io + stalls.memory).min(gap);
    if explained.as_secs_f64() < t.drift_min_explained_fraction * gap.as_secs_f64() {
        return None;
    }
    let causes = [
        (runqueue, "waiting for a CPU"),
        (throttled, "held back by its CPU quota"),
        (stalls.io, "waiting for IO"),
        (stalls.memory, "in memory reclaim"),
    ];
    let (_, main_cause) = causes
        .iter()
        .max_by_key(|(stall, _)| *stall)
        .expect("four causes");
    Some(
        Finding::new(
            Kind::WallCpuDrift,
            format!(
                "wall time exceeded CPU time by {:.1} ms, mostly {main_cause}",
                millis(gap)
            ),
            "do not trust a time-limit verdict of this run: re-run it on a quiet core (see the other findings for the cause)",
        )
        .with("wall_ms", millis(sample.wall))
        .with("cpu_ms", millis(sample.cpu))
        .with("gap_ms", millis(gap))
        .with("runqueue_wait_ms", millis(runqueue))
        .with("throttled_ms", millis(throttled))
        .with("io_some_stall_ms", millis(stalls.io))
        .with("memory_some_stall_ms", millis(stalls.memory))
        .with("unexplained_ms", millis(gap - explained)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::thresholds::Thresholds;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn stalls(cpu: u64, io: u64, memory: u64) -> Option<Pressure> {
        Some(Pressure {
            cpu: ms(cpu),
            io: ms(io),
            memory: ms(memory),
        })
    }

    /// A quiet single-threaded 1 s run on one of two CPUs.
    fn quiet() -> RunSample {
        RunSample {
            wall: ms(1000),
            cpu: ms(990),
            setup: ms(2),
            allowed_cpus: 2,
            throttling: None,
            stalls: stalls(0, 0, 0),
            memory: Some(MemoryActivity {
                major_faults: 3,
                file_refaults: 10,
            }),
        }
    }

    fn kinds(sample: &RunSample) -> Vec<String> {
        classify(sample, &Thresholds::default().run)
            .iter()
            .map(|finding| finding.kind.name())
            .collect()
    }

    #[test]
    fn each_kind_fires_on_its_own_evidence_only() {
        let table: Vec<(&str, RunSample, Vec<&str>)> = vec![
            ("quiet run", quiet(), vec![]),
            (
                "no measurements at all",
                RunSample {
                    stalls: None,
                    memory: None,
                    ..quiet()
                },
                vec![],
            ),
            (
                "sleeping program: big gap, no stalls",
                RunSample {
                    cpu: ms(100),
                    ..quiet()
                },
                vec![],
            ),
            (
                "waited for a CPU held by others",
                RunSample {
                    cpu: ms(600),
                    stalls: stalls(400, 0, 0),
                    ..quiet()
                },
                vec!["runqueue-delay", "wall-cpu-drift"],
            ),
            (
                "two threads on one CPU: waiting on each other is not a disturbance",
                RunSample {
                    cpu: ms(995),
                    allowed_cpus: 1,
                    stalls: stalls(990, 0, 0),
                    ..quiet()
                },
                vec![],
            ),
            (
                "stalled on IO",
                RunSample {
                    cpu: ms(500),
                    stalls: stalls(0, 450, 0),
                    ..quiet()
                },
                vec!["dstate-io", "wall-cpu-drift"],
            ),
            (
                "memory reclaim without much drift",
                RunSample {
                    stalls: stalls(0, 0, 30),
                    ..quiet()
                },
                vec!["memcg-reclaim"],
            ),
            (
                "throttled",
                RunSample {
                    throttling: Some(Throttling {
                        periods: 10,
                        throttled_periods: 5,
                        throttled_time: ms(250),
                    }),
                    ..quiet()
                },
                vec!["cfs-throttling"],
            ),
            (
                "held back by its quota: the CPU stall is the throttling, not other work",
                RunSample {
                    cpu: ms(530),
                    stalls: stalls(450, 0, 0),
                    throttling: Some(Throttling {
                        periods: 10,
                        throttled_periods: 10,
                        throttled_time: ms(570),
                    }),
                    ..quiet()
                },
                vec!["wall-cpu-drift", "cfs-throttling"],
            ),
            (
                "page cache thrash",
                RunSample {
                    memory: Some(MemoryActivity {
                        major_faults: 5,
                        file_refaults: 5000,
                    }),
                    ..quiet()
                },
                vec!["page-cache-thrash"],
            ),
            (
                "slow setup",
                RunSample {
                    setup: ms(400),
                    ..quiet()
                },
                vec!["slow-setup"],
            ),
        ];
        for (name, sample, expected) in table {
            assert_eq!(kinds(&sample), expected, "{name}");
        }
    }

    #[test]
    fn short_runs_need_absolute_evidence() {
        // 5 ms of CPU stall in a 6 ms run is most of it, but under the absolute threshold.
        let sample = RunSample {
            wall: ms(6),
            cpu: ms(1),
            stalls: stalls(5, 0, 0),
            ..quiet()
        };
        assert_eq!(kinds(&sample), Vec::<String>::new());
    }

    #[test]
    fn drift_evidence_adds_up() {
        let sample = RunSample {
            cpu: ms(600),
            stalls: stalls(300, 0, 0),
            ..quiet()
        };
        let findings = classify(&sample, &Thresholds::default().run);
        let drift = findings
            .iter()
            .find(|f| f.kind == Kind::WallCpuDrift)
            .expect("drift");
        assert_eq!(drift.evidence["gap_ms"], 400.0);
        assert_eq!(drift.evidence["unexplained_ms"], 100.0);
        assert!(
            drift.summary.contains("waiting for a CPU"),
            "{}",
            drift.summary
        );
    }

    #[test]
    fn throttling_evidence_has_the_percentage() {
        let sample = RunSample {
            throttling: Some(Throttling {
                periods: 40,
                throttled_periods: 12,
                throttled_time: ms(300),
            }),
            ..quiet()
        };
        let findings = classify(&sample, &Thresholds::default().run);
        assert_eq!(findings[0].evidence["throttled_percent"], 30.0);
        assert!(findings[0].summary.contains("12 of 40 periods (30 %)"));
    }
}
