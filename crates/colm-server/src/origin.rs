//! Browser-origin safety: what a web page the user visits can make a colm server do.
//!
//! A page cannot read answers from another origin without CORS, but it can *send* "simple"
//! requests (no preflight: `Content-Type` `text/plain`, form-encoded or none), and a DNS-rebinding
//! name (`evil.example` resolving to 127.0.0.1) makes the server the page's own origin. A
//! keyless server on loopback would then run models for any site (the class of the
//! DNS-rebinding advisory against Ollama's local API). Three defences, each a middleware:
//!
//! - [`check_host`]: the `Host` header (or the request target's authority) must name one of
//!   the allowed hosts ([`HostPolicy`]; by default on loopback `localhost`, `127.0.0.1`,
//!   `[::1]`), else 403 `host_not_allowed` — a rebinding name never reaches a route;
//! - [`json_only`]: a JSON route refuses a body that is not `application/json` (or
//!   `application/…+json`) with 415 `unsupported_media_type`, so every cross-site write needs a
//!   CORS preflight;
//! - [`cors`]: CORS is off unless the operator lists origins (tower-http's [`CorsLayer`]);
//!   then those origins may call the API from a page (preflights answered, `Authorization`
//!   and `Content-Type` allowed, `x-colm-record-id` and `Retry-After` exposed).

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ApiError;

/// The `Host` names a server answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPolicy {
    /// Any host (a server beyond loopback, behind its API keys).
    Any,
    /// Only these host names, compared without the port and case-insensitively; an IPv6
    /// literal in brackets (`[::1]`).
    Only(Vec<String>),
}

/// The names of this machine's loopback interface: the default [`HostPolicy`] of a server
/// bound to loopback.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl HostPolicy {
    /// [`LOOPBACK_HOSTS`] alone.
    pub fn loopback() -> Self {
        Self::Only(loopback_names())
    }

    /// The names served when the operator lists none, for a server bound to `bind`: on a
    /// loopback address [`LOOPBACK_HOSTS`] and the address itself (`127.0.0.2`, `[::1]`),
    /// elsewhere any (keys are required there).
    pub fn for_bind(bind: std::net::SocketAddr) -> Self {
        if !bind.ip().is_loopback() {
            return Self::Any;
        }
        let mut names = loopback_names();
        let own = match bind {
            std::net::SocketAddr::V4(a) => a.ip().to_string(),
            std::net::SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        if !names.contains(&own) {
            names.push(own);
        }
        Self::Only(names)
    }

    /// The policy of `names` as an operator lists them (`--allowed-host`): `*` among them
    /// allows any host; none at all gives `default`.
    pub fn of(names: &[String], default: Self) -> Self {
        if names.is_empty() {
            default
        } else if names.iter().any(|n| n == "*") {
            Self::Any
        } else {
            Self::Only(
                names
                    .iter()
                    .map(|n| n.trim().to_ascii_lowercase())
                    .collect(),
            )
        }
    }

    /// Whether a request whose `Host` is `host` (with or without a port) is served.
    pub fn allows(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(names) => {
                let name = host_name(host);
                names.iter().any(|n| n.eq_ignore_ascii_case(name))
            }
        }
    }
}

/// [`LOOPBACK_HOSTS`] as owned names.
fn loopback_names() -> Vec<String> {
    LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).collect()
}

/// The host name of a `Host` value: without the port (`[::1]:8080` → `[::1]`,
/// `localhost:8080` → `localhost`) and without a trailing dot.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    let name = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
    };
    name.strip_suffix('.').unwrap_or(name)
}

/// The middleware that serves only requests to an allowed host: 403 `host_not_allowed`
/// otherwise (OpenAI-shaped, naming the host and the flag that allows it). A request with no
/// host at all (HTTP/1.0; no browser sends one) is served.
pub async fn check_host(
    axum::extract::State(policy): axum::extract::State<std::sync::Arc<HostPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    match host {
        Some(host) if !policy.allows(&host) => {
            let listed = match policy.as_ref() {
                HostPolicy::Only(names) => names.join(", "),
                HostPolicy::Any => String::new(),
            };
            ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                Some("host_not_allowed"),
                format!(
                    "this server does not answer to the host `{}` (it answers to {listed}); an \
                     operator adds names with --allowed-host",
                    host_name(&host)
                ),
            )
            .into_response()
        }
        _ => next.run(request).await,
    }
}

/// Whether a `Content-Type` value is JSON: `application/json` or `application/…+json`, any
/// parameters (`; charset=utf-8`) aside.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

/// The middleware of the JSON routes: a `POST` whose `Content-Type` is not JSON ([`is_json`];
/// missing too) gets 415 `unsupported_media_type`, before any handler reads it.
pub async fn json_only(request: Request, next: Next) -> Response {
    if request.method() == Method::POST {
        let given = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if !given.as_deref().is_some_and(is_json) {
            let what = given.map_or_else(
                || "a body without `Content-Type`".to_owned(),
                |t| format!("`Content-Type: {t}`"),
            );
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request_error",
                Some("unsupported_media_type"),
                format!("{what} is not read here: send the body as `application/json`"),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// `origins` as an operator lists them (`--cors-origin https://app.example`), as the header
/// values browsers send in `Origin` (a trailing `/` dropped).
///
/// # Errors
/// An origin that is not `scheme://host[:port]`, named.
pub fn origins(origins: &[String]) -> Result<Vec<HeaderValue>, String> {
    origins
        .iter()
        .map(|o| {
            let o = o.trim().trim_end_matches('/');
            let valid = o.split_once("://").is_some_and(|(scheme, rest)| {
                !scheme.is_empty()
                    && !rest.is_empty()
                    && !rest.contains(['/', '?', '#', ' '])
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            });
            valid
                .then(|| HeaderValue::from_str(o).ok())
                .flatten()
                .ok_or_else(|| format!("`{o}` is not an origin (scheme://host[:port])"))
        })
        .collect()
}

/// The CORS layer for `origins` ([`origins`]), or `None` when none are listed (CORS off:
/// browsers let no other origin read an answer, and preflights get 405).
pub fn cors(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::CONTENT_ENCODING,
            ])
            .expose_headers([
                header::RETRY_AFTER,
                header::HeaderName::from_static("x-colm-record-id"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port_and_trailing_dot() {
        assert_eq!(host_name("localhost:8080"), "localhost");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("localhost.:80"), "localhost");
    }

    #[test]
    fn loopback_policy_refuses_other_names() {
        let p = HostPolicy::loopback();
        for ok in ["localhost:8080", "LOCALHOST", "127.0.0.1:1", "[::1]:9"] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "[::2]",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
        let listed = HostPolicy::of(&["Colm.Internal".into()], HostPolicy::loopback());
        assert!(listed.allows("colm.internal:8080"));
        assert!(!listed.allows("localhost"));
        assert_eq!(
            HostPolicy::of(&["*".into()], HostPolicy::loopback()),
            HostPolicy::Any
        );
        assert_eq!(HostPolicy::of(&[], HostPolicy::Any), HostPolicy::Any);
        let bound = HostPolicy::for_bind("127.0.0.2:8080".parse().unwrap());
        assert!(bound.allows("127.0.0.2:8080") && bound.allows("localhost"));
        assert!(HostPolicy::for_bind("[::1]:1".parse().unwrap()).allows("[::1]:1"));
        assert_eq!(
            HostPolicy::for_bind("0.0.0.0:8080".parse().unwrap()),
            HostPolicy::Any
        );
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.api+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
            "application/jsonp",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn cors_is_off_without_origins_and_origins_are_checked() {
        assert!(cors(&[]).is_none());
        let listed = origins(&["http://app.example/".into(), "https://a.b:8443".into()]).unwrap();
        assert_eq!(listed[0], "http://app.example");
        assert!(cors(&listed).is_some());
        for bad in ["app.example", "http://a/b", "http://a\nb", "*", "http://"] {
            assert!(origins(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
