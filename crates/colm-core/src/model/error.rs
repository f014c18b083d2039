//! [`ModelError`]: why a chat failed, with its HTTP meaning.

use serde::{Deserialize, Serialize};

/// Errors a [`ChatModel`] can return.
///
/// In JSON records: `{"kind": "inference", "detail": "…"}`, `{"kind": "overloaded", "detail":
/// {"queued": 64}}` (adjacently tagged: an internal tag cannot hold the string variants).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ModelError {
    /// The prompt plus the requested completion does not fit in the context window. Never
    /// truncated silently.
    #[error(
        "prompt does not fit the context: {prompt_tokens} prompt tokens + {max_tokens} max tokens \
         > {n_ctx} context tokens"
    )]
    ContextOverflow {
        /// Tokens of the templated prompt.
        prompt_tokens: u64,
        /// Completion tokens requested.
        max_tokens: u64,
        /// Context window of the loaded model, tokens.
        n_ctx: u64,
    },
    /// The request itself is unusable (e.g. empty message list, bad sampling values).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The model's request queue is full; try again later. Never an unbounded wait.
    #[error("the model is overloaded: {queued} requests already queued; retry later")]
    Overloaded {
        /// Requests waiting when this one was refused.
        queued: u64,
    },
    /// A rate limit refused the call (an upstream's 429); retry after `retry_after_s` seconds
    /// when given.
    #[error("rate limited: {detail}")]
    RateLimited {
        /// Who refused, and why.
        detail: String,
        /// Seconds to wait before retrying, when known (the upstream's `Retry-After`).
        retry_after_s: Option<u64>,
    },
    /// The model's endpoint is temporarily unavailable (an upstream's 502/503/504, or it did
    /// not answer); retry after `retry_after_s` seconds when given.
    #[error("unavailable: {detail}")]
    Unavailable {
        /// Who is unavailable, and why.
        detail: String,
        /// Seconds to wait before retrying, when known.
        retry_after_s: Option<u64>,
    },
    /// The model could not run (engine stopped, decode failed, …).
    #[error("inference failed: {0}")]
    Inference(String),
}

impl ModelError {
    /// `errors` of named callers as one line: `id: error; id: error`.
    pub fn list(errors: &[(String, ModelError)]) -> String {
        errors
            .iter()
            .map(|(id, e)| format!("{id}: {e}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The HTTP status this error means to a caller: 400 for a context overflow or an invalid
    /// request (the caller's to fix), 429 when rate limited, 503 when overloaded or
    /// unavailable, 500 when inference failed.
    pub fn status(&self) -> u16 {
        match self {
            ModelError::ContextOverflow { .. } | ModelError::InvalidRequest(_) => 400,
            ModelError::RateLimited { .. } => 429,
            ModelError::Overloaded { .. } | ModelError::Unavailable { .. } => 503,
            ModelError::Inference(_) => 500,
        }
    }

    /// Whether the same call may succeed later (429 and 503: rate limited, overloaded,
    /// unavailable).
    pub fn retryable(&self) -> bool {
        matches!(self.status(), 429 | 503)
    }

    /// Seconds a caller should wait before retrying (`Retry-After`): the upstream's when it
    /// gave one, else 1 for a retryable error; `None` for the others.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            ModelError::RateLimited { retry_after_s, .. }
            | ModelError::Unavailable { retry_after_s, .. } => Some(retry_after_s.unwrap_or(1)),
            ModelError::Overloaded { .. } => Some(1),
            _ => None,
        }
    }

    /// The error of a step that failed for every participant, kept with its meaning: when all
    /// of `errors` have the same [`status`](Self::status) other than 500 (every collaborator
    /// overloaded, every prompt too long, …), the first of them; else `None` (the caller
    /// reports an inference failure that names them all).
    pub fn common<'e>(errors: impl IntoIterator<Item = &'e ModelError>) -> Option<ModelError> {
        let mut errors = errors.into_iter();
        let first = errors.next()?;
        let status = first.status();
        (status != 500 && errors.all(|e| e.status() == status)).then(|| first.clone())
    }
}
