//! The HTTP API (JSON; errors are `{"error": "..."}` naming the field, problem or language at
//! fault):
//!
//! | route | what |
//! |---|---|
//! | `POST /judgings` | `{problem, language?, files: [{name, content}]}` → 201 `{id, status}` |
//! | `GET /judgings/{id}` | status, verdict, per-test results (live while judging) |
//! | `GET /judgings?status=&limit=` | newest first, without test results |
//! | `POST /judgings/{id}/cancel` | queued: cancelled (200); judging: stops at its next test case (202) |
//! | `GET /judgings/{id}/events` | SSE: `status`, one `test` per finished test case, a `final` |
//! | `GET /problems` | the problems judged here: id, name, origin (config, upload), test cases |
//! | `PUT /problems/{id}` | a problem package as a `.zip` body ([`super::problems`]) → 201, or 200 when it replaced an upload |
//! | `GET /health` | 200 `{status: ok}`, 503 while draining |
//! | `GET /workers` | the worker slots: cpus, mems, state, the judging each runs |
//! | `GET /metrics` | Prometheus text |
//!
//! With `[api] tokens_file`, every route but the public ones needs `Authorization: Bearer
//! TOKEN` ([`super::auth`]).

use std::collections::HashSet;
use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::auth::Auth;
use super::hub::HubEvent;
use super::store::{CancelOutcome, JudgingRecord, NewJudging, SourceFile, Status, Store};
use super::upload::UploadError;
use super::worker::{is_plain_file_name, Daemon};
use crate::language::Languages;

/// A refused request: its status and a message for people.
#[derive(Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// Room in a request body for JSON around the sources (names, escapes).
const BODY_OVERHEAD: usize = 64 * 1024;
/// Most judgings `GET /judgings` returns.
const MAX_LIST: usize = 1000;

pub fn router(daemon: Arc<Daemon>, auth: Arc<Auth>) -> Router {
    // A source's bytes may take up to 6 in JSON (`\u0000`); larger bodies are refused
    // before they are read whole.
    let body_limit = (daemon.max_source_bytes as usize)
        .saturating_mul(6)
        .saturating_add(BODY_OVERHEAD);
    let archive_limit =
        usize::try_from(daemon.env.problems.limits().max_archive_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/judgings", post(submit).get(list))
        .route("/judgings/{id}", get(get_one))
        .route("/judgings/{id}/cancel", post(cancel))
        .route("/judgings/{id}/events", get(events))
        .route("/problems", get(problems))
        .route(
            "/problems/{id}",
            put(upload).layer(DefaultBodyLimit::max(archive_limit)),
        )
        .route("/health", get(health))
        .route("/workers", get(workers))
        .route("/host", get(host))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(auth, authorize))
        .with_state(daemon)
}

/// Refuse a request without the token its route needs (see [`Auth::check`]).
async fn authorize(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes());
    match auth.check(request.method(), request.uri().path(), header) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            let mut response = ApiError::new(refusal.status, refusal.message).into_response();
            if refusal.status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            response
        }
    }
}

/// Run a store call on a blocking thread.
async fn db<T, F>(daemon: &Arc<Daemon>, call: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, super::store::StoreError> + Send + 'static,
{
    let store = daemon.store.clone();
    tokio::task::spawn_blocking(move || call(store.as_ref()))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the store panicked"))?
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{error:#}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub problem: String,
    pub language: Option<String>,
    pub files: Vec<SourceFile>,
}

/// What a submission needs to be checked against.
pub struct Catalog<'a> {
    pub problems: &'a dyn Fn(&str) -> bool,
    pub problem_ids: Vec<&'a str>,
    pub languages: &'a Languages,
    pub available: &'a std::collections::BTreeSet<String>,
    pub max_source_bytes: u64,
}

/// Parse and check a submission (pure).
pub fn check_submission(body: &[u8], catalog: &Catalog) -> Result<NewJudging, ApiError> {
    let request: SubmitRequest = serde_json::from_slice(body).map_err(|error| {
        use serde_json::error::Category;
        match error.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad(format!("malformed JSON: {error}"))
            }
            Category::Data => ApiError::bad(format!("bad request body: {error}")),
        }
    })?;
    if !(catalog.problems)(&request.problem) {
        return Err(ApiError::bad(format!(
            "problem: unknown problem `{}' (known: {})",
            request.problem,
            catalog.problem_ids.join(", ")
        )));
    }
    if request.files.is_empty() {
        return Err(ApiError::bad("files: a submission needs at least one file"));
    }
    let mut names = HashSet::new();
    for (i, file) in request.files.iter().enumerate() {
        if !is_plain_file_name(&file.name) {
            return Err(ApiError::bad(format!(
                "files[{i}].name: {:?} is not a plain file name (no path separators, not . or ..)",
                file.name
            )));
        }
        if !names.insert(file.name.as_str()) {
            return Err(ApiError::bad(format!(
                "files[{i}].name: `{}' is given twice",
                file.name
            )));
        }
    }
    let bytes: u64 = request.files.iter().map(|f| f.content.len() as u64).sum();
    if bytes > catalog.max_source_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "files: the source is {bytes} bytes, more than this judge's max_source_bytes \
                 ({})",
                catalog.max_source_bytes
            ),
        ));
    }
    let known = || {
        catalog
            .available
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let language = match &request.language {
        Some(id) => {
            catalog.languages.by_id(id).map_err(|_| {
                ApiError::bad(format!(
                    "language: unknown language `{id}' (installed here: {})",
                    known()
                ))
            })?;
            id.clone()
        }
        None => catalog
            .languages
            .detect(Path::new(&request.files[0].name))
            .map_err(|_| {
                ApiError::bad(format!(
                    "language: cannot tell the language of `{}' from its extension; give \
                     \"language\" (installed here: {})",
                    request.files[0].name,
                    known()
                ))
            })?
            .id
            .clone(),
    };
    if !catalog.available.contains(&language) {
        return Err(ApiError::bad(format!(
            "language: `{language}' is not installed on this judge host (installed here: {})",
            known()
        )));
    }
    Ok(NewJudging {
        problem: request.problem,
        language,
        files: request.files,
    })
}

async fn submit(
    State(daemon): State<Arc<Daemon>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    if daemon.shutdown.is_cancelled() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down: not taking judgings",
        ));
    }
    let body = body.map_err(|rejection| {
        body_error(
            &rejection,
            format!(
                "files: the request is too large for this judge's max_source_bytes ({})",
                daemon.max_source_bytes
            ),
            "request",
        )
    })?;
    let judging = {
        let env = &daemon.env;
        let known = env.problems.all();
        let catalog = Catalog {
            problems: &|id| known.contains_key(id),
            problem_ids: known.keys().map(String::as_str).collect(),
            languages: &env.languages,
            available: &env.available,
            max_source_bytes: daemon.max_source_bytes,
        };
        check_submission(&body, &catalog)?
    };
    let id = db(&daemon, move |store| store.submit(&judging)).await?;
    daemon.metrics.submitted.inc();
    daemon.wake.notify_one();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "status": "queued" })),
    ))
}

async fn problems(State(daemon): State<Arc<Daemon>>) -> Json<serde_json::Value> {
    let problems: Vec<serde_json::Value> = daemon
        .env
        .problems
        .all()
        .iter()
        .map(|(id, registered)| problem_json(id, &registered.problem, registered.origin))
        .collect();
    Json(json!({ "problems": problems }))
}

fn problem_json(
    id: &str,
    problem: &crate::problem::Problem,
    origin: super::problems::Origin,
) -> serde_json::Value {
    json!({
        "id": id,
        "name": problem.name,
        "origin": origin,
        "test_cases": problem.test_cases.len(),
        "time_limit": problem.limits.time.as_secs_f64(),
    })
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> ApiError {
        let status = match &error {
            UploadError::TooManyEntries { .. } | UploadError::TooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            UploadError::Invalid(_) | UploadError::NoPackage => StatusCode::UNPROCESSABLE_ENTITY,
            UploadError::Conflict(_) => StatusCode::CONFLICT,
            UploadError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            UploadError::NotZip(_) | UploadError::BadEntry { .. } | UploadError::BadId(_) => {
                StatusCode::BAD_REQUEST
            }
        };
        ApiError::new(status, error.to_string())
    }
}

async fn upload(
    State(daemon): State<Arc<Daemon>>,
    UrlPath(id): UrlPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let body = body.map_err(|rejection| {
        body_error(
            &rejection,
            format!(
                "the archive is larger than this judge's [problems] max_archive_bytes ({})",
                daemon.env.problems.limits().max_archive_bytes
            ),
            "archive",
        )
    })?;
    let installed = {
        let daemon = daemon.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            daemon
                .env
                .problems
                .install(&id, &body, daemon.store.as_ref(), &daemon.host_id)
        })
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the upload panicked"))?
    };
    let (problem, replaced) = installed.map_err(|error| {
        let error = ApiError::from(error);
        eprintln!(
            "judged serve: upload of problem `{id}' refused: {}",
            error.message
        );
        error
    })?;
    eprintln!(
        "judged serve: problem `{id}' {} ({} test case(s))",
        if replaced {
            "replaced by an upload"
        } else {
            "uploaded"
        },
        problem.test_cases.len()
    );
    let mut reply = problem_json(&id, &problem, super::problems::Origin::Upload);
    reply["replaced"] = json!(replaced);
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(reply)))
}

/// A body that could not be read: 413 with `too_large` past the limit, else 400.
fn body_error(rejection: &BytesRejection, too_large: String, what: &str) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, too_large)
    } else {
        ApiError::bad(format!("cannot read the {what}: {}", rejection.body_text()))
    }
}

fn parse_id(text: &str) -> Result<i64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad(format!("id: `{text}' is not a judging id (a number)")))
}

fn not_found(id: i64) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no judging {id}"))
}

/// The record, with the test cases finished so far when it is being judged here.
async fn current(daemon: &Arc<Daemon>, id: i64) -> Result<JudgingRecord, ApiError> {
    let mut record = db(daemon, move |store| store.get(id))
        .await?
        .ok_or_else(|| not_found(id))?;
    if record.status == Status::Judging {
        if let Some(tests) = daemon.hub.snapshot(id) {
            record.tests = tests;
        }
    }
    Ok(record)
}

async fn get_one(
    State(daemon): State<Arc<Daemon>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<JudgingRecord>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(current(&daemon, id).await?))
}

/// A query string, or a 400 saying what is wrong with it.
fn parsed<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(query)| query)
        .map_err(|rejection| ApiError::bad(format!("bad query: {}", rejection.body_text())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(daemon): State<Arc<Daemon>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = parsed(query)?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(Status::parse(text).ok_or_else(|| {
            ApiError::bad(format!(
                "status: unknown status `{text}' (queued, judging, done, cancelled, failed)"
            ))
        })?),
    };
    let limit = query.limit.unwrap_or(50).min(MAX_LIST);
    let records = db(&daemon, move |store| store.list(status, limit)).await?;
    Ok(Json(json!({ "judgings": records })))
}

async fn cancel(
    State(daemon): State<Arc<Daemon>>,
    UrlPath(id): UrlPath<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let id = parse_id(&id)?;
    match db(&daemon, move |store| store.cancel(id)).await? {
        CancelOutcome::Cancelled => {
            daemon.metrics.judging_finished("cancelled", 0.0);
            daemon.hub.finished(id, Status::Cancelled);
            Ok((
                StatusCode::OK,
                Json(json!({ "id": id, "status": "cancelled" })),
            ))
        }
        CancelOutcome::Requested => {
            daemon.hub.request_cancel(id);
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "id": id, "status": "judging", "cancel_requested": true })),
            ))
        }
        CancelOutcome::AlreadyFinal(status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("judging {id} is already {}", status.as_str()),
        )),
        CancelOutcome::NotFound => Err(not_found(id)),
    }
}

async fn health(State(daemon): State<Arc<Daemon>>) -> Response {
    if daemon.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        )
            .into_response();
    }
    match db(&daemon, |store| store.counts()).await {
        Ok(counts) => Json(json!({
            "status": "ok",
            "host": daemon.host_id,
            "workers": daemon.slots.len(),
            "queue_depth": counts.get(&Status::Queued).copied().unwrap_or(0),
        }))
        .into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "store unavailable", "error": error.message })),
        )
            .into_response(),
    }
}

/// The worker slots: where each runs its steps, and the judging it runs.
async fn workers(State(daemon): State<Arc<Daemon>>) -> Json<serde_json::Value> {
    Json(super::worker::workers_json(&daemon))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostQuery {
    limit: Option<usize>,
}

/// The host watcher: its eBPF state and its newest windows (`limit`, default 60).
async fn host(
    State(daemon): State<Arc<Daemon>>,
    query: Result<Query<HostQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = parsed(query)?
        .limit
        .unwrap_or(super::hostwatch::SHOWN_WINDOWS);
    Ok(Json(match &daemon.host {
        Some(host) => {
            let mut view = serde_json::to_value(host.view(limit)).expect("plain data serializes");
            view["enabled"] = true.into();
            view
        }
        None => json!({ "enabled": false, "windows": [] }),
    }))
}

async fn metrics(State(daemon): State<Arc<Daemon>>) -> Result<Response, ApiError> {
    let counts = db(&daemon, |store| store.counts()).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        daemon.metrics.render(&counts),
    )
        .into_response())
}

/// How often a stream re-reads the store while it waits (a missed event, a lagging channel).
const EVENTS_RECHECK: Duration = Duration::from_secs(2);

async fn events(
    State(daemon): State<Arc<Daemon>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = parse_id(&id)?;
    // Subscribe before reading the state, so nothing between the two is missed.
    let receiver = daemon.hub.subscribe();
    let record = current(&daemon, id).await?;
    let (sender, events) = mpsc::channel(64);
    tokio::spawn(follow(daemon, id, record, receiver, sender));
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        events.recv().await.map(|event| (Ok(event), events))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn test_event(test: &super::store::TestRecord) -> Event {
    Event::default()
        .event("test")
        .json_data(test)
        .expect("a test record serialises")
}

/// Feed one SSE stream: the test cases done so far, then each new one, then the final event.
async fn follow(
    daemon: Arc<Daemon>,
    id: i64,
    mut record: JudgingRecord,
    mut receiver: broadcast::Receiver<HubEvent>,
    sender: mpsc::Sender<Event>,
) {
    let mut seen = HashSet::new();
    let status_event = |record: &JudgingRecord| {
        Event::default()
            .event("status")
            .json_data(json!({ "id": id, "status": record.status, "attempt": record.attempt }))
            .expect("json")
    };
    if sender.send(status_event(&record)).await.is_err() {
        return;
    }
    loop {
        for test in &record.tests {
            if seen.insert(test.ordinal) && sender.send(test_event(test)).await.is_err() {
                return;
            }
        }
        if record.status.is_final() {
            let last = Event::default()
                .event("final")
                .json_data(json!({
                    "id": id,
                    "status": record.status,
                    "verdict": record.verdict,
                    "tests": record.tests.len(),
                }))
                .expect("json");
            let _ = sender.send(last).await;
            return;
        }
        // Wait for news of this judging, then take the truth from the store.
        let reread = tokio::select! {
            _ = daemon.shutdown.cancelled() => return,
            _ = sender.closed() => return,
            event = receiver.recv() => match event {
                Ok(HubEvent::Test { id: of, test }) if of == id => {
                    if seen.insert(test.ordinal) && sender.send(test_event(&test)).await.is_err() {
                        return;
                    }
                    false
                }
                Ok(HubEvent::Started { id: of, .. } | HubEvent::Final { id: of, .. }) => of == id,
                Ok(HubEvent::Test { .. }) => false,
                Err(broadcast::error::RecvError::Lagged(_)) => true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tokio::time::sleep(EVENTS_RECHECK) => true,
        };
        if reread {
            let was = record.status;
            match current(&daemon, id).await {
                Ok(now) => record = now,
                Err(_) => return,
            }
            if record.status != was
                && !record.status.is_final()
                && sender.send(status_event(&record)).await.is_err()
            {
                return;
            }
        } else {
            record.tests.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn check(body: &str) -> Result<NewJudging, ApiError> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/languages");
        let languages = Languages::load_dir(&dir).unwrap();
        let available: BTreeSet<String> = ["c", "python3"].map(String::from).into();
        let catalog = Catalog {
            problems: &|id| id == "aplusb",
            problem_ids: vec!["aplusb"],
            languages: &languages,
            available: &available,
            max_source_bytes: 10,
        };
        check_submission(body.as_bytes(), &catalog)
    }

    #[test]
    fn a_good_submission_gets_its_language_from_the_extension() {
        let judging =
            check(r#"{"problem":"aplusb","files":[{"name":"a.c","content":"x"}]}"#).unwrap();
        assert_eq!(judging.language, "c");
        let judging = check(
            r#"{"problem":"aplusb","language":"python3","files":[{"name":"a","content":""}]}"#,
        )
        .unwrap();
        assert_eq!(judging.language, "python3");
    }

    /// Each bad body, its status and what the message must name.
    #[test]
    fn bad_submissions_are_refused_naming_the_fault() {
        let cases: &[(&str, u16, &[&str])] = &[
            ("{\"problem\":", 400, &["malformed JSON"]),
            ("[1,2]", 400, &["bad request body"]),
            (r#"{"files":[]}"#, 400, &["problem"]),
            (
                r#"{"problem":"x","files":[{"name":"a.c","content":""}]}"#,
                400,
                &["unknown problem `x'", "aplusb"],
            ),
            (
                r#"{"problem":"aplusb","files":[{"name":"a.c","content":""}],"extra":1}"#,
                400,
                &["extra"],
            ),
            (r#"{"problem":"aplusb","files":[]}"#, 400, &["files"]),
            (
                r#"{"problem":"aplusb","files":[{"name":"../a.c","content":""}]}"#,
                400,
                &["files[0].name", "../a.c"],
            ),
            (
                r#"{"problem":"aplusb","files":[{"name":"a.c","content":""},{"name":"a.c","content":""}]}"#,
                400,
                &["files[1].name", "twice"],
            ),
            (
                r#"{"problem":"aplusb","files":[{"name":"a.c","content":"01234567890"}]}"#,
                413,
                &["max_source_bytes", "11 bytes"],
            ),
            (
                r#"{"problem":"aplusb","language":"cobol","files":[{"name":"a.c","content":""}]}"#,
                400,
                &["unknown language `cobol'", "c, python3"],
            ),
            (
                r#"{"problem":"aplusb","files":[{"name":"a.xyz","content":""}]}"#,
                400,
                &["language", "a.xyz"],
            ),
            (
                r#"{"problem":"aplusb","language":"java","files":[{"name":"A.java","content":""}]}"#,
                400,
                &["`java' is not installed"],
            ),
        ];
        for (body, status, needles) in cases {
            let error = check(body).unwrap_err();
            assert_eq!(error.status.as_u16(), *status, "{body}: {error:?}");
            for needle in *needles {
                assert!(
                    error.message.contains(needle),
                    "{body}: {:?} lacks {needle:?}",
                    error.message
                );
            }
        }
    }
}
