//! Pure parsers for the cgroupfs files we read. Each takes the file's text and returns plain data
//! or a message saying what was wrong; the caller adds the path (see `fs::read_parsed`).

use std::time::Duration;

use super::Throttling;
use crate::report::MemoryActivity;

pub(crate) type ParseResult<T> = Result<T, String>;

/// `total=` (microseconds) of the `some` line of a PSI file (`cpu.pressure`,
/// `/proc/pressure/io`...); `None` when there is no such line.
pub fn psi_some_total(text: &str) -> Option<Duration> {
    let line = text.lines().find(|line| line.starts_with("some "))?;
    let total = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("total="))?;
    total.parse().ok().map(Duration::from_micros)
}

/// Major faults and file refaults from a `memory.stat` (v1 or v2; kernels before 5.9 call the
/// refaults `workingset_refault`).
pub(crate) fn memory_activity(text: &str) -> ParseResult<MemoryActivity> {
    let stat = FlatKeyed::parse(text)?;
    Ok(MemoryActivity {
        major_faults: stat.require("pgmajfault")?,
        file_refaults: stat
            .get("workingset_refault_file")
            .or_else(|| stat.get("workingset_refault"))
            .unwrap_or(0),
    })
}

/// A file holding one number (`cpuacct.usage`, `memory.peak`, `memory.max_usage_in_bytes`...).
pub(crate) fn single_u64(text: &str) -> ParseResult<u64> {
    let value = text.trim();
    value
        .parse()
        .map_err(|_| format!("expected one unsigned number, found `{value}'"))
}

/// A "flat keyed" file (`cpu.stat`, `memory.events`, `cpuacct.stat`, `memory.oom_control`):
/// one `key value` pair per line.
pub(crate) struct FlatKeyed<'a>(Vec<(&'a str, u64)>);

impl<'a> FlatKeyed<'a> {
    pub(crate) fn parse(text: &'a str) -> ParseResult<FlatKeyed<'a>> {
        let mut pairs = Vec::new();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let mut fields = line.split_whitespace();
            let (Some(key), Some(value), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("expected `key value', found `{line}'"));
            };
            let value = value
                .parse()
                .map_err(|_| format!("value of `{key}' is not an unsigned number: `{value}'"))?;
            pairs.push((key, value));
        }
        Ok(FlatKeyed(pairs))
    }

    pub(crate) fn get(&self, key: &str) -> Option<u64> {
        self.0.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }

    pub(crate) fn require(&self, key: &str) -> ParseResult<u64> {
        self.get(key).ok_or_else(|| format!("no `{key}' line"))
    }
}

/// CPU time of a cgroup2 group, from its `cpu.stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuStat {
    pub(crate) usage: Duration,
    pub(crate) user: Duration,
    pub(crate) system: Duration,
    /// Present only where the cpu controller is enabled for the group.
    pub(crate) throttling: Option<Throttling>,
}

impl CpuStat {
    pub(crate) fn parse(text: &str) -> ParseResult<CpuStat> {
        let stat = FlatKeyed::parse(text)?;
        Ok(CpuStat {
            usage: Duration::from_micros(stat.require("usage_usec")?),
            user: Duration::from_micros(stat.require("user_usec")?),
            system: Duration::from_micros(stat.require("system_usec")?),
            throttling: throttling(&stat)?,
        })
    }
}

/// Throttling counters of a `cpu.stat`, `None` when the file has no `nr_periods` (no cpu
/// controller). cgroup2 gives `throttled_usec`, v1 `throttled_time` in nanoseconds.
pub(crate) fn throttling(stat: &FlatKeyed) -> ParseResult<Option<Throttling>> {
    let Some(periods) = stat.get("nr_periods") else {
        return Ok(None);
    };
    let throttled_time = match (stat.get("throttled_usec"), stat.get("throttled_time")) {
        (Some(usec), _) => Duration::from_micros(usec),
        (None, Some(nsec)) => Duration::from_nanos(nsec),
        (None, None) => return Err("no `throttled_usec' or `throttled_time' line".into()),
    };
    Ok(Some(Throttling {
        periods,
        throttled_periods: stat.require("nr_throttled")?,
        throttled_time,
    }))
}

/// The throttling counters of a `cpu.stat` text (v1 or v2), for readers outside the runner
/// (the host watcher): `Ok(None)` for a group without the cpu controller.
pub fn cpu_stat_throttling(text: &str) -> Result<Option<Throttling>, String> {
    throttling(&FlatKeyed::parse(text)?)
}

/// Split v1 `cpuacct.usage` (exact, nanoseconds) into user and system time in the proportion of
/// `cpuacct.stat`'s tick counts (USER_HZ, coarse), so that the parts add up to the total. With no
/// tick counted yet (a run shorter than a tick) the whole is reported as user time.
pub(crate) fn split_cpu_total(
    total: Duration,
    user_ticks: u64,
    system_ticks: u64,
) -> (Duration, Duration) {
    let ticks = u128::from(user_ticks) + u128::from(system_ticks);
    if ticks == 0 {
        return (total, Duration::ZERO);
    }
    let user_nanos = total.as_nanos() * u128::from(user_ticks) / ticks;
    // user_nanos <= total, which came from a Duration: it fits in u64 nanoseconds.
    let user = Duration::from_nanos(u64::try_from(user_nanos).unwrap_or(u64::MAX));
    (user, total.saturating_sub(user))
}

/// A list of controller names (`cgroup.controllers`, `cgroup.subtree_control`).
pub(crate) fn controllers(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

/// `cgroup.procs`: one pid per line.
pub(crate) fn pids(text: &str) -> ParseResult<Vec<i32>> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.trim()
                .parse()
                .map_err(|_| format!("expected a pid per line, found `{line}'"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::report::MemoryActivity;

    #[test]
    fn psi_some_total_is_microseconds_of_the_some_line() {
        let text = "some avg10=47.38 avg60=31.95 avg300=21.97 total=309433162\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(
            psi_some_total(text),
            Some(Duration::from_micros(309_433_162))
        );
        assert_eq!(psi_some_total("full avg10=0 total=5\n"), None);
    }

    #[test]
    fn memory_activity_of_v1_v2_and_old_memory_stat() {
        let v1 = "cache 4096\nrss 8192\npgmajfault 12\nworkingset_refault_anon 3\n\
                  workingset_refault_file 450\ntotal_pgmajfault 99\n";
        let activity = |file_refaults| MemoryActivity {
            major_faults: 12,
            file_refaults,
        };
        assert_eq!(memory_activity(v1), Ok(activity(450)));
        let before_5_9 = "pgmajfault 12\nworkingset_refault 7\n";
        assert_eq!(memory_activity(before_5_9), Ok(activity(7)));
        assert!(memory_activity("cache 1\n")
            .unwrap_err()
            .contains("pgmajfault"));
    }

    use super::*;

    #[test]
    fn single_u64_trims_the_newline_and_rejects_words() {
        assert_eq!(single_u64("123456\n"), Ok(123_456));
        assert!(single_u64("max\n").is_err());
        assert!(single_u64("").is_err());
    }

    #[test]
    fn cpu_stat_without_cpu_controller_has_no_throttling() {
        // Read on this project's hybrid machine, from a controller-less cgroup2 group.
        let text = "usage_usec 62215896\nuser_usec 38939125\nsystem_usec 23276771\nnice_usec 0\n";
        assert_eq!(
            CpuStat::parse(text),
            Ok(CpuStat {
                usage: Duration::from_micros(62_215_896),
                user: Duration::from_micros(38_939_125),
                system: Duration::from_micros(23_276_771),
                throttling: None,
            })
        );
    }

    #[test]
    fn cpu_stat_with_cpu_controller_reports_throttling() {
        let text = "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\ncore_sched.force_idle_usec 0\n\
                    nr_periods 40\nnr_throttled 7\nthrottled_usec 35000\nnr_bursts 0\nburst_usec 0\n";
        let stat = CpuStat::parse(text).unwrap();
        assert_eq!(
            stat.throttling,
            Some(Throttling {
                periods: 40,
                throttled_periods: 7,
                throttled_time: Duration::from_millis(35),
            })
        );
    }

    #[test]
    fn v1_cpu_stat_throttled_time_is_in_nanoseconds() {
        let stat =
            FlatKeyed::parse("nr_periods 3\nnr_throttled 1\nthrottled_time 2500000\n").unwrap();
        assert_eq!(
            throttling(&stat),
            Ok(Some(Throttling {
                periods: 3,
                throttled_periods: 1,
                throttled_time: Duration::from_micros(2500),
            }))
        );
    }

    #[test]
    fn cpu_stat_missing_usage_is_an_error_naming_the_key() {
        let err = CpuStat::parse("user_usec 1\nsystem_usec 1\n").unwrap_err();
        assert!(err.contains("usage_usec"), "{err}");
    }

    #[test]
    fn flat_keyed_reads_memory_events_and_oom_control() {
        let events = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(FlatKeyed::parse(events).unwrap().get("oom_kill"), Some(1));
        let oom_control = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(
            FlatKeyed::parse(oom_control).unwrap().require("oom_kill"),
            Ok(3)
        );
    }

    #[test]
    fn flat_keyed_rejects_malformed_lines() {
        assert!(FlatKeyed::parse("user\n").is_err());
        assert!(FlatKeyed::parse("user 1 2\n").is_err());
        assert!(FlatKeyed::parse("user -1\n").is_err());
    }

    #[test]
    fn cpuacct_split_adds_up_to_the_exact_total() {
        let total = Duration::from_nanos(1_000_000_007);
        let (user, system) = split_cpu_total(total, 3, 1);
        assert_eq!(user + system, total);
        assert_eq!(user, Duration::from_nanos(750_000_005));
    }

    #[test]
    fn cpuacct_split_without_ticks_is_all_user() {
        let total = Duration::from_micros(800);
        assert_eq!(split_cpu_total(total, 0, 0), (total, Duration::ZERO));
    }

    #[test]
    fn controllers_and_pids_lists() {
        assert_eq!(
            controllers("cpu io memory pids\n"),
            ["cpu", "io", "memory", "pids"]
        );
        assert!(controllers("\n").is_empty());
        assert_eq!(pids("12\n345\n"), Ok(vec![12, 345]));
        assert_eq!(pids(""), Ok(vec![]));
        assert!(pids("12\nabc\n").is_err());
    }
}
