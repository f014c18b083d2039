//! `POST /v1/completions`: OpenAI's legacy Completions API over the hosted models that read raw
//! prompts ([`colm_core::ChatModel::accepts_prompts`]: the embedded engine, and upstreams,
//! which relay to their endpoint's `…/completions`). A prompt is
//! continued as it is, with no chat template; its sampling fields are read and checked as a
//! chat request's ([`super::convert::to_core`]), so both APIs accept the same values.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use colm_api::openai::{
    ChatCompletionRequest, CompletionRequest, CompletionUsage, LegacyLogprobs, PromptInput,
    TextChoice, TextCompletion, DEFAULT_COMPLETION_MAX_TOKENS, MAX_LEGACY_LOGPROBS,
};
use colm_core::{ChatMessage, Completion, Meter, SamplingParams, StreamEvent, Usage};
use futures::channel::mpsc;
use futures::StreamExt;

use super::{join, send, unix_now, AbortOnDrop};
use crate::body::parse_body;
use crate::charge::Charge;
use crate::error::{ApiError, ErrorResponses};
use crate::images::ImageLimits;
use crate::AppState;

/// `POST /v1/completions`.
#[utoipa::path(post, path = "/v1/completions", tag = "openai",
    summary = "Text completion (OpenAI's legacy API)",
    description = "The prompt continued as it is (no chat template) by a hosted model that reads \
        raw prompts. With `stream: true` the answer is server-sent events of `text_completion` \
        objects ending with `data: [DONE]`.",
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "The completion, or its stream", content(
            (TextCompletion = "application/json"),
            (TextCompletion = "text/event-stream"),
        )),
        ErrorResponses,
    ))]
pub async fn completions(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match handle(state, body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(status = %e.status, message = %e.message, "request rejected");
            e.into_response()
        }
    }
}

/// The request's prompts and sampling parameters, checked.
///
/// # Errors
/// 400 naming the field at fault.
fn read(req: &CompletionRequest) -> Result<(Vec<String>, SamplingParams), ApiError> {
    super::convert::refuse_unsupported::<CompletionRequest>(&req.unsupported)?;
    let prompts = match &req.prompt {
        PromptInput::One(p) => vec![p.clone()],
        PromptInput::Many(ps) => ps.clone(),
        PromptInput::Tokens(_) => {
            return Err(ApiError::invalid(
                "`prompt` as token ids is not supported; send the text",
                Some("prompt"),
            ))
        }
    };
    if prompts.is_empty() {
        return Err(ApiError::invalid(
            "`prompt` must not be empty",
            Some("prompt"),
        ));
    }
    if let Some(i) = prompts.iter().position(String::is_empty) {
        return Err(ApiError::invalid(
            format!("prompt[{i}] is empty"),
            Some("prompt"),
        ));
    }
    if req.logprobs.is_some_and(|k| k > MAX_LEGACY_LOGPROBS) {
        return Err(ApiError::invalid(
            format!("logprobs must be in [0, {MAX_LEGACY_LOGPROBS}]"),
            Some("logprobs"),
        ));
    }
    if req.echo && req.logprobs.is_some() {
        return Err(ApiError::invalid(
            "`echo` with `logprobs` is not supported: the prompt's own log-probabilities are \
             not computed",
            Some("echo"),
        ));
    }
    if req.stream && (prompts.len() > 1 || req.n.unwrap_or(1) > 1 || req.logprobs.is_some()) {
        return Err(ApiError::invalid(
            "`stream: true` takes one prompt, n = 1 and no logprobs",
            Some("stream"),
        ));
    }
    // The sampling fields are a chat request's: read and checked by the one reader of them.
    let chat = ChatCompletionRequest {
        max_tokens: Some(req.max_tokens.unwrap_or(DEFAULT_COMPLETION_MAX_TOKENS)),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        min_p: req.min_p,
        repeat_penalty: req.repeat_penalty,
        repetition_penalty: req.repetition_penalty,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        logit_bias: req.logit_bias.clone(),
        seed: req.seed,
        stop: req.stop.clone(),
        n: req.n,
        ignore_eos: req.ignore_eos,
        cache_prompt: req.cache_prompt,
        logprobs: req.logprobs.map(|_| true),
        top_logprobs: req.logprobs.filter(|&k| k > 0),
        ..ChatCompletionRequest::new(req.model.clone(), &[ChatMessage::user("-")])
    };
    let limits = ImageLimits {
        max_bytes: 0,
        allow_urls: false,
    };
    let (_, params) = super::convert::to_core(&chat, DEFAULT_COMPLETION_MAX_TOKENS, limits)?;
    Ok((prompts, params))
}

/// A choice's legacy `logprobs` from the completion's per-token data; offsets count from the
/// start of `text` (after `offset` characters of echoed prompt).
fn legacy_logprobs(c: &Completion, offset: usize) -> Option<LegacyLogprobs> {
    let tokens = c.logprobs.as_ref()?;
    let mut out = LegacyLogprobs::default();
    let mut at = offset;
    for t in tokens {
        out.tokens.push(t.token.clone());
        out.token_logprobs.push(t.logprob);
        out.top_logprobs.push(
            t.top_logprobs
                .iter()
                .map(|a| (a.token.clone(), a.logprob))
                .collect(),
        );
        out.text_offset.push(at);
        at += t.token.chars().count();
    }
    Some(out)
}

async fn handle(
    state: AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut req: CompletionRequest = parse_body(&state, "/v1/completions", body)?;
    let model = super::hosted(&state, &mut req.model)?;
    if !model.accepts_prompts() {
        return Err(ApiError::invalid(
            format!(
                "`{}` takes chat messages only (POST /v1/chat/completions): text prompts are \
                 continued by embedded models and upstreams, not by strategies",
                req.model
            ),
            Some("model"),
        ));
    }
    let (prompts, params) = read(&req)?;
    let n = req.n.unwrap_or(1);
    let id = format!("cmpl-{}", crate::state::random_token());
    let created = unix_now();
    let bytes: usize = prompts.iter().map(String::len).sum();
    let runs = u64::from(n) * prompts.len() as u64;
    let estimate = bytes as u64 / 4 + u64::from(params.max_tokens) * runs;
    let charge = Charge::reserve(&state, &req.model, estimate).await?;
    if !req.stream {
        let (model_ref, params_ref) = (&model, &params);
        let calls = prompts.iter().flat_map(|prompt| {
            (0..n).map(move |i| {
                let params = SamplingParams {
                    seed: params_ref.seed.wrapping_add(i),
                    ..params_ref.clone()
                };
                let model = model_ref.clone();
                async move { model.complete(prompt, &params, None).await }
            })
        });
        let all = Meter::scope(charge.meter(), futures::future::try_join_all(calls)).await;
        let cs = match all {
            Ok(cs) => cs,
            Err(e) => {
                charge.settle_metered(0);
                return Err(e.into());
            }
        };
        let usage = cs.iter().fold(Usage::default(), |mut u, c| {
            u.prompt_tokens += c.usage.prompt_tokens;
            u.completion_tokens += c.usage.completion_tokens;
            u.cached_tokens += c.usage.cached_tokens;
            u
        });
        charge.settle(usage);
        let choices = cs
            .iter()
            .zip(0..)
            .map(|(c, index)| {
                let prompt = &prompts[(index / n) as usize];
                let echoed = if req.echo { prompt.as_str() } else { "" };
                TextChoice {
                    text: format!("{echoed}{}", c.text),
                    index,
                    logprobs: legacy_logprobs(c, echoed.chars().count()),
                    finish_reason: Some(c.finish_reason),
                }
            })
            .collect();
        return Ok(Json(TextCompletion {
            id,
            object: "text_completion".into(),
            created,
            model: req.model,
            choices,
            usage: Some(CompletionUsage::from(usage)),
        })
        .into_response());
    }

    // Streaming one prompt: wait for the first delta (or the end), so that an error found
    // before any token (a prompt too long) still gets its status code.
    let prompt = prompts.into_iter().next().unwrap_or_default();
    let (event_tx, mut events) = mpsc::unbounded::<StreamEvent>();
    let tenant = crate::auth::current_tenant();
    let meter = charge.meter();
    let run_prompt = prompt.clone();
    let work = tokio::spawn(async move {
        let run = Meter::scope(meter, model.complete(&run_prompt, &params, Some(event_tx)));
        match tenant {
            Some(tenant) => crate::auth::as_tenant(tenant, run).await,
            None => run.await,
        }
    });
    let cancel = AbortOnDrop(work.abort_handle());
    let first = events.next().await;
    let pending = if first.is_none() {
        match join(work).await {
            Ok(c) => super::Pending::Done(c),
            Err(e) => {
                charge.settle_metered(0);
                return Err(e);
            }
        }
    } else {
        super::Pending::Running(work)
    };
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let chunk = move |text: String, finish| TextCompletion {
        id: id.clone(),
        object: "text_completion".into(),
        created,
        model: req.model.clone(),
        choices: vec![TextChoice {
            text,
            index: 0,
            logprobs: None,
            finish_reason: finish,
        }],
        usage: None,
    };
    let (sse_tx, sse) = mpsc::unbounded::<Event>();
    if req.echo {
        send(&sse_tx, &chunk(prompt, None));
    }
    let charge = Arc::new(charge);
    let forward = async move {
        let mut streamed = String::new();
        let mut deltas = 0u64;
        let mut relay = |e: StreamEvent| {
            if let StreamEvent::Delta(t) = e {
                streamed.push_str(&t);
                deltas += 1;
                send(&sse_tx, &chunk(t, None));
            }
        };
        if let Some(e) = first {
            relay(e);
        }
        while let Some(e) = events.next().await {
            relay(e);
        }
        let outcome = match pending {
            super::Pending::Done(c) => Ok(c),
            super::Pending::Running(task) => join(task).await,
        };
        match outcome {
            Ok(c) => {
                charge.settle(c.usage);
                let rest = c.text.strip_prefix(streamed.as_str()).unwrap_or_default();
                send(&sse_tx, &chunk(rest.to_owned(), Some(c.finish_reason)));
                if include_usage {
                    let mut u = chunk(String::new(), None);
                    u.choices.clear();
                    u.usage = Some(CompletionUsage::from(c.usage));
                    send(&sse_tx, &u);
                }
            }
            Err(e) => {
                charge.settle_metered(deltas);
                send(&sse_tx, &e.body());
            }
        }
        let _ = sse_tx.unbounded_send(Event::default().data("[DONE]"));
    };
    let forwarding = AbortOnDrop(tokio::spawn(forward).abort_handle());
    let body = sse.map(move |e| {
        // The body owns the work: dropping it (the caller went away) aborts both tasks; the
        // charge, dropped unsettled, is charged what they used.
        let _owned = (&cancel, &forwarding);
        Ok::<Event, Infallible>(e)
    });
    Ok(Sse::new(body)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: serde_json::Value) -> CompletionRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn fields_are_read_as_a_chat_requests() {
        let (prompts, params) = read(&request(serde_json::json!({
            "model": "m", "prompt": ["a", "b"], "top_k": 40, "min_p": 0.05,
            "repetition_penalty": 1.1, "stop": "\n"
        })))
        .unwrap();
        assert_eq!(prompts, ["a", "b"]);
        assert_eq!(params.max_tokens, DEFAULT_COMPLETION_MAX_TOKENS);
        assert_eq!(
            (params.top_k, params.min_p, params.repeat_penalty),
            (40, 0.05, 1.1)
        );
        assert_eq!(params.stop, ["\n"]);
        for (body, field) in [
            (
                serde_json::json!({"model": "m", "prompt": "a", "suffix": "x"}),
                "suffix",
            ),
            (serde_json::json!({"model": "m", "prompt": ""}), "prompt"),
            (
                serde_json::json!({"model": "m", "prompt": [1, 2]}),
                "prompt",
            ),
            (
                serde_json::json!({"model": "m", "prompt": "a", "logprobs": 6}),
                "logprobs",
            ),
            (
                serde_json::json!({"model": "m", "prompt": "a", "logprobs": 1, "echo": true}),
                "echo",
            ),
            (
                serde_json::json!({"model": "m", "prompt": "a", "min_p": 2}),
                "min_p",
            ),
            (
                serde_json::json!({"model": "m", "prompt": "a", "repeat_penalty": 1.1,
                                "repetition_penalty": 1.2}),
                "repetition_penalty",
            ),
            (
                serde_json::json!({"model": "m", "prompt": ["a", "b"], "stream": true}),
                "stream",
            ),
        ] {
            let err = read(&request(body.clone())).unwrap_err();
            assert_eq!(
                err.body().error.param.as_deref(),
                Some(field),
                "{body}: {}",
                err.message
            );
        }
    }
}
