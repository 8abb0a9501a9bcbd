//! `judged doctor`: checks a host before a contest. Each check reads a few files under a root
//! (`/` on the host, a `testdata/hosts/` tree in tests) and gives PASS, WARN, FAIL or SKIPPED
//! (could not tell) with the one-line fix.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use crate::diagnostics::kernel::{self, IpcTeardown, KernelVersion, IPC_TEARDOWN_FIXED};
use crate::diagnostics::procfs::{self, Mount};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Read /proc and /sys under this directory instead of `/` (a captured host tree).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
}

pub const DOCTOR_HELP: &str = "\
Checks: smt, cpufreq-governor, turbo, transparent-hugepages, swap, aslr, kernel (known timing
problems: IPC namespace and cgroup teardown serialised before 6.3), cgroup-layout,
cgroup-controllers, favordynmods, psi, delay-accounting, tracefs, bpf.

Exit status:
  0  no check failed (warnings allowed)
  1  at least one check failed
  2  doctor itself could not run";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    /// What to do about a WARN or FAIL (or how to make a SKIPPED check possible).
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    fn other(
        name: &'static str,
        status: Status,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name,
            status,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The host as seen under a root directory.
pub struct Host {
    root: PathBuf,
    mounts: Vec<Mount>,
}

impl Host {
    pub fn new(root: &Path) -> Host {
        let mounts = std::fs::read_to_string(root.join("proc/self/mountinfo"))
            .map(|text| procfs::parse_mountinfo(&text))
            .unwrap_or_default();
        Host {
            root: root.to_path_buf(),
            mounts,
        }
    }

    /// A file's text, trimmed; `path` is absolute on the host.
    fn read(&self, path: &str) -> Option<String> {
        let relative = path.trim_start_matches('/');
        std::fs::read_to_string(self.root.join(relative))
            .ok()
            .map(|text| text.trim().to_owned())
    }

    fn exists(&self, path: &str) -> bool {
        self.root.join(path.trim_start_matches('/')).exists()
    }

    fn mounts_of<'a>(&'a self, fstype: &'a str) -> impl Iterator<Item = &'a Mount> {
        self.mounts.iter().filter(move |m| m.fstype == fstype)
    }

    fn kernel_version(&self) -> Option<KernelVersion> {
        KernelVersion::read(&self.root)
    }
}

/// Every check, in the order shown.
pub fn run_checks(host: &Host) -> Vec<Check> {
    vec![
        smt(host),
        cpufreq_governor(host),
        turbo(host),
        transparent_hugepages(host),
        swap(host),
        aslr(host),
        kernel(host),
        cgroup_layout(host),
        cgroup_controllers(host),
        favordynmods(host),
        psi(host),
        delay_accounting(host),
        tracefs(host),
        bpf(host),
    ]
}

fn smt(host: &Host) -> Check {
    const NAME: &str = "smt";
    match host.read("/sys/devices/system/cpu/smt/control").as_deref() {
        None => Check::other(NAME, Status::Skipped, "no /sys/devices/system/cpu/smt/control", "check the BIOS for Hyper-Threading / SMT"),
        Some("on") => Check::other(
            NAME,
            Status::Warn,
            "SMT is on: sibling threads share a core and slow each other's runs",
            "echo off > /sys/devices/system/cpu/smt/control (or leave siblings idle: one worker per physical core)",
        ),
        Some(state) => Check::pass(NAME, format!("SMT {state}")),
    }
}

fn cpufreq_governor(host: &Host) -> Check {
    const NAME: &str = "cpufreq-governor";
    let cpus = host.root.join("sys/devices/system/cpu");
    let mut governors: Vec<String> = std::fs::read_dir(&cpus)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.strip_prefix("cpu")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|entry| {
            std::fs::read_to_string(entry.path().join("cpufreq/scaling_governor")).ok()
        })
        .map(|governor| governor.trim().to_owned())
        .collect();
    governors.sort();
    governors.dedup();
    match governors.as_slice() {
        [] => Check::other(
            NAME,
            Status::Skipped,
            "no cpufreq (a VM, or a CPU without frequency scaling)",
            "on bare metal, load the cpufreq driver to check the governor",
        ),
        [only] if only == "performance" => {
            Check::pass(NAME, "every CPU uses the performance governor")
        }
        _ => Check::other(
            NAME,
            Status::Warn,
            format!(
                "governors in use: {}: the clock speed changes with load",
                governors.join(", ")
            ),
            "cpupower frequency-set -g performance",
        ),
    }
}

fn turbo(host: &Host) -> Check {
    const NAME: &str = "turbo";
    let varies = "turbo is on: the clock depends on temperature and on the load of other cores";
    if let Some(no_turbo) = host.read("/sys/devices/system/cpu/intel_pstate/no_turbo") {
        return match no_turbo.as_str() {
            "1" => Check::pass(NAME, "turbo off (intel_pstate)"),
            _ => Check::other(
                NAME,
                Status::Warn,
                varies,
                "echo 1 > /sys/devices/system/cpu/intel_pstate/no_turbo",
            ),
        };
    }
    match host
        .read("/sys/devices/system/cpu/cpufreq/boost")
        .as_deref()
    {
        Some("0") => Check::pass(NAME, "boost off"),
        Some(_) => Check::other(
            NAME,
            Status::Warn,
            varies,
            "echo 0 > /sys/devices/system/cpu/cpufreq/boost",
        ),
        None => Check::other(
            NAME,
            Status::Skipped,
            "no intel_pstate/no_turbo or cpufreq/boost",
            "check the BIOS for turbo / boost",
        ),
    }
}

/// The selected value of a sysfs choice file: `always [madvise] never` → `madvise`.
fn selected(choices: &str) -> Option<&str> {
    let start = choices.find('[')? + 1;
    let end = start + choices[start..].find(']')?;
    Some(&choices[start..end])
}

fn transparent_hugepages(host: &Host) -> Check {
    const NAME: &str = "transparent-hugepages";
    let enabled = host.read("/sys/kernel/mm/transparent_hugepage/enabled");
    match enabled.as_deref().and_then(selected) {
        None => Check::other(NAME, Status::Skipped, "no /sys/kernel/mm/transparent_hugepage/enabled", "nothing to do unless the kernel has THP"),
        Some("always") => Check::other(
            NAME,
            Status::Warn,
            "THP always: a run's speed depends on whether it got huge pages (compaction, khugepaged)",
            "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled",
        ),
        Some(mode) => Check::pass(NAME, format!("THP {mode}")),
    }
}

fn swap(host: &Host) -> Check {
    const NAME: &str = "swap";
    match host.read("/proc/swaps") {
        None => Check::other(NAME, Status::Skipped, "no /proc/swaps", "swapoff -a"),
        Some(swaps) => match swaps.lines().skip(1).count() {
            0 => Check::pass(NAME, "no swap"),
            n => Check::other(
                NAME,
                Status::Warn,
                format!("{n} swap area(s): a run near its memory limit pages instead of failing"),
                "swapoff -a (and remove swap from /etc/fstab)",
            ),
        },
    }
}

fn aslr(host: &Host) -> Check {
    const NAME: &str = "aslr";
    match host.read("/proc/sys/kernel/randomize_va_space").as_deref() {
        None => Check::other(
            NAME,
            Status::Skipped,
            "no /proc/sys/kernel/randomize_va_space",
            "sysctl -w kernel.randomize_va_space=0",
        ),
        Some("0") => Check::pass(NAME, "address space randomisation off"),
        Some(level) => Check::other(
            NAME,
            Status::Warn,
            format!("randomize_va_space = {level}: memory use and timing vary from run to run"),
            "sysctl -w kernel.randomize_va_space=0",
        ),
    }
}

fn kernel(host: &Host) -> Check {
    const NAME: &str = "kernel";
    let version = host.kernel_version();
    let kallsyms = host.read("/proc/kallsyms");
    let shown = version.map_or_else(|| "unknown".to_owned(), |v| v.to_string());
    match kernel::ipc_teardown(version, kallsyms.as_deref()) {
        None => Check::other(NAME, Status::Skipped, "no /proc/sys/kernel/osrelease", "run doctor on the judgehost itself"),
        Some(IpcTeardown::Serialised) => Check::other(
            NAME,
            Status::Warn,
            format!("Linux {shown} frees IPC namespaces one RCU grace period at a time and holds cgroup locks long under cgroup churn: wall time far above CPU time"),
            format!("upgrade to Linux ≥ {IPC_TEARDOWN_FIXED}, or turn off the IPC namespace in the sandbox profile and reuse warm sandboxes"),
        ),
        Some(IpcTeardown::Batched) => Check::pass(NAME, format!("Linux {shown}: no known timing problem")),
    }
}

fn cgroup_layout(host: &Host) -> Check {
    const NAME: &str = "cgroup-layout";
    let mountinfo = host.read("/proc/self/mountinfo").unwrap_or_default();
    match runner::cgroup::Hierarchies::from_mountinfo(&mountinfo, &host.root) {
        Err(error) => Check::other(
            NAME,
            Status::Fail,
            format!("no usable cgroups: {error}"),
            "mount cgroup2 on /sys/fs/cgroup (or give the container the host's cgroups)",
        ),
        Ok(hierarchies) => match hierarchies.layout() {
            runner::cgroup::Layout::V2 => Check::pass(NAME, "cgroup v2"),
            runner::cgroup::Layout::Hybrid => Check::pass(
                NAME,
                "hybrid: v1 controllers plus a cgroup2 mount (per-run PSI and clone3 into a cgroup work)",
            ),
            runner::cgroup::Layout::V1 => Check::other(
                NAME,
                Status::Warn,
                "cgroup v1 only: no per-run pressure, no clone3 into a cgroup, no atomic kill",
                "boot with systemd.unified_cgroup_hierarchy=1 (or mount cgroup2 beside v1)",
            ),
        },
    }
}

/// The controllers a run uses: memory is required; the others are needed for their limits.
const REQUIRED_CONTROLLER: &str = "memory";
const WANTED_CONTROLLERS: &[&str] = &["pids", "cpuset", "cpu"];

fn cgroup_controllers(host: &Host) -> Check {
    const NAME: &str = "cgroup-controllers";
    let v1: Vec<&str> = host
        .mounts_of("cgroup")
        .flat_map(|m| m.super_options.iter().map(String::as_str))
        .collect();
    let v2: Vec<String> = host
        .mounts_of("cgroup2")
        .filter_map(|m| host.read(&m.point.join("cgroup.controllers").to_string_lossy()))
        .flat_map(|text| {
            text.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let available =
        |controller: &str| v1.contains(&controller) || v2.iter().any(|c| c == controller);
    let missing: Vec<&str> = WANTED_CONTROLLERS
        .iter()
        .copied()
        .filter(|c| !available(c))
        .collect();
    if !available(REQUIRED_CONTROLLER) {
        Check::other(
            NAME,
            Status::Fail,
            "the memory controller is not available: memory limits cannot be enforced",
            "enable the memory controller (cgroup_enable=memory) and give judged its hierarchy, delegated",
        )
    } else if missing.is_empty() {
        Check::pass(NAME, "memory, pids, cpuset and cpu available")
    } else {
        Check::other(
            NAME,
            Status::Warn,
            format!(
                "missing: {}: their limits cannot be applied",
                missing.join(", ")
            ),
            "mount or delegate the missing controllers to judged's cgroup",
        )
    }
}

fn favordynmods(host: &Host) -> Check {
    const NAME: &str = "favordynmods";
    let Some(unified) = host.mounts_of("cgroup2").next() else {
        return Check::other(
            NAME,
            Status::Skipped,
            "no cgroup2 mount",
            "mount cgroup2 first",
        );
    };
    if host
        .kernel_version()
        .is_some_and(|v| v < KernelVersion { major: 6, minor: 0 })
    {
        return Check::other(
            NAME,
            Status::Skipped,
            "the kernel predates favordynmods (6.0)",
            "upgrade the kernel",
        );
    }
    if unified.super_options.iter().any(|o| o == "favordynmods") {
        Check::pass(
            NAME,
            format!("{} is mounted with favordynmods", unified.point.display()),
        )
    } else {
        Check::other(
            NAME,
            Status::Warn,
            format!(
                "{} lacks favordynmods: moving tasks between cgroups waits for an RCU grace period",
                unified.point.display()
            ),
            format!("mount -o remount,favordynmods {}", unified.point.display()),
        )
    }
}

fn psi(host: &Host) -> Check {
    const NAME: &str = "psi";
    if host.exists("/proc/pressure/cpu") {
        Check::pass(NAME, "pressure stall information is on")
    } else {
        Check::other(
            NAME,
            Status::Warn,
            "no /proc/pressure: runs cannot tell waiting from working",
            "boot with psi=1",
        )
    }
}

fn delay_accounting(host: &Host) -> Check {
    const NAME: &str = "delay-accounting";
    match host.read("/proc/sys/kernel/task_delayacct").as_deref() {
        Some("1") => Check::pass(NAME, "task delay accounting is on"),
        Some(_) => Check::other(
            NAME,
            Status::Warn,
            "task delay accounting is off: no per-run IO and reclaim delays",
            "sysctl -w kernel.task_delayacct=1",
        ),
        None => Check::other(
            NAME,
            Status::Warn,
            "the kernel has no task delay accounting",
            "use a kernel with CONFIG_TASK_DELAY_ACCT",
        ),
    }
}

fn tracefs(host: &Host) -> Check {
    const NAME: &str = "tracefs";
    match host.mounts_of("tracefs").next() {
        Some(mount) => Check::pass(NAME, format!("tracefs at {}", mount.point.display())),
        None => Check::other(
            NAME,
            Status::Warn,
            "tracefs is not mounted: no tracepoints",
            "mount -t tracefs nodev /sys/kernel/tracing",
        ),
    }
}

fn bpf(host: &Host) -> Check {
    const NAME: &str = "bpf";
    if host.exists("/sys/kernel/btf/vmlinux") {
        Check::pass(NAME, "kernel BTF available: CO-RE eBPF programs can load")
    } else {
        Check::other(
            NAME,
            Status::Warn,
            "no /sys/kernel/btf/vmlinux: eBPF diagnostics unavailable",
            "use a kernel built with CONFIG_DEBUG_INFO_BTF",
        )
    }
}

/// Run `judged doctor`; exit status 1 when any check failed.
pub fn execute(args: DoctorArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(
        args.root.is_dir(),
        "--root `{}' is not a directory",
        args.root.display()
    );
    let checks = run_checks(&Host::new(&args.root));
    let failed = checks.iter().any(|c| c.status == Status::Fail);
    if args.json {
        let json = serde_json::json!({ "checks": checks, "failed": failed });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", table(&checks));
    }
    Ok(u8::from(failed))
}

/// The checks as a table for people: status, name, detail, and the fix under it.
pub fn table(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for check in checks {
        let status = serde_json::to_value(check.status).expect("a Status serializes");
        let status = status.as_str().unwrap_or_default();
        out.push_str(&format!(
            "{status:<8}{:<width$}  {}\n",
            check.name, check.detail
        ));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("{:<8}{:<width$}  fix: {fix}\n", "", ""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks_of(fixture: &str) -> Vec<Check> {
        let root = crate::repo_path("testdata/hosts").join(fixture);
        assert!(root.is_dir(), "fixture {} missing", root.display());
        run_checks(&Host::new(&root))
    }

    fn status(checks: &[Check], name: &str) -> Status {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}"))
            .status
    }

    use Status::{Fail, Pass, Skipped, Warn};

    /// (check, hybrid dev VM, tuned bookworm judgehost, laptop, v1 container without memcg)
    const EXPECTED: &[(&str, [Status; 4])] = &[
        ("smt", [Pass, Pass, Warn, Skipped]),
        ("cpufreq-governor", [Skipped, Pass, Warn, Skipped]),
        ("turbo", [Skipped, Pass, Warn, Skipped]),
        ("transparent-hugepages", [Pass, Pass, Warn, Skipped]),
        ("swap", [Pass, Pass, Warn, Skipped]),
        ("aslr", [Warn, Pass, Warn, Warn]),
        ("kernel", [Pass, Warn, Pass, Warn]),
        ("cgroup-layout", [Pass, Pass, Pass, Fail]),
        ("cgroup-controllers", [Pass, Pass, Pass, Fail]),
        ("favordynmods", [Warn, Warn, Warn, Skipped]),
        ("psi", [Pass, Warn, Pass, Warn]),
        ("delay-accounting", [Warn, Pass, Warn, Warn]),
        ("tracefs", [Warn, Warn, Pass, Warn]),
        ("bpf", [Pass, Pass, Pass, Warn]),
    ];
    const FIXTURES: [&str; 4] = [
        "judgehost-v1-hybrid",
        "judgehost-bookworm-v2",
        "laptop-v2",
        "container-v1-no-memcg",
    ];

    #[test]
    fn every_check_on_every_fixture() {
        let results: Vec<Vec<Check>> = FIXTURES.iter().map(|f| checks_of(f)).collect();
        assert_eq!(
            results[0].len(),
            EXPECTED.len(),
            "a check without a row here"
        );
        for (name, statuses) in EXPECTED {
            for (fixture, (checks, expected)) in FIXTURES.iter().zip(results.iter().zip(statuses)) {
                assert_eq!(status(checks, name), *expected, "{name} on {fixture}");
            }
        }
    }

    #[test]
    fn every_non_pass_has_a_fix() {
        for fixture in FIXTURES {
            for check in checks_of(fixture) {
                assert_eq!(
                    check.fix.is_some(),
                    check.status != Pass,
                    "{} on {fixture}",
                    check.name
                );
            }
        }
    }

    #[test]
    fn old_kernel_warning_names_the_teardown_problem() {
        let checks = checks_of("judgehost-bookworm-v2");
        let kernel = checks.iter().find(|c| c.name == "kernel").unwrap();
        assert!(kernel.detail.contains("Linux 6.1") && kernel.detail.contains("IPC namespaces"));
        assert!(kernel.fix.as_deref().unwrap().contains("6.3"));
    }

    #[test]
    fn choice_files_show_the_bracketed_value() {
        assert_eq!(selected("always [madvise] never"), Some("madvise"));
        assert_eq!(selected("always madvise never"), None);
    }

    #[test]
    fn table_puts_the_fix_under_its_check() {
        let out = table(&checks_of("laptop-v2"));
        let smt = out
            .lines()
            .position(|l| l.starts_with("WARN    smt"))
            .expect("smt row");
        assert!(out
            .lines()
            .nth(smt + 1)
            .unwrap()
            .trim_start()
            .starts_with("fix: echo off"));
    }
}
