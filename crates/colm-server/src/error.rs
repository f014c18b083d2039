//! One error type for the HTTP API that knows its status and renders an OpenAI-shaped body:
//! `{"error": {"message", "type", "param", "code"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use colm_core::ModelError;
use serde::Serialize;

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

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
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
    fn from(e: ModelError) -> Self {
        match &e {
            ModelError::ContextOverflow { .. } => Self {
                status: StatusCode::BAD_REQUEST,
                message: e.to_string(),
                kind: "invalid_request_error",
                param: Some("messages".into()),
                code: Some("context_length_exceeded"),
                retry_after: None,
            },
            ModelError::Overloaded { .. } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: e.to_string(),
                kind: "server_error",
                param: None,
                code: Some("overloaded"),
                retry_after: Some(1),
            },
            ModelError::InvalidRequest(_) => Self::invalid(e.to_string(), None),
            ModelError::Inference(_) => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: e.to_string(),
                kind: "server_error",
                param: None,
                code: None,
                retry_after: None,
            },
        }
    }
}

impl ApiError {
    /// The OpenAI-shaped JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(Body {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        })
        .unwrap_or_default()
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
