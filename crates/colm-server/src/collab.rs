//! The collaboration API: one-shot guidance.
//!
//! `POST /v1/colm/guidance` — a client sends its query (and, in the modes that read them, its
//! draft or drafts) and gets guidance back:
//!
//! ```json
//! {"model": "qwen2.5-coder-1.5b-instruct", "query": "…", "mode": "reference", "refs": 1}
//! ```
//! answers
//! ```json
//! {"object": "colm.guidance", "round": 1, "mode": "reference", "model": "…",
//!  "guidance": "…", "references": [{"writer": "…", "text": "…"}],
//!  "usage": {"prompt_tokens": 60, "completion_tokens": 250, "total_tokens": 310},
//!  "tally": null, "shared": false}
//! ```
//!
//! `mode`:
//! - `reference` (default; CoLM's data flow): the server's reference writers (`colm serve
//!   --writer`, or the request's `model` alone as a generalist when none is declared; top
//!   `refs` of them, chosen by `selector`, `keywords`, `model` or `embedding`) answer the query themselves and
//!   the guidance is their synthesis by `model` (one reference is its own guidance). Round 1
//!   needs no draft: a client asks as soon as it has the query and drafts meanwhile. In round
//!   ≥ 2, or with `aggregate_drafts: true`, the `drafts` (the clients' latest answers) are
//!   aggregated with the references;
//! - `reference-critique`: as `reference`, then `model` reviews the one draft against that
//!   guidance and the review is the guidance;
//! - `synthesis` (the drafts only), `critique`, `vote` (no model call; `model` may be omitted),
//!   `auto` (vote when the drafts agree at `auto_threshold`, default 0.6, else synthesis).
//!
//! **Sharing** (`colm serve --share-ttl`): the references and their synthesis read no client
//! text, so they are computed once per (normalised question, scope) — single flight, stored in
//! SQLite ([`crate::store`]) — and every later client asking that question within the TTL
//! gets them without a model call (`"shared": true`; `usage` counts only what this request
//! spent). Whatever reads a draft (synthesis, critiques, later rounds) is computed for that
//! request alone and never stored.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use colm_api::collab::{GuidanceRequest, GuidanceResponse, SentReference};
pub use colm_api::collab::{MAX_DRAFTS, MAX_REFS};
use colm_api::openai::CompletionUsage;
use colm_core::colm::guide::{Ask, Guide, InProcess};
use colm_core::colm::references::References;
use colm_core::colm::{ColmConfig, Contribution, Step, StepOutcome};
use colm_core::guidance::GuidanceMode;
use colm_core::options::{GuidanceOptions, Selector};
use colm_core::{Query, SamplingParams, Usage};

use crate::body::parse_body;
use crate::error::{ApiError, ErrorResponses};
use crate::AppState;

/// `POST /v1/colm/guidance`.
#[utoipa::path(post, path = "/v1/colm/guidance", tag = "colm",
    summary = "One-shot guidance for a query and its drafts (CoLM's server step)",
    request_body = GuidanceRequest,
    responses((status = 200, description = "The guidance", body = GuidanceResponse), ErrorResponses))]
pub async fn one_shot(
    State(state): State<AppState>,
    recorder: Option<axum::Extension<crate::log::Recorder>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let recorder = recorder
        .map(|axum::Extension(r)| r)
        .filter(crate::log::Recorder::active);
    match handle(state, recorder, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    state: AppState,
    recorder: Option<crate::log::Recorder>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes_in = body.as_ref().map_or(0, Bytes::len);
    let req: GuidanceRequest = parse_body(&state, "/v1/colm/guidance", body)?;
    if req.query.trim().is_empty() {
        return Err(ApiError::invalid(
            "`query` must not be empty",
            Some("query"),
        ));
    }
    if req.drafts.len() > MAX_DRAFTS {
        return Err(ApiError::invalid(
            format!(
                "`drafts` takes at most {MAX_DRAFTS} drafts, got {}",
                req.drafts.len()
            ),
            Some("drafts"),
        ));
    }
    let spec = GuidanceSpec::new(
        &state,
        req.model,
        &req.options,
        req.max_tokens,
        req.temperature,
    )?;
    let drafts: Vec<&str> = req.drafts.iter().map(String::as_str).collect();
    let round = round_of(req.round)?;
    // Reserved before any model runs (the prompt at about a token per four bytes of the
    // body, a reference and the guidance at `max_tokens` each); what the steps use is recorded
    // as they finish, and what a request cut midway had used is charged when it is dropped.
    let estimate = bytes_in as u64 / 4 + 2 * u64::from(spec.params.max_tokens);
    let model = spec.model.clone().unwrap_or_else(|| "guidance".to_owned());
    let charge = crate::charge::Charge::reserve(&state, &model, estimate).await?;
    let body = colm_core::Meter::scope(
        charge.meter(),
        produce(&state, &spec, &req.query, &drafts, round),
    )
    .await?;
    if let Some(rec) = &recorder {
        rec.guidance(&body, &req.query, bytes_in);
    }
    let mut response = Json(body).into_response();
    response.extensions_mut().insert(crate::log::Served);
    Ok(response)
}

/// How guidance is to be produced: the server model, the guidance options and the sampling,
/// checked against the hosted models. Shared by one-shot guidance and sessions.
#[derive(Debug, Clone)]
pub struct GuidanceSpec {
    /// Server model id (`None` only for `vote`).
    pub model: Option<String>,
    /// The request's guidance options, checked.
    pub options: GuidanceOptions,
    /// The guidance mode they resolve to.
    pub mode: GuidanceMode,
    /// Sampling of the server calls.
    pub params: SamplingParams,
}

impl GuidanceSpec {
    /// Checks the request fields: the guidance `options` ([`GuidanceOptions::check`]), the
    /// model and the sampling.
    ///
    /// # Errors
    /// 400 naming the field for a wrong option or a model-needing mode without `model`; 404
    /// for a model this server does not host.
    pub fn new(
        state: &AppState,
        model: Option<String>,
        options: &GuidanceOptions,
        max_tokens: Option<u32>,
        temperature: Option<f32>,
    ) -> Result<Self, ApiError> {
        options
            .check()
            .map_err(|e| ApiError::invalid(e.message, Some(e.field)))?;
        let mode = options.mode();
        // `auto` synthesises when the drafts disagree: it needs the model too.
        if model.is_none() && mode != GuidanceMode::Vote {
            return Err(ApiError::invalid(
                format!("`model` is required for {} guidance", mode.name()),
                Some("model"),
            ));
        }
        // Shared and counted under the hosted id, whichever name the request used.
        let model = match model {
            Some(name) => Some(
                state
                    .hosted_id(&name)
                    .ok_or_else(|| ApiError::model_not_found(&name, &state.model_ids()))?,
            ),
            None => None,
        };
        let params = SamplingParams {
            max_tokens: max_tokens.unwrap_or(state.config().default_max_tokens),
            temperature: temperature.unwrap_or(0.0),
            ..SamplingParams::default()
        };
        params
            .check_ranges()
            .map_err(|(field, message)| ApiError::invalid(message, Some(field)))?;
        Ok(Self {
            model,
            options: options.clone(),
            mode,
            params,
        })
    }

    /// What makes two requests ask for the same guidance (beside the question): the model, and
    /// every guidance option, resolved ([`GuidanceOptions::resolved`]).
    pub fn key(&self) -> String {
        format!(
            "{}\u{1f}{}",
            self.model.as_deref().unwrap_or(""),
            serde_json::to_string(&self.options.resolved()).unwrap_or_default()
        )
    }
}

/// Tokens spent by the model calls of `steps`, added to `usage` and recorded in the metrics
/// under the id the model is hosted as.
fn spend<'s>(state: &AppState, steps: impl Iterator<Item = &'s Step>, usage: &mut Usage) {
    for s in steps.filter(|s| !s.messages.is_empty() && s.error().is_none()) {
        // A cancelled call counts what it had used.
        let used = s.usage();
        usage.add(used);
        let id = state
            .model_ids()
            .into_iter()
            .find(|id| state.model(id).is_some_and(|m| m.name() == s.model))
            .unwrap_or_else(|| s.model.clone());
        state.record_tokens(&id, used.prompt_tokens, used.completion_tokens);
    }
}

/// The error of a failed step, as an API error.
fn failed(step: &Step) -> Option<ApiError> {
    match &step.outcome {
        StepOutcome::Failed { error } => Some(ApiError::from(error.clone())),
        StepOutcome::Ok { .. } | StepOutcome::Cancelled { .. } => None,
    }
}

/// Produces guidance for `drafts` on `query` in round `round` and returns the `colm.guidance`
/// response object (see the module docs): the in-process guide ([`InProcess`]) answering one
/// ask — round 1's shared part first where the guidance reads no draft, then the guidance.
///
/// # Errors
/// 400 when the mode needs drafts that are missing (or, for `reference-critique`, not exactly
/// one); the model's error as an [`ApiError`]; a store failure is a 500.
pub async fn produce(
    state: &AppState,
    spec: &GuidanceSpec,
    query: &str,
    drafts: &[&str],
    round: u32,
) -> Result<GuidanceResponse, ApiError> {
    let uses_references = spec.mode.uses_references();
    let reads_drafts = !uses_references || round > 1 || spec.options.aggregate_drafts();
    if reads_drafts && drafts.is_empty() {
        return Err(ApiError::invalid(
            if uses_references {
                "round 2 and later (and `aggregate_drafts`) aggregate the clients' answers: \
                 `drafts` must hold at least one"
                    .to_owned()
            } else {
                format!("{} guidance needs at least one draft", spec.mode.name())
            },
            Some("drafts"),
        ));
    }
    if spec.mode == GuidanceMode::ReferenceCritique && drafts.len() != 1 {
        return Err(ApiError::invalid(
            format!("reference-critique reviews one draft, got {}", drafts.len()),
            Some("drafts"),
        ));
    }
    let aggregator = match &spec.model {
        Some(id) => Some(
            state
                .model(id)
                .ok_or_else(|| ApiError::model_not_found(id, &state.model_ids()))?,
        ),
        None => None,
    };
    let config = spec.options.apply(ColmConfig {
        server_params: spec.params.clone(),
        ..ColmConfig::default()
    });
    let store = state.reference_store();
    // Without declared writers, `refs` > 1 references come from the aggregating model as the
    // strategies' pool `seeds` draws them (greedy, then sampled with seeds 1, 2, …).
    let pooled = match (state.writers(), &aggregator) {
        ([], Some(model)) if config.references.k > 1 => {
            let pool = colm_core::options::ColmOptions::default();
            pool.pool()
                .writers(model, config.references.k, pool.pool_t())
        }
        _ => Vec::new(),
    };
    let writers = if pooled.is_empty() {
        state.writers()
    } else {
        &pooled
    };
    let embedder = state.selection_embedder();
    if config.references.selector == Selector::Embedding && embedder.is_none() {
        return Err(ApiError::invalid(
            "selector `embedding` needs an embedding model on this server, and none is served \
             (`colm serve --embedding-model NAME`)",
            Some("selector"),
        ));
    }
    let guide = InProcess {
        aggregator: aggregator.as_deref(),
        writers,
        store,
        config: &config,
        embedder: embedder.as_deref(),
    };
    // The guidance API's query is one text (a device sends its conversation as a transcript).
    let query = &Query::new(query);
    let mut usage = Usage::default();
    let shared = if round == 1 {
        guide.shared(query, None).await
    } else {
        None
    };
    let mut refs = None;
    if let Some(s) = &shared {
        spend(
            state,
            s.references.iter().flat_map(References::all_steps),
            &mut usage,
        );
        spend(state, s.guidance.iter(), &mut usage);
        if let (Some(g), Some(r)) = (&s.guidance, &s.references) {
            if let Some(e) = failed(g) {
                // Every writer failed: report the first writer's own error (it says why).
                return Err(r.steps.iter().find_map(failed).unwrap_or(e));
            }
        }
        refs = s.references.clone();
    }
    // What reads client text is computed for this request alone.
    let answers: Vec<Contribution> = if reads_drafts || spec.mode == GuidanceMode::ReferenceCritique
    {
        drafts
            .iter()
            .map(|d| Contribution {
                collaborator: "client".into(),
                text: (*d).to_owned(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let guided = guide
        .guidance(
            Ask {
                query,
                round,
                answers: &answers,
                shared,
                references: None,
            },
            None,
        )
        .await;
    if let Some(r) = &guided.references {
        spend(state, r.all_steps(), &mut usage);
        refs = Some(r.clone());
    }
    spend(
        state,
        std::iter::once(&guided.guidance).chain(&guided.critiques),
        &mut usage,
    );
    if let Some(e) = failed(&guided.guidance) {
        return Err(e);
    }
    let text = match guided.critiques.first() {
        Some(c) => match failed(c) {
            Some(e) => return Err(e),
            None => c.text().unwrap_or_default().to_owned(),
        },
        None => guided.guidance.text().unwrap_or_default().to_owned(),
    };
    // A vote counts every draft; a model call read the screened ones.
    let screened_out = match guided.mode {
        GuidanceMode::Vote => None,
        _ if reads_drafts => Some(answers.len() - guided.aggregated.len()).filter(|&n| n > 0),
        _ => None,
    };
    Ok(GuidanceResponse {
        references: refs.as_ref().map(sent_references).unwrap_or_default(),
        usage: CompletionUsage::spent(usage),
        tally: guided.tally,
        shared: refs.as_ref().is_some_and(|r| r.stored),
        screened_out,
        ..GuidanceResponse::new(round, guided.mode.name(), spec.model.clone(), text)
    })
}

/// The references written, as sent to clients (failed writers left out).
fn sent_references(refs: &References) -> Vec<SentReference> {
    refs.steps
        .iter()
        .filter_map(|s| {
            Some(SentReference {
                writer: s.collaborator.clone().unwrap_or_default(),
                text: s.text()?.to_owned(),
            })
        })
        .collect()
}

/// The round a guidance request or session asks for: 1 when absent.
///
/// # Errors
/// 400 naming `round` for 0 (rounds start at 1).
pub(crate) fn round_of(round: Option<u32>) -> Result<u32, ApiError> {
    match round.unwrap_or(1) {
        0 => Err(ApiError::invalid("`round` starts at 1", Some("round"))),
        r => Ok(r),
    }
}
