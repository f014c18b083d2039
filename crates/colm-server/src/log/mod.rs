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

mod feedback;
mod middleware;
pub mod records;
mod store;
#[cfg(test)]
mod tests;

pub use colm_api::record::{Feedback, Interaction};
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
