//! The interaction log (`colm serve --interaction-log FILE`): one durable record per collaboration served
//! — chat completions of hosted and virtual models, one-shot guidance, session guidance — and
//! the feedback clients attach to it (`POST /v1/colm/feedback`), for learning routing
//! policies from deployment logs (Yuan et al., "LLMs over networks", arXiv 2605.08626:
//! routing policies learned from logs).
//!
//! Each served request gets a record id (`rec_` and 32 hex digits) in the response header
//! [`RECORD_HEADER`], whether or not a log is kept. A record holds: id, time, tenant, route,
//! HTTP status, the model id asked and the strategy behind it, prompt and completion tokens,
//! the answer's mean token log-probability and finish reason, latency to the end of the
//! response (ms), request and response body bytes (uncompressed), and the query and answer
//! texts — left out (NULL) when the request was sensitive (`metadata.sensitive`) or the
//! operator turned texts off (`--no-log-texts`). Feedback: `outcome` (`right` / `wrong`) and/or
//! `score` (0–1), by the tenant that made the request only.
//!
//! The log is SQLite (`rusqlite`, one file, WAL) by default, or PostgreSQL (`postgres://…`,
//! `tokio-postgres`) for replicas writing one log; the same table and statements serve both.
//! Records are written after their response has been sent, so they never hold up one, and a
//! failed write is logged, not the request's error.

use serde::{Deserialize, Serialize};

mod feedback;
mod middleware;
mod store;
#[cfg(test)]
mod tests;

pub use feedback::{__path_feedback, feedback};
pub use middleware::{record, Recorder, Served};
pub use store::{read_file, read_target, InteractionLog};

/// Response header carrying the record id of a served request.
pub const RECORD_HEADER: &str = "x-colm-record-id";

/// [`Interaction::status`] of a request whose caller went away before its answer was whole
/// (a stream closed early): 499, nginx's "client closed request".
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// SQLite.
    #[error("interaction log (SQLite): {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL.
    #[error("interaction log (PostgreSQL): {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The blocking SQLite task failed.
    #[error("interaction log: {0}")]
    Task(String),
}

/// One record ([module docs](self)).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// `rec_` and 32 hex digits.
    pub id: String,
    /// When the request arrived, Unix ms.
    pub created_ms: u64,
    /// The tenant (`""` without keys).
    pub tenant: String,
    /// The route, e.g. `/v1/chat/completions`.
    pub route: String,
    /// HTTP status of the response; [`CLIENT_CLOSED_REQUEST`] when the caller went away
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
    /// cut request are what its model calls had used ([`colm_core::Meter`]).
    pub error: Option<String>,
    /// Where a router answered the query (`local`, `remote`, `colm`): a served cascade's
    /// decision; `None` when no router decided.
    pub routed: Option<String>,
}

/// An outcome attached to a record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
