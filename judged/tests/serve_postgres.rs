//! `judged serve` on PostgreSQL: several hosts, one queue.
//!
//! Each test starts a throwaway PostgreSQL cluster of its own (Debian's `postgresql` package,
//! `/usr/lib/postgresql/*/bin`: `initdb` in a temporary directory, `pg_ctl start` on a free
//! localhost port, as the `postgres` user when run as root) and stops and removes it when
//! done, so no service is left behind. `JUDGED_TEST_POSTGRES_URL` (a server's URL, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`) uses that server instead; each test makes a
//! database of its own there.
//!
//! Store level (no root needed): claim, heartbeat, lease expiry and reclaim, finish exactly
//! once, two hosts claiming at once never get the same judging. End to end (root, to judge):
//! two `judged serve` daemons with different host ids on one database, one `kill -9`ed while
//! judging: every judging ends done with one set of results, the killed host's taken over by
//! the other. Without PostgreSQL or root the tests skip out loud; under `CI=true` a skip is a
//! failure.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use judged::serve::store::{
    Claim, NewJudging, Notice, Outcome, PostgresStore, Publish, Recovered, Renewal, SourceFile,
    Status, Store, TestRecord,
};
use serde_json::Value;

mod common;
mod daemon;
use common::{is_root, judging_prerequisites, skip};
use daemon::{repo, slow_problem, slow_submission, zip_dir, Server};

/// A PostgreSQL server for one test and a database of its own on it; a cluster this started
/// is stopped and removed on drop.
struct Postgres {
    /// `postgres://USER@HOST:PORT/` (no database).
    server: String,
    database: String,
    cluster: Option<Cluster>,
}

struct Cluster {
    pg_ctl: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = command(&self.pg_ctl, self.as_postgres)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `program`, as the `postgres` user when we are root (initdb refuses to run as root).
fn command(program: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// The newest `/usr/lib/postgresql/VERSION/bin`.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

impl Postgres {
    /// A server and a fresh database, or why there is none.
    fn start() -> Result<Postgres, String> {
        let (server, cluster) = match std::env::var("JUDGED_TEST_POSTGRES_URL") {
            Ok(url) => {
                let server = match url.rfind('/') {
                    Some(slash) if slash > "postgres://".len() => url[..=slash].to_owned(),
                    _ => format!("{}/", url.trim_end_matches('/')),
                };
                (server, None)
            }
            Err(_) => {
                let (server, cluster) = start_cluster()?;
                (server, Some(cluster))
            }
        };
        let name = format!(
            "judged_test_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = postgres::Client::connect(&format!("{server}postgres"), postgres::NoTls)
            .map_err(|e| format!("cannot connect to PostgreSQL at {server}: {e}"))?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|e| format!("cannot create a database: {e}"))?;
        Ok(Postgres {
            database: format!("{server}{name}"),
            server,
            cluster,
        })
    }

    fn url(&self) -> &str {
        &self.database
    }

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(self.url(), postgres::NoTls).unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A cluster of our own goes whole; on a given server only our database.
        if self.cluster.is_none() {
            if let Ok(mut admin) =
                postgres::Client::connect(&format!("{}postgres", self.server), postgres::NoTls)
            {
                let name = self.database.rsplit('/').next().unwrap_or_default();
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

fn start_cluster() -> Result<(String, Cluster), String> {
    let bin = postgres_bin().ok_or(
        "no PostgreSQL server (/usr/lib/postgresql/*/bin/initdb): ci/setup installs Debian's \
         postgresql",
    )?;
    let as_postgres = is_root();
    let dir = tempfile::Builder::new()
        .prefix("judged-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    if as_postgres {
        let user = nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .ok_or("no `postgres' user (the postgresql package makes it)")?;
        std::os::unix::fs::chown(dir.path(), Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .map_err(|e| format!("cannot chown the cluster's directory: {e}"))?;
    }
    let data = dir.path().join("data");
    let output = command(&bin.join("initdb"), as_postgres)
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let cluster = Cluster {
        pg_ctl: bin.join("pg_ctl"),
        data: data.clone(),
        as_postgres,
        _dir: dir,
    };
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
        cluster._dir.path().display()
    );
    let output = command(&cluster.pg_ctl, as_postgres)
        .arg("-D")
        .arg(&data)
        .args(["-o", &options, "-l"])
        .arg(cluster._dir.path().join("log"))
        .args(["-w", "-t", "60", "start"])
        .output()
        .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
    if !output.status.success() {
        let log = std::fs::read_to_string(cluster._dir.path().join("log")).unwrap_or_default();
        return Err(format!(
            "pg_ctl start failed: {}{log}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok((format!("postgres://postgres@127.0.0.1:{port}/"), cluster))
}

macro_rules! postgres_or_skip {
    () => {
        match Postgres::start() {
            Ok(postgres) => postgres,
            Err(reason) => return skip(&reason),
        }
    };
}

fn submission() -> NewJudging {
    NewJudging {
        problem: "p".into(),
        language: "c".into(),
        files: vec![SourceFile {
            name: "a.c".into(),
            content: "int main(){}".into(),
        }],
    }
}

fn done(names: &[&str]) -> Outcome {
    Outcome::Done {
        verdict: "correct".into(),
        compile_output: String::new(),
        tests: names
            .iter()
            .enumerate()
            .map(|(ordinal, name)| TestRecord {
                ordinal,
                name: (*name).into(),
                verdict: "correct".into(),
                time_limit: 1.0,
                cpu_time: Some(0.01),
                wall_time: Some(0.02),
                memory_bytes: Some(1 << 20),
                message: String::new(),
                reruns: 0,
                host_findings: Vec::new(),
                kernel: Some(serde_json::json!({"dstate_ms": 1.5})),
            })
            .collect(),
    }
}

#[test]
fn claims_leases_heartbeats_and_reclaims_on_postgres() {
    let postgres = postgres_or_skip!();
    let lease = Duration::from_millis(600);
    let a = PostgresStore::open(postgres.url(), "a")
        .unwrap()
        .with_lease(lease);
    let b = PostgresStore::open(postgres.url(), "b")
        .unwrap()
        .with_lease(lease);
    // One daemon per host id.
    let error = PostgresStore::open(postgres.url(), "a")
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("host_id `a'"), "{error}");

    let kept = a.submit(&submission()).unwrap();
    let dead = a.submit(&submission()).unwrap();
    let asked = a.submit(&submission()).unwrap();
    let kept_claim = a.claim("a").unwrap().unwrap();
    assert_eq!((kept_claim.id, kept_claim.attempt), (kept, 1));
    let dead_claim = b.claim("b").unwrap().unwrap();
    let asked_claim = b.claim("b").unwrap().unwrap();
    assert_eq!((dead_claim.id, asked_claim.id), (dead, asked));
    assert_eq!(a.claim("a").unwrap(), None);
    // A cancel asked through a's API reaches b's worker by its heartbeat.
    assert_eq!(
        a.cancel(asked).unwrap(),
        judged::serve::store::CancelOutcome::Requested
    );
    assert_eq!(
        b.renew(&asked_claim).unwrap(),
        Renewal::Held {
            cancel_requested: true
        }
    );
    assert_eq!(a.reclaim_expired().unwrap(), Recovered::default());
    // b dies; a keeps renewing its own.
    for _ in 0..6 {
        std::thread::sleep(lease / 4);
        assert!(matches!(
            a.renew(&kept_claim).unwrap(),
            Renewal::Held { .. }
        ));
    }
    assert_eq!(
        a.reclaim_expired().unwrap(),
        Recovered {
            requeued: 1,
            cancelled: 1
        }
    );
    assert_eq!(a.get(kept).unwrap().unwrap().status, Status::Judging);
    assert_eq!(a.get(asked).unwrap().unwrap().status, Status::Cancelled);
    let record = a.get(dead).unwrap().unwrap();
    assert_eq!((record.status, record.claimed_by), (Status::Queued, None));
    assert_eq!(b.renew(&dead_claim).unwrap(), Renewal::Lost);
    // a takes the dead host's judging over; b's late result is refused, a's is recorded once.
    let again = a.claim("a").unwrap().unwrap();
    assert_eq!((again.id, again.attempt), (dead, 2));
    assert!(!b.finish(&dead_claim, &done(&["x", "y", "z"])).unwrap());
    assert!(a.finish(&again, &done(&["x", "y"])).unwrap());
    assert!(!a.finish(&again, &done(&["x"])).unwrap());
    let record = a.get(dead).unwrap().unwrap();
    assert_eq!(
        (record.status, record.attempt, record.claimed_by.as_deref()),
        (Status::Done, 2, Some("a"))
    );
    assert_eq!(record.tests.len(), 2);
    assert_eq!(
        record.tests[0].kernel,
        Some(serde_json::json!({"dstate_ms": 1.5})),
        "the kernel's account is stored"
    );
    assert!(a.finish(&kept_claim, &done(&["x"])).unwrap());
    // Recovery at start is by host id: b's restart puts back only b's.
    let other = a.submit(&submission()).unwrap();
    let b_claim = b.claim("b").unwrap().unwrap();
    assert_eq!(b_claim.id, other);
    assert_eq!(a.recover("a").unwrap(), Recovered::default());
    assert_eq!(b.recover("b").unwrap().requeued, 1);
    let counts = a.counts().unwrap();
    assert_eq!(
        (
            counts[&Status::Done],
            counts[&Status::Cancelled],
            counts[&Status::Queued]
        ),
        (2, 1, 1)
    );
    let listed = b.list(Some(Status::Done), 10).unwrap();
    assert_eq!(
        listed.iter().map(|r| r.id).collect::<Vec<_>>(),
        [dead, kept]
    );
    assert_eq!(listed[0].files, ["a.c"]);
    // Reopening finds the schema in place.
    drop(a);
    let a = PostgresStore::open(postgres.url(), "a").unwrap();
    assert_eq!(a.get(dead).unwrap().unwrap().tests.len(), 2);
}

/// A database of schema 2 (before test results had `reruns`, `host_findings` and `kernel`)
/// gets the columns when a daemon of schema 3 opens it, and keeps what is written to them.
#[test]
fn a_schema_2_database_gets_the_schema_3_columns() {
    use judged::serve::store::{schema, Engine, SCHEMA_VERSION};
    let postgres = postgres_or_skip!();
    {
        let mut client = ::postgres::Client::connect(postgres.url(), ::postgres::NoTls).unwrap();
        let v2 = schema(Engine::Postgres)
            .replace("    reruns       INTEGER NOT NULL DEFAULT 0,\n", "")
            .replace("    host_findings TEXT   NOT NULL DEFAULT '[]',\n", "")
            .replace("    kernel       TEXT,\n", "");
        assert!(!v2.contains("host_findings") && !v2.contains("kernel"));
        client.batch_execute(&v2).unwrap();
        client
            .batch_execute(
                "CREATE TABLE judged_schema (version INTEGER NOT NULL); \
                 INSERT INTO judged_schema (version) VALUES (2)",
            )
            .unwrap();
    }
    let store = PostgresStore::open(postgres.url(), "a").unwrap();
    let id = store.submit(&submission()).unwrap();
    let claim = store.claim("a").unwrap().unwrap();
    let Outcome::Done { mut tests, .. } = done(&["x"]) else {
        unreachable!()
    };
    tests[0].reruns = 1;
    tests[0].host_findings = vec![serde_json::from_value(serde_json::json!({
        "window": {"window": 2, "monotonic_start_s": 5.0, "monotonic_end_s": 6.0,
                   "wall_start": 1.0, "wall_end": 2.0},
        "finding": {"kind": "host-pressure", "summary": "busy", "evidence": {}, "remedy": "wait"}
    }))
    .unwrap()];
    let outcome = Outcome::Done {
        verdict: "correct".into(),
        compile_output: String::new(),
        tests: tests.clone(),
    };
    assert!(store.finish(&claim, &outcome).unwrap());
    assert_eq!(store.get(id).unwrap().unwrap().tests, tests);
    drop(store);
    let mut client = ::postgres::Client::connect(postgres.url(), ::postgres::NoTls).unwrap();
    let version: i32 = client
        .query_one("SELECT max(version) FROM judged_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(i64::from(version), SCHEMA_VERSION);
}

#[test]
fn two_hosts_claiming_at_once_never_get_the_same_judging() {
    let postgres = postgres_or_skip!();
    const JUDGINGS: usize = 200;
    let hosts = ["a", "b", "c"];
    let stores: Vec<Arc<PostgresStore>> = hosts
        .iter()
        .map(|host| Arc::new(PostgresStore::open(postgres.url(), host).unwrap()))
        .collect();
    for _ in 0..JUDGINGS {
        stores[0].submit(&submission()).unwrap();
    }
    let start = Arc::new(Barrier::new(hosts.len()));
    let claimers: Vec<_> = hosts
        .iter()
        .zip(&stores)
        .map(|(host, store)| {
            let (host, store, start) = (host.to_string(), store.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut claims: Vec<Claim> = Vec::new();
                while let Some(claim) = store.claim(&host).unwrap() {
                    claims.push(claim);
                }
                claims
            })
        })
        .collect();
    let claims: Vec<Vec<Claim>> = claimers.into_iter().map(|t| t.join().unwrap()).collect();
    let mut ids: Vec<i64> = claims.iter().flatten().map(|c| c.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), JUDGINGS, "a judging was claimed twice or never");
    assert_eq!(
        claims.iter().map(Vec::len).sum::<usize>(),
        JUDGINGS,
        "a judging was claimed twice"
    );
    assert!(claims.iter().flatten().all(|c| c.attempt == 1));
    // Each row says who has it.
    let mut client = postgres.client();
    for (host, claims) in hosts.iter().zip(&claims) {
        let count: i64 = client
            .query_one(
                "SELECT count(*) FROM judgings WHERE status = 'judging' AND claimed_by = $1",
                &[host],
            )
            .unwrap()
            .get(0);
        assert_eq!(count as usize, claims.len(), "{host}");
    }
    eprintln!(
        "claims per host: {:?}",
        claims.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

// End to end.

/// One daemon's directory and config: its own data directory, the shared database.
fn site(
    runguard: &Path,
    problem: &Path,
    database: &str,
    host: &str,
    workers: usize,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\nhost_id = {host:?}\nworkers = {workers}\n\
         runguard = {:?}\nprofiles = {:?}\n\
         [problems]\ndirs = [{:?}]\n\
         [database]\nurl = {database:?}\nlease_secs = 3\n",
        runguard.display().to_string(),
        repo().join("profiles").display().to_string(),
        problem.display().to_string(),
    );
    std::fs::write(dir.path().join("serve.toml"), config).unwrap();
    dir
}

const SLOW_CASES: usize = 6;

/// The slow problem (in a directory kept while the sites are) and the sites of two daemons,
/// alpha and beta, judging it on one database with `workers` each.
fn slow_sites(
    runguard: &Path,
    database: &str,
    workers: usize,
) -> (tempfile::TempDir, tempfile::TempDir, tempfile::TempDir) {
    let problems = tempfile::tempdir().unwrap();
    let slow = slow_problem(problems.path(), SLOW_CASES);
    let alpha = site(runguard, &slow, database, "alpha", workers);
    let beta = site(runguard, &slow, database, "beta", workers);
    (problems, alpha, beta)
}
const JUDGINGS: usize = 6;

#[test]
fn two_daemons_on_one_database_one_killed_every_judging_judged_once() {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => return skip(&reason),
    };
    let postgres = postgres_or_skip!();
    let started = Instant::now();
    let (_problems, alpha_site, beta_site) = slow_sites(&runguard, postgres.url(), 2);
    let alpha = Server::start(&alpha_site.path().join("serve.toml"));
    let beta = Server::start(&beta_site.path().join("serve.toml"));
    let ids: Vec<i64> = (0..JUDGINGS)
        .map(|_| alpha.submit(slow_submission(300)))
        .collect();
    // Kill alpha once one of its judgings has finished a test case.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let busy = ids.iter().any(|id| {
            let judging = alpha.judging(*id);
            judging["status"] == "judging"
                && judging["claimed_by"] == "alpha"
                && !judging["tests"].as_array().unwrap().is_empty()
        });
        if busy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alpha never judged\n{}",
            alpha.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let alpha_log = alpha.log_handle();
    alpha.kill_9();
    // What alpha left: judgings claimed, none with results (nothing partial is stored).
    let mut client = postgres.client();
    let interrupted: Vec<(i64, i32)> = client
        .query(
            "SELECT id, attempt FROM judgings WHERE status = 'judging' AND claimed_by = 'alpha' \
             ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert!(!interrupted.is_empty(), "{}", alpha_log.lock().unwrap());
    for (id, _) in &interrupted {
        let results: i64 = client
            .query_one(
                "SELECT count(*) FROM test_results WHERE judging = $1",
                &[id],
            )
            .unwrap()
            .get(0);
        assert_eq!(results, 0, "judging {id}");
    }

    // beta finishes everything, alpha's interrupted judgings once their leases run out.
    let deadline = Instant::now() + Duration::from_secs(90);
    let finals: Vec<Value> = ids
        .iter()
        .map(|id| loop {
            let judging = beta.judging(*id);
            if judging["status"] != "queued" && judging["status"] != "judging" {
                break judging;
            }
            assert!(
                Instant::now() < deadline,
                "judging {id} still {judging}\n{}",
                beta.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        })
        .collect();
    for judging in &finals {
        assert_eq!(judging["status"], "done", "{judging}\n{}", beta.log());
        assert_eq!(judging["verdict"], "correct", "{judging}");
        assert_eq!(judging["tests"].as_array().unwrap().len(), SLOW_CASES);
    }
    for (id, attempt) in &interrupted {
        let judging = finals[ids.iter().position(|i| i == id).unwrap()].clone();
        assert_eq!(judging["attempt"], attempt + 1, "{judging}");
        assert_eq!(judging["claimed_by"], "beta", "{judging}");
    }
    assert!(beta.log().contains("whose lease ran out"), "{}", beta.log());
    // Exactly one set of results per judging, all of the attempt that was recorded.
    for id in &ids {
        let rows = client
            .query(
                "SELECT t.attempt, j.attempt FROM test_results t JOIN judgings j \
                 ON j.id = t.judging WHERE t.judging = $1",
                &[id],
            )
            .unwrap();
        assert_eq!(rows.len(), SLOW_CASES, "judging {id}");
        assert!(
            rows.iter()
                .all(|row| row.get::<_, i32>(0) == row.get::<_, i32>(1)),
            "judging {id}"
        );
    }
    assert!(beta.terminate().success(), "beta did not stop cleanly");
    eprintln!(
        "two daemons: alpha killed holding {interrupted:?} (id, attempt), beta judged them \
         again; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Submit through `store` until `heard` tells of it (the listener connects on its own thread,
/// so the first submissions may come before it listens); how many it took.
fn submit_until_heard(store: &PostgresStore, heard: &mpsc::Receiver<()>) -> usize {
    for tries in 1..=40 {
        // The first call after a cut finds the connection gone and fails.
        if store.submit(&submission()).is_err() {
            continue;
        }
        if heard.recv_timeout(Duration::from_millis(250)).is_ok() {
            while heard.try_recv().is_ok() {}
            return tries;
        }
    }
    panic!("no notification of 40 submissions");
}

#[test]
fn the_queue_listener_hears_other_hosts_and_listens_again_after_a_cut() {
    let postgres = postgres_or_skip!();
    let listener = PostgresStore::open(postgres.url(), "a").unwrap();
    let other = PostgresStore::open(postgres.url(), "b").unwrap();
    let (sender, heard) = mpsc::channel();
    let (problems_sender, problems_heard) = mpsc::channel();
    listener.watch(Box::new(move |notice| {
        let _ = match notice {
            Notice::Queued => sender.send(()),
            Notice::Problems => problems_sender.send(()),
        };
    }));
    submit_until_heard(&other, &heard);
    // A judging handed back is queued work too.
    let claim = other.claim("b").unwrap().unwrap();
    assert!(other.hand_back(&claim).unwrap());
    heard
        .recv_timeout(Duration::from_secs(5))
        .expect("no notification of a hand back");
    // Claiming and finishing queue nothing: no notification.
    while heard.try_recv().is_ok() {}
    let claim = other.claim("b").unwrap().unwrap();
    assert!(other.finish(&claim, &done(&["x"])).unwrap());
    assert!(heard.recv_timeout(Duration::from_millis(500)).is_err());
    // Cut every connection but the admin's: the listener connects again, wakes once (it may
    // have missed something), and hears the next submission.
    postgres
        .client()
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap();
    heard
        .recv_timeout(Duration::from_secs(10))
        .expect("no wake after the listener connected again");
    let tries = submit_until_heard(&other, &heard);
    assert!(tries <= 2, "{tries} submissions before one was heard");
    // A problem published is heard on its own channel.
    while problems_heard.try_recv().is_ok() {}
    assert_eq!(
        other.publish_problem("published", b"zip", "b").unwrap(),
        Publish::Published { version: Some(1) }
    );
    problems_heard
        .recv_timeout(Duration::from_secs(5))
        .expect("no notification of a published problem");
}

#[test]
fn problems_are_published_in_versions_and_not_while_judgings_of_them_wait() {
    let postgres = postgres_or_skip!();
    let a = PostgresStore::open(postgres.url(), "a").unwrap();
    let b = PostgresStore::open(postgres.url(), "b").unwrap();
    assert_eq!(b.problem_versions().unwrap(), []);
    assert_eq!(
        a.publish_problem("p", b"first", "a").unwrap(),
        Publish::Published { version: Some(1) }
    );
    assert_eq!(
        a.publish_problem("p", b"second", "a").unwrap(),
        Publish::Published { version: Some(2) }
    );
    assert_eq!(b.problem_versions().unwrap(), [("p".to_owned(), 2)]);
    assert_eq!(
        b.problem_archive("p").unwrap(),
        Some((2, b"second".to_vec()))
    );
    assert_eq!(b.problem_archive("q").unwrap(), None);
    // A judging of it queued on any host holds it.
    let judging = NewJudging {
        problem: "p".into(),
        ..submission()
    };
    b.submit(&judging).unwrap();
    assert_eq!(
        a.publish_problem("p", b"third", "a").unwrap(),
        Publish::Busy(1)
    );
    assert_eq!(b.problem_archive("p").unwrap().unwrap().0, 2);
}

#[test]
fn a_broken_connection_is_opened_again() {
    let postgres = postgres_or_skip!();
    let store = PostgresStore::open(postgres.url(), "a").unwrap();
    let id = store.submit(&submission()).unwrap();
    let mut admin = postgres.client();
    // Cut every connection but the admin's (the database restarting would too).
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap();
    // The call that finds the connection gone fails; the next one connects again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        match store.get(id) {
            Ok(record) => break record.unwrap(),
            Err(error) => {
                assert!(Instant::now() < deadline, "{error:#}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert_eq!(record.status, Status::Queued);
    // And it holds its host id again.
    let error = PostgresStore::open(postgres.url(), "a")
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("host_id `a'"), "{error}");
}

#[test]
fn a_cancel_asked_on_one_host_stops_the_judging_on_another() {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => return skip(&reason),
    };
    let postgres = postgres_or_skip!();
    let (_problems, alpha_site, beta_site) = slow_sites(&runguard, postgres.url(), 2);
    let alpha = Server::start(&alpha_site.path().join("serve.toml"));
    let beta = Server::start(&beta_site.path().join("serve.toml"));
    let id = alpha.submit(slow_submission(500));
    // Either host may claim it (alpha is woken by the submission, beta polls): wait until the
    // one judging it has finished a test case, then cancel through the other.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (runner, other, host) = loop {
        let judging = alpha.judging(id);
        let status = judging["status"].as_str().unwrap_or_default();
        assert!(["queued", "judging"].contains(&status), "{judging}");
        match judging["claimed_by"].as_str() {
            Some("alpha") => break (&alpha, &beta, "alpha"),
            Some("beta") => break (&beta, &alpha, "beta"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "not claimed\n{}", alpha.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    while runner.judging(id)["tests"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(Instant::now() < deadline, "not judged\n{}", runner.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let response = ureq::post(&other.url(&format!("/judgings/{id}/cancel")))
        .call()
        .unwrap();
    assert_eq!(response.status(), 202);
    // The runner's heartbeat (every second here) brings the cancel; it stops at a test case.
    let deadline = Instant::now() + Duration::from_secs(30);
    let judging = loop {
        let judging = other.judging(id);
        if judging["status"] != "judging" {
            break judging;
        }
        assert!(Instant::now() < deadline, "{judging}\n{}", runner.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        judging["status"],
        "cancelled",
        "{judging}\n{}",
        runner.log()
    );
    assert_eq!(judging["claimed_by"], host, "{judging}");
    let judged = judging["tests"].as_array().unwrap().len();
    assert!((1..SLOW_CASES).contains(&judged), "{judging}");
}

/// `judged_queue_notifications_total` of a daemon.
fn queue_notifications(server: &Server) -> u64 {
    let metrics = ureq::get(&server.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("judged_queue_notifications_total "))
        .unwrap_or_else(|| panic!("no judged_queue_notifications_total in\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_submission_on_one_host_wakes_an_idle_other_host_at_once() {
    let runguard = match judging_prerequisites() {
        Ok(runguard) => runguard,
        Err(reason) => return skip(&reason),
    };
    let postgres = postgres_or_skip!();
    let (_problems, alpha_site, beta_site) = slow_sites(&runguard, postgres.url(), 1);
    // alpha's one worker is busy for a while; then beta starts, finds nothing and idles.
    let alpha = Server::start(&alpha_site.path().join("serve.toml"));
    let busy = alpha.submit(slow_submission(900));
    alpha.wait_for(busy, 60, |j| j["claimed_by"] == "alpha");
    let beta = Server::start(&beta_site.path().join("serve.toml"));
    std::thread::sleep(Duration::from_millis(300));
    let before = queue_notifications(&beta);
    let submitted = Instant::now();
    let id = alpha.submit(slow_submission(0));
    let judging = beta.wait_for(id, 30, |j| j["status"] != "queued");
    let latency = submitted.elapsed();
    assert_eq!(judging["claimed_by"], "beta", "{judging}\n{}", beta.log());
    assert_eq!(
        alpha.judging(busy)["status"],
        "judging",
        "alpha was not busy throughout"
    );
    // beta heard of it (not only its poll, every 2 s, found it).
    assert!(
        queue_notifications(&beta) > before,
        "beta got no notification\n{}",
        beta.log()
    );
    eprintln!(
        "submitted to alpha, claimed by beta after {:.0} ms",
        latency.as_secs_f64() * 1000.0
    );
}

/// Poll `server` until it lists problem `id` with `cases` test cases.
fn wait_for_problem(server: &Server, id: &str, cases: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server
        .problems()
        .iter()
        .any(|(known, _, n)| known == id && *n == cases)
    {
        assert!(
            Instant::now() < deadline,
            "no `{id}' with {cases} test cases: {:?}\n{}",
            server.problems(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Needs no judging (runguard is /bin/true): uploads only load packages.
#[test]
fn a_problem_uploaded_to_one_host_reaches_the_others() {
    let postgres = postgres_or_skip!();
    let runguard = Path::new("/bin/true");
    let aplusb = repo().join("testdata/problems/aplusb");
    let alpha_site = site(runguard, &aplusb, postgres.url(), "alpha", 1);
    let beta_site = site(runguard, &aplusb, postgres.url(), "beta", 1);
    let alpha = Server::start(&alpha_site.path().join("serve.toml"));
    let beta = Server::start(&beta_site.path().join("serve.toml"));
    let (status, reply) = alpha.upload("sum", &zip_dir(&aplusb), None);
    assert_eq!(status, 201, "{reply}");
    wait_for_problem(&beta, "sum", 4);
    // Logged just after it is registered.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !beta.log().contains("installed problem `sum' version 1") {
        assert!(Instant::now() < deadline, "{}", beta.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // A new version replaces it everywhere.
    let smaller = tempfile::tempdir().unwrap();
    std::fs::write(
        smaller.path().join("problem.yaml"),
        "limits:\n  time_limit: 1\n",
    )
    .unwrap();
    std::fs::create_dir_all(smaller.path().join("data/secret")).unwrap();
    std::fs::write(smaller.path().join("data/secret/1.in"), "1 2\n").unwrap();
    std::fs::write(smaller.path().join("data/secret/1.ans"), "3\n").unwrap();
    let (status, reply) = alpha.upload("sum", &zip_dir(smaller.path()), None);
    assert_eq!(
        (status, &reply["replaced"]),
        (200, &Value::Bool(true)),
        "{reply}"
    );
    wait_for_problem(&beta, "sum", 1);
    // A host that starts later installs it at start; one restarted keeps its copy.
    let gamma_site = site(runguard, &aplusb, postgres.url(), "gamma", 1);
    let gamma = Server::start(&gamma_site.path().join("serve.toml"));
    assert!(
        gamma
            .problems()
            .contains(&("sum".to_owned(), "upload".to_owned(), 1)),
        "{}",
        gamma.log()
    );
    assert!(beta.terminate().success());
    let beta = Server::start(&beta_site.path().join("serve.toml"));
    assert!(beta
        .problems()
        .contains(&("sum".to_owned(), "upload".to_owned(), 1)));
    assert!(!beta.log().contains("installed problem"), "{}", beta.log());
}
