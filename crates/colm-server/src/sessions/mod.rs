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
//!
//! **Replicas**: sessions live in memory by default, or in the Redis that replicas share
//! (`colm serve --state redis://…`, [`store`]): then any replica serves any request of a
//! session. The replica that sees a session due (its `k`-th draft, or its deadline passed while
//! a client waits) claims it and aggregates under a lease it renews; if that replica dies, the
//! lease runs out ([`LEASE`]) and the next replica a waiting client asks takes the aggregation
//! over, so a session outlives the replica that created it.

pub mod store;

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use colm_api::collab::{
    CreateSession, GuidanceResponse, SessionObject, SessionStatus as Status, SubmitDraft, Trigger,
    WaitQuery,
};
use futures::StreamExt as _;

use crate::auth::Tenant;
use crate::body::parse_body;
use crate::collab::{produce, GuidanceSpec, MAX_DRAFTS};
use crate::error::{ApiError, ErrorResponses};
use crate::state::{now_ms, RedisState, StateError};
use crate::store::normalise_query;
use crate::AppState;
use colm_api::openai::ErrorBody;
use store::{Joined, Meta, SessionStore, Snapshot, Stored};

/// Default `k`: drafts that trigger aggregation.
pub const DEFAULT_K: usize = 2;
/// Default aggregation window from creation, ms.
pub const DEFAULT_WINDOW_MS: u64 = 30_000;
/// Longest accepted aggregation window, ms.
pub const MAX_WINDOW_MS: u64 = 600_000;
/// Longest long-poll wait, ms.
pub const MAX_WAIT_MS: u64 = 60_000;
/// Default sessions open at once (before their deadline, not yet claimed for aggregation), in
/// memory or, with `--state`, across all replicas; one more is a 503.
pub const MAX_OPEN: usize = 10_000;
/// Default sessions one tenant may have open at once; one more is a 429 for it alone.
pub const MAX_OPEN_PER_TENANT: usize = 1_000;
/// How long a finished session (and its guidance) stays fetchable.
pub const KEEP_FINISHED: Duration = Duration::from_secs(600);
/// The lease of an aggregation: renewed every third of it by the replica aggregating; when it
/// runs out (the replica died), another replica takes the aggregation over.
pub const LEASE: Duration = Duration::from_secs(10);
/// The longest an unfinished session is kept after its window (an aggregation that runs
/// longer loses its session).
const KEEP_UNFINISHED: Duration = Duration::from_secs(3600);

/// The server's sessions ([`store::SessionStore`]: memory, or Redis shared by replicas).
#[derive(Default)]
pub struct Sessions {
    store: SessionStore,
}

/// The 503 of a store that failed.
fn unavailable(e: &StateError) -> ApiError {
    tracing::warn!(error = %e, "session store failed");
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: format!("sessions are unavailable: {e}"),
        kind: "server_error",
        param: None,
        code: Some("state_unavailable"),
        retry_after: Some(1),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found_error",
        Some("session_not_found"),
        format!("no session `{id}` (unknown, or finished more than 10 minutes ago)"),
    )
}

/// The session object of `snap` as of `now` (`joined`: only in the answer of a create).
fn object(snap: &Snapshot, joined: Option<bool>, now: u64) -> SessionObject {
    let m = &snap.meta;
    SessionObject {
        object: "colm.session".into(),
        id: m.id.clone(),
        status: snap.status,
        query: m.request.query.clone(),
        model: m.model.clone(),
        mode: m.mode.clone(),
        round: m.round,
        k: m.k,
        drafts: snap.drafts.len(),
        deadline_ms: m.deadline_ms().saturating_sub(now),
        joined,
    }
}

/// The answer of a stored outcome.
fn stored_response(stored: Stored) -> Response {
    match stored {
        Stored::Guidance(g) => Json(g).into_response(),
        Stored::Error {
            status,
            body,
            retry_after,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = (status, Json(body)).into_response();
            if let Some(v) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}

impl Sessions {
    /// Sessions in the Redis replicas share.
    pub fn redis(redis: RedisState) -> Self {
        Self {
            store: SessionStore::redis(redis),
        }
    }

    /// Session `id` of sharing scope `scope`: another scope's session is as unknown as a
    /// missing one (404, never 403: no existence oracle).
    async fn find(&self, id: &str, scope: &str) -> Result<Snapshot, ApiError> {
        let snap = self.store.load(id).await.map_err(|e| unavailable(&e))?;
        snap.filter(|s| s.meta.scope == scope)
            .ok_or_else(|| not_found(id))
    }

    /// A fresh session id: `sess_` and 128 random bits ([`crate::state::random_token`]), so
    /// ids cannot be guessed.
    fn new_id() -> String {
        format!("sess_{}", crate::state::random_token())
    }

    /// Claims session `id` if it is due and aggregates it in the background
    /// ([`store::SessionStore::claim`]); a store error is logged (the next look retries).
    async fn drive(&self, state: &AppState, id: &str) {
        match self.store.claim(id, now_ms(), LEASE).await {
            Ok(Some((trigger, snap))) => aggregate(state.clone(), trigger, snap),
            Ok(None) => {}
            Err(e) => tracing::warn!(session = id, error = %e, "session not claimed"),
        }
    }

    /// The outcome of session `id`, waiting up to `wait` (`None`: until it exists); drives
    /// the session while waiting (a deadline passed, an aggregator lost). `Ok(None)` when not
    /// ready in time.
    async fn outcome(
        &self,
        state: &AppState,
        id: &str,
        wait: Option<Duration>,
    ) -> Result<Option<Stored>, ApiError> {
        let until = wait.map(|w| tokio::time::Instant::now() + w);
        loop {
            let waiter = self.store.waiter();
            let snap = self
                .store
                .load(id)
                .await
                .map_err(|e| unavailable(&e))?
                .ok_or_else(|| not_found(id))?;
            if let Some(o) = snap.outcome {
                return Ok(Some(o));
            }
            let now = now_ms();
            if snap.due(now) {
                self.drive(state, id).await;
            }
            // Wake up at the deadline (to claim it) or the lease's end at the latest.
            let next = match snap.status {
                Status::Open => snap.meta.deadline_ms(),
                _ => snap.lease_until_ms,
            };
            let mut nap = Duration::from_millis(next.saturating_sub(now).clamp(10, 1000));
            if let Some(until) = until {
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                nap = nap.min(left);
            }
            waiter.wait(nap).await;
        }
    }
}

/// Aggregates the claimed session `snap` in the background, as work of its owner, renewing
/// the lease until the outcome is stored.
fn aggregate(state: AppState, trigger: Trigger, snap: Snapshot) {
    let meta = snap.meta.clone();
    let owner = Tenant {
        name: meta.owner.clone(),
        scope: meta.scope.clone(),
    };
    tokio::spawn(crate::auth::as_tenant(owner, async move {
        let sessions = state.sessions();
        let renewing = {
            let (state, id) = (state.clone(), meta.id.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE / 3).await;
                    let until = now_ms().saturating_add(LEASE.as_millis() as u64);
                    if let Err(e) = state.sessions().store.renew(&id, until).await {
                        tracing::warn!(session = id, error = %e, "lease not renewed");
                    }
                }
            })
        };
        let drafts = &snap.drafts;
        let outcome = if drafts.is_empty() {
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                Some("no_drafts"),
                format!(
                    "session {} received no draft within its {} ms window",
                    meta.id, meta.window_ms
                ),
            ))
        } else {
            let texts: Vec<&str> = drafts.iter().map(|(_, d)| d.as_str()).collect();
            match spec_of(&state, &meta.request) {
                Ok(spec) => produce(&state, &spec, &meta.request.query, &texts, meta.round)
                    .await
                    .map(|g| GuidanceResponse {
                        session: Some(meta.id.clone()),
                        trigger: Some(trigger),
                        drafts_used: Some(drafts.len()),
                        clients: Some(drafts.iter().map(|(c, _)| c.clone()).collect()),
                        ..g
                    }),
                Err(e) => Err(e),
            }
        };
        state.metrics().session_aggregated(trigger.as_str());
        tracing::info!(
            session = %meta.id, trigger = trigger.as_str(), drafts = drafts.len(),
            ok = outcome.is_ok(), "session aggregated"
        );
        let stored = match outcome {
            Ok(g) => Stored::Guidance(Box::new(g)),
            Err(e) => Stored::Error {
                status: e.status.as_u16(),
                body: e.body(),
                retry_after: e.retry_after,
            },
        };
        renewing.abort();
        if let Err(e) = sessions.store.finish(&meta.id, &stored, now_ms()).await {
            tracing::warn!(session = %meta.id, error = %e, "outcome not stored; another replica will aggregate again");
        }
    }));
}

/// The guidance spec of a session's creating request (every replica builds the same).
fn spec_of(state: &AppState, req: &CreateSession) -> Result<GuidanceSpec, ApiError> {
    let spec = GuidanceSpec::new(
        state,
        req.model.clone(),
        &req.options,
        req.max_tokens,
        req.temperature,
    )?;
    if spec.mode == colm_core::guidance::GuidanceMode::ReferenceCritique {
        return Err(ApiError::invalid(
            "reference-critique reviews one client's draft: ask /v1/colm/guidance for it",
            Some("mode"),
        ));
    }
    Ok(spec)
}

/// 400 `context_length_exceeded` (its `param` the field at fault) when `texts` and the
/// guidance's `max_tokens` cannot fit the context of `spec`'s model, which will read them all
/// (counted with its tokenizer, without the prompt's own instructions; nothing is checked for
/// a model that cannot count them locally): a session that could never be aggregated is
/// refused when it is created or fed, not when its guidance is fetched.
fn check_fits(
    state: &AppState,
    spec: &GuidanceSpec,
    texts: &[&str],
    field: &str,
) -> Result<(), ApiError> {
    let Some(m) = spec.model.as_deref().and_then(|id| state.model(id)) else {
        return Ok(());
    };
    let tokens: Option<usize> = texts.iter().map(|t| m.count_tokens(t)).sum();
    let (Some(n_ctx), Some(tokens)) = (m.context_window(), tokens) else {
        return Ok(());
    };
    let max_tokens = spec.params.max_tokens;
    if tokens + max_tokens as usize <= n_ctx {
        return Ok(());
    }
    let mut e = ApiError::from(colm_core::ModelError::ContextOverflow {
        prompt_tokens: tokens as u64,
        max_tokens: u64::from(max_tokens),
        n_ctx: n_ctx as u64,
    });
    e.param = Some(field.to_owned());
    Err(e)
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
    let spec = spec_of(&state, &req)?;
    check_fits(&state, &spec, &[&req.query], "query")?;
    let round = crate::collab::round_of(req.round)?;
    // Held as a digest: a session keeps one copy of its query (in its request).
    let key = crate::state::digest(&format!(
        "{scope}\u{1d}{}\u{1f}{round}\u{1f}{}",
        normalise_query(&req.query),
        spec.key()
    ));
    let sessions = state.sessions();
    let now = now_ms();
    let fresh = Meta {
        id: Sessions::new_id(),
        owner: crate::auth::current_tenant().map_or_else(String::new, |t| t.name),
        scope,
        key: key.clone(),
        model: spec.model.clone(),
        mode: spec.mode.name().to_owned(),
        request: req,
        k,
        round,
        created_ms: now,
        window_ms,
    };
    let kept = Duration::from_millis(window_ms) + KEEP_UNFINISHED + KEEP_FINISHED;
    let joined = sessions
        .store
        .join_or_create(&key, fresh, now, kept, state.config().sessions)
        .await
        .map_err(|e| unavailable(&e))?;
    match joined {
        Joined::Joined(meta) => {
            let snap = sessions.find(&meta.id, &meta.scope).await?;
            Ok((StatusCode::OK, Json(object(&snap, Some(true), now_ms()))).into_response())
        }
        Joined::Created(meta) => {
            let id = meta.id.clone();
            let st = state.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(window_ms)).await;
                st.sessions().drive(&st, &id).await;
            });
            let snap = Snapshot {
                meta,
                status: Status::Open,
                drafts: Vec::new(),
                outcome: None,
                lease_until_ms: 0,
            };
            Ok((StatusCode::CREATED, Json(object(&snap, Some(false), now))).into_response())
        }
        Joined::Full {
            tenant,
            frees_at_ms,
        } => {
            // Truthful: the earliest deadline of the sessions that count, when one of them
            // stops counting at the latest.
            let wait = frees_at_ms.saturating_sub(now_ms()).div_ceil(1000).max(1);
            let caps = state.config().sessions;
            Err(if tenant {
                ApiError {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    message: format!(
                        "this tenant has {} sessions open, its most; retry in {wait} s",
                        caps.per_tenant
                    ),
                    kind: "requests",
                    param: None,
                    code: Some("session_limit_exceeded"),
                    retry_after: Some(wait),
                }
            } else {
                ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: format!(
                        "{} sessions are open, the server's most; retry in {wait} s",
                        caps.total
                    ),
                    kind: "server_error",
                    param: None,
                    code: Some("overloaded"),
                    retry_after: Some(wait),
                }
            })
        }
    }
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
    let sessions = state.sessions();
    let snap = sessions.find(&id, &scope).await?;
    let req: SubmitDraft = parse_body(&state, "/v1/colm/sessions/{id}/drafts", body)?;
    if req.draft.trim().is_empty() {
        return Err(ApiError::invalid(
            "`draft` must not be blank: a blank draft would count toward the session's `k`",
            Some("draft"),
        ));
    }
    let query = &snap.meta.request.query;
    check_fits(
        &state,
        &spec_of(&state, &snap.meta.request)?,
        &[query, &req.draft],
        "draft",
    )?;
    let added = sessions
        .store
        .add_draft(&id, req.client, req.draft, now_ms())
        .await
        .map_err(|e| unavailable(&e))?
        .ok_or_else(|| not_found(&id))?;
    match added {
        Ok(_) => state.metrics().session_draft(),
        Err(status) => {
            // Past its deadline: whoever sees it first aggregates it.
            sessions.drive(&state, &id).await;
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                Some("session_closed"),
                format!(
                    "session {id} is {}: drafts are no longer accepted; fetch its guidance",
                    status.as_str()
                ),
            ));
        }
    }
    sessions.drive(&state, &id).await;
    let snap = sessions.find(&id, &scope).await?;
    Ok(Json(object(&snap, None, now_ms())).into_response())
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
            .find(&id, &scope_of(tenant))
            .await
            .map(|s| Json(object(&s, None, now_ms())).into_response()),
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
    recorder: Option<Extension<crate::log::Recorder>>,
    Path(id): Path<String>,
    q: Result<Query<WaitQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let session = match state.sessions().find(&id, &scope_of(tenant)).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let wait_ms = match q {
        Ok(Query(q)) => q.wait_ms.unwrap_or(0),
        Err(e) => {
            return ApiError::invalid(
                format!("invalid query string: {}", e.body_text()),
                Some("wait_ms"),
            )
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
    let recorder = recorder
        .map(|Extension(r)| r)
        .filter(crate::log::Recorder::active);
    let query = session.meta.request.query.clone();
    if wants_sse {
        let first = Event::default()
            .event("session")
            .json_data(object(&session, None, now_ms()))
            .unwrap_or_default();
        let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(first) })
            .chain(futures::stream::once(async move {
                let outcome = state.sessions().outcome(&state, &id, None).await;
                let (name, data) = match outcome {
                    Ok(Some(Stored::Guidance(g))) => {
                        if let Some(rec) = &recorder {
                            rec.guidance(&g, &query, 0);
                        }
                        ("guidance", serde_json::to_string(&g))
                    }
                    Ok(Some(Stored::Error { body, .. })) => ("error", serde_json::to_string(&body)),
                    Ok(None) => {
                        let e = ApiError::from(colm_core::ModelError::Inference(
                            "session dropped".into(),
                        ));
                        ("error", serde_json::to_string(&e.body()))
                    }
                    Err(e) => ("error", serde_json::to_string(&e.body())),
                };
                Ok(Event::default().event(name).data(data.unwrap_or_default()))
            }));
        let mut response = Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response();
        response.extensions_mut().insert(crate::log::Served);
        return response;
    }
    let sessions = state.sessions();
    match sessions
        .outcome(&state, &id, Some(Duration::from_millis(wait_ms)))
        .await
    {
        Ok(Some(Stored::Guidance(g))) => {
            if let Some(rec) = &recorder {
                rec.guidance(&g, &query, 0);
            }
            let mut response = Json(g).into_response();
            response.extensions_mut().insert(crate::log::Served);
            response
        }
        Ok(Some(stored)) => stored_response(stored),
        Ok(None) => match sessions.find(&id, &session.meta.scope).await {
            Ok(now) => (StatusCode::ACCEPTED, Json(object(&now, None, now_ms()))).into_response(),
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    }
}

fn respond(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}
