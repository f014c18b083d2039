//! colm-client: the device side of CoLM.
//!
//! [`CollabClient`] is a [`ChatModel`] that answers each chat with CoLM split across the
//! network: the **local** model drafts, a colm server's `POST /v1/colm/guidance` sends guidance
//! (by default, in `reference` mode, the synthesis of the server's own references, asked for
//! while the local model drafts: it reads no draft), and the local model refines its own draft
//! with it (CoLM, Huang et al., AAAI 2026: the client refines with the server's guidance), for
//! one or more rounds.
//!
//! On the wire, request bodies are zstd-compressed (`Content-Encoding: zstd`) and responses
//! are accepted compressed (`Accept-Encoding: zstd, gzip`); the completion's
//! [`Completion::wire`] reports the bytes sent and received, compressed and not.
//!
//! The server part has a **deadline**. If the server is unreachable, answers with an error, or
//! misses the deadline, the client answers with its local draft and marks the completion as a
//! fallback ([`Completion::fallback`] holds the reason). Transient failures (connection
//! errors, 429, 502, 503, 504) are retried with exponential backoff while the deadline allows;
//! other errors are not.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::io::Read;

pub mod replicas;
pub use replicas::Replicas;
mod upstream;
pub use upstream::{RemoteChat, Upstream};

use async_trait::async_trait;
use colm_api::collab::{
    CreateSession, GuidanceRequest, GuidanceResponse, SessionObject, SubmitDraft,
};
use colm_api::openai::{
    ChatCompletion, ChatCompletionRequest, CompletionUsage, ErrorBody, StreamOptions,
};
use colm_core::colm::guide::{Ask, Guide, Guided, Shared};
use colm_core::colm::{Collaborator, ColmConfig, ColmError};
use colm_core::guidance::{self, GuidanceMode};
use colm_core::options::RoundOptions;
use colm_core::round;
use colm_core::step::{no_call_step, Step, StepKind, StepObserver, StepOutcome, Watch};
use colm_core::vertical::privacy::Detector;
use colm_core::vertical::redacted::Redacted;
use colm_core::vertical::{Decision, Residency};
use colm_core::{
    ChatMessage, ChatModel, Completion, ModelError, Query, ResidencyOutcome, SamplingParams,
    StreamEvent, Timings, Usage, WireStats,
};
use futures::channel::mpsc::UnboundedSender;
use reqwest::header;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Where and how to ask for guidance.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Base URL of the colm server, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// Server model that writes the guidance.
    pub server_model: String,
    /// The collaboration's options: rounds (in round r ≥ 2 the client sends its round r − 1
    /// refinement and refines again with the guidance made from it), the refinement form, and
    /// the guidance options sent with every guidance request.
    pub options: RoundOptions,
    /// API key sent as `Authorization: Bearer …`.
    pub api_key: Option<String>,
    /// Time allowed for the whole guidance exchange, retries included.
    pub deadline: Duration,
    /// Retries of transient failures.
    pub retries: u32,
    /// First backoff; doubled at each retry.
    pub backoff: Duration,
    /// Send drafts trimmed to a rationale of at most this many tokens (the local model's
    /// tokenizer) plus the final answer; `None` sends them whole.
    pub trim_draft_tokens: Option<usize>,
    /// Join a shared session instead of asking for one-shot guidance.
    pub session: Option<SessionConfig>,
    /// This client's name in shared sessions.
    pub client_name: Option<String>,
    /// Compress request bodies with zstd (a colm server accepts them; other OpenAI-compatible
    /// servers may not).
    pub compress: bool,
    /// What a sensitive query may do — one flagged by the request (`metadata.sensitive`) or
    /// holding spans the detector finds (e-mail addresses, phone, card and account numbers,
    /// `sensitive_names`): stay on the device ([`Residency::Local`]: the answer is the local
    /// draft) or leave with typed placeholders ([`Residency::Redact`], the default: the query
    /// and every draft sent are redacted, the guidance restored on the device). A flagged query
    /// with nothing to redact stays on the device.
    pub residency: Residency,
    /// Names treated as sensitive (whole words, case-insensitive).
    pub sensitive_names: Vec<String>,
}

/// Shared-session settings (server side: `POST /v1/colm/sessions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Drafts that trigger aggregation.
    pub k: usize,
    /// Aggregation window from the session's creation, ms.
    pub window_ms: u64,
}

impl RemoteConfig {
    /// Defaults for `base_url`: reference mode, 1 round, 30 s deadline, 2 retries from 200 ms.
    pub fn new(base_url: impl Into<String>, server_model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            server_model: server_model.into(),
            options: RoundOptions::default(),
            api_key: None,
            deadline: Duration::from_secs(30),
            retries: 2,
            backoff: Duration::from_millis(200),
            trim_draft_tokens: None,
            session: None,
            client_name: None,
            compress: true,
            residency: Residency::Redact,
            sensitive_names: Vec::new(),
        }
    }
}

/// Why an exchange failed: the error as the caller will see it (with its HTTP meaning: an
/// upstream 429 stays rate limited, a 503 unavailable, a 400 the caller's), and whether to
/// retry it within the deadline.
#[derive(Debug)]
struct Failure {
    error: ModelError,
    transient: bool,
}

impl Failure {
    /// A failure that retrying cannot fix.
    fn fatal(error: ModelError) -> Self {
        Self {
            error,
            transient: false,
        }
    }
}

/// The failure of a request that got no answer within `timeout`: the server missed the
/// deadline (not retried: no time is left), or could not be reached (transient).
fn missed(e: reqwest::Error, timeout: Duration) -> Failure {
    Failure {
        transient: !e.is_timeout(),
        error: ModelError::Unavailable {
            detail: if e.is_timeout() {
                format!("server missed the deadline ({} ms)", timeout.as_millis())
            } else {
                format!("server unreachable: {e}")
            },
            retry_after_s: None,
        },
    }
}

/// An answer of the server: status, decoded body, `Retry-After` seconds, bytes moved.
struct Reply {
    status: u16,
    body: Vec<u8>,
    retry_after_s: Option<u64>,
    wire: WireStats,
}

impl Reply {
    /// Reads `response` (to `path`, bounded by `timeout`) whole, decoded; `wire` holds the
    /// bytes the request sent.
    async fn read(
        response: reqwest::Response,
        path: &str,
        timeout: Duration,
        mut wire: WireStats,
    ) -> Result<Self, Failure> {
        let status = response.status();
        let retry_after_s = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let encoding = response
            .headers()
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let raw = response.bytes().await.map_err(|e| missed(e, timeout))?;
        let unreadable = |e: String| {
            Failure::fatal(ModelError::Inference(format!(
                "unreadable response to {path} ({status}): {e}"
            )))
        };
        let text = decode(&raw, &encoding).map_err(unreadable)?;
        wire.bytes_received = raw.len() as u64;
        wire.bytes_received_uncompressed = text.len() as u64;
        tracing::debug!(path, ?wire, "exchange");
        Ok(Self {
            status: status.as_u16(),
            body: text,
            retry_after_s,
            wire,
        })
    }

    /// The body of a 2xx answer to `path` as `T`, or the failure the answer describes.
    fn parse<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        if !(200..300).contains(&self.status) {
            return Err(self.failure());
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            Failure::fatal(ModelError::Inference(format!(
                "unreadable answer to {path}: {e}"
            )))
        })
    }

    /// The failure of a non-success answer, with the meaning of its status; the message is the
    /// OpenAI-shaped error body's, else the raw body. 429, 502, 503 and 504 are transient.
    fn failure(&self) -> Failure {
        let message = serde_json::from_slice::<ErrorBody>(&self.body).map_or_else(
            |_| String::from_utf8_lossy(&self.body).into_owned(),
            |b| b.error.message,
        );
        let status = self.status;
        let detail = format!("server answered {status}: {message}");
        let retry_after_s = self.retry_after_s;
        let error = match status {
            429 => ModelError::RateLimited {
                detail,
                retry_after_s,
            },
            502..=504 => ModelError::Unavailable {
                detail,
                retry_after_s,
            },
            400 | 413 => ModelError::InvalidRequest(detail),
            _ => ModelError::Inference(detail),
        };
        Failure {
            transient: error.retryable(),
            error,
        }
    }
}

/// The HTTP side of the device: the server's address and key, the deadline and retries.
struct Link {
    remote: RemoteConfig,
    http: reqwest::Client,
}

/// Local model + remote guidance, behind the [`ChatModel`] trait.
pub struct CollabClient {
    name: String,
    local: Arc<dyn ChatModel>,
    link: Link,
    /// The residency detector of [`RemoteConfig::sensitive_names`], built once.
    detector: Detector,
}

impl CollabClient {
    /// A client named `name` (as served on its local endpoint).
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(
        name: impl Into<String>,
        local: Arc<dyn ChatModel>,
        remote: RemoteConfig,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            name: name.into(),
            local,
            detector: Detector::new(&remote.sensitive_names),
            link: Link::new(remote)?,
        })
    }
    /// One guidance attempt for `round`, bounded by `timeout`: one-shot, or through a shared
    /// session. `draft` is `None` when the guidance reads none (reference mode, round 1): then
    /// the request is one-shot (its references are shared by the server's store anyway).
    async fn request_guidance(
        &self,
        query: &str,
        draft: Option<&str>,
        round: u32,
        params: &SamplingParams,
        timeout: Duration,
    ) -> Result<(String, WireStats), Failure> {
        let started = Instant::now();
        let left = || timeout.saturating_sub(started.elapsed());
        let mut wire = WireStats::default();
        let session = self.link.remote.session.filter(|_| draft.is_some());
        let Some(session) = session else {
            let body = GuidanceRequest {
                model: Some(self.link.remote.server_model.clone()),
                query: query.to_owned(),
                drafts: draft.into_iter().map(str::to_owned).collect(),
                round: Some(round),
                options: self.link.remote.options.guidance.clone(),
                max_tokens: Some(params.max_tokens),
                ..GuidanceRequest::default()
            };
            let reply = self
                .link
                .exchange(
                    reqwest::Method::POST,
                    "/v1/colm/guidance",
                    Some(&body),
                    timeout,
                )
                .await?;
            wire.add(reply.wire);
            let g: GuidanceResponse = reply.parse("/v1/colm/guidance")?;
            return Ok((g.guidance, wire));
        };
        // Shared session: join or create, submit the draft, long-poll for the guidance.
        let body = CreateSession {
            model: Some(self.link.remote.server_model.clone()),
            query: query.to_owned(),
            options: self.link.remote.options.guidance.clone(),
            round: Some(round),
            k: Some(session.k),
            window_ms: Some(session.window_ms),
            max_tokens: Some(params.max_tokens),
            ..CreateSession::default()
        };
        let reply = self
            .link
            .exchange(
                reqwest::Method::POST,
                "/v1/colm/sessions",
                Some(&body),
                left(),
            )
            .await?;
        wire.add(reply.wire);
        let id = reply.parse::<SessionObject>("/v1/colm/sessions")?.id;
        let body = SubmitDraft {
            draft: draft.unwrap_or_default().to_owned(),
            client: self.link.remote.client_name.clone(),
        };
        let reply = self
            .link
            .exchange(
                reqwest::Method::POST,
                &format!("/v1/colm/sessions/{id}/drafts"),
                Some(&body),
                left(),
            )
            .await?;
        wire.add(reply.wire);
        // 409: the session aggregated without this draft; its guidance still helps.
        if !(200..300).contains(&reply.status) && reply.status != 409 {
            return Err(reply.failure());
        }
        loop {
            let wait = left()
                .saturating_sub(Duration::from_millis(200))
                .min(Duration::from_secs(60));
            let reply = self
                .link
                .exchange::<()>(
                    reqwest::Method::GET,
                    &format!(
                        "/v1/colm/sessions/{id}/guidance?wait_ms={}",
                        wait.as_millis()
                    ),
                    None,
                    left(),
                )
                .await?;
            wire.add(reply.wire);
            if reply.status != 202 {
                let g: GuidanceResponse = reply.parse("session guidance")?;
                return Ok((g.guidance, wire));
            }
            if left() <= Duration::from_millis(200) {
                return Err(Failure::fatal(ModelError::Unavailable {
                    detail: format!(
                        "session {id} had no guidance within the deadline ({} ms)",
                        timeout.as_millis()
                    ),
                    retry_after_s: None,
                }));
            }
        }
    }

    /// Guidance for `round` with retries of transient failures, within the deadline.
    async fn guidance(
        &self,
        query: &str,
        draft: Option<&str>,
        round: u32,
        params: &SamplingParams,
    ) -> Result<(String, WireStats), ModelError> {
        self.link
            .retrying("guidance", |left| {
                self.request_guidance(query, draft, round, params, left)
            })
            .await
    }

    /// `text` as sent: trimmed to `trim_draft_tokens` of rationale when set.
    fn sent(&self, text: &str) -> String {
        match self.link.remote.trim_draft_tokens {
            Some(n) => {
                let local = &self.local;
                let count = |t: &str| {
                    local
                        .count_tokens(t)
                        .unwrap_or_else(|| t.split_whitespace().count())
                };
                guidance::trim_draft(text, n, &count)
            }
            None => text.to_owned(),
        }
    }
}

impl Link {
    fn new(remote: RemoteConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            remote,
            http: reqwest::Client::builder().build()?,
        })
    }

    /// The request of a JSON exchange with the server, bounded by `timeout`: the body (if
    /// any) goes zstd-compressed (plain for an endpoint that is not a colm server), the answer
    /// may come zstd or gzip when `compressed_answer` (a stream comes plain). Returns it and
    /// the bytes it sends.
    fn request<B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
        compressed_answer: bool,
    ) -> Result<(reqwest::RequestBuilder, WireStats), Failure> {
        let url = format!("{}{path}", self.remote.base_url.trim_end_matches('/'));
        let accept = if compressed_answer {
            "zstd, gzip"
        } else {
            "identity"
        };
        let mut req = self
            .http
            .request(method, &url)
            .header(header::ACCEPT_ENCODING, accept)
            .timeout(timeout);
        let mut wire = WireStats::default();
        if let Some(body) = body {
            let plain = serde_json::to_vec(body).map_err(|e| {
                Failure::fatal(ModelError::Inference(format!(
                    "cannot encode the request: {e}"
                )))
            })?;
            wire.bytes_sent_uncompressed = plain.len() as u64;
            req = req.header(header::CONTENT_TYPE, "application/json");
            let sent = if self.remote.compress {
                req = req.header(header::CONTENT_ENCODING, "zstd");
                zstd::encode_all(plain.as_slice(), 3).map_err(|e| {
                    Failure::fatal(ModelError::Inference(format!(
                        "cannot compress the request: {e}"
                    )))
                })?
            } else {
                plain
            };
            wire.bytes_sent = sent.len() as u64;
            req = req.body(sent);
        }
        if let Some(key) = &self.remote.api_key {
            req = req.bearer_auth(key);
        }
        Ok((req, wire))
    }

    /// One JSON exchange with the server, bounded by `timeout` ([`Link::request`]). Returns
    /// the status, the decoded body and the bytes moved.
    async fn exchange<B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<Reply, Failure> {
        let (req, wire) = self.request(method, path, body, timeout, true)?;
        let response = req.send().await.map_err(|e| missed(e, timeout))?;
        Reply::read(response, path, timeout, wire).await
    }

    /// Runs `attempt` (given the time left) until it succeeds, fails for good, or the
    /// deadline passes; transient failures are retried up to `retries` times with a backoff
    /// doubling from `backoff`. `what` names the exchange in the logs.
    ///
    /// # Errors
    /// The last attempt's error; [`ModelError::Unavailable`] when the deadline passed.
    async fn retrying<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, ModelError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let start = Instant::now();
        let mut backoff = self.remote.backoff;
        let mut tries = 0;
        loop {
            let left = self.remote.deadline.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(ModelError::Unavailable {
                    detail: format!(
                        "server missed the deadline ({} ms)",
                        self.remote.deadline.as_millis()
                    ),
                    retry_after_s: None,
                });
            }
            match attempt(left).await {
                Ok(v) => return Ok(v),
                Err(f) if f.transient && tries < self.remote.retries => {
                    tries += 1;
                    tracing::info!(tries, reason = %f.error, "{what} failed; retrying");
                    let left = self.remote.deadline.saturating_sub(start.elapsed());
                    if backoff >= left {
                        return Err(f.error);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(f) => return Err(f.error),
            }
        }
    }
}

#[async_trait]
impl ChatModel for CollabClient {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_collaboration(&self) -> bool {
        true
    }

    /// One CoLM collaboration split across the network: the round of
    /// [`colm_core::round::run`] on the local model, its guide a colm server ([`Remote`]). In
    /// `reference` mode, whose round-1 guidance reads no draft, the guidance is fetched while
    /// the local model drafts; with `rounds` > 1 each refinement goes back for the next round's
    /// guidance. When a guidance exchange fails for good, the latest answer is returned, marked
    /// as a fallback.
    async fn chat(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Completion, ModelError> {
        // The device drafts and refines on the caller's conversation; the server is asked about
        // its transcript (the guidance API takes one text).
        let query = Query::from_messages(messages);
        let options = &self.link.remote.options;
        options
            .check()
            .map_err(|e| ModelError::InvalidRequest(e.to_string()))?;
        let local = Collaborator {
            id: "local".into(),
            description: String::new(),
            model: self.local.clone(),
        };
        // Residency: a sensitive query stays on the device or leaves redacted.
        let transcript = query.server_text();
        let remote = Remote {
            client: self,
            params,
        };
        let redacted;
        let (guide, residency): (&dyn Guide, _) =
            match self
                .link
                .remote
                .residency
                .decide(&self.detector, &transcript, params.sensitive)
            {
                Decision::Leave => (&remote, None),
                Decision::StayLocal(why) => {
                    tracing::info!(%why, "answered on the device");
                    let step = round::draft(&query, local.as_client(), params, None).await;
                    let mut answer = match step.outcome {
                        StepOutcome::Ok { completion } => completion,
                        StepOutcome::Failed { error } => return Err(error),
                    };
                    answer.residency = Some(ResidencyOutcome::Local);
                    return Ok(answer);
                }
                Decision::Redact(r, _) => {
                    redacted = Redacted::new(&remote, &self.detector, r);
                    (&redacted, Some(ResidencyOutcome::Redacted))
                }
            };
        let config = options.config(ColmConfig {
            client_params: params.clone(),
            server_params: params.clone(),
            ..ColmConfig::default()
        });
        let run = round::run(
            &query,
            std::slice::from_ref(&local),
            guide,
            &config,
            None,
            Watch::default(),
        )
        .await;
        let (record, fallback) = match run {
            Ok(record) => (record, None),
            Err(ColmError::GuidanceFailed { error, partial, .. }) => {
                tracing::warn!(reason = %error, "answering with the latest local answer");
                (*partial, Some(error.to_string()))
            }
            Err(ColmError::AllCollaboratorsFailed { mut errors, .. }) => {
                return Err(errors.pop().map_or_else(
                    || ModelError::Inference("the local model failed".into()),
                    |(_, e)| e,
                ))
            }
            Err(ColmError::InvalidConfig(m)) => return Err(ModelError::InvalidRequest(m)),
        };
        let mut answer = record
            .answer_step()
            .and_then(|s| s.completion())
            .cloned()
            .ok_or_else(|| ModelError::Inference("the round left no answer".into()))?;
        let (mut usage, mut timings) = (Usage::default(), Timings::default());
        for c in record.client_steps().filter_map(|s| s.completion()) {
            usage.add(c.usage);
            timings.add(c.timings);
        }
        answer.usage = usage;
        answer.timings = timings;
        answer.wire = match fallback {
            Some(_) => record.wire,
            None => Some(record.wire.unwrap_or_default()),
        };
        answer.fallback = fallback;
        answer.residency = residency;
        Ok(answer)
    }
}

/// A colm server as the guide of the device's round: guidance over `POST /v1/colm/guidance`
/// (or a shared session) with the link's deadline and retries. What leaves the device is the
/// query's transcript and the answers, trimmed (`trim_draft_tokens`); a sensitive query's guide
/// is this one wrapped in [`Redacted`].
struct Remote<'a> {
    client: &'a CollabClient,
    params: &'a SamplingParams,
}

impl Remote<'_> {
    /// The guidance of `round` for `answer` (none: round 1 of `reference`) as a step, and the
    /// bytes it moved.
    async fn fetch(&self, query: &Query, answer: Option<&str>, round: u32) -> (Step, WireStats) {
        let sent = answer.map(|a| self.client.sent(a));
        let fetched = self
            .client
            .guidance(&query.server_text(), sent.as_deref(), round, self.params)
            .await;
        let (text, wire) = match fetched {
            Ok((g, w)) => (Ok(g), w),
            Err(e) => (Err(e), WireStats::default()),
        };
        let step = no_call_step(StepKind::Guidance, round, self.server_model(), text, None);
        (step, wire)
    }
}

#[async_trait]
impl Guide for Remote<'_> {
    fn server_model(&self) -> &str {
        &self.client.link.remote.server_model
    }

    async fn shared(&self, query: &Query, _observer: Option<StepObserver<'_>>) -> Option<Shared> {
        let g = &self.client.link.remote.options.guidance;
        if g.mode() != GuidanceMode::Reference || g.aggregate_drafts() {
            return None;
        }
        let (step, wire) = self.fetch(query, None, 1).await;
        Some(Shared {
            references: None,
            guidance: Some(step),
            wire,
        })
    }

    async fn guidance(&self, ask: Ask<'_>, _observer: Option<StepObserver<'_>>) -> Guided {
        let mode = self.client.link.remote.options.guidance.mode();
        if let Some(step) = ask.shared.and_then(|s| s.guidance) {
            return Guided::only(step, mode, true);
        }
        let answer = ask.answers.first().map(|a| a.text.as_str());
        let (step, wire) = self.fetch(ask.query, answer, ask.round).await;
        Guided {
            aggregated: ask.answers.to_vec(),
            wire,
            ..Guided::only(step, mode, false)
        }
    }
}

/// Decodes a response body by its `Content-Encoding` (`zstd`, `gzip` or none).
fn decode(raw: &[u8], encoding: &str) -> Result<Vec<u8>, String> {
    match encoding {
        "" | "identity" => Ok(raw.to_vec()),
        "zstd" => zstd::decode_all(raw).map_err(|e| format!("zstd: {e}")),
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(raw)
                .read_to_end(&mut out)
                .map_err(|e| format!("gzip: {e}"))?;
            Ok(out)
        }
        other => Err(format!("unsupported content encoding {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn upstreams_parse_with_their_options() {
        let u = Upstream::parse(
            "vlm=http://gpu:9000/v1/,model=llava,vision,key_env=VLM_KEY,deadline_ms=5000",
        )
        .unwrap();
        assert_eq!(
            (u.name.as_str(), u.base_url.as_str(), u.model.as_str()),
            ("vlm", "http://gpu:9000/v1", "llava")
        );
        assert!(u.vision && u.api_key.is_none());
        assert_eq!(u.key_env.as_deref(), Some("VLM_KEY"));
        assert_eq!(u.deadline, Duration::from_millis(5000));
        assert_eq!(u.max_concurrent, None);
        let plain = Upstream::parse("gpt=https://api.example/v1").unwrap();
        assert_eq!((plain.model.as_str(), plain.vision), ("gpt", false));
        let full = Upstream::parse(
            "big=http://h:1/v1,alias=strong,alias=writer,key_file=k.txt,max_concurrent=4",
        )
        .unwrap();
        assert_eq!(full.aliases, ["strong", "writer"]);
        assert_eq!(
            full.key_file.as_deref(),
            Some(std::path::Path::new("k.txt"))
        );
        assert_eq!(full.max_concurrent, Some(4));
        for (bad, says) in [
            ("novalue", "NAME=BASE_URL"),
            ("x=ftp://h/v1", "http(s)"),
            ("x=http://h/v1,colour=red", "unknown option"),
            ("x=http://h/v1,deadline_ms=soon", "not a positive number"),
            ("x=http://h/v1,max_concurrent=0", "not a positive number"),
            ("x=http://h/v1,key_env=K,key_file=f", "not both"),
        ] {
            let e = Upstream::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn bodies_decode_by_content_encoding() {
        let body = br#"{"guidance": "check step 2"}"#;
        assert_eq!(decode(body, "").unwrap(), body);
        let z = zstd::encode_all(&body[..], 3).unwrap();
        assert_eq!(decode(&z, "zstd").unwrap(), body);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(body).unwrap();
        assert_eq!(decode(&gz.finish().unwrap(), "gzip").unwrap(), body);
        assert!(decode(body, "br").is_err());
    }

    /// A real HTTP server on loopback answering every request with `status`, `headers` and
    /// `body`; returns its base URL and the count of requests it answered.
    pub(crate) fn responder(
        status: &'static str,
        headers: &'static str,
        body: &'static str,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut request = vec![0; length];
                reader.read_exact(&mut request).unwrap();
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{headers}\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        (url, count)
    }

    fn remote(url: &str) -> RemoteConfig {
        RemoteConfig {
            backoff: Duration::from_millis(10),
            ..RemoteConfig::new(url, "qwen")
        }
    }

    #[tokio::test]
    async fn an_upstream_429_stays_a_429_with_its_retry_after_once_retries_are_spent() {
        let (url, count) = responder(
            "429 Too Many Requests",
            "retry-after: 7\r\n",
            r#"{"error":{"message":"rate limit of the key","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}"#,
        );
        let chat = RemoteChat::new(remote(&url)).unwrap();
        let err = chat
            .chat(&[ChatMessage::user("q")], &SamplingParams::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ModelError::RateLimited { retry_after_s: Some(7), detail } if detail.contains("rate limit of the key")),
            "{err:?}"
        );
        assert_eq!(err.status(), 429);
        // Two retries, as configured, then the error.
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_upstream_context_overflow_stays_the_callers_400_with_the_sizes() {
        let (url, count) = responder(
            "400 Bad Request",
            "",
            r#"{"error":{"message":"prompt does not fit the context: 900 prompt tokens + 512 max tokens > 1024 context tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        );
        let err = RemoteChat::new(remote(&url))
            .unwrap()
            .chat(&[ChatMessage::user("q")], &SamplingParams::default())
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
        assert!(err.to_string().contains("900 prompt tokens"), "{err}");
        assert_eq!(
            count.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "not retried"
        );
    }

    /// An upstream with `max_concurrent=2` gets at most two chats at once from six callers,
    /// and a chat that finds every slot taken past its deadline is told so.
    #[tokio::test]
    async fn an_upstream_gets_at_most_max_concurrent_chats_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (open, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (o, p) = (open.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let (o, p) = (o.clone(), p.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let mut got = Vec::new();
                    // Headers and the whole body (the request is small: one read or a few).
                    while !String::from_utf8_lossy(&got).contains("\"messages\"") {
                        let n = sock.read(&mut buf).await.unwrap();
                        got.extend_from_slice(&buf[..n]);
                    }
                    let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    o.fetch_sub(1, Ordering::SeqCst);
                    let body = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"4"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    sock.write_all(answer.as_bytes()).await.unwrap();
                });
            }
        });
        let up = Upstream::parse(&format!("m={url},max_concurrent=2")).unwrap();
        let chat = Arc::new(RemoteChat::upstream(&up).unwrap());
        let calls = (0..6).map(|_| {
            let chat = chat.clone();
            tokio::spawn(async move {
                chat.chat(&[ChatMessage::user("q")], &SamplingParams::default())
                    .await
            })
        });
        for c in futures::future::join_all(calls).await {
            assert_eq!(c.unwrap().unwrap().text, "4");
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        // Both slots held: a chat with 100 ms to go waits them out and fails, naming them.
        let (_a, _) = chat.slot(Duration::from_secs(1)).await.unwrap();
        let (_b, _) = chat.slot(Duration::from_secs(1)).await.unwrap();
        assert!(chat.is_full());
        let e = chat
            .chat_once(
                &[ChatMessage::user("q")],
                &SamplingParams::default(),
                Duration::from_millis(100),
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), 503);
        assert!(e.to_string().contains("all 2 slots"), "{e}");
    }

    #[tokio::test]
    async fn an_upstream_stream_is_relayed_delta_by_delta_with_its_usage() {
        let (url, _) = responder(
            "200 OK",
            "",
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n\
             data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"length\"}]}\n\n\
             data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n\
             data: [DONE]\n\n",
        );
        let up = Upstream::parse(&format!("m={url}")).unwrap();
        let chat = RemoteChat::upstream(&up).unwrap();
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let c = chat
            .chat_streaming(&[ChatMessage::user("hi")], &SamplingParams::default(), tx)
            .await
            .unwrap();
        assert_eq!(c.text, "Hello");
        assert_eq!(c.finish_reason, colm_core::FinishReason::Length);
        assert_eq!((c.usage.prompt_tokens, c.usage.completion_tokens), (5, 2));
        let deltas: Vec<StreamEvent> = futures::StreamExt::collect(rx).await;
        assert!(
            matches!(deltas.as_slice(), [StreamEvent::Delta(a), StreamEvent::Delta(b)] if a == "Hel" && b == "lo"),
            "{deltas:?}"
        );
    }

    #[tokio::test]
    async fn an_overloaded_server_is_unavailable_with_its_retry_after() {
        let (url, _) = responder(
            "503 Service Unavailable",
            "retry-after: 2\r\n",
            r#"{"error":{"message":"the model is overloaded","type":"server_error","param":null,"code":"overloaded"}}"#,
        );
        let err = RemoteChat::new(remote(&url))
            .unwrap()
            .chat(&[ChatMessage::user("q")], &SamplingParams::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::Unavailable {
                    retry_after_s: Some(2),
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
