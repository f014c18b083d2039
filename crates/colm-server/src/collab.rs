//! The collaboration API: one-shot guidance.
//!
//! `POST /v1/colm/guidance` — a client sends its query and draft(s) and gets guidance back:
//!
//! ```json
//! {"model": "qwen2.5-coder-1.5b-instruct", "query": "…", "drafts": ["…"], "round": 1,
//!  "mode": "synthesis", "max_tokens": 256}
//! ```
//! answers
//! ```json
//! {"object": "colm.guidance", "round": 1, "mode": "synthesis", "model": "…",
//!  "guidance": "…", "usage": {"prompt_tokens": 519, "completion_tokens": 200, "total_tokens": 719},
//!  "tally": null}
//! ```
//! `mode` is `synthesis` (default; CoLM's aggregation), `critique`, `vote` (no model call;
//! `model` may be omitted) or `auto` (vote when the drafts agree at `auto_threshold`, default
//! 0.6, else synthesis); the response names the mode actually used, and `shared` says whether
//! the guidance came from the shared store (see [`crate::store`]; then `usage` is null: no
//! server tokens were spent). A mode that needs a model
//! without `model` is a 400.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use colm_core::guidance::{guidance, GuidanceMode};
use colm_core::SamplingParams;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::openai::{read_body, usage_json};
use crate::AppState;

/// Most drafts accepted in one request.
pub const MAX_DRAFTS: usize = 16;

/// Body of `POST /v1/colm/guidance`.
#[derive(Debug, Deserialize)]
pub struct GuidanceRequest {
    /// Server model to call (not needed when voting).
    pub model: Option<String>,
    /// The clients' query.
    pub query: String,
    /// Drafts to aggregate, 1 to [`MAX_DRAFTS`].
    pub drafts: Vec<String>,
    /// Round number, echoed back (default 1).
    pub round: Option<u32>,
    /// `synthesis` (default), `critique`, `vote` or `auto`.
    pub mode: Option<String>,
    /// Agreement threshold of `auto`, in (0, 1]; default 0.6.
    pub auto_threshold: Option<f64>,
    /// Completion token limit of the server call.
    pub max_tokens: Option<u32>,
    /// Sampling temperature of the server call; default 0.
    pub temperature: Option<f32>,
}

/// `POST /v1/colm/guidance`.
pub async fn one_shot(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match handle(state, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    state: AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(&state, body)?;
    state
        .metrics()
        .request_bytes("/v1/colm/guidance", body.len());
    let req: GuidanceRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("invalid request body: {e}"), None))?;
    if req.drafts.is_empty() || req.drafts.len() > MAX_DRAFTS {
        return Err(ApiError::invalid(
            format!(
                "`drafts` takes 1 to {MAX_DRAFTS} drafts, got {}",
                req.drafts.len()
            ),
            Some("drafts"),
        ));
    }
    let spec = GuidanceSpec::parse(
        &state,
        req.model,
        req.mode.as_deref(),
        req.auto_threshold,
        req.max_tokens,
        req.temperature,
    )?;
    let drafts: Vec<&str> = req.drafts.iter().map(String::as_str).collect();
    let body = produce(&state, &spec, &req.query, &drafts, req.round.unwrap_or(1)).await?;
    Ok(Json(body).into_response())
}

/// How guidance is to be produced: mode, server model and sampling, checked against the
/// hosted models. Shared by one-shot guidance and sessions.
#[derive(Debug, Clone)]
pub struct GuidanceSpec {
    /// Server model id (`None` only for `vote` and `auto`).
    pub model: Option<String>,
    /// The guidance mode.
    pub mode: GuidanceMode,
    /// Sampling of the server call.
    pub params: SamplingParams,
}

impl GuidanceSpec {
    /// Checks the request fields.
    ///
    /// # Errors
    /// 400 for an unknown mode or a model-needing mode without `model`; 404 for a model this
    /// server does not host.
    pub fn parse(
        state: &AppState,
        model: Option<String>,
        mode: Option<&str>,
        auto_threshold: Option<f64>,
        max_tokens: Option<u32>,
        temperature: Option<f32>,
    ) -> Result<Self, ApiError> {
        let mode = GuidanceMode::parse(mode.unwrap_or("synthesis"), auto_threshold)
            .map_err(|e| ApiError::invalid(e, Some("mode")))?;
        if model.is_none() && matches!(mode, GuidanceMode::Synthesis | GuidanceMode::Critique) {
            return Err(ApiError::invalid(
                "`model` is required for synthesis and critique",
                Some("model"),
            ));
        }
        if let Some(id) = &model {
            if state.model(id).is_none() {
                return Err(ApiError::model_not_found(id, &state.model_ids()));
            }
        }
        let params = SamplingParams {
            max_tokens: max_tokens.unwrap_or(state.config().default_max_tokens),
            temperature: temperature.unwrap_or(0.0),
            ..SamplingParams::default()
        };
        Ok(Self {
            model,
            mode,
            params,
        })
    }
}

/// Produces guidance for `drafts` (served from the shared store when a synthesis for the same
/// question and model is there) and returns the `colm.guidance` response object.
///
/// # Errors
/// The model's error as an [`ApiError`]; a store failure is a 500.
pub async fn produce(
    state: &AppState,
    spec: &GuidanceSpec,
    query: &str,
    drafts: &[&str],
    round: u32,
) -> Result<serde_json::Value, ApiError> {
    // Shared guidance: synthesis for the same question by the same model, within the TTL.
    // Concurrent requests for one question wait for the first one's synthesis (single
    // flight) instead of each calling the model.
    let shareable = matches!(spec.mode, GuidanceMode::Synthesis);
    let _flight = match (shareable, state.guidance_store(), &spec.model) {
        (true, Some(store), Some(id)) => {
            let gate = state.share_gate(query, id);
            let guard = gate.lock_owned().await;
            if let Some(text) = store.get(query, id).map_err(store_error)? {
                state.metrics().shared_hit();
                return Ok(json!({
                    "object": "colm.guidance",
                    "round": round,
                    "mode": "synthesis",
                    "model": spec.model,
                    "guidance": text,
                    "usage": null,
                    "tally": null,
                    "shared": true,
                }));
            }
            Some(guard)
        }
        _ => None,
    };
    let server = spec.model.as_deref().and_then(|id| state.model(id));
    let g = guidance(server.as_deref(), query, drafts, spec.mode, &spec.params).await?;
    if let (Some(c), Some(id)) = (&g.completion, &spec.model) {
        state
            .metrics()
            .tokens(id, c.usage.prompt_tokens, c.usage.completion_tokens);
    }
    if let (GuidanceMode::Synthesis, Some(store), Some(id)) =
        (g.mode, state.guidance_store(), &spec.model)
    {
        store.put(query, id, &g.text).map_err(store_error)?;
    }
    Ok(json!({
        "object": "colm.guidance",
        "round": round,
        "mode": g.mode.name(),
        "model": spec.model,
        "guidance": g.text,
        "usage": g.completion.as_ref().map(usage_json),
        "tally": g.tally,
        "shared": false,
    }))
}

pub(crate) fn store_error(e: crate::store::StoreError) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        None,
        e.to_string(),
    )
}
