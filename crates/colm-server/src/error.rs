//! One error type for the HTTP API that knows its status and renders an OpenAI-shaped body:
//! `{"error": {"message", "type", "param", "code"}}`; [`openai_shaped`] gives the same shape to
//! the error answers made outside the handlers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use colm_api::openai::{ErrorBody, ErrorObject};
use colm_core::ModelError;

/// An API error: HTTP status plus the fields of OpenAI's error object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message.
    pub message: String,
    /// OpenAI error type: `invalid_request_error`, `not_found_error`, `server_error`, ….
    pub kind: &'static str,
    /// The request field at fault, if any.
    pub param: Option<String>,
    /// Machine-readable code, e.g. `model_not_found`, `context_length_exceeded`.
    pub code: Option<&'static str>,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, OpenAI `type`, `code` and message (no `param`, no
    /// `Retry-After`).
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code,
            retry_after: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_owned),
            code: None,
            retry_after: None,
        }
    }

    /// 404 for a model this server does not host.
    pub fn model_not_found(model: &str, hosted: &[String]) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "the model `{model}` does not exist on this server; hosted: {}",
                hosted.join(", ")
            ),
            kind: "invalid_request_error",
            param: Some("model".into()),
            code: Some("model_not_found"),
            retry_after: None,
        }
    }

    /// 413 for a request body over the limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code: Some("request_too_large"),
            retry_after: None,
        }
    }
}

impl From<ModelError> for ApiError {
    /// The model error with its status ([`ModelError::status`]), OpenAI type and code, and
    /// `Retry-After` when retryable.
    fn from(e: ModelError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (kind, param, code) = match &e {
            ModelError::ContextOverflow { .. } => (
                "invalid_request_error",
                Some("messages"),
                Some("context_length_exceeded"),
            ),
            ModelError::InvalidRequest(_) => ("invalid_request_error", None, None),
            ModelError::RateLimited { .. } => {
                ("rate_limit_error", None, Some("rate_limit_exceeded"))
            }
            ModelError::Overloaded { .. } | ModelError::Unavailable { .. } => {
                ("server_error", None, Some("overloaded"))
            }
            ModelError::Inference(_) => ("server_error", None, None),
        };
        Self {
            status,
            message: e.to_string(),
            kind,
            param: param.map(str::to_owned),
            code,
            retry_after: e.retry_after_s(),
        }
    }
}

impl ApiError {
    /// The OpenAI-shaped body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                message: self.message.clone(),
                kind: self.kind.to_owned(),
                param: self.param.clone(),
                code: self.code.map(str::to_owned),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(v) = self
            .retry_after
            .and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// Largest body of an error answer made outside the handlers that [`openai_shaped`] quotes,
/// bytes.
const QUOTED_ERROR_BYTES: usize = 4096;

/// The middleware that gives OpenAI's error shape to error answers made outside the handlers
/// (axum's 405 for a method a route does not serve, a decompression layer's 415, …): a 4xx or
/// 5xx whose body is not JSON becomes an [`ErrorBody`] of type `invalid_request_error` (4xx) or
/// `server_error` (5xx) whose message names the status, the method and path, and the original
/// text; its headers (`Allow`, `Retry-After`) are kept.
pub async fn openai_shaped(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, QUOTED_ERROR_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    let mut message = format!("{reason}: {method} {path}");
    if let Some(allow) = parts
        .headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
    {
        message.push_str(&format!(" (allowed: {allow})"));
    }
    if !text.is_empty() {
        message.push_str(&format!(" ({text})"));
    }
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let shaped = ApiError::new(status, kind, None, message).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_ENCODING);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, shaped.into_body())
}

/// The error answers of the `/v1` routes, for the OpenAPI document: every body is an
/// OpenAI-shaped [`ErrorBody`]. Each `/v1` route documents this whole set.
#[derive(utoipa::IntoResponses)]
pub enum ErrorResponses {
    /// 400.
    #[response(
        status = 400,
        description = "Invalid request: the message names the field (`param`) and, for a \
                       prompt that does not fit the context (`context_length_exceeded`), the sizes"
    )]
    BadRequest(#[to_schema] ErrorBody),
    /// 401.
    #[response(
        status = 401,
        description = "Missing or unknown API key (only when keys are configured)"
    )]
    Unauthorized(#[to_schema] ErrorBody),
    /// 403.
    #[response(
        status = 403,
        description = "The `Host` is not one the server answers to (`host_not_allowed`; \
                       `--allowed-host`)"
    )]
    Forbidden(#[to_schema] ErrorBody),
    /// 404.
    #[response(
        status = 404,
        description = "Unknown model (`model_not_found`), session (`session_not_found`) or \
                       record (`record_not_found`)"
    )]
    NotFound(#[to_schema] ErrorBody),
    /// 413.
    #[response(status = 413, description = "Request body over the server's limit")]
    TooLarge(#[to_schema] ErrorBody),
    /// 415.
    #[response(
        status = 415,
        description = "A body that is not `application/json` (`unsupported_media_type`)"
    )]
    UnsupportedMediaType(#[to_schema] ErrorBody),
    /// 429.
    #[response(
        status = 429,
        description = "Rate limit of the key, or of an upstream; `Retry-After` gives the seconds to wait",
        headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))
    )]
    RateLimited(#[to_schema] ErrorBody),
    /// 500.
    #[response(status = 500, description = "A model failed")]
    Internal(#[to_schema] ErrorBody),
    /// 503.
    #[response(
        status = 503,
        description = "A model's queue (or the session table) is full; `Retry-After` gives the seconds to wait",
        headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))
    )]
    Unavailable(#[to_schema] ErrorBody),
}
