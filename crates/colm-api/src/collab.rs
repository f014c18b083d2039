//! The collaboration API (CoLM, Huang et al., AAAI 2026, §3): one-shot guidance and shared
//! sessions. The server's modules `collab` and `sessions` document the behaviour; this module
//! holds the bodies.

use colm_core::answer::VoteTally;
pub use colm_core::options::{GuidanceOptions, MAX_DRAFTS, MAX_REFS};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::openai::CompletionUsage;

/// Body of `POST /v1/colm/guidance`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuidanceRequest {
    /// Server model that aggregates (not needed when voting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The clients' query; not empty.
    #[schema(min_length = 1)]
    pub query: String,
    /// Drafts to aggregate, up to 16: at least 1 in the modes that read them
    /// (all but `reference` in round 1), exactly 1 for `reference-critique`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 16)]
    pub drafts: Vec<String>,
    /// Round number from 1 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub round: Option<u32>,
    /// How the guidance is made.
    #[serde(flatten)]
    pub options: GuidanceOptions,
    /// Completion token limit of each server call, tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature of the server calls; default 0.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option"
    )]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f32>,
}

/// A reference as sent to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SentReference {
    /// Id of the writer.
    pub writer: String,
    /// Its answer.
    pub text: String,
}

/// What made a session aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `k` drafts were in.
    K,
    /// The aggregation window ended with at least one draft.
    Deadline,
}

impl Trigger {
    /// `k` or `deadline` (also the label of the session metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::K => "k",
            Trigger::Deadline => "deadline",
        }
    }
}

/// Guidance (`object: "colm.guidance"`): the answer of `POST /v1/colm/guidance` and, with the
/// session fields, of `GET /v1/colm/sessions/{id}/guidance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GuidanceResponse {
    /// `colm.guidance`.
    pub object: String,
    /// Round number from 1.
    pub round: u32,
    /// The mode that produced the guidance (for `auto`: `vote` or `synthesis`).
    pub mode: String,
    /// The server model that aggregated; `null` when voting without one.
    pub model: Option<String>,
    /// The guidance text.
    pub guidance: String,
    /// The references it was made from (reference modes; failed writers left out).
    pub references: Vec<SentReference>,
    /// Tokens this request spent; `null` when it spent none (a vote, or shared guidance from
    /// the store).
    pub usage: Option<CompletionUsage>,
    /// The vote, in `vote` (and `auto` when it voted).
    pub tally: Option<VoteTally>,
    /// The guidance came from the server's store, computed for an earlier client asking the
    /// same question (reference modes with sharing on).
    pub shared: bool,
    /// Sessions: the session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Sessions: what made the session aggregate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// Sessions: drafts aggregated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drafts_used: Option<usize>,
    /// Sessions: the names of the clients whose drafts were aggregated, in arrival order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<String>>,
    /// With `screen: agreeing`: how many drafts the server model was not shown (their final
    /// answer no other draft gives); absent when no draft was left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screened_out: Option<usize>,
}

impl GuidanceResponse {
    /// Guidance `text` of `mode` by `model` in `round`, with no references, usage, tally or
    /// session fields (set them with struct update syntax).
    pub fn new(round: u32, mode: &str, model: Option<String>, guidance: String) -> Self {
        Self {
            object: "colm.guidance".into(),
            round,
            mode: mode.to_owned(),
            model,
            guidance,
            references: Vec::new(),
            usage: None,
            tally: None,
            shared: false,
            session: None,
            trigger: None,
            drafts_used: None,
            clients: None,
            screened_out: None,
        }
    }
}

/// Body of `POST /v1/colm/sessions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// The question all clients of the session answer; not empty.
    #[schema(min_length = 1)]
    pub query: String,
    /// Server model that aggregates (and, without reference writers, writes the reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// How the guidance is made (`reference-critique` is per client, not for sessions). In
    /// `reference` mode, round 1 reads no draft (the session's guidance is the shared synthesis
    /// of the references); from round 2 the session aggregates its clients' answers with the
    /// references.
    #[serde(flatten)]
    pub options: GuidanceOptions,
    /// Drafts that trigger aggregation, 1 to 16 (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 16)]
    pub k: Option<usize>,
    /// Aggregation deadline after creation, ms (default 30000, at most 600000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 600000)]
    pub window_ms: Option<u64>,
    /// Round number (default 1); sessions of different rounds are distinct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub round: Option<u32>,
    /// Completion token limit of the server call, tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature of the server call.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::float::option"
    )]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f32>,
}

/// Body of `POST /v1/colm/sessions/{id}/drafts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitDraft {
    /// The client's draft answer (not blank: a blank draft would count toward `k`).
    #[schema(min_length = 1)]
    pub draft: String,
    /// A name for the client, echoed in `clients` (default `client-N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// Query of `GET /v1/colm/sessions/{id}/guidance`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Long-poll wait, ms (default 0, at most 60000).
    #[param(minimum = 0, maximum = 60000)]
    pub wait_ms: Option<u64>,
}

/// A session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Accepting drafts.
    Open,
    /// Aggregating; drafts are refused (409).
    Aggregating,
    /// The guidance (or the error) is ready.
    Done,
}

impl SessionStatus {
    /// `open`, `aggregating` or `done`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Open => "open",
            SessionStatus::Aggregating => "aggregating",
            SessionStatus::Done => "done",
        }
    }
}

/// A shared session (`object: "colm.session"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionObject {
    /// `colm.session`.
    pub object: String,
    /// The session id.
    pub id: String,
    /// Its state.
    pub status: SessionStatus,
    /// The question.
    pub query: String,
    /// The aggregating model.
    pub model: Option<String>,
    /// The guidance mode.
    pub mode: String,
    /// Round number.
    pub round: u32,
    /// Drafts that trigger aggregation.
    pub k: usize,
    /// Drafts received so far.
    pub drafts: usize,
    /// Time left until the aggregation deadline, ms (0 once passed).
    pub deadline_ms: u64,
    /// On `POST /v1/colm/sessions`: whether an open session was joined (else one was created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined: Option<bool>,
}

/// An outcome a client reports for an answer it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackOutcome {
    /// The answer was right.
    Right,
    /// The answer was wrong.
    Wrong,
}

impl FeedbackOutcome {
    /// `right` or `wrong`.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackOutcome::Right => "right",
            FeedbackOutcome::Wrong => "wrong",
        }
    }
}

/// Body of `POST /v1/colm/feedback`: an outcome and/or a score for a served request, named by
/// the record id its response carried (`x-colm-record-id`). Giving it again replaces it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The record id (`rec_` and 32 hex digits).
    pub record_id: String,
    /// Whether the answer was right.
    pub outcome: Option<FeedbackOutcome>,
    /// A score of the answer, 0 (worst) to 1 (best).
    #[schema(minimum = 0, maximum = 1)]
    pub score: Option<f64>,
}

/// The answer of `POST /v1/colm/feedback` (`object: "colm.feedback"`): the feedback as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FeedbackResponse {
    /// `colm.feedback`.
    pub object: String,
    /// The record it is attached to.
    pub record_id: String,
    /// The outcome, if given.
    pub outcome: Option<FeedbackOutcome>,
    /// The score, if given.
    pub score: Option<f64>,
}
