//! The OpenAI-compatible chat API: `POST /v1/chat/completions` (plain and SSE streaming) and
//! `GET /v1/models`. The bodies are [`colm_api::openai`]'s (which lists the differences from
//! OpenAI); this module validates them and runs the hosted models.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use colm_api::openai::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChunkExtension, ColmExtension,
    CompletionUsage, Delta, DeltaToolCall, ModelList, ToolCallObject,
};
use colm_core::{
    Completion, FinishReason, Meter, ModelError, Query, SamplingParams, StreamEvent, Usage,
};
use futures::channel::mpsc;
use futures::StreamExt;

use crate::body::parse_body;
use crate::charge::Charge;
use crate::error::{ApiError, ErrorResponses};
use crate::images::ImageLimits;
use crate::log::{Recorder, Served};
use crate::AppState;

pub mod completions;
mod convert;
pub mod embeddings;
#[cfg(test)]
mod tests;

pub use convert::{check_fields_for, supported_fields, to_core, MAX_N};

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn completion_id() -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("chatcmpl-{t:x}{n:04x}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Header set on responses whose answer is a fallback (value: `true`).
pub const FALLBACK_HEADER: &str = "x-colm-fallback";

/// `GET /v1/models`.
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    summary = "Hosted models (names and aliases)",
    responses((status = 200, description = "The model list", body = ModelList), ErrorResponses))]
pub async fn list_models(State(state): State<AppState>) -> Json<ModelList> {
    let chat = state.hosted().map(|(id, m)| {
        let colm = served_by(m.as_ref()).map(|strategy| colm_api::openai::ModelExtension {
            strategy: Some(strategy),
            dimensions: None,
        });
        (id.clone(), colm)
    });
    let embedding = state.embedders().map(|(id, e)| {
        let colm = colm_api::openai::ModelExtension {
            strategy: None,
            dimensions: Some(e.dimensions()),
        };
        (id.clone(), Some(colm))
    });
    let mut models: Vec<_> = chat.chain(embedding).collect();
    models.sort_by(|a, b| a.0.cmp(&b.0));
    Json(ModelList::new(models, state.created()))
}

/// What serves `model` when it is a strategy: the canonical text of its strategy
/// (`colm:k=2`), or `collaboration` when it has none; `None` for one hosted model.
pub(crate) fn served_by(model: &dyn colm_core::ChatModel) -> Option<String> {
    model.is_collaboration().then(|| {
        model
            .strategy()
            .unwrap_or_else(|| "collaboration".to_owned())
    })
}

/// `POST /v1/chat/completions`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai",
    summary = "Chat completion (OpenAI-compatible)",
    description = "A hosted model's answer, or a virtual model's collaboration. With `stream: \
        true` the answer is server-sent events of `chat.completion.chunk` objects ending with \
        `data: [DONE]`.",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The completion, or its stream", content(
            (ChatCompletion = "application/json"),
            (ChatCompletionChunk = "text/event-stream"),
        ), headers(
            ("x-colm-fallback" = String, description = "`true` when the answer is a fallback"),
            ("x-colm-record-id" = String, description = "The record id, for `POST /v1/colm/feedback`"),
        )),
        ErrorResponses,
    ))]
pub async fn chat_completions(
    State(state): State<AppState>,
    recorder: Option<Extension<Recorder>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let recorder = recorder.map(|Extension(r)| r).filter(Recorder::active);
    match handle(state, recorder, body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(status = %e.status, message = %e.message, "request rejected");
            e.into_response()
        }
    }
}

/// What the interaction log records of a chat request, filled in once it is answered or has
/// failed.
struct ChatLog {
    recorder: Recorder,
    model: String,
    /// [`crate::log::Interaction::strategy`].
    strategy: String,
    /// The last user turn.
    query: String,
    bytes_in: usize,
    sensitive: bool,
}

impl ChatLog {
    /// Records the answers `cs`.
    fn answered(&self, cs: &[Completion]) {
        self.recorder.chat(
            &self.model,
            &self.strategy,
            &self.query,
            self.bytes_in,
            self.sensitive,
            cs,
        );
    }

    /// Records the failure `e`, after `partial` was streamed, when the model calls had used
    /// `usage`.
    fn failed(&self, e: &ApiError, partial: &str, usage: Option<Usage>) {
        self.answered(&[]);
        self.recorder.failed(&e.message, partial);
        if let Some(u) = usage {
            self.recorder.fill(|r| {
                r.prompt_tokens = u.prompt_tokens;
                r.completion_tokens = u.completion_tokens;
            });
        }
    }

    /// Records a stream its caller closed after `partial`, when the model calls had used
    /// `usage`.
    fn cut(&self, usage: Usage, partial: &str) {
        self.answered(&[]);
        self.recorder.cut(usage, partial);
    }
}

/// What a stream has sent its caller: the answer's text so far and the deltas it came in.
#[derive(Default)]
struct Streamed {
    text: String,
    deltas: u64,
}

impl Streamed {
    fn push(&mut self, delta: &str) {
        self.text.push_str(delta);
        self.deltas += 1;
    }
}

/// Owned by a stream's response body: when the body is dropped before the answer was settled
/// (the caller went away), charges what the model calls used and records the stream as cut.
struct CutGuard {
    charge: Arc<Charge>,
    log: Option<Arc<ChatLog>>,
    streamed: Arc<Mutex<Streamed>>,
}

impl Drop for CutGuard {
    fn drop(&mut self) {
        let streamed = self.streamed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(usage) = self.charge.settle_metered(streamed.deltas) {
            tracing::info!(
                completion_tokens = usage.completion_tokens,
                "the caller closed its stream"
            );
            if let Some(log) = &self.log {
                log.cut(usage, &streamed.text);
            }
        }
    }
}

/// The response to a chat whose model call failed with `e` before answering: the error, with
/// the failure recorded (when a log is kept) and what the calls used charged.
fn failed(log: Option<&ChatLog>, charge: &Charge, e: ApiError) -> Response {
    tracing::info!(status = %e.status, message = %e.message, "model call failed");
    let usage = charge.settle_metered(0);
    if let Some(log) = log {
        log.failed(&e, "", usage);
    }
    let mut response = e.into_response();
    response.extensions_mut().insert(Served);
    response
}

async fn handle(
    state: AppState,
    recorder: Option<Recorder>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes_in = body.as_ref().map_or(0, Bytes::len);
    let mut req: ChatCompletionRequest = parse_body(&state, "/v1/chat/completions", body)?;
    let model = hosted(&state, &mut req.model)?;
    let config = state.config();
    let limits = ImageLimits {
        max_bytes: config.max_image_bytes,
        allow_urls: config.allow_image_urls,
    };
    let (messages, params) = to_core(&req, config.default_max_tokens, limits)?;
    if messages.iter().any(|m| !m.images.is_empty()) && !model.accepts_images() {
        return Err(ApiError::invalid(
            format!(
                "`{}` reads text only: send images to a vision-language model",
                req.model
            ),
            Some("messages"),
        ));
    }
    check_fields_for(&req, &messages, &params, model.is_collaboration())?;
    if let Some(user) = &req.user {
        tracing::info!(%user, model = %req.model, "chat completion for an end user");
    }
    let id = completion_id();
    let created = unix_now();
    let parallel_calls = req.parallel_tool_calls != Some(false);
    // Reserved before any model runs: the prompt at about a token per four bytes of the body,
    // and `max_tokens` for each answer; settled with what was used.
    let n = req.n.unwrap_or(1);
    let estimate = bytes_in as u64 / 4 + u64::from(params.max_tokens) * u64::from(n);
    let charge = Charge::reserve(&state, &req.model, estimate).await?;
    if let (Some(recorder), Some(false)) = (&recorder, req.store) {
        recorder.forget_texts();
    }
    let log = recorder.map(|recorder| ChatLog {
        recorder,
        model: req.model.clone(),
        strategy: served_by(model.as_ref()).unwrap_or_else(|| "model".to_owned()),
        query: Query::from_messages(&messages).text,
        bytes_in,
        sensitive: params.sensitive,
    });
    if !req.stream {
        // n > 1: independent completions, decoded together; sampled ones with seeds
        // seed, seed + 1, …
        let runs = (0..n).map(|i| {
            let params = SamplingParams {
                seed: params.seed.wrapping_add(i),
                ..params.clone()
            };
            let (model, messages) = (model.clone(), &messages);
            async move { model.chat(messages, &params).await }
        });
        let all = Meter::scope(charge.meter(), futures::future::try_join_all(runs));
        let cs: Vec<Completion> = match all.await {
            Ok(cs) => cs
                .into_iter()
                .map(|c| keep_calls(c, parallel_calls))
                .collect(),
            Err(e) => return Ok(failed(log.as_ref(), &charge, e.into())),
        };
        charge.settle(cs.iter().fold(Usage::default(), |mut u, c| {
            u.prompt_tokens += c.usage.prompt_tokens;
            u.completion_tokens += c.usage.completion_tokens;
            u
        }));
        if let Some(log) = &log {
            log.answered(&cs);
        }
        let response = ChatCompletion::with_choices(id, created, req.model, &cs);
        let fallback = cs.iter().any(|c| c.fallback.is_some());
        let mut response = Json(response).into_response();
        response.extensions_mut().insert(Served);
        if fallback {
            response.headers_mut().insert(
                FALLBACK_HEADER,
                axum::http::HeaderValue::from_static("true"),
            );
        }
        return Ok(response);
    }

    // Streaming. A single model: errors found before the first token (unknown sizes, context
    // overflow) still get a proper status code, so wait for the first delta or the end before
    // answering. A strategy (several model calls before its first answer token): answer at
    // once, report its steps as they finish; its errors arrive in the stream.
    let (event_tx, mut events) = mpsc::unbounded::<StreamEvent>();
    let at_once = model.reports_progress();
    // The spawned work is the request's tenant's, as the handler's would be: it shares
    // (references) in the tenant's scope and its tokens are charged to the tenant.
    let tenant = crate::auth::current_tenant();
    let forward_tenant = tenant.clone();
    let meter = charge.meter();
    let work = tokio::spawn(async move {
        let run = Meter::scope(meter, model.chat_streaming(&messages, &params, event_tx));
        match tenant {
            Some(tenant) => crate::auth::as_tenant(tenant, run).await,
            None => run.await,
        }
    });
    // A caller that goes away (the response body is dropped) cancels the work: every model
    // call still running is dropped, and the engines free their sequences.
    let cancel = AbortOnDrop(work.abort_handle());
    let first = if at_once { None } else { events.next().await };
    let pending = match (&first, at_once) {
        (None, false) => match join(work).await {
            Ok(c) => Pending::Done(c),
            Err(e) => return Ok(failed(log.as_ref(), &charge, e)),
        },
        _ => Pending::Running(work),
    };
    let (sse_tx, sse) = mpsc::unbounded::<Event>();
    let charge = Arc::new(charge);
    let log = log.map(Arc::new);
    let streamed = Arc::new(Mutex::new(Streamed::default()));
    let cut = CutGuard {
        charge: charge.clone(),
        log: log.clone(),
        streamed: streamed.clone(),
    };
    let chunk = move |delta: Delta, finish: Option<FinishReason>| {
        ChatCompletionChunk::new(&id, created, &req.model, delta, finish)
    };
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let role = Delta {
        role: Some("assistant".into()),
        content: Some(String::new()),
        tool_calls: None,
    };
    send(&sse_tx, &chunk(role, None));
    let event_chunk = move |e: StreamEvent| match e {
        StreamEvent::Delta(t) => chunk(
            Delta {
                content: Some(t),
                ..Delta::default()
            },
            None,
        ),
        StreamEvent::Progress(progress) => {
            let mut c = chunk(Delta::default(), None);
            c.colm = Some(ChunkExtension::Progress { progress });
            c
        }
    };
    // The text streamed so far: what the completion holds beyond it (an answer parsed whole,
    // such as one that may call tools) is sent at the end.
    let forward = async move {
        let relay = |e: StreamEvent| {
            if let StreamEvent::Delta(t) = &e {
                streamed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(t);
            }
            send(&sse_tx, &event_chunk(e));
        };
        if let Some(e) = first {
            relay(e);
        }
        while let Some(e) = events.next().await {
            relay(e);
        }
        let outcome = match pending {
            Pending::Done(c) => Ok(c),
            Pending::Running(task) => join(task).await,
        };
        match outcome.map(|c| keep_calls(c, parallel_calls)) {
            Ok(c) => {
                charge.settle(c.usage);
                if let Some(log) = &log {
                    log.answered(std::slice::from_ref(&c));
                }
                let text = std::mem::take(
                    &mut streamed.lock().unwrap_or_else(PoisonError::into_inner).text,
                );
                if let Some(rest) = c.text.strip_prefix(text.as_str()) {
                    if !rest.is_empty() {
                        send(&sse_tx, &event_chunk(StreamEvent::Delta(rest.to_owned())));
                    }
                }
                if !c.tool_calls.is_empty() {
                    let mut calls = event_chunk(StreamEvent::Delta(String::new()));
                    calls.choices[0].delta = Delta {
                        tool_calls: Some(
                            c.tool_calls
                                .iter()
                                .zip(0..)
                                .map(|(call, index)| DeltaToolCall {
                                    index,
                                    call: ToolCallObject::from(call),
                                })
                                .collect(),
                        ),
                        ..Delta::default()
                    };
                    send(&sse_tx, &calls);
                }
                let mut last = event_chunk(StreamEvent::Delta(String::new()));
                last.choices[0].delta = Delta::default();
                last.choices[0].finish_reason = Some(c.finish_reason);
                last.colm = Some(ChunkExtension::Final(ColmExtension::from(&c)));
                send(&sse_tx, &last);
                if include_usage {
                    let mut u = event_chunk(StreamEvent::Delta(String::new()));
                    u.choices.clear();
                    u.usage = Some(CompletionUsage::from(c.usage));
                    send(&sse_tx, &u);
                }
            }
            Err(e) => {
                let (text, deltas) = {
                    let s = streamed.lock().unwrap_or_else(PoisonError::into_inner);
                    (s.text.clone(), s.deltas)
                };
                let usage = charge.settle_metered(deltas);
                if let Some(log) = &log {
                    log.failed(&e, &text, usage);
                }
                send(&sse_tx, &e.body());
            }
        }
        let _ = sse_tx.unbounded_send(Event::default().data("[DONE]"));
    };
    // The forwarder records the tokens: as the tenant's work.
    let forwarding = AbortOnDrop(
        tokio::spawn(async move {
            match forward_tenant {
                Some(tenant) => crate::auth::as_tenant(tenant, forward).await,
                None => forward.await,
            }
        })
        .abort_handle(),
    );
    let body = sse.map(move |e| {
        // The body owns the work: dropping it (the caller went away) aborts both tasks and
        // charges what they used.
        let _owned = (&cut, &cancel, &forwarding);
        Ok::<Event, Infallible>(e)
    });
    let mut response = Sse::new(body)
        .keep_alive(KeepAlive::default())
        .into_response();
    response.extensions_mut().insert(Served);
    Ok(response)
}

/// The hosted model a request's `model` names, the name replaced by its hosted id: a request
/// is served, counted and logged under that id, whichever name it used.
///
/// # Errors
/// 404 `model_not_found` listing the hosted ids.
fn hosted(state: &AppState, model: &mut String) -> Result<Arc<dyn colm_core::ChatModel>, ApiError> {
    let found = state
        .hosted_id(model)
        .and_then(|id| state.model(&id).map(|m| (id, m)));
    let (id, m) = found.ok_or_else(|| ApiError::model_not_found(model, &state.model_ids()))?;
    *model = id;
    Ok(m)
}

/// `c` with only its first tool call unless `parallel` (`parallel_tool_calls: false`).
fn keep_calls(mut c: Completion, parallel: bool) -> Completion {
    if !parallel {
        c.tool_calls.truncate(1);
    }
    c
}

/// Aborts a task when dropped (tasks a response body owns).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends `v` as one server-sent event's JSON data (a closed stream drops it).
fn send<T: serde::Serialize>(tx: &mpsc::UnboundedSender<Event>, v: &T) {
    if let Ok(event) = Event::default().json_data(v) {
        let _ = tx.unbounded_send(event);
    }
}

/// A generation that already ended, or is still running.
enum Pending {
    Done(Completion),
    Running(tokio::task::JoinHandle<Result<Completion, ModelError>>),
}

async fn join(
    task: tokio::task::JoinHandle<Result<Completion, ModelError>>,
) -> Result<Completion, ApiError> {
    task.await
        .map_err(|e| ApiError::from(ModelError::Inference(format!("generation task: {e}"))))?
        .map_err(ApiError::from)
}
