//! CFS bandwidth throttling of the cgroups judged itself lives in: a judgehost container or
//! systemd slice whose CPU quota throttles it stretches every run inside, even while the host
//! and the container look idle (the quota is spent in bursts, then everything waits for the
//! next period). A run's own quota is the run's finding (`run::classify`); this one watches
//! our own cgroup and its ancestors, where such a quota sits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use runner::cgroup::parse::cpu_stat_throttling;
use runner::cgroup::Throttling;
use serde::Serialize;
use serde_json::{json, Value};

use super::procfs::Mount;
use super::thresholds::HostThresholds;
use super::{millis, Finding, Kind};

/// Throttled groups named in a finding's evidence.
const GROUPS_SHOWN: usize = 5;

/// The `cpu.stat` files of a process's cgroup and of each of its ancestors, in the hierarchy
/// that has the cpu controller. The root is one of them: in a container with a cgroup
/// namespace it is the container's group (the host's real root never throttles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleWatch {
    /// Each group: its path in the hierarchy (`/system.slice/docker-1.scope`) and its
    /// `cpu.stat` under the host root.
    groups: Vec<(String, PathBuf)>,
}

/// Throttling counters of the watched groups at one moment (groups without them left out).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ThrottleSample(Vec<(String, Throttling)>);

/// A group throttled between two samples: what its quota cost in that time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throttled {
    pub group: String,
    pub periods: u64,
    pub throttled_periods: u64,
    #[serde(rename = "throttled_ms", serialize_with = "as_millis")]
    pub throttled_time: Duration,
}

fn as_millis<S: serde::Serializer>(time: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(millis(*time))
}

impl ThrottleWatch {
    /// The groups of the process whose `/proc/PID/cgroup` text is `proc_cgroup`, found through
    /// `mounts` (a v1 hierarchy binding `cpu`, else the cgroup2 mount), under `root`.
    pub fn of_process(root: &Path, mounts: &[Mount], proc_cgroup: &str) -> ThrottleWatch {
        let v1_cpu = mounts
            .iter()
            .find(|m| m.fstype == "cgroup" && m.super_options.iter().any(|o| o == "cpu"));
        let (mount, path) = match v1_cpu {
            Some(mount) => (
                Some(mount),
                own_path(proc_cgroup, |controllers| {
                    controllers.split(',').any(|c| c == "cpu")
                }),
            ),
            None => (
                mounts.iter().find(|m| m.fstype == "cgroup2"),
                own_path(proc_cgroup, str::is_empty),
            ),
        };
        let (Some(mount), Some(path)) = (mount, path) else {
            return ThrottleWatch { groups: Vec::new() };
        };
        let base = root.join(mount.point.strip_prefix("/").unwrap_or(&mount.point));
        let mut groups = vec![("/".to_owned(), base.join("cpu.stat"))];
        let mut group = String::new();
        for part in path.split('/').filter(|part| !part.is_empty()) {
            group.push('/');
            group.push_str(part);
            groups.push((group.clone(), base.join(&group[1..]).join("cpu.stat")));
        }
        ThrottleWatch { groups }
    }

    /// What the groups' `cpu.stat` files say now; a group whose file is gone or has no
    /// throttling counters (no cpu controller there) is left out.
    pub fn sample(&self) -> ThrottleSample {
        ThrottleSample(
            self.groups
                .iter()
                .filter_map(|(group, stat)| {
                    let text = std::fs::read_to_string(stat).ok()?;
                    let throttling = cpu_stat_throttling(&text).ok()??;
                    Some((group.clone(), throttling))
                })
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// The cgroup path of the `0::` line (cgroup2), or of the v1 line whose controller list
/// `binds` accepts.
fn own_path(proc_cgroup: &str, binds: impl Fn(&str) -> bool) -> Option<String> {
    proc_cgroup.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        binds(controllers).then(|| path.to_owned())
    })
}

/// The groups throttled from `before` to `after`, most throttled time first.
pub fn throttled_between(before: &ThrottleSample, after: &ThrottleSample) -> Vec<Throttled> {
    let mut throttled: Vec<Throttled> = after
        .0
        .iter()
        .filter_map(|(group, now)| {
            let (_, then) = before.0.iter().find(|(earlier, _)| earlier == group)?;
            let throttled_periods = now.throttled_periods.saturating_sub(then.throttled_periods);
            (throttled_periods > 0).then(|| Throttled {
                group: group.clone(),
                periods: now.periods.saturating_sub(then.periods),
                throttled_periods,
                throttled_time: now.throttled_time.saturating_sub(then.throttled_time),
            })
        })
        .collect();
    throttled.sort_by_key(|group| std::cmp::Reverse(group.throttled_time));
    throttled
}

/// A `cfs-throttling` finding when a group of ours was throttled at least
/// `throttled_min_ms` in the window: every run inside it was slowed down.
pub fn classify(throttled: &[Throttled], t: &HostThresholds) -> Option<Finding> {
    let worst = throttled.first()?;
    if millis(worst.throttled_time) < t.throttled_min_ms {
        return None;
    }
    let percent = 100.0 * worst.throttled_periods as f64 / worst.periods.max(1) as f64;
    let groups: Vec<Value> = throttled
        .iter()
        .take(GROUPS_SHOWN)
        .map(|group| {
            json!({
                "group": group.group,
                "periods": group.periods,
                "throttled_periods": group.throttled_periods,
                "throttled_ms": millis(group.throttled_time),
            })
        })
        .collect();
    Some(
        Finding::new(
            Kind::CfsThrottling,
            format!(
                "judged's own cgroup {} was throttled by its CPU quota {} of {} periods ({percent:.0} %), \
                 {:.1} ms in all: every run inside it waited",
                worst.group,
                worst.throttled_periods,
                worst.periods,
                millis(worst.throttled_time)
            ),
            "give the judgehost's container or slice whole CPUs (a cpuset) instead of a CFS quota \
             (cpu.max, cpu.cfs_quota_us, docker --cpus), or a quota of at least the CPUs its \
             workers use",
        )
        .with("groups", groups),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::procfs::parse_mountinfo;
    use crate::diagnostics::thresholds::Thresholds;

    fn watch_of(name: &str) -> ThrottleWatch {
        let root = crate::repo_path("testdata/hosts").join(name);
        let mounts =
            parse_mountinfo(&std::fs::read_to_string(root.join("proc/self/mountinfo")).unwrap());
        let cgroup = std::fs::read_to_string(root.join("proc/self/cgroup")).unwrap();
        ThrottleWatch::of_process(&root, &mounts, &cgroup)
    }

    fn throttling(periods: u64, throttled_periods: u64, throttled_ms: u64) -> Throttling {
        Throttling {
            periods,
            throttled_periods,
            throttled_time: Duration::from_millis(throttled_ms),
        }
    }

    #[test]
    fn a_container_on_cgroup2_watches_its_own_group_and_its_slice() {
        let sample = watch_of("container-v2-throttled").sample();
        // The host's root group has no throttling counters on cgroup2.
        assert_eq!(
            sample,
            ThrottleSample(vec![
                ("/system.slice".into(), throttling(0, 0, 0)),
                (
                    "/system.slice/docker-judgehost.scope".into(),
                    throttling(51_200, 8_800, 1_913_000)
                ),
            ])
        );
    }

    #[test]
    fn a_container_with_a_cgroup_namespace_watches_its_root_group() {
        let sample = watch_of("container-v1-no-memcg").sample();
        assert_eq!(
            sample,
            ThrottleSample(vec![("/".into(), throttling(7_200, 2_100, 96_400))])
        );
    }

    #[test]
    fn only_groups_throttled_in_the_window_count_most_throttled_first() {
        let before = ThrottleSample(vec![
            ("/a".into(), throttling(100, 10, 50)),
            ("/a/b".into(), throttling(100, 0, 0)),
            ("/a/c".into(), throttling(10, 5, 5)),
        ]);
        let after = ThrottleSample(vec![
            ("/a".into(), throttling(110, 12, 80)),
            ("/a/b".into(), throttling(120, 20, 400)),
            ("/a/c".into(), throttling(20, 5, 5)),
        ]);
        let throttled = throttled_between(&before, &after);
        let groups: Vec<&str> = throttled.iter().map(|t| t.group.as_str()).collect();
        assert_eq!(groups, ["/a/b", "/a"]);
        assert_eq!(throttled[0].periods, 20);
        assert_eq!(throttled[0].throttled_periods, 20);
        assert_eq!(throttled[0].throttled_time, Duration::from_millis(400));
    }

    #[test]
    fn throttling_past_the_threshold_is_a_cfs_throttling_finding() {
        let t = Thresholds::default().host;
        let group = |ms| Throttled {
            group: "/system.slice/docker-judgehost.scope".into(),
            periods: 50,
            throttled_periods: 12,
            throttled_time: Duration::from_millis(ms),
        };
        let finding = classify(&[group(180)], &t).expect("180 ms throttled");
        assert_eq!(finding.kind, Kind::CfsThrottling);
        assert!(
            finding.summary.contains("docker-judgehost.scope"),
            "{}",
            finding.summary
        );
        assert!(
            finding.summary.contains("12 of 50 periods (24 %)"),
            "{}",
            finding.summary
        );
        assert_eq!(finding.evidence["groups"][0]["throttled_ms"], 180.0);
        let below = Duration::from_secs_f64(t.throttled_min_ms / 1000.0 / 2.0);
        assert_eq!(classify(&[group(below.as_millis() as u64)], &t), None);
        assert_eq!(classify(&[], &t), None);
    }
}
