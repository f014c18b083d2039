//! The HTTP link to a remote server: its [`Endpoint`] (address, key, deadline, retries,
//! compression) and the JSON exchanges over it, with the meaning of HTTP failures kept
//! ([`Failure`]: an upstream 429 stays rate limited, a 503 unavailable, a 400 the caller's).
//!
//! On the wire, request bodies are zstd-compressed (`Content-Encoding: zstd`) when the endpoint
//! is a colm server, and answers are accepted compressed (`Accept-Encoding: zstd, gzip`); each
//! exchange reports the bytes sent and received, compressed and not ([`WireStats`]).
//! Transient failures (connection errors, 429, 502, 503, 504) are retried with exponential
//! backoff while the deadline allows; other errors are not.

use std::io::Read;
use std::time::{Duration, Instant};

use colm_api::openai::ErrorBody;
use colm_core::{ModelError, WireStats};
use reqwest::header;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Where a remote server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL, e.g. `http://127.0.0.1:8080` (a colm server) or `http://host:port/v1` (an
    /// OpenAI-compatible upstream); paths are appended to it.
    pub base_url: String,
    /// API key sent as `Authorization: Bearer …`.
    pub api_key: Option<String>,
    /// Time allowed for one whole exchange, retries included.
    pub deadline: Duration,
    /// Retries of transient failures.
    pub retries: u32,
    /// First backoff; doubled at each retry.
    pub backoff: Duration,
    /// Compress request bodies with zstd (a colm server accepts them; other OpenAI-compatible
    /// servers may not).
    pub compress: bool,
}

impl Endpoint {
    /// `base_url` with the defaults: no key, 30 s deadline, 2 retries from 200 ms, compressed.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            deadline: Duration::from_secs(30),
            retries: 2,
            backoff: Duration::from_millis(200),
            compress: true,
        }
    }
}

/// Why an exchange failed: the error as the caller will see it (with its HTTP meaning: an
/// upstream 429 stays rate limited, a 503 unavailable, a 400 the caller's), and whether to
/// retry it within the deadline.
#[derive(Debug)]
pub struct Failure {
    /// The error as the caller will see it.
    pub error: ModelError,
    /// Whether retrying may fix it (within the deadline).
    pub transient: bool,
}

impl Failure {
    /// A failure that retrying cannot fix.
    pub fn fatal(error: ModelError) -> Self {
        Self {
            error,
            transient: false,
        }
    }
}

/// The failure of a request that got no answer within `timeout`: the server missed the
/// deadline (not retried: no time is left), or could not be reached (transient).
pub(crate) fn missed(e: reqwest::Error, timeout: Duration) -> Failure {
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
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body, decoded.
    pub body: Vec<u8>,
    /// `Retry-After`, seconds.
    pub retry_after_s: Option<u64>,
    /// Bytes moved by the exchange.
    pub wire: WireStats,
}

impl Reply {
    /// Reads `response` (to `path`, bounded by `timeout`) whole, decoded; `wire` holds the
    /// bytes the request sent.
    pub async fn read(
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
    pub fn parse<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
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
    pub fn failure(&self) -> Failure {
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

/// The HTTP side of a remote model or guide: its [`Endpoint`] and an HTTP client.
pub struct Link {
    endpoint: Endpoint,
    http: reqwest::Client,
}

impl Link {
    /// A link to `endpoint`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(endpoint: Endpoint) -> Result<Self, reqwest::Error> {
        Ok(Self {
            endpoint,
            http: reqwest::Client::builder().build()?,
        })
    }

    /// The endpoint this link talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The request of a JSON exchange with the server, bounded by `timeout`: the body (if
    /// any) goes zstd-compressed (plain for an endpoint that is not a colm server), the answer
    /// may come zstd or gzip when `compressed_answer` (a stream comes plain). Returns it and
    /// the bytes it sends.
    pub fn request<B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
        compressed_answer: bool,
    ) -> Result<(reqwest::RequestBuilder, WireStats), Failure> {
        let url = format!("{}{path}", self.endpoint.base_url.trim_end_matches('/'));
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
            let sent = if self.endpoint.compress {
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
        if let Some(key) = &self.endpoint.api_key {
            req = req.bearer_auth(key);
        }
        Ok((req, wire))
    }

    /// One JSON exchange with the server, bounded by `timeout` ([`Link::request`]). Returns
    /// the status, the decoded body and the bytes moved.
    pub async fn exchange<B: Serialize>(
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
    pub async fn retrying<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, ModelError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let start = Instant::now();
        let mut backoff = self.endpoint.backoff;
        let mut tries = 0;
        loop {
            let left = self.endpoint.deadline.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(ModelError::Unavailable {
                    detail: format!(
                        "server missed the deadline ({} ms)",
                        self.endpoint.deadline.as_millis()
                    ),
                    retry_after_s: None,
                });
            }
            match attempt(left).await {
                Ok(v) => return Ok(v),
                Err(f) if f.transient && tries < self.endpoint.retries => {
                    tries += 1;
                    tracing::info!(tries, reason = %f.error, "{what} failed; retrying");
                    let left = self.endpoint.deadline.saturating_sub(start.elapsed());
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
}
