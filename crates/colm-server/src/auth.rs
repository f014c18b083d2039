//! API keys and per-key rate limits for the `/v1` routes.
//!
//! Keys are sent as `Authorization: Bearer KEY` (as OpenAI clients do). A missing or unknown
//! key gets 401 `invalid_api_key`; a key over its rate gets 429 `rate_limit_exceeded` with a
//! `Retry-After` header (seconds). The rate is a token bucket per key: `requests_per_minute`
//! requests of burst, refilled continuously.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Keys and limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Accepted API keys.
    pub keys: HashSet<String>,
    /// Requests per minute per key; `None` = unlimited.
    pub requests_per_minute: Option<u32>,
}

impl AuthConfig {
    /// Reads keys from a file: one key per line; blank lines and lines starting with `#` are
    /// skipped.
    ///
    /// # Errors
    /// The file cannot be read, or holds no key.
    pub fn keys_from_file(path: &Path) -> std::io::Result<HashSet<String>> {
        let text = std::fs::read_to_string(path)?;
        let keys: HashSet<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        if keys.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} holds no API key", path.display()),
            ));
        }
        Ok(keys)
    }
}

/// Authentication state shared by the middleware.
#[derive(Clone)]
pub struct Auth {
    config: Arc<AuthConfig>,
    buckets: Arc<Mutex<HashMap<String, (f64, Instant)>>>,
}

impl Auth {
    /// Middleware state for `config`.
    pub fn new(config: AuthConfig) -> Self {
        Self {
            config: Arc::new(config),
            buckets: Arc::default(),
        }
    }

    /// Takes one request from `key`'s bucket; `Err(seconds)` until the next one is allowed.
    fn take(&self, key: &str) -> Result<(), u64> {
        let Some(rpm) = self.config.requests_per_minute else {
            return Ok(());
        };
        let capacity = f64::from(rpm.max(1));
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, last) = buckets.entry(key.to_owned()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * per_second).min(capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / per_second).ceil() as u64)
        }
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: message.to_owned(),
        kind: "invalid_request_error",
        param: None,
        code: Some("invalid_api_key"),
        retry_after: None,
    }
}

/// The middleware: checks the bearer key and the key's rate.
pub async fn require_key(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    let key = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(key) = key else {
        return unauthorized("missing API key: send `Authorization: Bearer KEY`").into_response();
    };
    if !auth.config.keys.contains(key) {
        return unauthorized("incorrect API key").into_response();
    }
    if let Err(wait) = auth.take(key) {
        let e = ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("rate limit reached for this key; retry in {wait} s"),
            kind: "requests",
            param: None,
            code: Some("rate_limit_exceeded"),
            retry_after: Some(wait),
        };
        return e.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_says_when() {
        let auth = Auth::new(AuthConfig {
            keys: HashSet::from(["k".to_owned()]),
            requests_per_minute: Some(2),
        });
        assert!(auth.take("k").is_ok());
        assert!(auth.take("k").is_ok());
        let wait = auth.take("k").unwrap_err();
        assert!((1..=30).contains(&wait), "{wait}");
        // Buckets are per key.
        assert!(auth.take("other").is_ok());
    }

    #[test]
    fn key_files_skip_blanks_and_comments() {
        let dir = std::env::temp_dir().join(format!("colm-keys-{}", std::process::id()));
        std::fs::write(&dir, "# team keys\n\nsk-one\n  sk-two  \n").unwrap();
        let keys = AuthConfig::keys_from_file(&dir).unwrap();
        assert_eq!(keys, HashSet::from(["sk-one".into(), "sk-two".into()]));
        std::fs::write(&dir, "# nothing\n").unwrap();
        assert!(AuthConfig::keys_from_file(&dir).is_err());
        let _ = std::fs::remove_file(&dir);
    }
}
