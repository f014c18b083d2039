//! The records of the interaction log, as `colm serve` keeps them and returns them to the
//! tenant that made them (`GET /v1/colm/records`, `GET /v1/colm/records/{id}`): [`Interaction`]
//! (what was served, its cost, texts and [`Transcript`]), [`Feedback`] (the outcome a client
//! attached), and the response objects [`RecordObject`] and [`RecordList`].

use colm_core::Transcript;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One record of the interaction log (`colm serve --interaction-log`): a served request,
/// what it cost and, unless left out, its texts and transcript.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Interaction {
    /// `rec_` and 32 hex digits.
    pub id: String,
    /// When the request arrived, Unix ms.
    pub created_ms: u64,
    /// The tenant (`""` without keys).
    pub tenant: String,
    /// The route, e.g. `/v1/chat/completions`.
    pub route: String,
    /// HTTP status of the response; 499 (nginx's "client closed request") when the caller went away
    /// before the answer was whole.
    pub status: u16,
    /// The model id asked.
    pub model: Option<String>,
    /// What served it: `model` (one hosted model), the canonical strategy text of a virtual
    /// model (`colm:k=2`, `cascade:tau=-0.3`; `collaboration` when it has none), or the
    /// guidance mode (`guidance:reference`).
    pub strategy: Option<String>,
    /// Prompt tokens of every model call.
    pub prompt_tokens: u64,
    /// Completion tokens of every model call.
    pub completion_tokens: u64,
    /// Mean token log-probability of the answer (nats), when the model gave one.
    pub mean_logprob: Option<f64>,
    /// Why the answer ended (`stop`, `length`, …).
    pub finish_reason: Option<String>,
    /// Request arrival → end of the response body, ms.
    pub latency_ms: f64,
    /// Request body bytes (as parsed, uncompressed).
    pub bytes_in: u64,
    /// Response body bytes (before compression).
    pub bytes_out: u64,
    /// Whether the request was sensitive (then no texts are kept).
    pub sensitive: bool,
    /// The query (the last user turn, or the guidance query), unless left out.
    pub query: Option<String>,
    /// The answer (or guidance), unless left out; of a failed request, the text streamed
    /// before it failed, if any.
    pub answer: Option<String>,
    /// Why the model call failed (`status` is its HTTP status; 200 when the stream had begun),
    /// or that its caller went away; `None` when it answered. Requests refused before any
    /// model call (malformed, unknown model) are not recorded; the token counts of a failed or
    /// cut request are what its model calls had used (`colm_core::Meter`).
    pub error: Option<String>,
    /// Where a router answered the query (`local`, `remote`, `colm`): a served cascade's
    /// decision; `None` when no router decided.
    pub routed: Option<String>,
    /// What data residency did with a sensitive query: it stayed on the device (`local`) or
    /// left it with its sensitive spans replaced by placeholders (`redacted`); `None` when the
    /// query was not sensitive or no router decided.
    #[serde(default)]
    pub residency: Option<colm_core::ResidencyOutcome>,
    /// A collaboration's steps — each draft, reference, guidance and refinement, with its
    /// writer, tokens and time, and whether it was shared from the store — with their texts
    /// left out as `query` and `answer` are; `None` for one model's answer and in records
    /// written before transcripts were kept.
    #[serde(default)]
    pub transcript: Option<Transcript>,
}

impl Interaction {
    /// The record without its texts: no query, no answer, a transcript of steps without their
    /// texts (what is kept of a sensitive request, of one that asked `store: false`, and of
    /// every request under `colm serve --no-log-texts`).
    pub fn without_texts(mut self) -> Self {
        self.query = None;
        self.answer = None;
        self.transcript = self.transcript.map(Transcript::without_texts);
        self
    }
}

/// An outcome attached to a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Feedback {
    /// `right` or `wrong`.
    pub outcome: Option<String>,
    /// A score in 0–1.
    pub score: Option<f64>,
}

impl Feedback {
    /// Whether the answer was right: the outcome when one was given, else a score of at least
    /// 0.5; `None` without feedback.
    pub fn right(&self) -> Option<bool> {
        match (self.outcome.as_deref(), self.score) {
            (Some(o), _) => Some(o == "right"),
            (None, Some(s)) => Some(s >= 0.5),
            (None, None) => None,
        }
    }
}

/// `GET /v1/colm/records/{id}`: one record of the caller's with its feedback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordObject {
    /// `colm.record`.
    pub object: String,
    /// The record.
    #[serde(flatten)]
    pub record: Interaction,
    /// The feedback attached to it (both fields `null` without any).
    pub feedback: Feedback,
}

impl RecordObject {
    /// `record` with its `feedback`.
    pub fn new(record: Interaction, feedback: Feedback) -> Self {
        Self {
            object: "colm.record".into(),
            record,
            feedback,
        }
    }
}

/// `GET /v1/colm/records`: the caller's most recent records, newest first, without their
/// transcripts (fetch one by id for it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordList {
    /// `list`.
    pub object: String,
    /// The records.
    pub data: Vec<RecordObject>,
}

/// `GET /v1/colm/records`'s query string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    /// How many records, newest first (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}
