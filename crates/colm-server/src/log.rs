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
//! The log is SQLite (`rusqlite`, one file, WAL) by default, or PostgreSQL (`postgres://…`,
//! `tokio-postgres`) for replicas writing one log; the same table and statements serve both.
//! Records are written after their response has been sent, so they never hold up one, and a
//! failed write is logged, not the request's error.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt as _;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use crate::state::now_ms;
use crate::AppState;

/// Response header carrying the record id of a served request.
pub const RECORD_HEADER: &str = "x-colm-record-id";

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// SQLite.
    #[error("interaction log (SQLite): {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL.
    #[error("interaction log (PostgreSQL): {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The blocking SQLite task failed.
    #[error("interaction log: {0}")]
    Task(String),
}

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
    /// What served it: `model` (one hosted model), the canonical strategy text of a virtual
    /// model (`colm:k=2`, `cascade:tau=-0.3`; `collaboration` when it has none), or the
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
    /// Request body bytes (as parsed, uncompressed).
    pub bytes_in: u64,
    /// Response body bytes (before compression).
    pub bytes_out: u64,
    /// Whether the request was sensitive (then no texts are kept).
    pub sensitive: bool,
    /// The query (the last user turn, or the guidance query), unless left out.
    pub query: Option<String>,
    /// The answer (or guidance), unless left out; of a failed request, the text streamed
    /// before it failed, if any.
    pub answer: Option<String>,
    /// Why the model call failed (`status` is its HTTP status; 200 when the stream had begun),
    /// `None` when it answered. Requests refused before any model call (malformed, unknown
    /// model) are not recorded; the token counts of a failed call are 0 (unknown).
    pub error: Option<String>,
    /// Where a router answered the query (`local`, `remote`, `colm`): a served cascade's
    /// decision; `None` when no router decided.
    pub routed: Option<String>,
}

/// An outcome attached to a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// `right` or `wrong`.
    pub outcome: Option<String>,
    /// A score in 0–1.
    pub score: Option<f64>,
}

impl Feedback {
    /// Whether the answer was right: the outcome when one was given, else a score of at least
    /// 0.5; `None` without feedback.
    pub fn right(&self) -> Option<bool> {
        match (self.outcome.as_deref(), self.score) {
            (Some(o), _) => Some(o == "right"),
            (None, Some(s)) => Some(s >= 0.5),
            (None, None) => None,
        }
    }
}

/// Where the log is.
enum Backend {
    Sqlite(Arc<Mutex<Connection>>),
    Postgres(tokio_postgres::Client),
}

/// The log ([module docs](self)).
pub struct InteractionLog {
    backend: Backend,
    texts: bool,
}

/// The table, in the SQL both SQLite and PostgreSQL read (SQLite maps the type names to its
/// affinities).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS interactions (
    id TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    route TEXT NOT NULL,
    status INTEGER NOT NULL,
    model TEXT,
    strategy TEXT,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    mean_logprob DOUBLE PRECISION,
    finish_reason TEXT,
    latency_ms DOUBLE PRECISION NOT NULL,
    bytes_in BIGINT NOT NULL,
    bytes_out BIGINT NOT NULL,
    sensitive BOOLEAN NOT NULL,
    query TEXT,
    answer TEXT,
    outcome TEXT,
    score DOUBLE PRECISION,
    feedback_ms BIGINT,
    error TEXT,
    routed TEXT
);
CREATE INDEX IF NOT EXISTS interactions_created ON interactions (created_ms);
";

/// Columns added to [`SCHEMA`] after its first version: a log opened for writing gets them
/// (`ALTER TABLE … ADD COLUMN`); read only, a log without one reads it as NULL.
const ADDED_COLUMNS: [&str; 2] = ["error", "routed"];

const INSERT: &str = "INSERT INTO interactions (id, created_ms, tenant, route, status, model,
    strategy, prompt_tokens, completion_tokens, mean_logprob, finish_reason, latency_ms, bytes_in,
    bytes_out, sensitive, query, answer, error, routed)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
    $19)";

/// (SQLite numbers `$N` parameters in order of first appearance: they appear here in order.)
const FEEDBACK: &str = "UPDATE interactions SET outcome = $1, score = $2, feedback_ms = $3
    WHERE id = $4 AND tenant = $5";

/// The SELECT of every record, oldest first; `present`: whether the table has each of the
/// [`ADDED_COLUMNS`] (one that is missing reads as NULL).
fn select(present: [bool; ADDED_COLUMNS.len()]) -> String {
    let added: Vec<&str> = ADDED_COLUMNS
        .iter()
        .zip(present)
        .map(|(c, p)| if p { *c } else { "CAST(NULL AS TEXT)" })
        .collect();
    format!(
        "SELECT id, created_ms, tenant, route, status, model, strategy, prompt_tokens,
        completion_tokens, mean_logprob, finish_reason, latency_ms, bytes_in, bytes_out, sensitive,
        query, answer, outcome, score, {} FROM interactions ORDER BY created_ms, id",
        added.join(", ")
    )
}

/// Which of the [`ADDED_COLUMNS`] a table with the columns `names` has.
fn present(names: &[String]) -> [bool; ADDED_COLUMNS.len()] {
    ADDED_COLUMNS.map(|c| names.iter().any(|n| n == c))
}

/// [`present`] for the SQLite log `conn`.
fn sqlite_present(conn: &Connection) -> Result<[bool; ADDED_COLUMNS.len()], rusqlite::Error> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('interactions')")?;
    let names = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(present(&names))
}

/// Adds the [`ADDED_COLUMNS`] the SQLite log `conn` lacks.
fn sqlite_add_columns(conn: &Connection) -> Result<(), rusqlite::Error> {
    for (column, there) in ADDED_COLUMNS.into_iter().zip(sqlite_present(conn)?) {
        if !there {
            conn.execute_batch(&format!(
                "ALTER TABLE interactions ADD COLUMN {column} TEXT"
            ))?;
        }
    }
    Ok(())
}

fn lock(m: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The integer columns of a record as stored: created_ms, prompt and completion tokens,
/// bytes in and out; and the status.
struct Columns {
    ints: [i64; 5],
    status: i32,
}

impl Columns {
    fn of(r: &Interaction) -> Self {
        Self {
            ints: [
                to_i64(r.created_ms),
                to_i64(r.prompt_tokens),
                to_i64(r.completion_tokens),
                to_i64(r.bytes_in),
                to_i64(r.bytes_out),
            ],
            status: i32::from(r.status),
        }
    }
}

impl InteractionLog {
    /// Opens (creating if needed) the SQLite log at `path`; `texts`: keep query and answer
    /// texts of requests that are not sensitive.
    ///
    /// # Errors
    /// The database cannot be opened or its table created.
    pub fn open(path: &Path, texts: bool) -> Result<Self, LogError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(SCHEMA)?;
        sqlite_add_columns(&conn)?;
        Ok(Self {
            backend: Backend::Sqlite(Arc::new(Mutex::new(conn))),
            texts,
        })
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user[:password]@host:port/db`,
    /// no TLS) and creates the table if needed.
    ///
    /// # Errors
    /// The server cannot be reached or refuses.
    pub async fn connect(url: &str, texts: bool) -> Result<Self, LogError> {
        let client = pg_client(url).await?;
        client.batch_execute(SCHEMA).await?;
        for column in ADDED_COLUMNS {
            client
                .batch_execute(&format!(
                    "ALTER TABLE interactions ADD COLUMN IF NOT EXISTS {column} TEXT"
                ))
                .await?;
        }
        Ok(Self {
            backend: Backend::Postgres(client),
            texts,
        })
    }

    /// [`InteractionLog::connect`] for a `postgres://` or `postgresql://` URL, else
    /// [`InteractionLog::open`] of the path.
    ///
    /// # Errors
    /// As those.
    pub async fn open_target(target: &str, texts: bool) -> Result<Self, LogError> {
        if is_postgres(target) {
            Self::connect(target, texts).await
        } else {
            Self::open(Path::new(target), texts)
        }
    }

    /// Runs `f` on the SQLite connection on a blocking thread.
    async fn sqlite<T: Send + 'static>(
        conn: &Arc<Mutex<Connection>>,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, LogError> {
        let conn = Arc::clone(conn);
        tokio::task::spawn_blocking(move || f(&lock(&conn)).map_err(LogError::from))
            .await
            .map_err(|e| LogError::Task(e.to_string()))?
    }

    /// Appends `r` (its texts left out when sensitive or texts are off).
    ///
    /// # Errors
    /// Database errors (a record id used twice among them).
    pub async fn append(&self, r: &Interaction) -> Result<(), LogError> {
        let keep = self.texts && !r.sensitive;
        let mut r = r.clone();
        if !keep {
            r.query = None;
            r.answer = None;
        }
        let c = Columns::of(&r);
        match &self.backend {
            Backend::Sqlite(conn) => {
                Self::sqlite(conn, move |db| {
                    db.execute(
                        INSERT,
                        params![
                            r.id,
                            c.ints[0],
                            r.tenant,
                            r.route,
                            c.status,
                            r.model,
                            r.strategy,
                            c.ints[1],
                            c.ints[2],
                            r.mean_logprob,
                            r.finish_reason,
                            r.latency_ms,
                            c.ints[3],
                            c.ints[4],
                            r.sensitive,
                            r.query,
                            r.answer,
                            r.error,
                            r.routed,
                        ],
                    )
                    .map(drop)
                })
                .await
            }
            Backend::Postgres(client) => {
                client
                    .execute(
                        INSERT,
                        &[
                            &r.id,
                            &c.ints[0],
                            &r.tenant,
                            &r.route,
                            &c.status,
                            &r.model,
                            &r.strategy,
                            &c.ints[1],
                            &c.ints[2],
                            &r.mean_logprob,
                            &r.finish_reason,
                            &r.latency_ms,
                            &c.ints[3],
                            &c.ints[4],
                            &r.sensitive,
                            &r.query,
                            &r.answer,
                            &r.error,
                            &r.routed,
                        ],
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// Attaches `feedback` to record `id` of `tenant`; `false` when the tenant has no such
    /// record.
    ///
    /// # Errors
    /// Database errors.
    pub async fn feedback(
        &self,
        id: &str,
        tenant: &str,
        feedback: &Feedback,
    ) -> Result<bool, LogError> {
        let now = to_i64(now_ms());
        let (id, tenant, fb) = (id.to_owned(), tenant.to_owned(), feedback.clone());
        let n = match &self.backend {
            Backend::Sqlite(conn) => {
                Self::sqlite(conn, move |db| {
                    db.execute(FEEDBACK, params![fb.outcome, fb.score, now, id, tenant])
                })
                .await?
            }
            Backend::Postgres(client) => usize::try_from(
                client
                    .execute(FEEDBACK, &[&fb.outcome, &fb.score, &now, &id, &tenant])
                    .await?,
            )
            .unwrap_or(0),
        };
        Ok(n == 1)
    }

    /// Every record with its feedback, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn read_all(&self) -> Result<Vec<(Interaction, Feedback)>, LogError> {
        match &self.backend {
            Backend::Sqlite(conn) => Self::sqlite(conn, read_sqlite).await,
            Backend::Postgres(client) => {
                let names = client
                    .query(
                        "SELECT column_name::TEXT FROM information_schema.columns
                         WHERE table_schema = current_schema() AND table_name = 'interactions'",
                        &[],
                    )
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<Vec<String>, _>>()?;
                let rows = client.query(&select(present(&names)), &[]).await?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            Interaction {
                                id: r.try_get(0)?,
                                created_ms: to_u64(r.try_get(1)?),
                                tenant: r.try_get(2)?,
                                route: r.try_get(3)?,
                                status: u16::try_from(r.try_get::<_, i32>(4)?).unwrap_or(0),
                                model: r.try_get(5)?,
                                strategy: r.try_get(6)?,
                                prompt_tokens: to_u64(r.try_get(7)?),
                                completion_tokens: to_u64(r.try_get(8)?),
                                mean_logprob: r.try_get(9)?,
                                finish_reason: r.try_get(10)?,
                                latency_ms: r.try_get(11)?,
                                bytes_in: to_u64(r.try_get(12)?),
                                bytes_out: to_u64(r.try_get(13)?),
                                sensitive: r.try_get(14)?,
                                query: r.try_get(15)?,
                                answer: r.try_get(16)?,
                                error: r.try_get(19)?,
                                routed: r.try_get(20)?,
                            },
                            Feedback {
                                outcome: r.try_get(17)?,
                                score: r.try_get(18)?,
                            },
                        ))
                    })
                    .collect()
            }
        }
    }

    /// Appends `r` in the background, logging a failure.
    fn append_later(self: &Arc<Self>, r: Interaction) {
        let log = Arc::clone(self);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = log.append(&r).await {
                    tracing::warn!(error = %e, record = %r.id, "interaction not logged");
                }
            });
        }
    }
}

/// A PostgreSQL client of `url` (no TLS), its connection driven in the background.
async fn pg_client(url: &str) -> Result<tokio_postgres::Client, LogError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "interaction log connection ended");
        }
    });
    Ok(client)
}

fn is_postgres(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

/// Every record with its feedback, oldest first, of the log at `target` (a `postgres://` URL
/// or a SQLite file), read only: nothing is created.
///
/// # Errors
/// The log cannot be reached or opened, or holds no interaction table.
pub async fn read_target(target: &str) -> Result<Vec<(Interaction, Feedback)>, LogError> {
    if is_postgres(target) {
        let log = InteractionLog {
            backend: Backend::Postgres(pg_client(target).await?),
            texts: true,
        };
        log.read_all().await
    } else {
        let path = std::path::PathBuf::from(target);
        tokio::task::spawn_blocking(move || read_file(&path))
            .await
            .map_err(|e| LogError::Task(e.to_string()))?
    }
}

/// Every record of the SQLite log `conn`, oldest first.
fn read_sqlite(conn: &Connection) -> Result<Vec<(Interaction, Feedback)>, rusqlite::Error> {
    let mut stmt = conn.prepare(&select(sqlite_present(conn)?))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            Interaction {
                id: r.get(0)?,
                created_ms: to_u64(r.get(1)?),
                tenant: r.get(2)?,
                route: r.get(3)?,
                status: r.get(4)?,
                model: r.get(5)?,
                strategy: r.get(6)?,
                prompt_tokens: to_u64(r.get(7)?),
                completion_tokens: to_u64(r.get(8)?),
                mean_logprob: r.get(9)?,
                finish_reason: r.get(10)?,
                latency_ms: r.get(11)?,
                bytes_in: to_u64(r.get(12)?),
                bytes_out: to_u64(r.get(13)?),
                sensitive: r.get(14)?,
                query: r.get(15)?,
                answer: r.get(16)?,
                error: r.get(19)?,
                routed: r.get(20)?,
            },
            Feedback {
                outcome: r.get(17)?,
                score: r.get(18)?,
            },
        ))
    })?;
    rows.collect()
}

/// Reads every record of the SQLite log file at `path` (read only).
///
/// # Errors
/// The file cannot be opened or is not a log.
pub fn read_file(path: &Path) -> Result<Vec<(Interaction, Feedback)>, LogError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(read_sqlite(&conn)?)
}

/// A fresh record id: `rec_` and 128 random bits (32 hex digits).
fn new_id() -> String {
    format!("rec_{}", crate::state::random_token())
}

/// The record of the request being served, filled by its handler (a request extension);
/// [`Recorder::active`] when a log is kept (else it only carries the record id).
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Interaction>>, bool);

impl Recorder {
    /// Whether the record will be written (a log is kept): handlers gather what they fill in
    /// only then.
    pub fn active(&self) -> bool {
        self.1
    }

    /// Fills in what the handler knows (model, strategy, tokens, texts, …).
    pub fn fill(&self, f: impl FnOnce(&mut Interaction)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Fills in a chat completion: model `model` served by `strategy`
    /// ([`Interaction::strategy`]), the `query` (the last user turn of the request), its body
    /// size and sensitivity, and the answers `cs` (tokens summed; the first one's text,
    /// log-probability, finish reason and route).
    pub fn chat(
        &self,
        model: &str,
        strategy: &str,
        query: &str,
        bytes_in: usize,
        sensitive: bool,
        cs: &[colm_core::Completion],
    ) {
        self.fill(|r| {
            r.model = Some(model.to_owned());
            r.strategy = Some(strategy.to_owned());
            r.bytes_in = bytes_in as u64;
            r.sensitive = sensitive;
            r.query = Some(query.to_owned());
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
                r.routed = c.route.map(|route| colm_core::named::Named::name(&route));
            }
        });
    }

    /// Marks the record failed with `error`; `partial`: the text streamed before the failure.
    pub fn failed(&self, error: &str, partial: &str) {
        self.fill(|r| {
            r.error = Some(error.to_owned());
            r.answer = (!partial.is_empty()).then(|| partial.to_owned());
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
    log: Arc<InteractionLog>,
    started: Instant,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let mut r = self
            .recorder
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        r.latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        self.log.append_later(r);
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
    let recorder = Recorder(
        Arc::new(Mutex::new(Interaction {
            id: new_id(),
            created_ms: now_ms(),
            tenant: crate::auth::current_tenant().map_or_else(String::new, |t| t.name),
            route,
            ..Interaction::default()
        })),
        state.log().is_some(),
    );
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
        log,
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
        found = log
            .feedback(&id, &tenant, &kept)
            .await
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What any backend must do with records and feedback.
    async fn keeps_records_and_their_tenants_feedback(log: InteractionLog, quiet: InteractionLog) {
        let r = Interaction {
            id: "rec_a".into(),
            created_ms: 1_700_000_000_000,
            tenant: "acme".into(),
            route: "/v1/chat/completions".into(),
            status: 200,
            model: Some("qwen".into()),
            strategy: Some("model".into()),
            prompt_tokens: 42,
            completion_tokens: 7,
            mean_logprob: Some(-0.25),
            finish_reason: Some("stop".into()),
            latency_ms: 812.5,
            bytes_in: 300,
            bytes_out: 900,
            sensitive: false,
            query: Some("How many eggs?".into()),
            answer: Some("18".into()),
            error: None,
            routed: Some("colm".into()),
        };
        let secret = Interaction {
            id: "rec_b".into(),
            created_ms: r.created_ms + 1,
            sensitive: true,
            query: Some("my card 4111 1111 1111 1111".into()),
            ..r.clone()
        };
        // A stream cut by a model error after some text.
        let failed = Interaction {
            id: "rec_c".into(),
            created_ms: r.created_ms + 2,
            prompt_tokens: 0,
            completion_tokens: 0,
            answer: Some("The ans".into()),
            error: Some("upstream: connection reset".into()),
            ..r.clone()
        };
        log.append(&r).await.unwrap();
        log.append(&secret).await.unwrap();
        log.append(&failed).await.unwrap();
        assert!(log.append(&r).await.is_err(), "an id is kept once");
        let right = Feedback {
            outcome: Some("right".into()),
            score: Some(0.5),
        };
        assert!(log.feedback("rec_a", "acme", &right).await.unwrap());
        assert!(!log.feedback("rec_a", "globex", &right).await.unwrap());
        assert!(!log.feedback("rec_zzz", "acme", &right).await.unwrap());
        let all = log.read_all().await.unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0], (r.clone(), right));
        assert_eq!(all[2].0, failed);
        assert_eq!(
            (all[1].0.query.as_ref(), all[1].0.answer.as_ref()),
            (None, None)
        );
        assert_eq!(all[1].1, Feedback::default());
        // Texts turned off by the operator.
        quiet.append(&r).await.unwrap();
        let kept = quiet.read_all().await.unwrap();
        assert_eq!(
            (kept[0].0.query.as_ref(), kept[0].0.prompt_tokens),
            (None, 42)
        );
    }

    #[tokio::test]
    async fn sqlite_keeps_records_and_feedback() {
        let dir = std::env::temp_dir().join(format!("colm-log-{}", crate::state::random_token()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = InteractionLog::open(&dir.join("a.sqlite"), true).unwrap();
        let quiet = InteractionLog::open(&dir.join("b.sqlite"), false).unwrap();
        keeps_records_and_their_tenants_feedback(log, quiet).await;
        let target = dir.join("a.sqlite");
        assert_eq!(
            read_target(target.to_str().unwrap()).await.unwrap().len(),
            3
        );
        // A log of the first schema: read as it is, then given the new columns when opened.
        let old = dir.join("old.sqlite");
        Connection::open(&old)
            .unwrap()
            .execute_batch(&format!("{}{OLD_ROW}", first_schema()))
            .unwrap();
        let read = read_target(old.to_str().unwrap()).await.unwrap();
        assert_eq!(
            (read[0].0.id.as_str(), read[0].0.error.as_ref()),
            ("rec_old", None)
        );
        writes_errors_once_opened(InteractionLog::open(&old, true).unwrap()).await;
        // Reading a log that is not there is an error, and creates nothing.
        let missing = dir.join("missing.sqlite");
        assert!(read_target(missing.to_str().unwrap()).await.is_err());
        assert!(!missing.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The same against a real PostgreSQL server.
    #[tokio::test]
    async fn postgres_keeps_records_and_feedback() {
        let pg = colm_test_support::LocalPostgres::start().await.unwrap();
        let log = InteractionLog::open_target(&pg.url, true).await.unwrap();
        // A second database for the log without texts.
        let (admin, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        admin.batch_execute("CREATE DATABASE quiet").await.unwrap();
        let quiet_url = pg.url.replace("/postgres", "/quiet");
        let quiet = InteractionLog::open_target(&quiet_url, false)
            .await
            .unwrap();
        keeps_records_and_their_tenants_feedback(log, quiet).await;
        assert_eq!(read_target(&pg.url).await.unwrap().len(), 3);
        // A log of the first schema.
        admin.batch_execute("CREATE DATABASE old").await.unwrap();
        let old_url = pg.url.replace("/postgres", "/old");
        let (old, conn) = tokio_postgres::connect(&old_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        old.batch_execute(&format!("{}{OLD_ROW}", first_schema()))
            .await
            .unwrap();
        let read = read_target(&old_url).await.unwrap();
        assert_eq!(
            (read[0].0.id.as_str(), read[0].0.error.as_ref()),
            ("rec_old", None)
        );
        writes_errors_once_opened(InteractionLog::open_target(&old_url, true).await.unwrap()).await;
    }

    /// [`SCHEMA`] as it was before [`ADDED_COLUMNS`].
    fn first_schema() -> String {
        let s = SCHEMA.replace(",\n    error TEXT,\n    routed TEXT\n", "\n");
        assert!(!s.contains("error") && !s.contains("routed"));
        s
    }

    /// A record written with the first schema.
    const OLD_ROW: &str = "INSERT INTO interactions (id, created_ms, tenant, route, status,
        prompt_tokens, completion_tokens, latency_ms, bytes_in, bytes_out, sensitive)
        VALUES ('rec_old', 1, '', '/v1/chat/completions', 200, 3, 4, 5.0, 6, 7, FALSE);";

    /// `log`, opened on a log of the first schema, keeps a failed record's error.
    async fn writes_errors_once_opened(log: InteractionLog) {
        let failed = Interaction {
            id: "rec_new".into(),
            created_ms: 2,
            status: 500,
            error: Some("out of memory".into()),
            ..Interaction::default()
        };
        log.append(&failed).await.unwrap();
        let all = log.read_all().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].0, failed);
    }

    #[test]
    fn feedback_is_right_by_outcome_else_by_score() {
        let fb = |outcome: Option<&str>, score| Feedback {
            outcome: outcome.map(str::to_owned),
            score,
        };
        assert_eq!(fb(Some("wrong"), Some(0.9)).right(), Some(false));
        assert_eq!(fb(Some("right"), None).right(), Some(true));
        assert_eq!(fb(None, Some(0.5)).right(), Some(true));
        assert_eq!(fb(None, Some(0.49)).right(), Some(false));
        assert_eq!(fb(None, None).right(), None);
    }
}
