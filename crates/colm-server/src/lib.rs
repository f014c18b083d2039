//! colm-server: the HTTP side of a colm server (axum).
//!
//! Routes:
//! - `POST /v1/chat/completions`: OpenAI-compatible chat completions over the hosted models,
//!   plain or streamed as server-sent events ([`openai`]);
//! - `GET /v1/models`: the hosted model ids (names or aliases);
//! - `POST /v1/colm/guidance`: one-shot guidance for a query and its drafts ([`collab`]);
//! - `GET /health`: `{"status": "ok"}`;
//! - `GET /metrics`: Prometheus counters ([`metrics`]);
//! - `GET /openapi.json`: the OpenAPI document of all of these ([`OPENAPI`]).
//!
//! With [`ServerConfig::auth`], the `/v1` routes need `Authorization: Bearer KEY` and are
//! rate-limited per key ([`auth`]). Every error body is OpenAI-shaped ([`error::ApiError`]).
//! Request and response bodies can be zstd- or gzip-compressed, negotiated with the standard
//! `Content-Encoding` / `Accept-Encoding` headers. Request bodies over
//! [`ServerConfig::max_body_bytes`] are refused with 413. The server knows nothing of model
//! internals: it holds [`ChatModel`]s (the embedded engine, or later remote endpoints).
//!
//! ```no_run
//! # async fn demo(model: std::sync::Arc<dyn colm_core::ChatModel>) -> std::io::Result<()> {
//! use colm_server::{AppState, ServerConfig};
//! let state = AppState::new([("qwen".to_owned(), model)], ServerConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! colm_server::serve(listener, state).await
//! # }
//! ```

pub mod auth;
pub mod collab;
pub mod error;
pub mod metrics;
pub mod openai;
pub mod sessions;
pub mod store;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Json, Router};
use colm_core::ChatModel;
use serde_json::json;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;

/// The OpenAPI 3.1 document of every route, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../api/openapi.json");

/// Server limits and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest accepted request body, bytes (413 above).
    pub max_body_bytes: usize,
    /// `max_tokens` when a request gives none.
    pub default_max_tokens: u32,
    /// API keys and rate limits for the `/v1` routes; `None` = open (loopback only).
    pub auth: Option<auth::AuthConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            default_max_tokens: colm_core::DEFAULT_MAX_TOKENS,
            auth: None,
        }
    }
}

struct Inner {
    models: BTreeMap<String, Arc<dyn ChatModel>>,
    metrics: metrics::Metrics,
    sessions: sessions::Sessions,
    store: Option<Arc<store::SharedReferences>>,
    writers: Vec<colm_core::colm::references::ReferenceWriter>,
    auth: Option<auth::Auth>,
    config: ServerConfig,
    created: u64,
}

/// Shared state of the HTTP handlers: the hosted models by id, and the configuration.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// State hosting `models` as `(id, model)` pairs; a later pair with the same id wins.
    pub fn new(
        models: impl IntoIterator<Item = (String, Arc<dyn ChatModel>)>,
        config: ServerConfig,
    ) -> Self {
        Self::with_guidance_store(models, config, None)
    }

    /// As [`AppState::new`], sharing round 1's references and their synthesis through `store`
    /// when given (the same store a virtual `colm` model may hold, so both share).
    pub fn with_guidance_store(
        models: impl IntoIterator<Item = (String, Arc<dyn ChatModel>)>,
        config: ServerConfig,
        store: Option<Arc<store::SharedReferences>>,
    ) -> Self {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self(Arc::new(Inner {
            models: models.into_iter().collect(),
            metrics: metrics::Metrics::default(),
            sessions: sessions::Sessions::default(),
            store,
            writers: Vec::new(),
            auth: config.auth.clone().map(auth::Auth::new),
            config,
            created,
        }))
    }
    /// The same state with `writers` as the server's reference writers (the pool of
    /// server-side collaborators of the reference modes; none: the request's `model` alone).
    ///
    /// # Errors
    /// When the state was already cloned (call it right after construction), or two writers
    /// share an id.
    pub fn with_writers(
        mut self,
        writers: Vec<colm_core::colm::references::ReferenceWriter>,
    ) -> Result<Self, String> {
        colm_core::colm::references::check_pool(&writers)?;
        let inner = Arc::get_mut(&mut self.0)
            .ok_or("reference writers must be set before the state is shared")?;
        inner.writers = writers;
        Ok(self)
    }

    /// The server's reference writers (empty: the request's `model` writes alone).
    pub fn writers(&self) -> &[colm_core::colm::references::ReferenceWriter] {
        &self.0.writers
    }

    /// The hosted model with this id.
    pub fn model(&self, id: &str) -> Option<Arc<dyn ChatModel>> {
        self.0.models.get(id).cloned()
    }
    /// Ids of the hosted models, sorted.
    pub fn model_ids(&self) -> Vec<String> {
        self.0.models.keys().cloned().collect()
    }
    /// The shared references, when sharing is on.
    pub fn shared_references(&self) -> Option<&Arc<store::SharedReferences>> {
        self.0.store.as_ref()
    }
    /// The shared sessions.
    pub fn sessions(&self) -> &sessions::Sessions {
        &self.0.sessions
    }
    /// The request and token counters.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.0.metrics
    }
    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }
    /// Unix time (s) the state was created, reported as the models' `created`.
    pub fn created(&self) -> u64 {
        self.0.created
    }
}

/// The router with every route, limit and trace layer.
pub fn router(state: AppState) -> Router {
    let limit = state.config().max_body_bytes;
    let mut v1 = Router::new()
        .route("/v1/models", get(openai::list_models))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/colm/guidance", post(collab::one_shot))
        .route("/v1/colm/sessions", post(sessions::create))
        .route("/v1/colm/sessions/{id}", get(sessions::show))
        .route("/v1/colm/sessions/{id}/drafts", post(sessions::submit))
        .route("/v1/colm/sessions/{id}/guidance", get(sessions::guidance));
    if let Some(auth) = &state.0.auth {
        v1 = v1.route_layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            auth::require_key,
        ));
    }
    Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/metrics", get(metrics::handler))
        .route(
            "/openapi.json",
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    OPENAPI,
                )
            }),
        )
        .merge(v1)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count,
        ))
        .fallback(|uri: axum::http::Uri| async move {
            let mut e = ApiError::invalid(format!("no route for {uri}"), None);
            e.status = axum::http::StatusCode::NOT_FOUND;
            e
        })
        .layer(DefaultBodyLimit::max(limit))
        // Bodies may arrive zstd/gzip-compressed (Content-Encoding) and leave compressed when
        // the client accepts it (Accept-Encoding); SSE streams are never compressed.
        .layer(RequestDecompressionLayer::new())
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves `state` on `listener` until ctrl-c.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// Whether binding to `ip` keeps the server on this machine; `colm serve` requires API keys
/// for any other address.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        for route in [
            "/health",
            "/metrics",
            "/openapi.json",
            "/v1/models",
            "/v1/chat/completions",
            "/v1/colm/guidance",
            "/v1/colm/sessions",
            "/v1/colm/sessions/{id}",
            "/v1/colm/sessions/{id}/drafts",
            "/v1/colm/sessions/{id}/guidance",
        ] {
            assert!(paths.contains_key(route), "{route} missing");
        }
        assert_eq!(
            paths.len(),
            10,
            "a documented route is not served, or the reverse"
        );
    }
}
