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
//!
//! Under `protect_ops` the metrics need a key and show what the key's tenant may see
//! ([`View`]): everything to an operator's key ([`crate::auth::AuthConfig::operators`]), to any
//! other key only the per-tenant series of its own tenant.

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

/// Who reads the metrics, and so which series they show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View<'a> {
    /// Every series (open metrics, or an operator's key).
    All,
    /// The per-tenant series of this tenant alone (a tenant's key under `protect_ops`).
    Tenant(&'a str),
}

impl View<'_> {
    /// Whether the series of `tenant` are shown.
    fn shows(&self, tenant: &str) -> bool {
        match self {
            Self::All => true,
            Self::Tenant(own) => *own == tenant,
        }
    }
}

/// Renders the series `view` shows; `budgets`: the tokens left per tenant
/// ([`crate::auth::Auth::budgets_left`]).
pub fn render(state: &AppState, budgets: Option<Vec<(String, f64)>>, view: View<'_>) -> String {
    let mut out = String::new();
    if view == View::All {
        render_server(state, &mut out);
    }
    render_tenants(state, budgets, view, &mut out);
    out
}

/// The server's own series (requests, tokens and queues by route and model).
fn render_server(state: &AppState, out: &mut String) {
    let m = state.metrics();
    family(
        out,
        ("colm_requests_total", "HTTP requests answered.", "counter"),
        lock(&m.requests).iter().map(|((route, status), n)| {
            (
                format!("route=\"{}\",status=\"{status}\"", label(route)),
                n.to_string(),
            )
        }),
    );
    family(
        out,
        (
            "colm_request_bytes_total",
            "Request body bytes read (decompressed).",
            "counter",
        ),
        lock(&m.request_bytes)
            .iter()
            .map(|(route, n)| (format!("route=\"{}\"", label(route)), n.to_string())),
    );
    let tokens = lock(&m.tokens).clone();
    for (pick, name, help) in [
        (
            0,
            "colm_prompt_tokens_total",
            "Prompt tokens of successful completions.",
        ),
        (
            1,
            "colm_completion_tokens_total",
            "Completion tokens of successful completions.",
        ),
        (
            2,
            "colm_model_calls_total",
            "Successful model calls (completions, guidance, CoLM steps).",
        ),
    ] {
        family(
            out,
            (name, help, "counter"),
            tokens.iter().map(|(model, &(p, c, n))| {
                (
                    format!("model=\"{}\"", label(model)),
                    [p, c, n][pick].to_string(),
                )
            }),
        );
    }
    let scalar = |v: u64| std::iter::once((String::new(), v.to_string()));
    family(
        out,
        (
            "colm_shared_guidance_hits_total",
            "Guidance served from the shared store.",
            "counter",
        ),
        scalar(state.shared_references().map_or(0, |s| s.hits())),
    );
    family(
        out,
        (
            "colm_session_drafts_total",
            "Drafts accepted by shared sessions.",
            "counter",
        ),
        scalar(m.session_drafts.load(std::sync::atomic::Ordering::Relaxed)),
    );
    family(
        out,
        (
            "colm_session_aggregations_total",
            "Shared sessions aggregated, by trigger.",
            "counter",
        ),
        lock(&m.session_aggregations)
            .iter()
            .map(|(trigger, n)| (format!("trigger=\"{trigger}\""), n.to_string())),
    );
    let per_model = |read: fn(&dyn colm_core::ChatModel) -> Option<usize>| {
        state
            .model_ids()
            .into_iter()
            .filter_map(|id| {
                let v = state.model(&id).and_then(|m| read(m.as_ref()))?;
                Some((format!("model=\"{}\"", label(&id)), v.to_string()))
            })
            .collect::<Vec<_>>()
    };
    family(
        out,
        ("colm_queue_depth", "Requests waiting per model.", "gauge"),
        per_model(|m| m.queue_depth()),
    );
    family(
        out,
        (
            "colm_active_requests",
            "Requests a model is serving now (prefilling or decoding).",
            "gauge",
        ),
        per_model(|m| m.active_requests()),
    );
}

/// The per-tenant series of the tenants `view` shows.
fn render_tenants(
    state: &AppState,
    budgets: Option<Vec<(String, f64)>>,
    view: View<'_>,
    out: &mut String,
) {
    let m = state.metrics();
    family(
        out,
        (
            "colm_tenant_requests_total",
            "Requests answered to each tenant.",
            "counter",
        ),
        lock(&m.tenant_requests)
            .iter()
            .filter(|((tenant, _), _)| view.shows(tenant))
            .map(|((tenant, status), n)| {
                (
                    format!("tenant=\"{}\",status=\"{status}\"", label(tenant)),
                    n.to_string(),
                )
            }),
    );
    let tenant_tokens = lock(&m.tenant_tokens).clone();
    for (pick, name, help) in [
        (
            0,
            "colm_tenant_prompt_tokens_total",
            "Prompt tokens of the model calls made for each tenant.",
        ),
        (
            1,
            "colm_tenant_completion_tokens_total",
            "Completion tokens of the model calls made for each tenant.",
        ),
    ] {
        family(
            out,
            (name, help, "counter"),
            tenant_tokens
                .iter()
                .filter(|(tenant, _)| view.shows(tenant))
                .map(|(tenant, &(p, c))| {
                    (
                        format!("tenant=\"{}\"", label(tenant)),
                        [p, c][pick].to_string(),
                    )
                }),
        );
    }
    if let Some(left) = budgets {
        family(
            out,
            (
                "colm_tenant_budget_tokens",
                "Tokens left in each tenant's hourly budget.",
                "gauge",
            ),
            left.into_iter()
                .filter(|(t, _)| view.shows(t))
                .map(|(tenant, n)| {
                    (
                        format!("tenant=\"{}\"", label(&tenant)),
                        n.floor().to_string(),
                    )
                }),
        );
    }
}

/// Appends one metric family to `out`: its HELP and TYPE lines (`meta` = name, help, type),
/// then one sample per `(labels, value)` (`labels` already escaped, `""` for none).
fn family(
    out: &mut String,
    (name, help, kind): (&str, &str, &str),
    samples: impl IntoIterator<Item = (String, String)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    summary = "Prometheus metrics (text exposition format 0.0.4)",
    responses((status = 200, description = "The metrics", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn handler(
    State(state): State<AppState>,
    tenant: Option<axum::Extension<crate::auth::Tenant>>,
) -> Response {
    let budgets = match state.auth() {
        Some(auth) => auth.budgets_left().await,
        None => None,
    };
    // Under protect_ops the key check ran and left the request's tenant.
    let view = match (state.auth(), &tenant) {
        (Some(auth), Some(t)) if auth.protects_ops() && !auth.is_operator(&t.name) => {
            View::Tenant(&t.name)
        }
        (Some(auth), None) if auth.protects_ops() => View::Tenant(""),
        _ => View::All,
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&state, budgets, view),
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
