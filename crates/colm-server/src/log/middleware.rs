//! The recorder: a record id for every served request ([`super::RECORD_HEADER`]), and the
//! record written once the response has been sent ([`record`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt as _;

use crate::state::now_ms;
use crate::AppState;

use super::store::InteractionLog;
use super::{Interaction, RECORD_HEADER};

/// A fresh record id: `rec_` and 128 random bits (32 hex digits).
fn new_id() -> String {
    format!("rec_{}", crate::state::random_token())
}

/// The record of the request being served, filled by its handler (a request extension);
/// [`Recorder::active`] when a log is kept (else it only carries the record id); its texts are
/// left out when the request asked so ([`Recorder::forget_texts`]).
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Interaction>>, bool, Arc<AtomicBool>);

impl Recorder {
    /// Whether the record will be written (a log is kept): handlers gather what they fill in
    /// only then.
    pub fn active(&self) -> bool {
        self.1
    }

    /// Keeps the record without its texts ([`Interaction::without_texts`]): the request said
    /// `store: false`.
    pub fn forget_texts(&self) {
        self.2.store(true, Ordering::Relaxed);
    }

    /// Fills in what the handler knows (model, strategy, tokens, texts, …).
    pub fn fill(&self, f: impl FnOnce(&mut Interaction)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Fills in a chat completion: model `model` served by `strategy`
    /// ([`Interaction::strategy`]), the `query` (the last user turn of the request), its body
    /// size and sensitivity, and the answers `cs` (tokens summed; the first one's text,
    /// log-probability, finish reason and route).
    pub fn chat(
        &self,
        model: &str,
        strategy: &str,
        query: &str,
        bytes_in: usize,
        sensitive: bool,
        cs: &[colm_core::Completion],
    ) {
        self.fill(|r| {
            r.model = Some(model.to_owned());
            r.strategy = Some(strategy.to_owned());
            r.bytes_in = bytes_in as u64;
            r.sensitive = sensitive;
            r.query = Some(query.to_owned());
            r.prompt_tokens = cs.iter().map(|c| c.usage.prompt_tokens).sum();
            r.completion_tokens = cs.iter().map(|c| c.usage.completion_tokens).sum();
            if let Some(c) = cs.first() {
                r.mean_logprob = c.mean_logprob;
                r.finish_reason = Some(
                    serde_json::to_value(c.finish_reason)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                );
                r.answer = Some(c.text.clone());
                r.routed = c.route.map(|route| colm_core::named::Named::name(&route));
                r.transcript = c.transcript.as_deref().cloned();
                r.residency = c.residency;
            }
        });
    }

    /// Marks the record failed with `error`; `partial`: the text streamed before the failure.
    pub fn failed(&self, error: &str, partial: &str) {
        self.fill(|r| {
            r.error = Some(error.to_owned());
            r.answer = (!partial.is_empty()).then(|| partial.to_owned());
        });
    }

    /// Marks the record cut: its caller went away after `partial` was streamed, when the
    /// model calls had used `usage`.
    pub fn cut(&self, usage: colm_core::Usage, partial: &str) {
        self.fill(|r| {
            r.status = super::CLIENT_CLOSED_REQUEST;
            r.prompt_tokens = usage.prompt_tokens;
            r.completion_tokens = usage.completion_tokens;
            r.error = Some(format!(
                "the caller went away after {} generated tokens",
                usage.completion_tokens
            ));
            r.answer = (!partial.is_empty()).then(|| partial.to_owned());
        });
    }

    /// Fills in guidance `g` for `query` (a request body of `bytes_in` bytes; 0 for a session's
    /// guidance, fetched with a GET).
    pub fn guidance(&self, g: &colm_api::collab::GuidanceResponse, query: &str, bytes_in: usize) {
        self.fill(|r| {
            r.model.clone_from(&g.model);
            r.strategy = Some(format!("guidance:{}", g.mode));
            r.bytes_in = bytes_in as u64;
            r.query = Some(query.to_owned());
            r.answer = Some(g.guidance.clone());
            if let Some(u) = &g.usage {
                r.prompt_tokens = u.prompt_tokens;
                r.completion_tokens = u.completion_tokens;
            }
        });
    }

    /// The record id.
    pub fn id(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .id
            .clone()
    }
}

/// Marks a response as a collaboration to log (set by the handlers that fill the record).
#[derive(Clone, Copy)]
pub struct Served;

/// Counts the body's bytes and appends the record when the body ends (or is dropped).
struct Finish {
    recorder: Recorder,
    log: Arc<InteractionLog>,
    started: Instant,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let mut r = self
            .recorder
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if self.recorder.2.load(Ordering::Relaxed) {
            r = r.without_texts();
        }
        r.latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        self.log.append_later(r);
    }
}

/// Middleware of the `/v1` routes (inside the key check): gives the request a [`Recorder`] and
/// its response the [`RECORD_HEADER`]; when the handler marked the response [`Served`] and a
/// log is kept, appends the record once the response body has been sent.
pub async fn record(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let recorder = Recorder(
        Arc::new(Mutex::new(Interaction {
            id: new_id(),
            created_ms: now_ms(),
            tenant: crate::auth::current_tenant().map_or_else(String::new, |t| t.name),
            route,
            ..Interaction::default()
        })),
        state.log().is_some(),
        Arc::default(),
    );
    request.extensions_mut().insert(recorder.clone());
    let mut response = next.run(request).await;
    if let Ok(v) = HeaderValue::from_str(&recorder.id()) {
        response.headers_mut().insert(RECORD_HEADER, v);
    }
    let served = response.extensions().get::<Served>().is_some();
    let Some(log) = state.log().filter(|_| served).cloned() else {
        return response;
    };
    recorder.fill(|r| r.status = response.status().as_u16());
    let (parts, body) = response.into_parts();
    let finish = Finish {
        recorder: recorder.clone(),
        log,
        started,
    };
    let counted = body.into_data_stream().map(move |chunk| {
        if let Ok(bytes) = &chunk {
            let n = bytes.len() as u64;
            finish.recorder.fill(|r| r.bytes_out += n);
        }
        chunk
    });
    Response::from_parts(parts, Body::from_stream(counted))
}
