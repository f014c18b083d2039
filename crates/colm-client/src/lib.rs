//! colm-client: the device side of CoLM.
//!
//! [`CollabClient`] is a [`ChatModel`] that answers each chat with CoLM split across the
//! network: the **local** model drafts, a colm server's `POST /v1/colm/guidance` sends guidance
//! (by default, in `reference` mode, the synthesis of the server's own references, asked for
//! while the local model drafts: it reads no draft), and the local model refines its own draft
//! with it (CoLM, Huang et al., AAAI 2026: the client refines with the server's guidance), for
//! one or more rounds.
//!
//! The exchanges go over a [`colm_remote::Link`] (zstd bodies, retries of transient failures
//! within a deadline); the completion's [`Completion::wire`] reports the bytes sent and
//! received, compressed and not. If the server is unreachable, answers with an error, or
//! misses the deadline, the client answers with its latest local answer and marks the
//! completion as a fallback ([`Completion::fallback`] holds the reason).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use colm_api::collab::{
    CreateSession, GuidanceRequest, GuidanceResponse, SessionObject, SubmitDraft,
};
use colm_core::answer::VoteTally;
use colm_core::colm::guide::{Ask, Guide, Guided, Shared};
use colm_core::colm::round;
use colm_core::colm::{Collaborator, ColmConfig, ColmError};
use colm_core::guidance::{self, GuidanceMode};
use colm_core::options::RoundOptions;
use colm_core::run::Relay;
use colm_core::step::{announce, no_call_step, Step, StepKind, StepObserver, Watch};
use colm_core::vertical::privacy::Detector;
use colm_core::vertical::redacted::Redacted;
use colm_core::vertical::{Decision, Residency};
use colm_core::{
    ChatMessage, ChatModel, Completion, ModelError, Query, ResidencyOutcome, SamplingParams,
    Timings, Usage, WireStats,
};
use colm_remote::{Endpoint, Failure, Link};

/// Where and how to ask for guidance.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The colm server (base URL, e.g. `http://127.0.0.1:8080`, API key, the deadline of the
    /// whole guidance exchange, retries, compression).
    pub endpoint: Endpoint,
    /// Server model that writes the guidance.
    pub server_model: String,
    /// The collaboration's options: rounds (in round r ≥ 2 the client sends its round r − 1
    /// refinement and refines again with the guidance made from it), the refinement form, and
    /// the guidance options sent with every guidance request.
    pub options: RoundOptions,
    /// Send drafts trimmed to a rationale of at most this many tokens (the local model's
    /// tokenizer) plus the final answer; `None` sends them whole.
    pub trim_draft_tokens: Option<usize>,
    /// Join a shared session instead of asking for one-shot guidance.
    pub session: Option<SessionConfig>,
    /// This client's name in shared sessions.
    pub client_name: Option<String>,
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
    /// Defaults for `base_url`: the defaults of [`Endpoint::new`] (30 s deadline, 2 retries
    /// from 200 ms, compressed) and of [`RoundOptions`] (reference mode, 1 round).
    pub fn new(base_url: impl Into<String>, server_model: impl Into<String>) -> Self {
        Self {
            endpoint: Endpoint::new(base_url),
            server_model: server_model.into(),
            options: RoundOptions::default(),
            trim_draft_tokens: None,
            session: None,
            client_name: None,
            residency: Residency::Redact,
            sensitive_names: Vec::new(),
        }
    }
}

/// Why an exchange failed: the error as the caller will see it (with its HTTP meaning: an
/// Local model + remote guidance, behind the [`ChatModel`] trait.
pub struct CollabClient {
    name: String,
    local: Arc<dyn ChatModel>,
    remote: RemoteConfig,
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
            link: Link::new(remote.endpoint.clone())?,
            remote,
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
    ) -> Result<(GuidanceResponse, WireStats), Failure> {
        let started = Instant::now();
        let left = || timeout.saturating_sub(started.elapsed());
        let mut wire = WireStats::default();
        let session = self.remote.session.filter(|_| draft.is_some());
        let Some(session) = session else {
            let body = GuidanceRequest {
                model: Some(self.remote.server_model.clone()),
                query: query.to_owned(),
                drafts: draft.into_iter().map(str::to_owned).collect(),
                round: Some(round),
                options: self.remote.options.guidance.clone(),
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
            return Ok((g, wire));
        };
        // Shared session: join or create, submit the draft, long-poll for the guidance.
        let body = CreateSession {
            model: Some(self.remote.server_model.clone()),
            query: query.to_owned(),
            options: self.remote.options.guidance.clone(),
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
            client: self.remote.client_name.clone(),
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
                return Ok((g, wire));
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
    ) -> Result<(GuidanceResponse, WireStats), ModelError> {
        self.link
            .retrying("guidance", |left| {
                self.request_guidance(query, draft, round, params, left)
            })
            .await
    }

    /// `text` as sent: trimmed to `trim_draft_tokens` of rationale when set.
    fn sent(&self, text: &str) -> String {
        match self.remote.trim_draft_tokens {
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

#[async_trait]
impl ChatModel for CollabClient {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_collaboration(&self) -> bool {
        true
    }

    /// One CoLM collaboration split across the network: the round of
    /// [`colm_core::colm::round::run`] on the local model, its guide a colm server ([`Remote`]). In
    /// `reference` mode, whose round-1 guidance reads no draft, the guidance is fetched while
    /// the local model drafts; with `rounds` > 1 each refinement goes back for the next round's
    /// guidance. When a guidance exchange fails for good, the latest answer is returned, marked
    /// as a fallback.
    async fn chat(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Completion, ModelError> {
        self.collaborate(messages, params, Watch::default()).await
    }

    /// [`ChatModel::chat`], reporting each step live as [`colm_core::StreamEvent::Progress`]
    /// (the draft and refinement as the device writes them, the server's guidance when it
    /// arrives) and the refinement's text as it is generated ([`Relay`]).
    async fn chat_streaming(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        events: futures::channel::mpsc::UnboundedSender<colm_core::StreamEvent>,
    ) -> Result<Completion, ModelError> {
        let (relay, forward) = Relay::new(events.clone());
        let run = async move {
            let run = self.collaborate(messages, params, relay.watch()).await;
            drop(relay);
            run
        };
        let (run, sent) = futures::join!(run, forward);
        Relay::finish(&events, run?, &sent)
    }

    fn reports_progress(&self) -> bool {
        true
    }
}

impl CollabClient {
    /// One collaboration ([`ChatModel::chat`]), watched by `watch`.
    async fn collaborate(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        watch: Watch<'_>,
    ) -> Result<Completion, ModelError> {
        // The device drafts and refines on the caller's conversation; the server is asked about
        // its transcript (the guidance API takes one text).
        let query = Query::from_messages(messages);
        let options = &self.remote.options;
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
                .remote
                .residency
                .decide(&self.detector, &transcript, params.sensitive)
            {
                Decision::Leave => (&remote, None),
                Decision::StayLocal(why) => {
                    tracing::info!(%why, "answered on the device");
                    let step = round::draft(&query, local.as_client(), params, watch.steps).await;
                    let Some(mut answer) = step.completion().cloned() else {
                        return Err(step.failure().unwrap_or_else(|| {
                            ModelError::Inference("the draft left no answer".into())
                        }));
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
            watch,
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
        for s in record.client_steps() {
            // A cancelled fallback draft counts what it had used.
            usage.add(s.usage());
            if let Some(c) = s.completion() {
                timings.add(c.timings);
            }
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
    /// The guidance of `round` for `answer` (none: round 1 of `reference`) as a step, the vote
    /// it is the outcome of (when it is one), and the bytes it moved.
    async fn fetch(
        &self,
        query: &Query,
        answer: Option<&str>,
        round: u32,
    ) -> (Step, Option<VoteTally>, WireStats) {
        let sent = answer.map(|a| self.client.sent(a));
        let fetched = self
            .client
            .guidance(&query.server_text(), sent.as_deref(), round, self.params)
            .await;
        let (text, tally, wire) = match fetched {
            Ok((g, w)) => (Ok(g.guidance), g.tally, w),
            Err(e) => (Err(e), None, WireStats::default()),
        };
        let step = no_call_step(StepKind::Guidance, round, self.server_model(), text, None);
        (step, tally, wire)
    }
}

#[async_trait]
impl Guide for Remote<'_> {
    fn server_model(&self) -> &str {
        &self.client.remote.server_model
    }

    /// The fetched guidance is reported to `observer` when it arrives (whole: the server
    /// wrote it).
    async fn shared(&self, query: &Query, observer: Option<StepObserver<'_>>) -> Option<Shared> {
        let g = &self.client.remote.options.guidance;
        if g.mode() != GuidanceMode::Reference || g.aggregate_drafts() {
            return None;
        }
        let (step, tally, wire) = self.fetch(query, None, 1).await;
        announce(observer, &step);
        Some(Shared {
            references: None,
            guidance: Some(step),
            tally,
            wire,
        })
    }

    async fn guidance(&self, ask: Ask<'_>, observer: Option<StepObserver<'_>>) -> Guided {
        let mode = self.client.remote.options.guidance.mode();
        if let Some(Shared {
            guidance: Some(step),
            tally,
            ..
        }) = ask.shared
        {
            return Guided {
                tally,
                ..Guided::only(step, mode, true)
            };
        }
        let answer = ask.answers.first().map(|a| a.text.as_str());
        let (step, tally, wire) = self.fetch(ask.query, answer, ask.round).await;
        announce(observer, &step);
        Guided {
            aggregated: ask.answers.to_vec(),
            tally,
            wire,
            ..Guided::only(step, mode, false)
        }
    }
}
