//! [`PostgresStore`]: the queue and the results in a PostgreSQL database that several hosts
//! share. The schema is the SQLite one ([`super::schema`]); what differs is the engine's:
//!
//! * A claim takes the oldest queued judging with `FOR UPDATE SKIP LOCKED`: two hosts
//!   claiming at once lock different rows, neither waits on the other, and no row is claimed
//!   twice (a row another claim changed meanwhile is re-checked against `status = 'queued'`).
//! * Every time is the database's clock (`now()`), so hosts whose clocks differ agree on when
//!   a lease runs out.
//! * One daemon per host id: each store holds a session advisory lock on its host id while
//!   connected, so a second daemon under the same `host_id` is refused at start (it would
//!   requeue the first one's judgings as its own crash's).
//!
//! * Every row that becomes `queued` (a submission, a hand back, a reclaim) fires a trigger
//!   that sends `NOTIFY judged_queue`; [`Store::watch`] listens on a connection of its
//!   own (a thread, reconnecting with a backoff when the connection breaks), so an idle host
//!   claims another host's submission at once, not at its next poll.
//! * Uploaded problems are published for every host: `problem_archives` holds each one's
//!   latest archive and version (a trigger sends `NOTIFY judged_problems`), and each host
//!   installs the versions it lacks at start and when told.
//!
//! One connection per daemon, behind a mutex (as SQLite's): the store is called on blocking
//! threads. A broken connection is opened again on the next call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ::postgres::fallible_iterator::FallibleIterator;

use ::postgres::{Client, NoTls, Row};

use super::{
    cancel_step, finish_record, kernel_from_column, kernel_to_column, outcome_parts, parse_files,
    parse_host_findings, schema, CancelOutcome, CancelStep, Claim, Engine, JudgingRecord,
    NewJudging, Notice, Outcome, Publish, Recovered, Renewal, Status, Store, StoreError,
    TestRecord, DEFAULT_LEASE, SCHEMA_VERSION, TEST_RESULTS_2_TO_3, UNFINISHED,
};
use crate::serve::config::redact_password;

/// The database's clock in Unix seconds (the schema's times).
const NOW: &str = "extract(epoch FROM now())::double precision";

/// Serialises schema creation between daemons starting together (`pg_advisory_xact_lock`).
const SCHEMA_LOCK: i64 = 0x6a75_6467_6564; // "judged"

fn pg(what: &'static str) -> impl FnOnce(::postgres::Error) -> StoreError {
    move |source| StoreError::Postgres { what, source }
}

/// The channels of "work may be queued" and "a problem was published".
const QUEUE_CHANNEL: &str = "judged_queue";
const PROBLEMS_CHANNEL: &str = "judged_problems";

/// PostgreSQL only, beside the common schema: the uploaded problems shared by the hosts, and
/// triggers that tell listeners of every judging that becomes queued and every problem
/// published (NOTIFYs of one transaction are sent once, at its commit).
const SHARED_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS problem_archives (
    id          TEXT PRIMARY KEY,
    version     BIGINT NOT NULL,
    archive     BYTEA NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at DOUBLE PRECISION NOT NULL
);
CREATE OR REPLACE FUNCTION judged_queue_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('judged_queue', '');
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION judged_problems_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('judged_problems', NEW.id);
    RETURN NULL;
END $$;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'judged_queue_notify'
                   AND tgrelid = 'judgings'::regclass) THEN
        CREATE TRIGGER judged_queue_notify AFTER INSERT OR UPDATE OF status ON judgings
            FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION judged_queue_notify();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'judged_problems_notify'
                   AND tgrelid = 'problem_archives'::regclass) THEN
        CREATE TRIGGER judged_problems_notify AFTER INSERT OR UPDATE ON problem_archives
            FOR EACH ROW EXECUTE FUNCTION judged_problems_notify();
    END IF;
END $$;
";

/// How long the listener waits between checks of its stop flag.
const LISTEN_TICK: Duration = Duration::from_secs(1);
/// The longest wait before the listener connects again.
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// How long a connection attempt may take unless the URL says (`connect_timeout=`): a
/// heartbeat waiting on a database that is not there holds every other store call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PostgresStore {
    client: Mutex<Client>,
    config: ::postgres::Config,
    host: String,
    lease: Duration,
    /// Set on drop: the listener thread ends within a [`LISTEN_TICK`].
    stop_listening: Arc<AtomicBool>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.stop_listening.store(true, Ordering::SeqCst);
    }
}

impl PostgresStore {
    /// Connect, create the schema if it is missing, and take `host`'s advisory lock.
    pub fn open(url: &str, host: &str) -> Result<PostgresStore, StoreError> {
        let shown = redact_password(url);
        let open_error = |what: &str, source| StoreError::PostgresOpen {
            url: shown.clone(),
            what: what.to_owned(),
            source,
        };
        let mut config: ::postgres::Config = url
            .parse()
            .map_err(|e| open_error("is not a PostgreSQL URL", Some(e)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let mut client = config
            .connect(NoTls)
            .map_err(|e| open_error("cannot connect (is PostgreSQL running there?)", Some(e)))?;
        let mut transaction = client
            .transaction()
            .map_err(|e| open_error("cannot begin a transaction", Some(e)))?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(|e| open_error("cannot lock the schema", Some(e)))?;
        transaction
            .batch_execute("CREATE TABLE IF NOT EXISTS judged_schema (version INTEGER NOT NULL)")
            .map_err(|e| open_error("cannot create the schema version table", Some(e)))?;
        let version: Option<i32> = transaction
            .query_opt("SELECT max(version) FROM judged_schema", &[])
            .map_err(|e| open_error("cannot read the schema version", Some(e)))?
            .and_then(|row| row.get(0));
        if let Some(version) = version.filter(|v| i64::from(*v) > SCHEMA_VERSION) {
            return Err(open_error(
                &format!(
                    "schema version {version} is newer than this judged's ({SCHEMA_VERSION}): \
                     run a newer judged"
                ),
                None,
            ));
        }
        transaction
            .batch_execute(&schema(Engine::Postgres))
            .map_err(|e| open_error("cannot create the schema", Some(e)))?;
        transaction.batch_execute(SHARED_SCHEMA).map_err(|e| {
            open_error(
                "cannot create the problem archives and the notify triggers",
                Some(e),
            )
        })?;
        if version.is_some_and(|v| i64::from(v) < 3) {
            transaction
                .batch_execute(TEST_RESULTS_2_TO_3)
                .map_err(|e| {
                    open_error(
                        "cannot add reruns, host_findings and kernel (schema 2 → 3)",
                        Some(e),
                    )
                })?;
        }
        if version.is_none_or(|v| i64::from(v) < SCHEMA_VERSION) {
            transaction
                .execute("DELETE FROM judged_schema", &[])
                .and_then(|_| {
                    transaction.execute(
                        "INSERT INTO judged_schema (version) VALUES ($1)",
                        &[&(SCHEMA_VERSION as i32)],
                    )
                })
                .map_err(|e| open_error("cannot write the schema version", Some(e)))?;
        }
        transaction
            .commit()
            .map_err(|e| open_error("cannot commit the schema", Some(e)))?;
        if !take_host_lock(&mut client, host).map_err(|e| open_error("cannot lock", Some(e)))? {
            return Err(open_error(
                &format!(
                    "another judged serve with host_id `{host}' is connected to it: give each \
                     daemon a host_id of its own"
                ),
                None,
            ));
        }
        Ok(PostgresStore {
            client: Mutex::new(client),
            config,
            host: host.to_owned(),
            lease: DEFAULT_LEASE,
            stop_listening: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Claims hold this long without a heartbeat.
    pub fn with_lease(mut self, lease: Duration) -> PostgresStore {
        self.lease = lease;
        self
    }

    /// The connection, opened again if it broke (the database restarted, the network cut).
    fn client(&self) -> Result<MutexGuard<'_, Client>, StoreError> {
        let mut client = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if client.is_closed() {
            let mut fresh = self.config.connect(NoTls).map_err(pg("connect again"))?;
            if !take_host_lock(&mut fresh, &self.host).map_err(pg("lock the host id"))? {
                eprintln!(
                    "judged serve: another daemon with host_id `{}' took its lock while the \
                     connection was down",
                    self.host
                );
            }
            *client = fresh;
        }
        Ok(client)
    }

    fn lease_secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }
}

/// The listener: `LISTEN` to both channels on a connection of its own, `notify` on each
/// notification, until `stop`. A broken connection is opened again after a backoff, and
/// `notify` is called then too, of both (notifications sent while it was down are lost).
fn listen(
    config: ::postgres::Config,
    stop: Arc<AtomicBool>,
    notify: Box<dyn Fn(Notice) + Send + Sync>,
) {
    let mut backoff = LISTEN_TICK;
    let mut connected_before = false;
    while !stop.load(Ordering::SeqCst) {
        let mut client = match config.connect(NoTls).and_then(|mut client| {
            client
                .batch_execute(&format!(
                    "LISTEN {QUEUE_CHANNEL}; LISTEN {PROBLEMS_CHANNEL}"
                ))
                .map(|()| client)
        }) {
            Ok(client) => client,
            Err(error) => {
                eprintln!(
                    "judged serve: cannot listen for queued work (trying again in {} s; the \
                     queue is polled meanwhile): {:#}",
                    backoff.as_secs(),
                    anyhow::Error::new(error)
                );
                sleep_unless(&stop, backoff);
                backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
                continue;
            }
        };
        backoff = LISTEN_TICK;
        if connected_before {
            notify(Notice::Queued);
            notify(Notice::Problems);
        }
        connected_before = true;
        while !stop.load(Ordering::SeqCst) {
            let next = client.notifications().timeout_iter(LISTEN_TICK).next();
            match next {
                Ok(Some(notification)) if notification.channel() == PROBLEMS_CHANNEL => {
                    notify(Notice::Problems)
                }
                Ok(Some(_)) => notify(Notice::Queued),
                Ok(None) if client.is_closed() => break,
                Ok(None) => {}
                Err(error) => {
                    eprintln!(
                        "judged serve: the queue listener's connection broke: {:#}",
                        anyhow::Error::new(error)
                    );
                    break;
                }
            }
        }
    }
}

/// Sleep `duration`, waking early when `stop` is set.
fn sleep_unless(stop: &AtomicBool, duration: Duration) {
    let deadline = std::time::Instant::now() + duration;
    while !stop.load(Ordering::SeqCst) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// The session lock that says a daemon with this host id is connected.
fn take_host_lock(client: &mut Client, host: &str) -> Result<bool, ::postgres::Error> {
    let row = client.query_one(
        "SELECT pg_try_advisory_lock(hashtext('judged host ' || $1))",
        &[&host],
    )?;
    Ok(row.get(0))
}

const RECORD_COLUMNS: &str = "id, problem, language, files, status, verdict, attempt, \
     cancel_requested, claimed_by, created_at, finished_at, compile_output, error";

fn record_from_row(row: &Row) -> Result<JudgingRecord, StoreError> {
    let read = || -> Result<_, ::postgres::Error> {
        Ok((
            JudgingRecord {
                id: row.try_get(0)?,
                problem: row.try_get(1)?,
                language: row.try_get(2)?,
                status: Status::Queued,
                verdict: row.try_get(5)?,
                attempt: row.try_get::<_, i32>(6)? as u32,
                cancel_requested: row.try_get::<_, i32>(7)? != 0,
                claimed_by: row.try_get(8)?,
                created_at: row.try_get(9)?,
                finished_at: row.try_get(10)?,
                compile_output: row.try_get(11)?,
                error: row.try_get(12)?,
                files: Vec::new(),
                tests: Vec::new(),
            },
            row.try_get::<_, String>(3)?,
            row.try_get::<_, String>(4)?,
        ))
    };
    finish_record(read().map_err(pg("read a judging's columns"))?)
}

impl Store for PostgresStore {
    fn submit(&self, judging: &NewJudging) -> Result<i64, StoreError> {
        let files = serde_json::to_string(&judging.files).expect("files serialise");
        let row = self
            .client()?
            .query_one(
                &format!(
                    "INSERT INTO judgings (problem, language, files, created_at) \
                     VALUES ($1, $2, $3, {NOW}) RETURNING id"
                ),
                &[&judging.problem, &judging.language, &files],
            )
            .map_err(pg("insert a judging"))?;
        Ok(row.get(0))
    }

    fn get(&self, id: i64) -> Result<Option<JudgingRecord>, StoreError> {
        let mut client = self.client()?;
        let Some(row) = client
            .query_opt(
                &format!("SELECT {RECORD_COLUMNS} FROM judgings WHERE id = $1"),
                &[&id],
            )
            .map_err(pg("read a judging"))?
        else {
            return Ok(None);
        };
        let mut record = record_from_row(&row)?;
        let rows = client
            .query(
                "SELECT ordinal, name, verdict, time_limit, cpu_time, wall_time, memory_bytes, \
                 message, reruns, host_findings, kernel FROM test_results WHERE judging = $1 \
                 ORDER BY ordinal",
                &[&id],
            )
            .map_err(pg("read test results"))?;
        record.tests = rows
            .iter()
            .map(|row| {
                Ok(TestRecord {
                    ordinal: row.get::<_, i32>(0) as usize,
                    name: row.get(1),
                    verdict: row.get(2),
                    time_limit: row.get(3),
                    cpu_time: row.get(4),
                    wall_time: row.get(5),
                    memory_bytes: row.get::<_, Option<i64>>(6).map(|m| m as u64),
                    message: row.get(7),
                    reruns: row.get::<_, i32>(8).max(0) as u32,
                    host_findings: parse_host_findings(id, row.get(9))?,
                    kernel: kernel_from_column(row.get(10)),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Some(record))
    }

    fn list(&self, status: Option<Status>, limit: usize) -> Result<Vec<JudgingRecord>, StoreError> {
        let rows = self
            .client()?
            .query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM judgings \
                     WHERE $1::text IS NULL OR status = $1 ORDER BY id DESC LIMIT $2"
                ),
                &[&status.map(Status::as_str), &(limit as i64)],
            )
            .map_err(pg("list judgings"))?;
        rows.iter().map(record_from_row).collect()
    }

    fn cancel(&self, id: i64) -> Result<CancelOutcome, StoreError> {
        let mut client = self.client()?;
        let mut transaction = client.transaction().map_err(pg("begin a transaction"))?;
        // FOR UPDATE: a claim of this row waits for the cancel, or the cancel for the claim.
        let status: Option<String> = transaction
            .query_opt(
                "SELECT status FROM judgings WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .map_err(pg("read a judging's status"))?
            .map(|row| row.get(0));
        let outcome = match cancel_step(id, status.as_deref())? {
            CancelStep::Done(outcome) => outcome,
            CancelStep::CancelQueued => {
                transaction
                    .execute(
                        &format!(
                            "UPDATE judgings SET status = 'cancelled', cancel_requested = 1, \
                             finished_at = {NOW} WHERE id = $1"
                        ),
                        &[&id],
                    )
                    .map_err(pg("cancel a judging"))?;
                CancelOutcome::Cancelled
            }
            CancelStep::AskToStop => {
                transaction
                    .execute(
                        "UPDATE judgings SET cancel_requested = 1 WHERE id = $1",
                        &[&id],
                    )
                    .map_err(pg("ask a judging to stop"))?;
                CancelOutcome::Requested
            }
        };
        transaction.commit().map_err(pg("commit a cancel"))?;
        Ok(outcome)
    }

    fn claim(&self, host: &str) -> Result<Option<Claim>, StoreError> {
        let row = self
            .client()?
            .query_opt(
                &format!(
                    "UPDATE judgings SET status = 'judging', attempt = attempt + 1, \
                     claimed_by = $1, claimed_at = {NOW}, lease_until = {NOW} + $2 \
                     WHERE status = 'queued' AND id = ( \
                         SELECT id FROM judgings WHERE status = 'queued' ORDER BY id LIMIT 1 \
                         FOR UPDATE SKIP LOCKED) \
                     RETURNING id, attempt, problem, language, files"
                ),
                &[&host, &self.lease_secs()],
            )
            .map_err(pg("claim a judging"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: i64 = row.get(0);
        Ok(Some(Claim {
            id,
            attempt: row.get::<_, i32>(1) as u32,
            host: host.to_owned(),
            problem: row.get(2),
            language: row.get(3),
            files: parse_files(id, row.get(4))?,
        }))
    }

    fn renew(&self, claim: &Claim) -> Result<Renewal, StoreError> {
        let row = self
            .client()?
            .query_opt(
                &format!(
                    "UPDATE judgings SET lease_until = {NOW} + $4 \
                     WHERE id = $1 AND status = 'judging' AND attempt = $2 AND claimed_by = $3 \
                     RETURNING cancel_requested"
                ),
                &[
                    &claim.id,
                    &(claim.attempt as i32),
                    &claim.host,
                    &self.lease_secs(),
                ],
            )
            .map_err(pg("renew a lease"))?;
        Ok(match row {
            Some(row) => Renewal::Held {
                cancel_requested: row.get::<_, i32>(0) != 0,
            },
            None => Renewal::Lost,
        })
    }

    fn finish(&self, claim: &Claim, outcome: &Outcome) -> Result<bool, StoreError> {
        let (status, verdict, compile_output, error, tests) = outcome_parts(outcome);
        let mut client = self.client()?;
        let mut transaction = client.transaction().map_err(pg("begin a transaction"))?;
        // The row lock this takes holds off a reclaim until the commit; a reclaim that came
        // first has changed the row, and this matches nothing.
        let updated = transaction
            .execute(
                &format!(
                    "UPDATE judgings SET status = $4, verdict = $5, compile_output = $6, \
                     error = $7, finished_at = {NOW}, lease_until = NULL \
                     WHERE id = $1 AND status = 'judging' AND attempt = $2 AND claimed_by = $3"
                ),
                &[
                    &claim.id,
                    &(claim.attempt as i32),
                    &claim.host,
                    &status.as_str(),
                    &verdict,
                    &compile_output,
                    &error,
                ],
            )
            .map_err(pg("record a judging's outcome"))?;
        if updated == 0 {
            // Handed back, recovered or reclaimed meanwhile: another claim owns it now.
            return Ok(false);
        }
        transaction
            .execute("DELETE FROM test_results WHERE judging = $1", &[&claim.id])
            .map_err(pg("remove earlier test results"))?;
        let insert = transaction
            .prepare(
                "INSERT INTO test_results (judging, ordinal, name, verdict, time_limit, \
                 cpu_time, wall_time, memory_bytes, message, attempt, reruns, host_findings, \
                 kernel) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .map_err(pg("prepare the test result insert"))?;
        for test in tests {
            transaction
                .execute(
                    &insert,
                    &[
                        &claim.id,
                        &(test.ordinal.min(i32::MAX as usize) as i32),
                        &test.name,
                        &test.verdict,
                        &test.time_limit,
                        &test.cpu_time,
                        &test.wall_time,
                        &test.memory_bytes.map(|m| m as i64),
                        &test.message,
                        &(claim.attempt as i32),
                        &(test.reruns.min(i32::MAX as u32) as i32),
                        &test.host_findings_json(),
                        &kernel_to_column(&test.kernel),
                    ],
                )
                .map_err(pg("insert a test result"))?;
        }
        transaction.commit().map_err(pg("commit a judging"))?;
        Ok(true)
    }

    fn hand_back(&self, claim: &Claim) -> Result<bool, StoreError> {
        let put_back = self.put_back(
            "id = $1 AND attempt = $2 AND claimed_by = $3",
            &[&claim.id, &(claim.attempt as i32), &claim.host],
            "hand a judging back",
        )?;
        Ok(put_back.requeued + put_back.cancelled > 0)
    }

    fn recover(&self, host: &str) -> Result<Recovered, StoreError> {
        self.put_back("claimed_by = $1", &[&host], "put interrupted judgings back")
    }

    fn reclaim_expired(&self) -> Result<Recovered, StoreError> {
        self.put_back(
            &format!("lease_until < {NOW}"),
            &[],
            "put expired judgings back",
        )
    }

    fn counts(&self) -> Result<BTreeMap<Status, u64>, StoreError> {
        let rows = self
            .client()?
            .query("SELECT status, COUNT(*) FROM judgings GROUP BY status", &[])
            .map_err(pg("count judgings"))?;
        let mut counts: BTreeMap<Status, u64> = Status::ALL.iter().map(|s| (*s, 0)).collect();
        for row in rows {
            if let Some(status) = Status::parse(row.get(0)) {
                counts.insert(status, row.get::<_, i64>(1) as u64);
            }
        }
        Ok(counts)
    }

    fn watch(&self, notify: Box<dyn Fn(Notice) + Send + Sync>) {
        let (config, stop) = (self.config.clone(), self.stop_listening.clone());
        let spawned = std::thread::Builder::new()
            .name("judged-listen".into())
            .spawn(move || listen(config, stop, notify));
        if let Err(error) = spawned {
            eprintln!("judged serve: cannot start the queue listener (polling only): {error}");
        }
    }

    fn publish_problem(&self, id: &str, archive: &[u8], host: &str) -> Result<Publish, StoreError> {
        let mut client = self.client()?;
        let mut transaction = client.transaction().map_err(pg("begin a transaction"))?;
        // One publisher of a problem at a time, whatever the host.
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock(hashtext('judged problem ' || $1))",
                &[&id],
            )
            .map_err(pg("lock a problem"))?;
        let busy: i64 = transaction
            .query_one(UNFINISHED, &[&id])
            .map_err(pg("count a problem's unfinished judgings"))?
            .get(0);
        if busy > 0 {
            return Ok(Publish::Busy(busy as u64));
        }
        let version: i64 = transaction
            .query_one(
                &format!(
                    "INSERT INTO problem_archives (id, version, archive, uploaded_by, \
                     uploaded_at) VALUES ($1, 1, $2, $3, {NOW}) \
                     ON CONFLICT (id) DO UPDATE SET version = problem_archives.version + 1, \
                     archive = EXCLUDED.archive, uploaded_by = EXCLUDED.uploaded_by, \
                     uploaded_at = EXCLUDED.uploaded_at RETURNING version"
                ),
                &[&id, &archive, &host],
            )
            .map_err(pg("publish a problem"))?
            .get(0);
        transaction.commit().map_err(pg("commit a problem"))?;
        Ok(Publish::Published {
            version: Some(version),
        })
    }

    fn problem_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self
            .client()?
            .query("SELECT id, version FROM problem_archives ORDER BY id", &[])
            .map_err(pg("list the published problems"))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    fn problem_archive(&self, id: &str) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let row = self
            .client()?
            .query_opt(
                "SELECT version, archive FROM problem_archives WHERE id = $1",
                &[&id],
            )
            .map_err(pg("read a published problem"))?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }

    fn unfinished(&self, problem: &str) -> Result<u64, StoreError> {
        let count: i64 = self
            .client()?
            .query_one(UNFINISHED, &[&problem])
            .map_err(pg("count a problem's unfinished judgings"))?
            .get(0);
        Ok(count as u64)
    }
}

impl PostgresStore {
    /// Judgings being judged that match `which` go back to the queue, or are cancelled when a
    /// cancel was asked: one statement, so each row is decided once under its row lock.
    fn put_back(
        &self,
        which: &str,
        params: &[&(dyn ::postgres::types::ToSql + Sync)],
        doing: &'static str,
    ) -> Result<Recovered, StoreError> {
        let rows = self
            .client()?
            .query(
                &format!(
                    "UPDATE judgings SET \
                     status = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END, \
                     finished_at = CASE WHEN cancel_requested = 1 THEN {NOW} ELSE NULL END, \
                     claimed_by = NULL, lease_until = NULL \
                     WHERE status = 'judging' AND {which} \
                     RETURNING status"
                ),
                params,
            )
            .map_err(pg(doing))?;
        let cancelled = rows
            .iter()
            .filter(|row| row.get::<_, &str>(0) == "cancelled")
            .count();
        Ok(Recovered {
            requeued: rows.len() - cancelled,
            cancelled,
        })
    }
}
