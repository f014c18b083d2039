//! Shared sessions: several clients collaborate on one query (CoLM, §3: the server aggregates
//! the drafts of the selected clients into one guidance).
//!
//! - `POST /v1/colm/sessions` `{query, model?, mode?, k?, window_ms?, round?, max_tokens?,
//!   temperature?, auto_threshold?}` **joins** the open session for the same normalised
//!   question, model, mode and round, or **creates** one (201); the answer is the session
//!   object (`id`, `status`, `k`, `drafts`, `deadline_ms`, `joined`).
//! - `POST /v1/colm/sessions/{id}/drafts` `{draft, client?}` adds a draft (409
//!   `session_closed` once aggregation has started).
//! - `GET /v1/colm/sessions/{id}/guidance?wait_ms=N` long-polls: 200 with the `colm.guidance`
//!   object (plus `session`, `trigger`, `drafts_used`, `clients`) once it exists, else 202 with
//!   the session object after `wait_ms` (default 0, at most 60000; more is a 400). With
//!   `Accept: text/event-stream` it is an SSE stream: a `session` event at once, then one
//!   `guidance` (or `error`) event, then the stream ends.
//! - `GET /v1/colm/sessions/{id}` the session object.
//!
//! **Tenants**: a session belongs to the sharing scope of the tenant that created it
//! ([`crate::auth`]): only requests of that tenant (or of its operator-made share group) join
//! it, post drafts to it or read it; for any other tenant it does not exist (404).
//!
//! **Dynamic aggregation window**: the server aggregates as soon as `k` drafts are in
//! (`trigger: "k"`) or when `window_ms` has passed since creation with at least one draft
//! (`trigger: "deadline"`), so a slow client never stalls the fast ones; its late draft is
//! refused and it can still fetch the guidance. A session with no draft at its deadline
//! ends with a 408 `no_drafts` error. Finished sessions are kept for [`KEEP_FINISHED`].

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use colm_api::collab::{
    CreateSession, GuidanceResponse, SessionObject, SessionStatus as Status, SubmitDraft, Trigger,
    WaitQuery,
};
use futures::StreamExt as _;
use tokio::sync::watch;

use crate::auth::Tenant;
use crate::collab::{produce, GuidanceSpec, MAX_DRAFTS};
use crate::error::{ApiError, ErrorResponses};
use crate::openai::parse_body;
use crate::store::normalise_query;
use crate::AppState;
use colm_api::openai::ErrorBody;

/// Default `k`: drafts that trigger aggregation.
pub const DEFAULT_K: usize = 2;
/// Default aggregation window from creation, ms.
pub const DEFAULT_WINDOW_MS: u64 = 30_000;
/// Longest accepted aggregation window, ms.
pub const MAX_WINDOW_MS: u64 = 600_000;
/// Longest long-poll wait, ms.
pub const MAX_WAIT_MS: u64 = 60_000;
/// Sessions open at once; one more is a 503.
pub const MAX_OPEN: usize = 10_000;
/// How long a finished session (and its guidance) stays fetchable.
pub const KEEP_FINISHED: Duration = Duration::from_secs(600);

struct Drafts {
    status: Status,
    drafts: Vec<(String, String)>,
    finished: Option<Instant>,
}

type Outcome = Option<Result<GuidanceResponse, ApiError>>;

/// One shared session.
struct Session {
    id: String,
    /// The sharing scope of the tenant that created it ([`crate::auth::Tenant::scope`]): only
    /// requests of that scope see the session.
    scope: String,
    /// The tenant that created it: the aggregation runs as its work (charged to it).
    owner: Tenant,
    key: String,
    query: String,
    spec: GuidanceSpec,
    k: usize,
    round: u32,
    created: Instant,
    window: Duration,
    state: Mutex<Drafts>,
    outcome: watch::Sender<Outcome>,
}

/// The server's sessions, by id, and the open one per question key.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Arc<Session>>>,
    open: Mutex<HashMap<String, String>>,
    counter: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Session {
    fn object(&self, joined: Option<bool>) -> SessionObject {
        let st = lock(&self.state);
        let deadline_ms = self
            .window
            .saturating_sub(self.created.elapsed())
            .as_millis() as u64;
        SessionObject {
            object: "colm.session".into(),
            id: self.id.clone(),
            status: st.status,
            query: self.query.clone(),
            model: self.spec.model.clone(),
            mode: self.spec.mode.name().to_owned(),
            round: self.round,
            k: self.k,
            drafts: st.drafts.len(),
            deadline_ms,
            joined,
        }
    }

    /// Moves Open → Aggregating and runs the aggregation in the background; no-op otherwise.
    fn close(self: &Arc<Self>, state: &AppState, trigger: Trigger) {
        let drafts = {
            let mut st = lock(&self.state);
            if st.status != Status::Open {
                return;
            }
            st.status = Status::Aggregating;
            st.drafts.clone()
        };
        state.sessions().forget_open(&self.key, &self.id);
        let session = Arc::clone(self);
        let state = state.clone();
        let owner = self.owner.clone();
        tokio::spawn(crate::auth::as_tenant(owner, async move {
            let outcome = if drafts.is_empty() {
                Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "invalid_request_error",
                    Some("no_drafts"),
                    format!(
                        "session {} received no draft within its {} ms window",
                        session.id,
                        session.window.as_millis()
                    ),
                ))
            } else {
                let texts: Vec<&str> = drafts.iter().map(|(_, d)| d.as_str()).collect();
                produce(&state, &session.spec, &session.query, &texts, session.round)
                    .await
                    .map(|g| GuidanceResponse {
                        session: Some(session.id.clone()),
                        trigger: Some(trigger),
                        drafts_used: Some(drafts.len()),
                        clients: Some(drafts.iter().map(|(c, _)| c.clone()).collect()),
                        ..g
                    })
            };
            state.metrics().session_aggregated(trigger.as_str());
            tracing::info!(
                session = %session.id, trigger = trigger.as_str(), drafts = drafts.len(),
                ok = outcome.is_ok(), "session aggregated"
            );
            {
                let mut st = lock(&session.state);
                st.status = Status::Done;
                st.finished = Some(Instant::now());
            }
            session.outcome.send_replace(Some(outcome));
        }));
    }
}

impl Sessions {
    /// The session `id` of sharing scope `scope`: another scope's session is as unknown as a
    /// missing one (404, never 403: no existence oracle).
    fn get(&self, id: &str, scope: &str) -> Result<Arc<Session>, ApiError> {
        let found = lock(&self.by_id).get(id).cloned();
        found.filter(|s| s.scope == scope).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found_error",
                Some("session_not_found"),
                format!("no session `{id}` (unknown, or finished more than 10 minutes ago)"),
            )
        })
    }

    fn forget_open(&self, key: &str, id: &str) {
        let mut open = lock(&self.open);
        if open.get(key).is_some_and(|v| v == id) {
            open.remove(key);
        }
    }

    /// A fresh session id: `sess_` and 128 bits from the operating system's generator (32 hex
    /// digits), so ids cannot be guessed.
    fn new_id(&self) -> String {
        let mut bytes = [0u8; 16];
        if getrandom::fill(&mut bytes).is_err() {
            // No OS randomness (never seen on Linux): fall back to a counter mixed with a
            // randomly seeded hash, still unique within the process.
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(n);
            bytes[..8].copy_from_slice(&h.finish().to_le_bytes());
            bytes[8..].copy_from_slice(&n.to_le_bytes());
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("sess_{hex}")
    }

    /// Drops sessions finished longer than [`KEEP_FINISHED`] ago.
    fn sweep(&self) {
        lock(&self.by_id).retain(|_, s| {
            lock(&s.state)
                .finished
                .is_none_or(|t| t.elapsed() < KEEP_FINISHED)
        });
    }
}

/// `POST /v1/colm/sessions`.
#[utoipa::path(post, path = "/v1/colm/sessions", tag = "colm",
    summary = "Join the open shared session for this question, or create one",
    description = "Joins the open session of the same normalised query, model, mode and round, \
        or creates one. A session aggregates when `k` drafts are in or `window_ms` after \
        creation (dynamic aggregation window), whichever comes first.",
    request_body = CreateSession,
    responses(
        (status = 200, description = "An open session was joined", body = SessionObject),
        (status = 201, description = "A session was created", body = SessionObject),
        ErrorResponses,
    ))]
pub async fn create(
    State(state): State<AppState>,
    tenant: Option<Extension<Tenant>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(create_inner(state, scope_of(tenant), body).await)
}

/// The sharing scope of a request's tenant.
fn scope_of(tenant: Option<Extension<Tenant>>) -> String {
    tenant.map_or_else(|| Tenant::anonymous().scope, |Extension(t)| t.scope)
}

async fn create_inner(
    state: AppState,
    scope: String,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CreateSession = parse_body(&state, "/v1/colm/sessions", body)?;
    let k = req.k.unwrap_or(DEFAULT_K);
    if k == 0 || k > MAX_DRAFTS {
        return Err(ApiError::invalid(
            format!("`k` takes 1 to {MAX_DRAFTS}, got {k}"),
            Some("k"),
        ));
    }
    let window_ms = req.window_ms.unwrap_or(DEFAULT_WINDOW_MS);
    if window_ms == 0 || window_ms > MAX_WINDOW_MS {
        return Err(ApiError::invalid(
            format!("`window_ms` takes 1 to {MAX_WINDOW_MS}, got {window_ms}"),
            Some("window_ms"),
        ));
    }
    if req.query.trim().is_empty() {
        return Err(ApiError::invalid(
            "`query` must not be empty",
            Some("query"),
        ));
    }
    let mut spec = GuidanceSpec::parse(
        &state,
        req.model,
        req.mode.as_deref(),
        req.auto_threshold,
        req.max_tokens,
        req.temperature,
    )?;
    spec.set_references(req.refs, req.selector.as_deref(), req.aggregate_drafts)?;
    spec.set_screen(req.screen.as_deref())?;
    if spec.mode == colm_core::guidance::GuidanceMode::ReferenceCritique {
        return Err(ApiError::invalid(
            "reference-critique reviews one client's draft: ask /v1/colm/guidance for it",
            Some("mode"),
        ));
    }
    let round = crate::collab::round_of(req.round)?;
    let key = format!(
        "{scope}\u{1d}{}\u{1f}{}\u{1f}{}\u{1f}{round}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
        normalise_query(&req.query),
        spec.model.as_deref().unwrap_or(""),
        spec.mode.name(),
        spec.references.k,
        spec.references.selector.name(),
        spec.aggregate_drafts,
        spec.screen.name()
    );
    let sessions = state.sessions();
    sessions.sweep();
    // Join the open session for this question, if any.
    let existing = lock(&sessions.open).get(&key).cloned();
    if let Some(id) = existing {
        if let Ok(s) = sessions.get(&id, &scope) {
            return Ok((StatusCode::OK, Json(s.object(Some(true)))).into_response());
        }
    }
    if lock(&sessions.open).len() >= MAX_OPEN {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("{MAX_OPEN} sessions are open; try again later"),
            kind: "server_error",
            param: None,
            code: Some("overloaded"),
            retry_after: Some(1),
        });
    }
    let session = Arc::new(Session {
        id: sessions.new_id(),
        owner: crate::auth::current_tenant().unwrap_or_else(|| Tenant {
            name: String::new(),
            scope: scope.clone(),
        }),
        scope,
        key: key.clone(),
        query: req.query,
        spec,
        k,
        round,
        created: Instant::now(),
        window: Duration::from_millis(window_ms),
        state: Mutex::new(Drafts {
            status: Status::Open,
            drafts: Vec::new(),
            finished: None,
        }),
        outcome: watch::channel(None).0,
    });
    lock(&sessions.by_id).insert(session.id.clone(), Arc::clone(&session));
    lock(&sessions.open).insert(key, session.id.clone());
    let (s, st) = (Arc::clone(&session), state.clone());
    tokio::spawn(async move {
        tokio::time::sleep(s.window).await;
        s.close(&st, Trigger::Deadline);
    });
    Ok((StatusCode::CREATED, Json(session.object(Some(false)))).into_response())
}

/// `POST /v1/colm/sessions/{id}/drafts`.
#[utoipa::path(post, path = "/v1/colm/sessions/{id}/drafts", tag = "colm",
    summary = "Submit a draft to an open session",
    params(("id" = String, Path, description = "Session id")),
    request_body = SubmitDraft,
    responses(
        (status = 200, description = "The draft was added", body = SessionObject),
        (status = 409, description = "The session is aggregating or done (`session_closed`)", body = ErrorBody),
        ErrorResponses,
    ))]
pub async fn submit(
    State(state): State<AppState>,
    tenant: Option<Extension<Tenant>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(submit_inner(state, scope_of(tenant), id, body).await)
}

async fn submit_inner(
    state: AppState,
    scope: String,
    id: String,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let session = state.sessions().get(&id, &scope)?;
    let req: SubmitDraft = parse_body(&state, "/v1/colm/sessions/{id}/drafts", body)?;
    let full = {
        let mut st = lock(&session.state);
        if st.status != Status::Open {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                Some("session_closed"),
                format!(
                    "session {id} is {}: drafts are no longer accepted; fetch its guidance",
                    st.status.as_str()
                ),
            ));
        }
        let client = req
            .client
            .unwrap_or_else(|| format!("client-{}", st.drafts.len() + 1));
        st.drafts.push((client, req.draft));
        state.metrics().session_draft();
        st.drafts.len() >= session.k
    };
    if full {
        session.close(&state, Trigger::K);
    }
    Ok(Json(session.object(None)).into_response())
}

/// `GET /v1/colm/sessions/{id}`.
#[utoipa::path(get, path = "/v1/colm/sessions/{id}", tag = "colm",
    summary = "The session's state",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, description = "The session", body = SessionObject), ErrorResponses))]
pub async fn show(
    State(state): State<AppState>,
    tenant: Option<Extension<Tenant>>,
    Path(id): Path<String>,
) -> Response {
    respond(
        state
            .sessions()
            .get(&id, &scope_of(tenant))
            .map(|s| Json(s.object(None)).into_response()),
    )
}

/// `GET /v1/colm/sessions/{id}/guidance`.
#[utoipa::path(get, path = "/v1/colm/sessions/{id}/guidance", tag = "colm",
    summary = "The session's guidance: long-poll, or server-sent events",
    description = "Long-polls up to `wait_ms`; with `Accept: text/event-stream`, an SSE stream \
        of a `session` event at once, then one `guidance` (or `error`) event.",
    params(("id" = String, Path, description = "Session id"), WaitQuery),
    responses(
        (status = 200, description = "The guidance (or, as SSE, the events)", content(
            (GuidanceResponse = "application/json"),
            (GuidanceResponse = "text/event-stream"),
        )),
        (status = 202, description = "Not ready within `wait_ms`: the session", body = SessionObject),
        (status = 408, description = "The session received no draft within its window (`no_drafts`)", body = ErrorBody),
        ErrorResponses,
    ))]
pub async fn guidance(
    State(state): State<AppState>,
    tenant: Option<Extension<Tenant>>,
    Path(id): Path<String>,
    q: Result<Query<WaitQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let session = match state.sessions().get(&id, &scope_of(tenant)) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let wait_ms = match q {
        Ok(Query(q)) => q.wait_ms.unwrap_or(0),
        Err(e) => {
            return ApiError::invalid(format!("invalid query string: {}", e.body_text()), None)
                .into_response()
        }
    };
    if wait_ms > MAX_WAIT_MS {
        return ApiError::invalid(
            format!("`wait_ms` takes 0 to {MAX_WAIT_MS}, got {wait_ms}"),
            Some("wait_ms"),
        )
        .into_response();
    }
    let wants_sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let mut rx = session.outcome.subscribe();
    if wants_sse {
        let first = Event::default()
            .event("session")
            .json_data(session.object(None))
            .unwrap_or_default();
        let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(first) })
            .chain(futures::stream::once(async move {
                let outcome = match rx.wait_for(Option::is_some).await {
                    Ok(v) => v.clone(),
                    Err(_) => None,
                };
                let (name, data) = match outcome {
                    Some(Ok(g)) => ("guidance", serde_json::to_string(&g)),
                    Some(Err(e)) => ("error", serde_json::to_string(&e.body())),
                    None => {
                        let e = ApiError::from(colm_core::ModelError::Inference(
                            "session dropped".into(),
                        ));
                        ("error", serde_json::to_string(&e.body()))
                    }
                };
                Ok(Event::default().event(name).data(data.unwrap_or_default()))
            }));
        return Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response();
    }
    let wait = Duration::from_millis(wait_ms);
    let outcome = match tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await {
        Ok(Ok(v)) => v.clone(),
        _ => None,
    };
    match outcome {
        Some(Ok(v)) => Json(v).into_response(),
        Some(Err(e)) => e.into_response(),
        None => (StatusCode::ACCEPTED, Json(session.object(None))).into_response(),
    }
}

fn respond(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}
