//! The interaction log (`colm serve --interaction-log FILE`): one durable record per collaboration served
//! — chat completions of hosted and virtual models, one-shot guidance, session guidance — and
//! the feedback clients attach to it (`POST /v1/colm/feedback`), for learning routing
//! policies from deployment logs (Yuan et al., "LLMs over networks", arXiv 2605.08626:
//! routing policies learned from logs).
//!
//! Each served request gets a record id (`rec_` and 32 hex digits) in the response header
//! [`RECORD_HEADER`], whether or not a log is kept. A record holds: id, time, tenant, route,
//! HTTP status, the model id asked and the strategy behind it, prompt and completion tokens,
//! the answer's mean token log-probability and finish reason, latency to the end of the
//! response (ms), request and response body bytes (uncompressed), and the query and answer
//! texts — left out (NULL) when the request was sensitive (`metadata.sensitive`) or the
//! operator turned texts off (`--no-log-texts`). Feedback: `outcome` (`right` / `wrong`) and/or
//! `score` (0–1), by the tenant that made the request only.
//!
//! The log is SQLite (`rusqlite`, one file, WAL); writes go through a blocking task so they
//! never hold up a response, and a failed write is logged, not the request's error.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt as _;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::AppState;

/// Response header carrying the record id of a served request.
pub const RECORD_HEADER: &str = "x-colm-record-id";

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
#[error("interaction log: {0}")]
pub struct LogError(#[from] rusqlite::Error);

/// One record ([module docs](self)).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// `rec_` and 32 hex digits.
    pub id: String,
    /// When the request arrived, Unix ms.
    pub created_ms: u64,
    /// The tenant (`""` without keys).
    pub tenant: String,
    /// The route, e.g. `/v1/chat/completions`.
    pub route: String,
    /// HTTP status of the response.
    pub status: u16,
    /// The model id asked.
    pub model: Option<String>,
    /// What served it: `model` for a hosted model, the virtual model's strategy, or the
    /// guidance mode (`guidance:reference`).
    pub strategy: Option<String>,
    /// Prompt tokens of every model call.
    pub prompt_tokens: u64,
    /// Completion tokens of every model call.
    pub completion_tokens: u64,
    /// Mean token log-probability of the answer (nats), when the model gave one.
    pub mean_logprob: Option<f64>,
    /// Why the answer ended (`stop`, `length`, …).
    pub finish_reason: Option<String>,
    /// Request arrival → end of the response body, ms.
    pub latency_ms: f64,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Whether the request was sensitive (then no texts are kept).
    pub sensitive: bool,
    /// The query (the last user turn, or the guidance query), unless left out.
    pub query: Option<String>,
    /// The answer (or guidance), unless left out.
    pub answer: Option<String>,
}

/// An outcome attached to a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// `right` or `wrong`.
    pub outcome: Option<String>,
    /// A score in 0–1.
    pub score: Option<f64>,
}

/// The log.
pub struct InteractionLog {
    conn: Arc<Mutex<Connection>>,
    texts: bool,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS interactions (
    id TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    route TEXT NOT NULL,
    status INTEGER NOT NULL,
    model TEXT,
    strategy TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    mean_logprob REAL,
    finish_reason TEXT,
    latency_ms REAL NOT NULL,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    sensitive INTEGER NOT NULL,
    query TEXT,
    answer TEXT,
    outcome TEXT,
    score REAL,
    feedback_ms INTEGER
);
CREATE INDEX IF NOT EXISTS interactions_created ON interactions (created_ms);
";

fn lock(m: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl InteractionLog {
    /// Opens (creating if needed) the log at `path`; `texts`: keep query and answer texts of
    /// requests that are not sensitive.
    ///
    /// # Errors
    /// The database cannot be opened or its table created.
    pub fn open(path: &Path, texts: bool) -> Result<Self, LogError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            texts,
        })
    }

    /// Appends `r` (its texts left out when sensitive or texts are off).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn append(&self, r: &Interaction) -> Result<(), LogError> {
        let keep = self.texts && !r.sensitive;
        lock(&self.conn).execute(
            "INSERT INTO interactions (id, created_ms, tenant, route, status, model, strategy,
                 prompt_tokens, completion_tokens, mean_logprob, finish_reason, latency_ms,
                 bytes_in, bytes_out, sensitive, query, answer)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            params![
                r.id,
                to_i64(r.created_ms),
                r.tenant,
                r.route,
                r.status,
                r.model,
                r.strategy,
                to_i64(r.prompt_tokens),
                to_i64(r.completion_tokens),
                r.mean_logprob,
                r.finish_reason,
                r.latency_ms,
                to_i64(r.bytes_in),
                to_i64(r.bytes_out),
                r.sensitive,
                r.query.as_ref().filter(|_| keep),
                r.answer.as_ref().filter(|_| keep),
            ],
        )?;
        Ok(())
    }

    /// Attaches `feedback` to record `id` of `tenant`; `false` when the tenant has no such
    /// record.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn feedback(&self, id: &str, tenant: &str, feedback: &Feedback) -> Result<bool, LogError> {
        let n = lock(&self.conn).execute(
            "UPDATE interactions SET outcome = ?3, score = ?4, feedback_ms = ?5
             WHERE id = ?1 AND tenant = ?2",
            params![
                id,
                tenant,
                feedback.outcome,
                feedback.score,
                to_i64(now_ms())
            ],
        )?;
        Ok(n == 1)
    }

    /// Every record with its feedback, oldest first.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn read_all(&self) -> Result<Vec<(Interaction, Feedback)>, LogError> {
        read_all(&lock(&self.conn))
    }

    /// Record `id`, if any.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn get(&self, id: &str) -> Result<Option<(Interaction, Feedback)>, LogError> {
        let conn = lock(&self.conn);
        let mut stmt = conn.prepare(&format!("{SELECT} WHERE id = ?1"))?;
        Ok(stmt.query_row([id], row).optional()?)
    }

    /// Appends `r` on a blocking thread, logging a failure.
    fn append_later(self: &Arc<Self>, r: Interaction) {
        let log = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = log.append(&r) {
                tracing::warn!(error = %e, record = %r.id, "interaction not logged");
            }
        });
    }
}

const SELECT: &str = "SELECT id, created_ms, tenant, route, status, model, strategy, prompt_tokens,
    completion_tokens, mean_logprob, finish_reason, latency_ms, bytes_in, bytes_out, sensitive,
    query, answer, outcome, score FROM interactions";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Interaction, Feedback)> {
    let u =
        |i: usize| -> rusqlite::Result<u64> { Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0)) };
    Ok((
        Interaction {
            id: r.get(0)?,
            created_ms: u(1)?,
            tenant: r.get(2)?,
            route: r.get(3)?,
            status: r.get(4)?,
            model: r.get(5)?,
            strategy: r.get(6)?,
            prompt_tokens: u(7)?,
            completion_tokens: u(8)?,
            mean_logprob: r.get(9)?,
            finish_reason: r.get(10)?,
            latency_ms: r.get(11)?,
            bytes_in: u(12)?,
            bytes_out: u(13)?,
            sensitive: r.get(14)?,
            query: r.get(15)?,
            answer: r.get(16)?,
        },
        Feedback {
            outcome: r.get(17)?,
            score: r.get(18)?,
        },
    ))
}

/// Every record of the log in `conn`, oldest first.
fn read_all(conn: &Connection) -> Result<Vec<(Interaction, Feedback)>, LogError> {
    let mut stmt = conn.prepare(&format!("{SELECT} ORDER BY created_ms, id"))?;
    let rows = stmt.query_map([], row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Reads every record of the log file at `path` (for `colm router train --from`).
///
/// # Errors
/// The file cannot be opened or is not a log.
pub fn read_file(path: &Path) -> Result<Vec<(Interaction, Feedback)>, LogError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    read_all(&conn)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh record id: `rec_` and 128 random bits (32 hex digits).
fn new_id() -> String {
    format!("rec_{}", crate::state::random_token())
}

/// The record of the request being served, filled by its handler (a request extension).
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Interaction>>);

impl Recorder {
    /// Fills in what the handler knows (model, strategy, tokens, texts, …).
    pub fn fill(&self, f: impl FnOnce(&mut Interaction)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Fills in a chat completion: model `model` (a collaboration or one model), the request
    /// `messages` (the query: their last user turn), its body size and sensitivity, and the
    /// answers `cs` (tokens summed; the first one's text, log-probability and finish reason).
    pub fn chat(
        &self,
        model: &str,
        collaboration: bool,
        messages: &[colm_core::ChatMessage],
        bytes_in: usize,
        sensitive: bool,
        cs: &[colm_core::Completion],
    ) {
        self.fill(|r| {
            r.model = Some(model.to_owned());
            r.strategy = Some(
                if collaboration {
                    "collaboration"
                } else {
                    "model"
                }
                .into(),
            );
            r.bytes_in = bytes_in as u64;
            r.sensitive = sensitive;
            r.query = Some(colm_core::Query::from_messages(messages).text);
            r.prompt_tokens = cs.iter().map(|c| c.usage.prompt_tokens).sum();
            r.completion_tokens = cs.iter().map(|c| c.usage.completion_tokens).sum();
            if let Some(c) = cs.first() {
                r.mean_logprob = c.mean_logprob;
                r.finish_reason = Some(
                    serde_json::to_value(c.finish_reason)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                );
                r.answer = Some(c.text.clone());
            }
        });
    }

    /// Fills in guidance `g` for `query` (a request body of `bytes_in` bytes; 0 for a session's
    /// guidance, fetched with a GET).
    pub fn guidance(&self, g: &colm_api::collab::GuidanceResponse, query: &str, bytes_in: usize) {
        self.fill(|r| {
            r.model.clone_from(&g.model);
            r.strategy = Some(format!("guidance:{}", g.mode));
            r.bytes_in = bytes_in as u64;
            r.query = Some(query.to_owned());
            r.answer = Some(g.guidance.clone());
            if let Some(u) = &g.usage {
                r.prompt_tokens = u.prompt_tokens;
                r.completion_tokens = u.completion_tokens;
            }
        });
    }

    /// The record id.
    pub fn id(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .id
            .clone()
    }
}

/// Marks a response as a collaboration to log (set by the handlers that fill the record).
#[derive(Clone, Copy)]
pub struct Served;

/// Counts the body's bytes and appends the record when the body ends (or is dropped).
struct Finish {
    recorder: Recorder,
    log: Option<Arc<InteractionLog>>,
    started: Instant,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let Some(log) = &self.log else {
            return;
        };
        let mut r = self
            .recorder
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        r.latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        log.append_later(r);
    }
}

/// Middleware of the `/v1` routes (inside the key check): gives the request a [`Recorder`] and
/// its response the [`RECORD_HEADER`]; when the handler marked the response [`Served`] and a
/// log is kept, appends the record once the response body has been sent.
pub async fn record(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let bytes_in = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let recorder = Recorder(Arc::new(Mutex::new(Interaction {
        id: new_id(),
        created_ms: now_ms(),
        tenant: crate::auth::current_tenant().map_or_else(String::new, |t| t.name),
        route,
        bytes_in,
        ..Interaction::default()
    })));
    request.extensions_mut().insert(recorder.clone());
    let mut response = next.run(request).await;
    if let Ok(v) = HeaderValue::from_str(&recorder.id()) {
        response.headers_mut().insert(RECORD_HEADER, v);
    }
    let served = response.extensions().get::<Served>().is_some();
    let Some(log) = state.log().filter(|_| served).cloned() else {
        return response;
    };
    recorder.fill(|r| r.status = response.status().as_u16());
    let (parts, body) = response.into_parts();
    let finish = Finish {
        recorder: recorder.clone(),
        log: Some(log),
        started,
    };
    let counted = body.into_data_stream().map(move |chunk| {
        if let Ok(bytes) = &chunk {
            let n = bytes.len() as u64;
            finish.recorder.fill(|r| r.bytes_out += n);
        }
        chunk
    });
    Response::from_parts(parts, Body::from_stream(counted))
}

/// `POST /v1/colm/feedback`.
#[utoipa::path(post, path = "/v1/colm/feedback", tag = "colm",
    summary = "Attach an outcome (right / wrong) or a score to a served request",
    description = "Names the request by the record id of its response (`x-colm-record-id`); \
        only the tenant that made the request may. Needs a server that keeps an interaction \
        log (`colm serve --interaction-log`).",
    request_body = colm_api::collab::FeedbackRequest,
    responses(
        (status = 200, description = "The feedback was kept", body = colm_api::collab::FeedbackResponse),
        crate::error::ErrorResponses,
    ))]
pub async fn feedback(
    State(state): State<AppState>,
    tenant: Option<axum::Extension<crate::auth::Tenant>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    use axum::response::IntoResponse as _;
    match feedback_inner(&state, tenant, body).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn feedback_inner(
    state: &AppState,
    tenant: Option<axum::Extension<crate::auth::Tenant>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<colm_api::collab::FeedbackResponse, crate::error::ApiError> {
    use crate::error::ApiError;
    use axum::http::StatusCode;
    let req: colm_api::collab::FeedbackRequest =
        crate::openai::parse_body(state, "/v1/colm/feedback", body)?;
    if req.outcome.is_none() && req.score.is_none() {
        return Err(ApiError::invalid(
            "give an `outcome` (right or wrong), a `score` (0 to 1), or both",
            Some("outcome"),
        ));
    }
    if let Some(s) = req.score.filter(|s| !(0.0..=1.0).contains(s)) {
        return Err(ApiError::invalid(
            format!("`score` takes 0 to 1, got {s}"),
            Some("score"),
        ));
    }
    let not_found = |why: &str| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            Some("record_not_found"),
            format!("no record `{}`: {why}", req.record_id),
        )
    };
    let Some(log) = state.log().cloned() else {
        return Err(not_found(
            "this server keeps no interaction log (colm serve --interaction-log)",
        ));
    };
    let tenant = tenant.map_or_else(String::new, |axum::Extension(t)| t.name);
    let kept = Feedback {
        outcome: req.outcome.map(|o| o.as_str().to_owned()),
        score: req.score,
    };
    // A record is appended once its response has been sent: feedback may arrive first, so an
    // unknown id is looked for again for up to 2 s.
    let well_formed = req
        .record_id
        .strip_prefix("rec_")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    let mut found = false;
    for _ in 0..if well_formed { 40 } else { 0 } {
        let (log, id, tenant, kept) = (
            log.clone(),
            req.record_id.clone(),
            tenant.clone(),
            kept.clone(),
        );
        found = tokio::task::spawn_blocking(move || log.feedback(&id, &tenant, &kept))
            .await
            .map_err(|e| ApiError::from(colm_core::ModelError::Inference(e.to_string())))?
            .map_err(|e| ApiError::from(colm_core::ModelError::Inference(e.to_string())))?;
        if found {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if !found {
        return Err(not_found("unknown to this tenant, or not logged yet"));
    }
    Ok(colm_api::collab::FeedbackResponse {
        object: "colm.feedback".into(),
        record_id: req.record_id,
        outcome: req.outcome,
        score: req.score,
    })
}
