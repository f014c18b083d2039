//! `GET /metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! Series:
//! - `colm_requests_total{route,status}`: HTTP requests answered;
//! - `colm_request_bytes_total{route}`: request body bytes read by the handlers (after
//!   decompression);
//! - `colm_prompt_tokens_total{model}`, `colm_completion_tokens_total{model}`: tokens of
//!   successful completions;
//! - `colm_model_calls_total{model}`: successful model calls;
//! - `colm_shared_guidance_hits_total`: guidance served from the shared store;
//! - `colm_session_drafts_total`: drafts accepted by shared sessions;
//! - `colm_session_aggregations_total{trigger}`: sessions aggregated, by trigger (`k`,
//!   `deadline`);
//! - `colm_queue_depth{model}`: requests waiting per model (gauge);
//! - `colm_active_requests{model}`: requests a model is serving now, prefilling or decoding
//!   (gauge; with the queue at 0, the model is idle).
//!
//! With API keys, per tenant (the tenant names of the key file):
//! - `colm_tenant_requests_total{tenant,status}`: requests answered to the tenant (its 429s
//!   included);
//! - `colm_tenant_prompt_tokens_total{tenant}`, `colm_tenant_completion_tokens_total{tenant}`:
//!   tokens of the model calls made for it (a session's aggregation counts for its creator);
//! - `colm_tenant_budget_tokens{tenant}`: tokens left in its budget now (gauge; with
//!   `tokens_per_hour` only; negative when the last request overdrew it).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, PoisonError};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Counters shared by the handlers.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    request_bytes: Mutex<BTreeMap<String, u64>>,
    tokens: Mutex<BTreeMap<String, (u64, u64, u64)>>,
    session_drafts: std::sync::atomic::AtomicU64,
    session_aggregations: Mutex<BTreeMap<&'static str, u64>>,
    tenant_requests: Mutex<BTreeMap<(String, u16), u64>>,
    tenant_tokens: Mutex<BTreeMap<String, (u64, u64)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, route: &str, status: u16) {
        *lock(&self.requests)
            .entry((route.to_owned(), status))
            .or_default() += 1;
    }
    /// Counts request body bytes.
    pub fn request_bytes(&self, route: &str, n: usize) {
        *lock(&self.request_bytes)
            .entry(route.to_owned())
            .or_default() += n as u64;
    }
    /// Counts a draft accepted by a session.
    pub fn session_draft(&self) {
        self.session_drafts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    /// Counts a session aggregation by its trigger.
    pub fn session_aggregated(&self, trigger: &'static str) {
        *lock(&self.session_aggregations).entry(trigger).or_default() += 1;
    }
    /// Counts tokens of a model call made for `tenant`.
    pub fn tenant_tokens(&self, tenant: &str, prompt: u64, completion: u64) {
        let mut t = lock(&self.tenant_tokens);
        let e = t.entry(tenant.to_owned()).or_default();
        e.0 += prompt;
        e.1 += completion;
    }
    /// Counts a successful model call and its tokens.
    pub fn tokens(&self, model: &str, prompt: u64, completion: u64) {
        let mut t = lock(&self.tokens);
        let e = t.entry(model.to_owned()).or_default();
        e.0 += prompt;
        e.1 += completion;
        e.2 += 1;
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders every series.
pub fn render(state: &AppState) -> String {
    let m = state.metrics();
    let mut out = String::new();
    let _ = writeln!(out, "# HELP colm_requests_total HTTP requests answered.");
    let _ = writeln!(out, "# TYPE colm_requests_total counter");
    for ((route, status), n) in lock(&m.requests).iter() {
        let _ = writeln!(
            out,
            "colm_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
            label(route)
        );
    }
    let _ = writeln!(
        out,
        "# HELP colm_request_bytes_total Request body bytes read (decompressed)."
    );
    let _ = writeln!(out, "# TYPE colm_request_bytes_total counter");
    for (route, n) in lock(&m.request_bytes).iter() {
        let _ = writeln!(
            out,
            "colm_request_bytes_total{{route=\"{}\"}} {n}",
            label(route)
        );
    }
    let tokens = lock(&m.tokens);
    for (name, help, pick) in [
        (
            "colm_prompt_tokens_total",
            "Prompt tokens of successful completions.",
            0,
        ),
        (
            "colm_completion_tokens_total",
            "Completion tokens of successful completions.",
            1,
        ),
        (
            "colm_model_calls_total",
            "Successful model calls (completions, guidance, CoLM steps).",
            2,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (model, (p, c, n)) in tokens.iter() {
            let v = [p, c, n][pick];
            let _ = writeln!(out, "{name}{{model=\"{}\"}} {v}", label(model));
        }
    }
    let _ = writeln!(
        out,
        "# HELP colm_shared_guidance_hits_total Guidance served from the shared store."
    );
    let _ = writeln!(out, "# TYPE colm_shared_guidance_hits_total counter");
    let _ = writeln!(
        out,
        "colm_shared_guidance_hits_total {}",
        state.shared_references().map_or(0, |s| s.hits())
    );
    let _ = writeln!(
        out,
        "# HELP colm_session_drafts_total Drafts accepted by shared sessions."
    );
    let _ = writeln!(out, "# TYPE colm_session_drafts_total counter");
    let _ = writeln!(
        out,
        "colm_session_drafts_total {}",
        m.session_drafts.load(std::sync::atomic::Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP colm_session_aggregations_total Shared sessions aggregated, by trigger."
    );
    let _ = writeln!(out, "# TYPE colm_session_aggregations_total counter");
    for (trigger, n) in lock(&m.session_aggregations).iter() {
        let _ = writeln!(
            out,
            "colm_session_aggregations_total{{trigger=\"{trigger}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP colm_tenant_requests_total Requests answered to each tenant."
    );
    let _ = writeln!(out, "# TYPE colm_tenant_requests_total counter");
    for ((tenant, status), n) in lock(&m.tenant_requests).iter() {
        let _ = writeln!(
            out,
            "colm_tenant_requests_total{{tenant=\"{}\",status=\"{status}\"}} {n}",
            label(tenant)
        );
    }
    let tenant_tokens = lock(&m.tenant_tokens);
    for (name, help, pick) in [
        (
            "colm_tenant_prompt_tokens_total",
            "Prompt tokens of the model calls made for each tenant.",
            0,
        ),
        (
            "colm_tenant_completion_tokens_total",
            "Completion tokens of the model calls made for each tenant.",
            1,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (tenant, (p, c)) in tenant_tokens.iter() {
            let v = [p, c][pick];
            let _ = writeln!(out, "{name}{{tenant=\"{}\"}} {v}", label(tenant));
        }
    }
    drop(tenant_tokens);
    if let Some(left) = state.auth().and_then(crate::auth::Auth::budgets_left) {
        let _ = writeln!(
            out,
            "# HELP colm_tenant_budget_tokens Tokens left in each tenant's hourly budget."
        );
        let _ = writeln!(out, "# TYPE colm_tenant_budget_tokens gauge");
        for (tenant, n) in left {
            let _ = writeln!(
                out,
                "colm_tenant_budget_tokens{{tenant=\"{}\"}} {}",
                label(&tenant),
                n.floor()
            );
        }
    }
    let _ = writeln!(out, "# HELP colm_queue_depth Requests waiting per model.");
    let _ = writeln!(out, "# TYPE colm_queue_depth gauge");
    for id in state.model_ids() {
        if let Some(d) = state.model(&id).and_then(|m| m.queue_depth()) {
            let _ = writeln!(out, "colm_queue_depth{{model=\"{}\"}} {d}", label(&id));
        }
    }
    let _ = writeln!(
        out,
        "# HELP colm_active_requests Requests a model is serving now (prefilling or decoding)."
    );
    let _ = writeln!(out, "# TYPE colm_active_requests gauge");
    for id in state.model_ids() {
        if let Some(n) = state.model(&id).and_then(|m| m.active_requests()) {
            let _ = writeln!(out, "colm_active_requests{{model=\"{}\"}} {n}", label(&id));
        }
    }
    out
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    summary = "Prometheus metrics (text exposition format 0.0.4)",
    responses((status = 200, description = "The metrics", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn handler(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&state),
    )
        .into_response()
}

/// Middleware counting every answered request by matched route and status.
pub async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    state.metrics().request(&route, status);
    if let Some(crate::auth::AnsweredFor(tenant)) = response.extensions().get() {
        *lock(&state.metrics().tenant_requests)
            .entry((tenant.clone(), status))
            .or_default() += 1;
    }
    response
}
