//! API keys and per-key rate limits for the `/v1` routes (and, with
//! [`AuthConfig::protect_ops`], `/metrics` and `/openapi.json`).
//!
//! Keys are sent as `Authorization: Bearer KEY` (as OpenAI clients do). A missing or unknown
//! key gets 401 `invalid_api_key`; a key over its rate gets 429 `rate_limit_exceeded` with a
//! `Retry-After` header (seconds). The rate is a token bucket per key: `requests_per_minute`
//! requests of burst, refilled continuously.
//!
//! The server keeps only the SHA-256 of each key (a key file may hold the digests,
//! `sha256:HEX`, instead of the keys) and compares a presented key's digest with every stored
//! one in constant time ([`subtle`]), so neither memory nor timing gives a key away.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The SHA-256 of an API key: all the server keeps of it.
pub type KeyDigest = [u8; 32];

/// The digest of `key`.
pub fn digest(key: &str) -> KeyDigest {
    use sha2::Digest as _;
    sha2::Sha256::digest(key.as_bytes()).into()
}

/// Keys and limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Digests of the accepted API keys.
    pub keys: Vec<KeyDigest>,
    /// Requests per minute per key; `None` = unlimited.
    pub requests_per_minute: Option<u32>,
    /// Also require a key on `/metrics` and `/openapi.json` (open by default: monitoring and
    /// clients' code generators read them).
    pub protect_ops: bool,
}

impl AuthConfig {
    /// The configuration accepting `keys` (given in clear), with no rate limit.
    pub fn with_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            keys: keys.into_iter().map(digest).collect(),
            ..Self::default()
        }
    }

    /// Reads keys from a file: one per line, either the key itself or `sha256:` and the
    /// lower- or upper-case hex SHA-256 of the key (so the file need not hold the key); blank
    /// lines and lines starting with `#` are skipped.
    ///
    /// # Errors
    /// The file cannot be read, a `sha256:` line is not 64 hex digits, or it holds no key.
    pub fn keys_from_file(path: &Path) -> std::io::Result<Vec<KeyDigest>> {
        let invalid = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidData, msg);
        let text = std::fs::read_to_string(path)?;
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = match line.strip_prefix("sha256:") {
                Some(hex) => parse_hex(hex).ok_or_else(|| {
                    invalid(format!(
                        "{} line {}: sha256: needs 64 hex digits",
                        path.display(),
                        n + 1
                    ))
                })?,
                None => digest(line),
            };
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(invalid(format!("{} holds no API key", path.display())));
        }
        Ok(keys)
    }

    /// Whether `key` is accepted: its digest is compared with every stored one in constant
    /// time (no early exit).
    fn accepts(&self, key: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        let presented = digest(key);
        let mut found = subtle::Choice::from(0);
        for k in &self.keys {
            found |= k.ct_eq(&presented);
        }
        found.into()
    }
}

/// 32 bytes from 64 hex digits.
fn parse_hex(hex: &str) -> Option<KeyDigest> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Authentication state shared by the middleware.
#[derive(Clone)]
pub struct Auth {
    config: Arc<AuthConfig>,
    buckets: Arc<Mutex<HashMap<KeyDigest, (f64, Instant)>>>,
}

impl Auth {
    /// Middleware state for `config`.
    pub fn new(config: AuthConfig) -> Self {
        Self {
            config: Arc::new(config),
            buckets: Arc::default(),
        }
    }

    /// Whether `/metrics` and `/openapi.json` need a key too.
    pub fn protects_ops(&self) -> bool {
        self.config.protect_ops
    }

    /// Takes one request from `key`'s bucket (kept by the key's digest); `Err(seconds)` until
    /// the next one is allowed.
    fn take(&self, key: &str) -> Result<(), u64> {
        let Some(rpm) = self.config.requests_per_minute else {
            return Ok(());
        };
        let capacity = f64::from(rpm.max(1));
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, last) = buckets.entry(digest(key)).or_insert((capacity, now));
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
    if !auth.config.accepts(key) {
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
            requests_per_minute: Some(2),
            ..AuthConfig::with_keys(["k"])
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
        // sk-two given by its digest: sha256("sk-two").
        let hashed: String = digest("sk-two")
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        std::fs::write(
            &dir,
            format!("# team keys\n\nsk-one\n  sha256:{hashed}  \n"),
        )
        .unwrap();
        let keys = AuthConfig::keys_from_file(&dir).unwrap();
        assert_eq!(keys, vec![digest("sk-one"), digest("sk-two")]);
        let config = AuthConfig {
            keys,
            ..AuthConfig::default()
        };
        assert!(config.accepts("sk-one") && config.accepts("sk-two"));
        assert!(!config.accepts("sk-three") && !config.accepts(&hashed));
        std::fs::write(&dir, "sha256:abc\n").unwrap();
        let e = AuthConfig::keys_from_file(&dir).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        std::fs::write(&dir, "# nothing\n").unwrap();
        assert!(AuthConfig::keys_from_file(&dir).is_err());
        let _ = std::fs::remove_file(&dir);
    }
}
