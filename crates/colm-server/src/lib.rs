//! colm-server: the HTTP side of a colm server (axum).
//!
//! Routes:
//! - `POST /v1/chat/completions`: OpenAI-compatible chat completions over the hosted models,
//!   plain or streamed as server-sent events ([`openai`]);
//! - `POST /v1/completions`: OpenAI's legacy text completions, a raw prompt continued by an
//!   embedded model ([`openai::completions`]);
//! - `POST /v1/embeddings`: OpenAI-compatible embeddings from the hosted embedding models
//!   ([`openai::embeddings`]);
//! - `GET /v1/models`: the hosted model ids (names or aliases);
//! - `POST /v1/colm/guidance`: one-shot guidance for a query and its drafts ([`collab`]);
//! - `/v1/colm/sessions…`: shared sessions ([`sessions`]);
//! - `POST /v1/colm/feedback`: an outcome for a served request's record ([`log`]);
//! - `GET /health`: `{"status": "ok"}`;
//! - `GET /metrics`: Prometheus counters ([`metrics`]);
//! - `GET /openapi.json`: the OpenAPI document of all of these ([`openapi`]), generated from
//!   the handlers' annotations and the wire types of [`colm_api`].
//!
//! With [`ServerConfig::auth`], the `/v1` routes need `Authorization: Bearer KEY` and are
//! rate-limited per key ([`auth`]). Every error body is OpenAI-shaped ([`error::ApiError`]).
//! Request and response bodies can be zstd- or gzip-compressed, negotiated with the standard
//! `Content-Encoding` / `Accept-Encoding` headers. Request bodies over
//! [`ServerConfig::max_body_bytes`] are refused with 413. Requests must name an allowed `Host`
//! ([`ServerConfig::hosts`]; by default the loopback names) and send JSON as
//! `application/json`; CORS is off unless [`ServerConfig::cors_origins`] lists origins
//! ([`origin`]). The server knows nothing of model
//! internals: it holds [`ChatModel`]s (the embedded engine, or upstream endpoints). Replicas
//! share sessions, references and limits through Redis ([`state`],
//! [`AppState::with_shared_state`]); an interaction log records what was served ([`log`],
//! [`AppState::with_log`]).
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
pub mod body;
pub mod charge;
pub mod collab;
pub mod contract;
pub mod error;
pub mod images;
pub mod inflight;
pub mod listen;
pub mod log;
pub mod metrics;
pub mod openai;
pub mod origin;
pub mod sessions;
pub mod state;
pub mod store;
pub mod ui;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, State};
use axum::{Json, Router};
use colm_api::openai::Health;
use colm_core::ChatModel;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;

/// The document's fixed parts: title, description, the bearer scheme, the schemas that are
/// reached only through server-sent events.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "colm server API",
        description = "OpenAI-compatible chat completions over hosted models, plus colm's \
            collaboration API (CoLM, Huang, Huang, Zhang, AAAI 2026). Errors use OpenAI's error \
            object. With API keys configured, the /v1 routes need `Authorization: Bearer KEY`."
    ),
    modifiers(&BearerAuth),
    components(schemas(colm_api::openai::ErrorBody, colm_api::openai::ChatCompletionChunk))
)]
struct ApiDoc;

/// Adds the `bearer` security scheme, required by the `/v1` routes when keys are configured
/// (so optional in the document: `[{}, {"bearer": []}]`).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        doc.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new("bearer", Vec::<String>::new()),
        ]);
    }
}

/// The OpenAPI 3.1 document of every route, served at `/openapi.json`: generated from the
/// routes [`router`] serves (their `#[utoipa::path]` annotations) and the types of
/// [`colm_api`], so it cannot list a route that is not served or miss one that is.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes(None).split_for_parts().1
}

/// `GET /health`.
#[utoipa::path(get, path = "/health", tag = "operations", summary = "Liveness",
    responses((status = 200, description = "The server is up", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
async fn openapi_json(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let doc = state.0.document.get_or_init(|| {
        let mut caps = contract::Capabilities::of(&state.models_by_every_name());
        caps.embedders = state
            .embedders()
            .map(|(id, e)| (id.clone(), e.dimensions()))
            .collect();
        serde_json::to_string_pretty(&contract::document(&caps)).unwrap_or_default()
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc.clone(),
    )
        .into_response()
}

/// Every route with its OpenAPI annotation; with `state` (`None`: the document alone), `/v1`
/// behind the interaction recorder ([`log::record`]) and the key check when the state has keys
/// (else served as the anonymous tenant), and `/metrics` and `/openapi.json` too when it
/// protects them.
fn routes(state: Option<&AppState>) -> OpenApiRouter<AppState> {
    let auth = state.and_then(|s| s.0.auth.clone());
    let mut v1 = OpenApiRouter::new()
        .routes(routes!(openai::list_models))
        .routes(routes!(openai::chat_completions))
        .routes(routes!(openai::completions::completions))
        .routes(routes!(openai::embeddings::embeddings))
        .routes(routes!(collab::one_shot))
        .routes(routes!(sessions::create))
        .routes(routes!(sessions::show))
        .routes(routes!(sessions::submit))
        .routes(routes!(sessions::guidance))
        .routes(routes!(log::feedback))
        .routes(routes!(log::records::list))
        .routes(routes!(log::records::show));
    if let Some(state) = state {
        v1 = v1.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            log::record,
        ));
    }
    let mut ops = OpenApiRouter::new()
        .routes(routes!(metrics::handler))
        .routes(routes!(openapi_json));
    if let Some(auth) = auth {
        if auth.protects_ops() {
            ops = ops.route_layer(axum::middleware::from_fn_with_state(
                auth.clone(),
                auth::require_key_ops,
            ));
        }
        v1 = v1.route_layer(axum::middleware::from_fn_with_state(
            auth,
            auth::require_key,
        ));
    } else {
        v1 = v1.route_layer(axum::middleware::from_fn(auth::anonymous));
    }
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .merge(ops)
        .merge(v1)
}

/// Server limits and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest accepted request body, bytes (413 above).
    pub max_body_bytes: usize,
    /// `max_tokens` when a request gives none.
    pub default_max_tokens: u32,
    /// API keys and rate limits for the `/v1` routes; `None` = open (loopback only).
    pub auth: Option<auth::AuthConfig>,
    /// Largest image of an `image_url` content part, decoded bytes (400 above).
    pub max_image_bytes: usize,
    /// Pass `http(s)://` image URLs on to vision models (which fetch them); off: only
    /// `data:` URLs.
    pub allow_image_urls: bool,
    /// The `Host` names served (403 `host_not_allowed` for others); default: the loopback
    /// names ([`origin::HostPolicy::loopback`]).
    pub hosts: origin::HostPolicy,
    /// Web origins that may call the API from a page (CORS, [`origin::cors`]); default none
    /// (CORS off).
    pub cors_origins: Vec<axum::http::HeaderValue>,
    /// Timeouts and the number of connections at once ([`listen`]).
    pub connections: listen::ConnectionLimits,
    /// Caps on the sessions open at once: in all, and per tenant ([`sessions`]).
    pub sessions: sessions::store::OpenCaps,
}

/// Largest image by default, decoded bytes (OpenAI's limit per image: 20 MB).
pub const DEFAULT_MAX_IMAGE_BYTES: usize = 20_000_000;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            default_max_tokens: colm_core::DEFAULT_MAX_TOKENS,
            auth: None,
            max_image_bytes: DEFAULT_MAX_IMAGE_BYTES,
            allow_image_urls: false,
            hosts: origin::HostPolicy::loopback(),
            cors_origins: Vec::new(),
            connections: listen::ConnectionLimits::default(),
            sessions: sessions::store::OpenCaps {
                total: sessions::MAX_OPEN,
                per_tenant: sessions::MAX_OPEN_PER_TENANT,
            },
        }
    }
}

struct Inner {
    models: BTreeMap<String, Arc<dyn ChatModel>>,
    /// Embedding models by name ([`AppState::with_embedders`]).
    embedders: BTreeMap<String, Arc<dyn colm_core::EmbeddingModel>>,
    /// The first of them ([`AppState::selection_embedder`]).
    selection_embedder: Option<Arc<dyn colm_core::EmbeddingModel>>,
    /// Other names of hosted models: name → hosted id ([`AppState::with_other_names`]).
    other_names: BTreeMap<String, String>,
    metrics: metrics::Metrics,
    sessions: sessions::Sessions,
    store: Option<Arc<store::SharedReferences>>,
    /// What collaborations read and write shared references through: `store`, or an index
    /// over it ([`AppState::with_reference_store`]).
    reference_store: Option<Arc<dyn colm_core::colm::references::ReferenceStore>>,
    log: Option<Arc<log::InteractionLog>>,
    writers: Vec<colm_core::colm::references::ReferenceWriter>,
    auth: Option<auth::Auth>,
    config: ServerConfig,
    created: u64,
    /// The served OpenAPI document, rendered on first request ([`contract::document`]).
    document: std::sync::OnceLock<String>,
}

/// Shared state of the HTTP handlers: the hosted models by id, and the configuration.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// A server that cannot be set up as asked.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A part of the state given after the state was shared (cloned): set it right after
    /// construction.
    #[error("{0} must be set before the state is shared")]
    AlreadyShared(&'static str),
    /// An unusable setting (two reference writers with one id, …).
    #[error(transparent)]
    Invalid(#[from] colm_core::Invalid),
    /// An embedding model named as a hosted chat model.
    #[error("`{0}` names a chat model already; an embedding model needs its own name")]
    NameTaken(String),
}

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
            embedders: BTreeMap::new(),
            selection_embedder: None,
            other_names: BTreeMap::new(),
            metrics: metrics::Metrics::default(),
            sessions: sessions::Sessions::default(),
            store,
            reference_store: None,
            log: None,
            writers: Vec::new(),
            auth: config.auth.clone().map(auth::Auth::new),
            config,
            created,
            document: std::sync::OnceLock::new(),
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
    ) -> Result<Self, SetupError> {
        colm_core::colm::references::check_pool(&writers)?;
        let inner =
            Arc::get_mut(&mut self.0).ok_or(SetupError::AlreadyShared("reference writers"))?;
        inner.writers = writers;
        Ok(self)
    }

    /// The same state with its sessions, rate-limit buckets and token budgets in the Redis
    /// that replicas share ([`state`]; shared references go there when the store given to
    /// [`AppState::with_guidance_store`] is [`store::SharedReferences::redis`]).
    ///
    /// # Errors
    /// When the state was already cloned (call it right after construction).
    pub fn with_shared_state(mut self, redis: state::RedisState) -> Result<Self, SetupError> {
        let inner =
            Arc::get_mut(&mut self.0).ok_or(SetupError::AlreadyShared("the shared state"))?;
        inner.sessions = sessions::Sessions::redis(redis.clone());
        inner.auth = inner.auth.take().map(|a| a.shared(redis));
        Ok(self)
    }

    /// The same state keeping an interaction log ([`log`]).
    ///
    /// # Errors
    /// When the state was already cloned (call it right after construction).
    pub fn with_log(mut self, log: log::InteractionLog) -> Result<Self, SetupError> {
        let inner =
            Arc::get_mut(&mut self.0).ok_or(SetupError::AlreadyShared("the interaction log"))?;
        inner.log = Some(Arc::new(log));
        Ok(self)
    }

    /// The same state sharing references through `store` (a paraphrase index over the shared
    /// references, `colm_core::colm::paraphrase::ParaphraseStore`) rather than the shared
    /// references themselves.
    ///
    /// # Errors
    /// When the state was already cloned (call it right after construction).
    pub fn with_reference_store(
        mut self,
        store: Arc<dyn colm_core::colm::references::ReferenceStore>,
    ) -> Result<Self, SetupError> {
        let inner =
            Arc::get_mut(&mut self.0).ok_or(SetupError::AlreadyShared("the reference store"))?;
        inner.reference_store = Some(store);
        Ok(self)
    }

    /// Where collaborations share references: the paraphrase index when one is set, else the
    /// shared references; `None` when nothing is shared.
    pub fn reference_store(&self) -> Option<&dyn colm_core::colm::references::ReferenceStore> {
        match (&self.0.reference_store, &self.0.store) {
            (Some(s), _) => Some(s.as_ref()),
            (None, Some(s)) => Some(s.as_ref()),
            (None, None) => None,
        }
    }

    /// The same state serving `embedders` at `POST /v1/embeddings`, each under its name.
    ///
    /// # Errors
    /// When the state was already cloned (call it right after construction), or a name is
    /// a hosted chat model's too.
    pub fn with_embedders(
        mut self,
        embedders: impl IntoIterator<Item = Arc<dyn colm_core::EmbeddingModel>>,
    ) -> Result<Self, SetupError> {
        let inner =
            Arc::get_mut(&mut self.0).ok_or(SetupError::AlreadyShared("embedding models"))?;
        for e in embedders {
            let name = e.name().to_owned();
            if inner.models.contains_key(&name) {
                return Err(SetupError::NameTaken(name));
            }
            if inner.selection_embedder.is_none() {
                inner.selection_embedder = Some(e.clone());
            }
            inner.embedders.insert(name, e);
        }
        Ok(self)
    }

    /// The embedding model of this name.
    pub fn embedder(&self, name: &str) -> Option<Arc<dyn colm_core::EmbeddingModel>> {
        self.0.embedders.get(name).cloned()
    }

    /// The embedding model colm compares texts with (the `embedding` selector of reference
    /// writers): the first given to [`AppState::with_embedders`].
    pub fn selection_embedder(&self) -> Option<Arc<dyn colm_core::EmbeddingModel>> {
        self.0.selection_embedder.clone()
    }

    /// The embedding models by name, sorted.
    pub fn embedders(
        &self,
    ) -> impl Iterator<Item = (&String, &Arc<dyn colm_core::EmbeddingModel>)> {
        self.0.embedders.iter()
    }

    /// The interaction log, when one is kept.
    pub fn log(&self) -> Option<&Arc<log::InteractionLog>> {
        self.0.log.as_ref()
    }

    /// The server's reference writers (empty: the request's `model` writes alone).
    pub fn writers(&self) -> &[colm_core::colm::references::ReferenceWriter] {
        &self.0.writers
    }

    /// The hosted model with this id, or with this other name ([`AppState::with_other_names`]).
    pub fn model(&self, id: &str) -> Option<Arc<dyn ChatModel>> {
        let id = self.0.other_names.get(id).map_or(id, String::as_str);
        self.0.models.get(id).cloned()
    }

    /// The id of the hosted model `name` names: `name` itself when it is a hosted id, the id
    /// it stands for when it is another name ([`AppState::with_other_names`]), else `None`.
    /// Requests are served, counted and shared under this id.
    pub fn hosted_id(&self, name: &str) -> Option<String> {
        let id = self.0.other_names.get(name).map_or(name, String::as_str);
        self.0.models.contains_key(id).then(|| id.to_owned())
    }

    /// The same state where each `(name, id)` of `names` makes the hosted model `id` answer
    /// requests for `name` too: the catalog name or file of a model served under an alias
    /// (`colm serve --model qwen2.5-coder-0.5b-instruct=small` answers `small` and the catalog
    /// name). Other names are not listed in `GET /v1/models`; a name that is a hosted id, or
    /// points at no hosted id, is left out.
    ///
    /// # Errors
    /// When the state was already cloned (call it right after construction).
    pub fn with_other_names(
        mut self,
        names: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SetupError> {
        let inner = Arc::get_mut(&mut self.0).ok_or(SetupError::AlreadyShared("other names"))?;
        for (name, id) in names {
            if !inner.models.contains_key(&name) && inner.models.contains_key(&id) {
                inner.other_names.insert(name, id);
            }
        }
        Ok(self)
    }

    /// Every name a hosted model answers to (its id and its other names), with the model.
    fn models_by_every_name(&self) -> BTreeMap<String, Arc<dyn ChatModel>> {
        let mut all = self.0.models.clone();
        for (name, id) in &self.0.other_names {
            if let Some(m) = self.0.models.get(id) {
                all.insert(name.clone(), m.clone());
            }
        }
        all
    }
    /// Ids of the hosted models, sorted.
    pub fn model_ids(&self) -> Vec<String> {
        self.0.models.keys().cloned().collect()
    }
    /// The hosted models (virtual ones included) by id, sorted.
    pub fn hosted(&self) -> impl Iterator<Item = (&String, &Arc<dyn ChatModel>)> {
        self.0.models.iter()
    }
    /// The shared references, when sharing is on.
    pub fn shared_references(&self) -> Option<&Arc<store::SharedReferences>> {
        self.0.store.as_ref()
    }
    /// The shared sessions.
    pub fn sessions(&self) -> &sessions::Sessions {
        &self.0.sessions
    }
    /// The key checker (`None` without keys).
    pub fn auth(&self) -> Option<&auth::Auth> {
        self.0.auth.as_ref()
    }
    /// The request and token counters.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.0.metrics
    }
    /// Records a successful call of `model` costing `prompt` + `completion` tokens: counted in
    /// the metrics, and for the tenant being served ([`auth::current_tenant`]) in its series
    /// and charged to its token budget; noted in the request's meter as recorded.
    pub fn record_tokens(&self, model: &str, prompt: u64, completion: u64) {
        let tenant = auth::current_tenant();
        self.spend(tenant.as_ref(), model, prompt, completion, 0);
        // Recorded: a request's charge counts only the rest ([`charge::Charge`]).
        if let Some(m) = colm_core::Meter::current() {
            m.recorded(colm_core::Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                cached_tokens: 0,
            });
        }
    }
    /// Records `prompt` + `completion` tokens spent on `model` for `tenant`: counted in the
    /// metrics and, for a named tenant, in its series and charged to its token budget less
    /// `reserved`, the tokens its request reserved before it ran ([`charge::Charge`]).
    pub fn spend(
        &self,
        tenant: Option<&auth::Tenant>,
        model: &str,
        prompt: u64,
        completion: u64,
        reserved: u64,
    ) {
        // (Nothing spent: no series to start, only a reservation to give back.)
        let spent = prompt + completion > 0;
        if spent {
            self.0.metrics.tokens(model, prompt, completion);
        }
        if let Some(tenant) = tenant.filter(|t| !t.name.is_empty()) {
            if spent {
                self.0
                    .metrics
                    .tenant_tokens(&tenant.name, prompt, completion);
            }
            if let Some(auth) = &self.0.auth {
                auth.charge(&tenant.name, (prompt + completion) as f64 - reserved as f64);
            }
        }
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
    let body_read = state.config().connections.body_read;
    let hosts = Arc::new(state.config().hosts.clone());
    let cors = origin::cors(&state.config().cors_origins);
    let (routes, _) = routes(Some(&state)).split_for_parts();
    let mut app = routes
        .route_layer(axum::middleware::from_fn(origin::json_only))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count,
        ))
        .merge(ui::router())
        .fallback(|uri: axum::http::Uri| async move {
            let mut e = ApiError::invalid(format!("no route for {uri}"), None);
            e.status = axum::http::StatusCode::NOT_FOUND;
            e
        })
        .layer(DefaultBodyLimit::max(limit))
        // Bodies may arrive zstd/gzip-compressed (Content-Encoding) and leave compressed when
        // the client accepts it (Accept-Encoding); SSE streams are never compressed.
        .layer(RequestDecompressionLayer::new())
        // A body that stops arriving ends the request (408, `body::read_body`).
        .layer(RequestBodyTimeoutLayer::new(body_read))
        .layer(axum::middleware::from_fn(error::openai_shaped))
        .layer(CompressionLayer::new());
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    app.layer(axum::middleware::from_fn_with_state(
        hosts,
        origin::check_host,
    ))
    .layer(TraceLayer::new_for_http())
    .with_state(state)
}

/// Serves `state` on `listener` until ctrl-c, within its [`ServerConfig::connections`]
/// limits ([`listen::serve_with`]).
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let limits = state.config().connections;
    listen::serve_with(listener, router(state), limits, async {
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
mod tests;
