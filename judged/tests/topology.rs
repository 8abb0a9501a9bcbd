//! `judged topology` end to end: the binary on a fixture tree (JSON), on this machine's own
//! sysfs, and refusing an impossible request. Needs no privileges.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use judged::verdict::exit_status;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/topology")
        .join(name)
}

fn topology(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_judged"))
        .arg("topology")
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let output = topology(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "topology {args:?}: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

fn cpus(value: &Value) -> Vec<u64> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

#[test]
fn the_xeon_plan_as_json() {
    let root = fixture("xeon-2s-40c-smt");
    let json: Value = serde_json::from_str(&ok(&["--root", root.to_str().unwrap(), "--json"]))
        .expect("one JSON object");
    let host = &json["host"];
    assert_eq!(host["sockets"], 2);
    assert_eq!(host["cores"], 40);
    assert_eq!(host["threads"], 80);
    assert_eq!(host["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(cpus(&host["offline"]), Vec::<u64>::new());

    let plan = &json["plan"];
    let workers = plan["workers"].as_array().unwrap();
    assert_eq!(
        workers.len(),
        39,
        "one per physical core but the housekeeping one"
    );
    assert_eq!(cpus(&plan["housekeeping"]), [0, 40]);
    assert_eq!(cpus(&plan["idle_siblings"]), (41..80).collect::<Vec<_>>());
    assert_eq!(cpus(&plan["unused"]), Vec::<u64>::new());
    for (i, worker) in workers.iter().enumerate() {
        assert_eq!(worker["id"], i);
        let cpu = cpus(&worker["cpus"])[0];
        let node = if cpu < 20 { "0" } else { "1" };
        assert_eq!(worker["cpuset_cpus"], cpu.to_string(), "{worker}");
        assert_eq!(
            worker["cpuset_mems"], node,
            "memory on the core's node: {worker}"
        );
    }
    // Worker i's node alternates while both nodes have cores left.
    let mems: Vec<&str> = workers
        .iter()
        .map(|w| w["cpuset_mems"].as_str().unwrap())
        .collect();
    assert!(
        mems[..38].chunks(2).all(|pair| pair == ["0", "1"]),
        "{mems:?}"
    );
    assert_eq!(workers[1]["socket"], 1);
}

#[test]
fn this_machine_gets_a_plan() {
    let out = ok(&["--root", "/"]);
    assert!(out.starts_with("host: "), "{out}");
    let workers = out
        .lines()
        .find_map(|l| l.strip_prefix("plan: "))
        .expect("a plan line");
    assert!(
        !workers.starts_with("0 "),
        "no worker on this machine: {out}"
    );
    eprintln!("{out}");
}

#[test]
fn an_impossible_request_says_what_to_change() {
    let root = fixture("laptop-4c8t");
    let output = topology(&["--root", root.to_str().unwrap(), "--housekeeping", "0-3"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(i32::from(exit_status::USAGE)));
    assert!(
        stderr.contains("take all 4 cores") && stderr.contains("name fewer"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_missing_root_is_named() {
    let output = topology(&["--root", "/nonexistent/tree"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(i32::from(exit_status::USAGE)));
    assert!(
        stderr.contains("`/nonexistent/tree' is not a directory"),
        "{stderr}"
    );
}

/// `--config`: the plan of a `judged serve` config's [workers]; options given override it.
#[test]
fn the_plan_of_a_serve_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        "[workers]\nhousekeeping = \"0-1\"\ncount = 3\nsmt = true\n",
    )
    .unwrap();
    let root = fixture("xeon-2s-40c-smt");
    let plan = |extra: &[&str]| -> Value {
        let mut args = vec![
            "--root",
            root.to_str().unwrap(),
            "--json",
            "--config",
            config.to_str().unwrap(),
        ];
        args.extend(extra);
        serde_json::from_str::<Value>(&ok(&args)).unwrap()["plan"].clone()
    };
    let from_config = plan(&[]);
    assert_eq!(cpus(&from_config["housekeeping"]), [0, 1, 40, 41]);
    let workers: Vec<&str> = from_config["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["cpuset_cpus"].as_str().unwrap())
        .collect();
    assert_eq!(workers, ["2", "20", "3"]);
    let overridden = plan(&["--max-workers", "5", "--housekeeping", "0"]);
    assert_eq!(overridden["workers"].as_array().unwrap().len(), 5);
    assert_eq!(cpus(&overridden["housekeeping"]), [0, 40]);

    std::fs::write(&config, "[workers]\nsmt = \"yes\"\n").unwrap();
    let output = topology(&[
        "--root",
        root.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("serve.toml") && stderr.contains("smt"),
        "{stderr}"
    );
}
