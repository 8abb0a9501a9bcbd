//! The daemon's queue and results, behind the [`Store`] trait; [`SqliteStore`] keeps them in
//! an embedded SQLite database (one file in the data directory, no service to run).
//!
//! The schema is plain SQL that PostgreSQL takes as well (a later backend keeps it; only the
//! claim would use `FOR UPDATE SKIP LOCKED`):
//!
//! * `judgings`: one row per submission: problem, language, the files (JSON), `status`
//!   (queued → judging → done | cancelled | failed), `attempt` (claims so far), `claimed_by`
//!   and `claimed_at` (the host judging it), `cancel_requested`, the verdict, compile output or
//!   error, and times.
//! * `test_results`: one row per judged test case, `UNIQUE (judging, name)`.
//!
//! Exactly once: a worker claims a queued judging in one transaction (status → judging,
//! attempt + 1, claimed_by = its host). Results are written only by [`Store::finish`], in one
//! transaction with the final status, and only while the row still is the worker's claim
//! (status judging, same attempt, same host): a judging handed back, recovered and claimed
//! again cannot be finished twice, and a re-run's results replace any earlier ones. After a
//! crash, [`Store::recover`] puts this host's `judging` rows back in the queue (or cancels
//! them when a cancel had been asked), so they run again from the start.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

/// The schema this code reads and writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS judgings (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    problem          TEXT    NOT NULL,
    language         TEXT    NOT NULL,
    files            TEXT    NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'judging', 'done', 'cancelled', 'failed')),
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0,
    claimed_by       TEXT,
    claimed_at       REAL,
    verdict          TEXT,
    compile_output   TEXT    NOT NULL DEFAULT '',
    error            TEXT,
    created_at       REAL    NOT NULL,
    finished_at      REAL
);
CREATE INDEX IF NOT EXISTS judgings_by_status ON judgings (status, id);
CREATE TABLE IF NOT EXISTS test_results (
    judging      INTEGER NOT NULL REFERENCES judgings (id),
    ordinal      INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    verdict      TEXT    NOT NULL,
    time_limit   REAL    NOT NULL,
    cpu_time     REAL,
    wall_time    REAL,
    memory_bytes INTEGER,
    message      TEXT    NOT NULL DEFAULT '',
    attempt      INTEGER NOT NULL,
    UNIQUE (judging, name)
);
";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database `{path}': {what}")]
    Open {
        path: String,
        what: String,
        #[source]
        source: Option<rusqlite::Error>,
    },
    #[error("database: cannot {what}")]
    Sql {
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database: judging {id} is unreadable: {message}")]
    Corrupt { id: i64, message: String },
}

fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { what, source }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Judging,
    Done,
    Cancelled,
    Failed,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Queued,
        Status::Judging,
        Status::Done,
        Status::Cancelled,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Judging => "judging",
            Status::Done => "done",
            Status::Cancelled => "cancelled",
            Status::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Nothing more happens to a judging in this status.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Done | Status::Cancelled | Status::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub name: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJudging {
    pub problem: String,
    pub language: String,
    pub files: Vec<SourceFile>,
}

/// One test case's result as stored (times in seconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestRecord {
    pub ordinal: usize,
    pub name: String,
    pub verdict: String,
    pub time_limit: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A judging as the API shows it (its files by name only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgingRecord {
    pub id: i64,
    pub problem: String,
    pub language: String,
    pub status: Status,
    pub verdict: Option<String>,
    pub attempt: u32,
    pub cancel_requested: bool,
    pub claimed_by: Option<String>,
    pub created_at: f64,
    pub finished_at: Option<f64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub compile_output: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub files: Vec<String>,
    pub tests: Vec<TestRecord>,
}

/// A judging a worker has claimed: everything needed to judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub id: i64,
    /// Which claim of this judging this is (1 for the first); finishing needs the same one.
    pub attempt: u32,
    pub host: String,
    pub problem: String,
    pub language: String,
    pub files: Vec<SourceFile>,
}

/// How a claimed judging ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done {
        verdict: String,
        compile_output: String,
        tests: Vec<TestRecord>,
    },
    /// Stopped at a test case boundary on request; the test cases judged until then.
    Cancelled { tests: Vec<TestRecord> },
    /// Could not be judged (the judge itself failed before a verdict).
    Failed { error: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was queued and is now cancelled.
    Cancelled,
    /// It is being judged; it stops at its next test case.
    Requested,
    AlreadyFinal(Status),
    NotFound,
}

/// What [`Store::recover`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    pub requeued: usize,
    pub cancelled: usize,
}

/// The queue and the results. Synchronous: async callers use a blocking thread.
pub trait Store: Send + Sync {
    fn submit(&self, judging: &NewJudging) -> Result<i64, StoreError>;
    fn get(&self, id: i64) -> Result<Option<JudgingRecord>, StoreError>;
    /// Newest first, without test results.
    fn list(&self, status: Option<Status>, limit: usize) -> Result<Vec<JudgingRecord>, StoreError>;
    fn cancel(&self, id: i64) -> Result<CancelOutcome, StoreError>;
    /// The oldest queued judging, now claimed by `host`.
    fn claim(&self, host: &str) -> Result<Option<Claim>, StoreError>;
    /// Record the outcome and the results in one transaction; `false` (nothing written) when
    /// the judging is no longer this claim's.
    fn finish(&self, claim: &Claim, outcome: &Outcome) -> Result<bool, StoreError>;
    /// Give a claimed judging back to the queue (cancelled instead, if a cancel was asked).
    fn hand_back(&self, claim: &Claim) -> Result<bool, StoreError>;
    /// After a crash: every judging `host` had claimed goes back to the queue.
    fn recover(&self, host: &str) -> Result<Recovered, StoreError>;
    fn counts(&self) -> Result<BTreeMap<Status, u64>, StoreError>;
}

pub struct SqliteStore {
    connection: Mutex<Connection>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl SqliteStore {
    /// Open (or create) the database file and its schema.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let shown = path.display().to_string();
        let connection = Connection::open(path).map_err(|source| StoreError::Open {
            path: shown.clone(),
            what: "cannot open".into(),
            source: Some(source),
        })?;
        Self::init(connection, &shown)
    }

    /// A private database in memory (tests).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let connection = Connection::open_in_memory().map_err(sql("open a memory database"))?;
        Self::init(connection, ":memory:")
    }

    fn init(connection: Connection, shown: &str) -> Result<SqliteStore, StoreError> {
        let open_error = |what: &str, source| StoreError::Open {
            path: shown.to_owned(),
            what: what.to_owned(),
            source: Some(source),
        };
        // WAL: readers do not block the writer; synchronous=FULL: a committed judging survives
        // a power cut too, not only a crash of the daemon.
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| open_error("cannot set a busy timeout", e))?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_error("cannot use the WAL journal", e))?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|e| open_error("cannot set synchronous=FULL", e))?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| open_error("cannot enable foreign keys", e))?;
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| open_error("cannot read the schema version", e))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Open {
                path: shown.to_owned(),
                what: format!(
                    "schema version {version} is newer than this judged's ({SCHEMA_VERSION}): \
                     run a newer judged"
                ),
                source: None,
            });
        }
        connection
            .execute_batch(SCHEMA)
            .map_err(|e| open_error("cannot create the schema", e))?;
        connection
            .pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|e| open_error("cannot write the schema version", e))?;
        Ok(SqliteStore {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half transaction (it rolls back on drop).
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

const RECORD_COLUMNS: &str = "id, problem, language, files, status, verdict, attempt, \
     cancel_requested, claimed_by, created_at, finished_at, compile_output, error";

fn record_from_row(row: &rusqlite::Row) -> rusqlite::Result<(JudgingRecord, String, String)> {
    let files: String = row.get(3)?;
    let status: String = row.get(4)?;
    Ok((
        JudgingRecord {
            id: row.get(0)?,
            problem: row.get(1)?,
            language: row.get(2)?,
            status: Status::Queued,
            verdict: row.get(5)?,
            attempt: row.get(6)?,
            cancel_requested: row.get(7)?,
            claimed_by: row.get(8)?,
            created_at: row.get(9)?,
            finished_at: row.get(10)?,
            compile_output: row.get(11)?,
            error: row.get(12)?,
            files: Vec::new(),
            tests: Vec::new(),
        },
        files,
        status,
    ))
}

/// Fill in the parts of a record stored as text.
fn finish_record(
    (mut record, files, status): (JudgingRecord, String, String),
) -> Result<JudgingRecord, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt {
        id: record.id,
        message,
    };
    record.status =
        Status::parse(&status).ok_or_else(|| corrupt(format!("unknown status `{status}'")))?;
    let files: Vec<SourceFile> =
        serde_json::from_str(&files).map_err(|e| corrupt(format!("files: {e}")))?;
    record.files = files.into_iter().map(|f| f.name).collect();
    Ok(record)
}

fn insert_tests(
    transaction: &rusqlite::Transaction,
    id: i64,
    attempt: u32,
    tests: &[TestRecord],
) -> Result<(), StoreError> {
    transaction
        .execute("DELETE FROM test_results WHERE judging = ?1", [id])
        .map_err(sql("remove earlier test results"))?;
    let mut insert = transaction
        .prepare(
            "INSERT INTO test_results (judging, ordinal, name, verdict, time_limit, cpu_time, \
             wall_time, memory_bytes, message, attempt) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(sql("prepare the test result insert"))?;
    for test in tests {
        insert
            .execute(params![
                id,
                test.ordinal as i64,
                test.name,
                test.verdict,
                test.time_limit,
                test.cpu_time,
                test.wall_time,
                test.memory_bytes.map(|m| m as i64),
                test.message,
                attempt,
            ])
            .map_err(sql("insert a test result"))?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn submit(&self, judging: &NewJudging) -> Result<i64, StoreError> {
        let files = serde_json::to_string(&judging.files).expect("files serialise");
        let connection = self.lock();
        connection
            .execute(
                "INSERT INTO judgings (problem, language, files, created_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![judging.problem, judging.language, files, now()],
            )
            .map_err(sql("insert a judging"))?;
        Ok(connection.last_insert_rowid())
    }

    fn get(&self, id: i64) -> Result<Option<JudgingRecord>, StoreError> {
        let connection = self.lock();
        let row = connection
            .query_row(
                &format!("SELECT {RECORD_COLUMNS} FROM judgings WHERE id = ?1"),
                [id],
                record_from_row,
            )
            .optional()
            .map_err(sql("read a judging"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut record = finish_record(row)?;
        let mut query = connection
            .prepare(
                "SELECT ordinal, name, verdict, time_limit, cpu_time, wall_time, memory_bytes, \
                 message FROM test_results WHERE judging = ?1 ORDER BY ordinal",
            )
            .map_err(sql("prepare the test results query"))?;
        record.tests = query
            .query_map([id], |row| {
                Ok(TestRecord {
                    ordinal: row.get::<_, i64>(0)? as usize,
                    name: row.get(1)?,
                    verdict: row.get(2)?,
                    time_limit: row.get(3)?,
                    cpu_time: row.get(4)?,
                    wall_time: row.get(5)?,
                    memory_bytes: row.get::<_, Option<i64>>(6)?.map(|m| m as u64),
                    message: row.get(7)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql("read test results"))?;
        Ok(Some(record))
    }

    fn list(&self, status: Option<Status>, limit: usize) -> Result<Vec<JudgingRecord>, StoreError> {
        let connection = self.lock();
        let mut query = connection
            .prepare(&format!(
                "SELECT {RECORD_COLUMNS} FROM judgings WHERE ?1 IS NULL OR status = ?1 \
                 ORDER BY id DESC LIMIT ?2"
            ))
            .map_err(sql("prepare the judgings query"))?;
        let rows = query
            .query_map(
                params![status.map(Status::as_str), limit as i64],
                record_from_row,
            )
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql("list judgings"))?;
        rows.into_iter().map(finish_record).collect()
    }

    fn cancel(&self, id: i64) -> Result<CancelOutcome, StoreError> {
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin a transaction"))?;
        let status: Option<String> = transaction
            .query_row("SELECT status FROM judgings WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()
            .map_err(sql("read a judging's status"))?;
        let outcome = match status.as_deref().map(Status::parse) {
            None => CancelOutcome::NotFound,
            Some(Some(Status::Queued)) => {
                transaction
                    .execute(
                        "UPDATE judgings SET status = 'cancelled', cancel_requested = 1, \
                         finished_at = ?2 WHERE id = ?1",
                        params![id, now()],
                    )
                    .map_err(sql("cancel a judging"))?;
                CancelOutcome::Cancelled
            }
            Some(Some(Status::Judging)) => {
                transaction
                    .execute(
                        "UPDATE judgings SET cancel_requested = 1 WHERE id = ?1",
                        [id],
                    )
                    .map_err(sql("ask a judging to stop"))?;
                CancelOutcome::Requested
            }
            Some(Some(status)) => CancelOutcome::AlreadyFinal(status),
            Some(None) => {
                return Err(StoreError::Corrupt {
                    id,
                    message: format!("unknown status {status:?}"),
                })
            }
        };
        transaction.commit().map_err(sql("commit a cancel"))?;
        Ok(outcome)
    }

    fn claim(&self, host: &str) -> Result<Option<Claim>, StoreError> {
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin a transaction"))?;
        let claimed = transaction
            .query_row(
                "UPDATE judgings SET status = 'judging', attempt = attempt + 1, \
                 claimed_by = ?1, claimed_at = ?2 \
                 WHERE id = (SELECT id FROM judgings WHERE status = 'queued' ORDER BY id LIMIT 1) \
                 RETURNING id, attempt, problem, language, files",
                params![host, now()],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, u32>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, String>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(sql("claim a judging"))?;
        transaction.commit().map_err(sql("commit a claim"))?;
        let Some((id, attempt, problem, language, files)) = claimed else {
            return Ok(None);
        };
        let files = serde_json::from_str(&files).map_err(|e| StoreError::Corrupt {
            id,
            message: format!("files: {e}"),
        })?;
        Ok(Some(Claim {
            id,
            attempt,
            host: host.to_owned(),
            problem,
            language,
            files,
        }))
    }

    fn finish(&self, claim: &Claim, outcome: &Outcome) -> Result<bool, StoreError> {
        let (status, verdict, compile_output, error, tests) = match outcome {
            Outcome::Done {
                verdict,
                compile_output,
                tests,
            } => (
                Status::Done,
                Some(verdict.as_str()),
                compile_output.as_str(),
                None,
                tests.as_slice(),
            ),
            Outcome::Cancelled { tests } => (Status::Cancelled, None, "", None, tests.as_slice()),
            Outcome::Failed { error } => (Status::Failed, None, "", Some(error.as_str()), &[][..]),
        };
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin a transaction"))?;
        let updated = transaction
            .execute(
                "UPDATE judgings SET status = ?4, verdict = ?5, compile_output = ?6, error = ?7, \
                 finished_at = ?8 \
                 WHERE id = ?1 AND status = 'judging' AND attempt = ?2 AND claimed_by = ?3",
                params![
                    claim.id,
                    claim.attempt,
                    claim.host,
                    status.as_str(),
                    verdict,
                    compile_output,
                    error,
                    now()
                ],
            )
            .map_err(sql("record a judging's outcome"))?;
        if updated == 0 {
            // Handed back or recovered meanwhile: another claim owns the judging now.
            return Ok(false);
        }
        insert_tests(&transaction, claim.id, claim.attempt, tests)?;
        transaction.commit().map_err(sql("commit a judging"))?;
        Ok(true)
    }

    fn hand_back(&self, claim: &Claim) -> Result<bool, StoreError> {
        let connection = self.lock();
        let updated = connection
            .execute(
                "UPDATE judgings SET \
                 status = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END, \
                 finished_at = CASE WHEN cancel_requested = 1 THEN ?4 ELSE NULL END, \
                 claimed_by = NULL \
                 WHERE id = ?1 AND status = 'judging' AND attempt = ?2 AND claimed_by = ?3",
                params![claim.id, claim.attempt, claim.host, now()],
            )
            .map_err(sql("hand a judging back"))?;
        Ok(updated > 0)
    }

    fn recover(&self, host: &str) -> Result<Recovered, StoreError> {
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin a transaction"))?;
        let cancelled = transaction
            .execute(
                "UPDATE judgings SET status = 'cancelled', finished_at = ?2, claimed_by = NULL \
                 WHERE status = 'judging' AND claimed_by = ?1 AND cancel_requested = 1",
                params![host, now()],
            )
            .map_err(sql("cancel interrupted judgings"))?;
        let requeued = transaction
            .execute(
                "UPDATE judgings SET status = 'queued', claimed_by = NULL \
                 WHERE status = 'judging' AND claimed_by = ?1",
                [host],
            )
            .map_err(sql("requeue interrupted judgings"))?;
        transaction.commit().map_err(sql("commit the recovery"))?;
        Ok(Recovered {
            requeued,
            cancelled,
        })
    }

    fn counts(&self) -> Result<BTreeMap<Status, u64>, StoreError> {
        let connection = self.lock();
        let mut query = connection
            .prepare("SELECT status, COUNT(*) FROM judgings GROUP BY status")
            .map_err(sql("prepare the count query"))?;
        let rows = query
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql("count judgings"))?;
        let mut counts: BTreeMap<Status, u64> = Status::ALL.iter().map(|s| (*s, 0)).collect();
        for (status, count) in rows {
            if let Some(status) = Status::parse(&status) {
                counts.insert(status, count as u64);
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission(problem: &str) -> NewJudging {
        NewJudging {
            problem: problem.into(),
            language: "c".into(),
            files: vec![SourceFile {
                name: "a.c".into(),
                content: "int main(){}".into(),
            }],
        }
    }

    fn tests(names: &[&str]) -> Vec<TestRecord> {
        names
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
            })
            .collect()
    }

    fn done(names: &[&str]) -> Outcome {
        Outcome::Done {
            verdict: "correct".into(),
            compile_output: String::new(),
            tests: tests(names),
        }
    }

    #[test]
    fn a_judging_is_claimed_once_oldest_first() {
        let store = SqliteStore::in_memory().unwrap();
        let first = store.submit(&submission("p")).unwrap();
        let second = store.submit(&submission("q")).unwrap();
        let claim = store.claim("h").unwrap().unwrap();
        assert_eq!((claim.id, claim.attempt), (first, 1));
        assert_eq!(claim.files[0].name, "a.c");
        assert_eq!(store.claim("h").unwrap().unwrap().id, second);
        assert_eq!(store.claim("h").unwrap(), None);
        let record = store.get(first).unwrap().unwrap();
        assert_eq!(record.status, Status::Judging);
        assert_eq!(record.claimed_by.as_deref(), Some("h"));
        assert_eq!(store.counts().unwrap()[&Status::Judging], 2);
    }

    #[test]
    fn results_are_recorded_with_the_status_in_one_go() {
        let store = SqliteStore::in_memory().unwrap();
        let id = store.submit(&submission("p")).unwrap();
        let claim = store.claim("h").unwrap().unwrap();
        assert!(store
            .finish(&claim, &done(&["sample/1", "secret/1"]))
            .unwrap());
        let record = store.get(id).unwrap().unwrap();
        assert_eq!(record.status, Status::Done);
        assert_eq!(record.verdict.as_deref(), Some("correct"));
        assert_eq!(record.tests.len(), 2);
        assert_eq!(record.tests[1].name, "secret/1");
        // A second finish of the same claim writes nothing.
        assert!(!store.finish(&claim, &done(&["x"])).unwrap());
        assert_eq!(store.get(id).unwrap().unwrap().tests.len(), 2);
    }

    #[test]
    fn after_a_crash_the_judging_runs_again_and_is_recorded_exactly_once() {
        let store = SqliteStore::in_memory().unwrap();
        let id = store.submit(&submission("p")).unwrap();
        let other_host = store.submit(&submission("p")).unwrap();
        let stale = store.claim("h").unwrap().unwrap();
        let elsewhere = store.claim("other").unwrap().unwrap();
        assert_eq!(elsewhere.id, other_host);
        // The daemon dies; the next one on host h recovers only h's judgings.
        assert_eq!(
            store.recover("h").unwrap(),
            Recovered {
                requeued: 1,
                cancelled: 0
            }
        );
        assert_eq!(store.get(id).unwrap().unwrap().status, Status::Queued);
        assert_eq!(
            store.get(other_host).unwrap().unwrap().status,
            Status::Judging
        );
        let again = store.claim("h").unwrap().unwrap();
        assert_eq!((again.id, again.attempt), (id, 2));
        // The old claim (a process that did not really die) cannot record anything.
        assert!(!store.finish(&stale, &done(&["a", "b", "c"])).unwrap());
        assert!(store.finish(&again, &done(&["a", "b"])).unwrap());
        let record = store.get(id).unwrap().unwrap();
        assert_eq!((record.status, record.attempt), (Status::Done, 2));
        assert_eq!(record.tests.len(), 2);
    }

    #[test]
    fn a_rerun_replaces_earlier_results() {
        let store = SqliteStore::in_memory().unwrap();
        let id = store.submit(&submission("p")).unwrap();
        let claim = store.claim("h").unwrap().unwrap();
        {
            // Results of an earlier attempt left behind (a backend that wrote them early).
            let connection = store.lock();
            let transaction =
                rusqlite::Transaction::new_unchecked(&connection, TransactionBehavior::Deferred)
                    .unwrap();
            insert_tests(&transaction, id, 0, &tests(&["a", "b", "c"])).unwrap();
            transaction.commit().unwrap();
        }
        assert!(store.finish(&claim, &done(&["a"])).unwrap());
        assert_eq!(store.get(id).unwrap().unwrap().tests.len(), 1);
    }

    #[test]
    fn cancel_stops_a_queued_judging_at_once_and_a_running_one_later() {
        let store = SqliteStore::in_memory().unwrap();
        let running = store.submit(&submission("p")).unwrap();
        let queued = store.submit(&submission("p")).unwrap();
        let claim = store.claim("h").unwrap().unwrap();
        assert_eq!(store.cancel(queued).unwrap(), CancelOutcome::Cancelled);
        assert_eq!(
            store.get(queued).unwrap().unwrap().status,
            Status::Cancelled
        );
        assert_eq!(store.claim("h").unwrap(), None);
        assert_eq!(store.cancel(running).unwrap(), CancelOutcome::Requested);
        assert!(store.get(running).unwrap().unwrap().cancel_requested);
        assert!(store
            .finish(
                &claim,
                &Outcome::Cancelled {
                    tests: tests(&["a"])
                }
            )
            .unwrap());
        assert_eq!(
            store.cancel(running).unwrap(),
            CancelOutcome::AlreadyFinal(Status::Cancelled)
        );
        assert_eq!(store.cancel(99).unwrap(), CancelOutcome::NotFound);
    }

    #[test]
    fn a_judging_asked_to_stop_is_cancelled_by_recovery_and_hand_back() {
        let store = SqliteStore::in_memory().unwrap();
        let a = store.submit(&submission("p")).unwrap();
        let b = store.submit(&submission("p")).unwrap();
        let claim_a = store.claim("h").unwrap().unwrap();
        let claim_b = store.claim("h").unwrap().unwrap();
        store.cancel(a).unwrap();
        assert!(store.hand_back(&claim_b).unwrap());
        assert_eq!(store.get(b).unwrap().unwrap().status, Status::Queued);
        assert!(!store.hand_back(&claim_b).unwrap());
        assert_eq!(
            store.recover("h").unwrap(),
            Recovered {
                requeued: 0,
                cancelled: 1
            }
        );
        assert_eq!(store.get(a).unwrap().unwrap().status, Status::Cancelled);
        assert!(!store.finish(&claim_a, &done(&["a"])).unwrap());
    }

    #[test]
    fn list_filters_by_status_newest_first() {
        let store = SqliteStore::in_memory().unwrap();
        for _ in 0..3 {
            store.submit(&submission("p")).unwrap();
        }
        store.claim("h").unwrap();
        let all = store.list(None, 10).unwrap();
        assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [3, 2, 1]);
        let queued = store.list(Some(Status::Queued), 1).unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].id, 3);
        assert_eq!(all[0].files, ["a.c"]);
    }

    #[test]
    fn the_queue_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("judged.db");
        let id = {
            let store = SqliteStore::open(&path).unwrap();
            let id = store.submit(&submission("p")).unwrap();
            store.claim("h").unwrap().unwrap();
            id
        };
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.recover("h").unwrap().requeued, 1);
        assert_eq!(store.claim("h").unwrap().unwrap().attempt, 2);
        assert_eq!(store.get(id).unwrap().unwrap().problem, "p");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("judged.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let error = SqliteStore::open(&path).err().unwrap().to_string();
        assert!(error.contains("newer"), "{error}");
    }
}
