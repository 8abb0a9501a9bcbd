//! Host-wide readings around a run (or any window) and the findings they give without eBPF:
//! IPC namespaces and dying cgroups piling up, and the whole host under pressure.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::kernel::{IpcTeardown, KernelVersion, IPC_TEARDOWN_FIXED};
use super::procfs::{self, Pressure};
use super::thresholds::HostThresholds;
use super::{millis, Finding, Kind};

/// One reading of the host. Each field is `None` where the host does not offer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct HostSample {
    pub pressure: Option<Pressure>,
    /// Active objects of `mqueue_inode_cache`: one per IPC namespace not yet freed, plus a few.
    pub mqueue_inodes: Option<u64>,
    /// `nr_dying_descendants` of the cgroup2 root: removed cgroups not yet freed.
    pub dying_cgroups: Option<u64>,
}

impl HostSample {
    /// Read under `root` (`/` on a real host); `cgroup2_root` is the cgroup2 mount point
    /// relative to `root`, if the host has one.
    pub fn read(root: &Path, cgroup2_root: Option<&Path>) -> HostSample {
        let read = |relative: &Path| std::fs::read_to_string(root.join(relative)).ok();
        shrink_slab(root, "mqueue_inode_cache");
        HostSample {
            pressure: Pressure::read_host(root),
            mqueue_inodes: read(Path::new("proc/slabinfo"))
                .and_then(|text| procfs::slab_active_objects(&text, "mqueue_inode_cache")),
            dying_cgroups: cgroup2_root
                .map(|dir| dir.strip_prefix("/").unwrap_or(dir).join("cgroup.stat"))
                .and_then(|path| read(&path))
                .and_then(|text| procfs::keyed_value(&text, "nr_dying_descendants")),
        }
    }
}

/// Let the kernel free the empty slabs of `cache` (root only; a host or tree without the file
/// is left alone): `slabinfo` counts the objects of slabs kept for reuse as active, so a count
/// of IPC namespaces would otherwise stay high after they are freed.
fn shrink_slab(root: &Path, cache: &str) {
    let shrink = root.join("sys/kernel/slab").join(cache).join("shrink");
    if let Ok(mut file) = std::fs::OpenOptions::new().write(true).open(shrink) {
        let _ = std::io::Write::write_all(&mut file, b"1");
    }
}

/// What the kernel is known for, to word the remedies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelFacts {
    pub version: Option<KernelVersion>,
    pub ipc_teardown: Option<IpcTeardown>,
}

impl KernelFacts {
    /// "this kernel (6.1.0)", as remedies name it.
    pub fn name(&self) -> String {
        self.version.map_or_else(
            || "this kernel".to_owned(),
            |version| format!("this kernel ({version})"),
        )
    }
}

/// The host's findings over a window from `before` to `after`, `window` long. `own_stalls`
/// are the stalls of the run observed in the window: the host's totals include them, and a
/// run that stalls itself (two threads on one CPU) must not make the host look busy.
pub fn classify(
    before: &HostSample,
    after: &HostSample,
    window: Duration,
    own_stalls: Option<Pressure>,
    kernel: KernelFacts,
    t: &HostThresholds,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let kernel_name = kernel.name();

    if let Some(inodes) = after.mqueue_inodes.filter(|&n| n >= t.mqueue_inodes_max) {
        let remedy = match kernel.ipc_teardown {
            Some(IpcTeardown::Serialised) => format!(
                "{kernel_name} frees IPC namespaces one RCU grace period at a time: upgrade to ≥ {IPC_TEARDOWN_FIXED} or turn off the IPC namespace in the sandbox profile"
            ),
            _ => "namespaces are created faster than they are freed: reuse warm sandboxes instead of a new IPC namespace per run".to_owned(),
        };
        let mut finding = Finding::new(
            Kind::IpcNsTeardown,
            format!("{inodes} IPC namespaces (mqueue inodes) are alive or waiting to be freed"),
            &remedy,
        )
        .with("mqueue_inodes", inodes);
        if let Some(earlier) = before.mqueue_inodes {
            finding = finding.with("mqueue_inodes_before", earlier);
        }
        findings.push(finding);
    }

    if let Some(dying) = after.dying_cgroups.filter(|&n| n >= t.dying_cgroups_max) {
        let mut finding = Finding::new(
            Kind::DyingCgroups,
            format!("{dying} removed cgroups are not freed yet; they lengthen every walk of the cgroup tree under its locks"),
            "reuse cgroups instead of one per run; dying memory cgroups are pinned by their page cache: drop caches (echo 1 > /proc/sys/vm/drop_caches) between contests",
        )
        .with("dying_cgroups", dying);
        if let Some(earlier) = before.dying_cgroups {
            finding = finding.with("dying_cgroups_before", earlier);
        }
        findings.push(finding);
    }

    if let (Some(earlier), Some(later)) = (before.pressure, after.pressure) {
        // Host "some" time is a union over all tasks, so what lies outside the run's own
        // stall time is at least the time others waited.
        let stalled = later.since(&earlier).since(&own_stalls.unwrap_or_default());
        let worst = [
            (stalled.cpu, "CPU"),
            (stalled.io, "IO"),
            (stalled.memory, "memory"),
        ]
        .into_iter()
        .max_by_key(|(stall, _)| *stall)
        .expect("three resources");
        let (stall, resource) = worst;
        if millis(stall) >= t.pressure_min_ms
            && stall.as_secs_f64() >= t.pressure_min_fraction * window.as_secs_f64()
        {
            findings.push(
                Finding::new(
                    Kind::HostPressure,
                    format!(
                        "the host was short of {resource}: some task waited {:.1} ms of the {:.1} ms window",
                        millis(stall),
                        millis(window)
                    ),
                    "keep other work off a judging host, and run fewer jobs at once",
                )
                .with("window_ms", millis(window))
                .with("cpu_some_stall_ms", millis(stalled.cpu))
                .with("io_some_stall_ms", millis(stalled.io))
                .with("memory_some_stall_ms", millis(stalled.memory)),
            );
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::diagnostics::thresholds::Thresholds;

    fn fixture(name: &str) -> PathBuf {
        crate::repo_path("testdata/hosts").join(name)
    }

    fn pressure(cpu_ms: u64) -> Option<Pressure> {
        Some(Pressure {
            cpu: Duration::from_millis(cpu_ms),
            ..Pressure::default()
        })
    }

    #[test]
    fn reads_the_hybrid_fixture() {
        let sample = HostSample::read(
            &fixture("judgehost-v1-hybrid"),
            Some(Path::new("/sys/fs/cgroup/unified")),
        );
        assert_eq!(sample.mqueue_inodes, Some(34));
        assert_eq!(sample.dying_cgroups, Some(0));
        assert!(sample.pressure.is_some_and(|p| p.cpu > Duration::ZERO));
    }

    #[test]
    fn reads_the_backlogged_old_kernel_fixture() {
        let root = fixture("judgehost-bookworm-v2");
        let sample = HostSample::read(&root, Some(Path::new("/sys/fs/cgroup")));
        assert_eq!(sample.mqueue_inodes, Some(4096));
        assert_eq!(sample.dying_cgroups, Some(2311));
        assert_eq!(sample.pressure, None);
    }

    #[test]
    fn the_mqueue_slab_is_shrunk_before_it_is_counted_where_the_host_lets_us() {
        let root = tempfile::tempdir().unwrap();
        let shrink = root
            .path()
            .join("sys/kernel/slab/mqueue_inode_cache/shrink");
        std::fs::create_dir_all(shrink.parent().unwrap()).unwrap();
        std::fs::write(&shrink, "").unwrap();
        HostSample::read(root.path(), None);
        assert_eq!(std::fs::read_to_string(&shrink).unwrap(), "1");
        // A tree without the file is left as it was.
        let fixture_root = fixture("judgehost-v1-hybrid");
        HostSample::read(&fixture_root, None);
        assert!(!fixture_root.join("sys/kernel/slab").exists());
    }

    #[test]
    fn findings_per_host_condition() {
        let t = Thresholds::default().host;
        let old = KernelFacts {
            version: KernelVersion::parse("6.1.0"),
            ipc_teardown: Some(IpcTeardown::Serialised),
        };
        let quiet = HostSample {
            pressure: pressure(0),
            mqueue_inodes: Some(34),
            dying_cgroups: Some(0),
        };
        let second = Duration::from_secs(1);
        let table: Vec<(&str, HostSample, Duration, Vec<Kind>)> = vec![
            ("quiet", quiet, second, vec![]),
            ("nothing readable", HostSample::default(), second, vec![]),
            (
                "ipc backlog",
                HostSample {
                    mqueue_inodes: Some(4096),
                    ..quiet
                },
                second,
                vec![Kind::IpcNsTeardown],
            ),
            (
                "dying cgroups",
                HostSample {
                    dying_cgroups: Some(2311),
                    ..quiet
                },
                second,
                vec![Kind::DyingCgroups],
            ),
            (
                "cpu pressure over half the window",
                HostSample {
                    pressure: pressure(600),
                    ..quiet
                },
                second,
                vec![Kind::HostPressure],
            ),
            (
                "pressure in a short window is below the absolute minimum",
                HostSample {
                    pressure: pressure(4),
                    ..quiet
                },
                Duration::from_millis(5),
                vec![],
            ),
        ];
        for (name, after, window, expected) in table {
            let kinds: Vec<Kind> = classify(&quiet, &after, window, None, old, &t)
                .iter()
                .map(|f| f.kind)
                .collect();
            assert_eq!(kinds, expected, "{name}");
        }
    }

    #[test]
    fn the_runs_own_stalls_are_not_host_pressure() {
        let t = Thresholds::default().host;
        let quiet = HostSample {
            pressure: pressure(0),
            ..HostSample::default()
        };
        let busy = HostSample {
            pressure: pressure(430),
            ..HostSample::default()
        };
        let window = Duration::from_millis(450);
        let kinds = |own| {
            classify(&quiet, &busy, window, own, KernelFacts::default(), &t)
                .iter()
                .map(|f| f.kind)
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(None), vec![Kind::HostPressure]);
        assert_eq!(kinds(pressure(420)), vec![]);
        assert_eq!(kinds(pressure(100)), vec![Kind::HostPressure]);
    }

    #[test]
    fn ipc_remedy_names_the_kernel_fix_only_when_affected() {
        let t = Thresholds::default().host;
        let backlog = HostSample {
            mqueue_inodes: Some(5000),
            ..HostSample::default()
        };
        let remedy = |ipc_teardown| {
            let kernel = KernelFacts {
                version: KernelVersion::parse("6.1.0"),
                ipc_teardown,
            };
            classify(&backlog, &backlog, Duration::from_secs(1), None, kernel, &t)[0]
                .remedy
                .clone()
        };
        assert!(remedy(Some(IpcTeardown::Serialised)).contains("upgrade to ≥ 6.3"));
        assert!(!remedy(Some(IpcTeardown::Batched)).contains("upgrade"));
    }
}
