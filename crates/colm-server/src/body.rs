//! Request bodies: read within the body limit ([`read_body`]) and parsed as JSON with errors
//! that name the field at fault ([`parse_json`], [`parse_body`]), for every JSON route.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;

use crate::error::ApiError;
use crate::AppState;

/// The request body, or 413 over the configured limit / 400 when unreadable.
///
/// # Errors
/// As above, OpenAI-shaped.
pub fn read_body(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "request body over the limit of {} bytes",
                state.config().max_body_bytes
            ))
        } else {
            ApiError::invalid(r.body_text(), None)
        }
    })
}

/// The JSON body of a request to `route` as `T`: read within the limit, its size counted in
/// the metrics, then parsed.
///
/// # Errors
/// 413 over the limit; 400 as [`parse_json`].
pub fn parse_body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    route: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = read_body(state, body)?;
    state.metrics().request_bytes(route, body.len());
    parse_json(&body)
}

/// A JSON request body as `T`.
///
/// # Errors
/// 400 when it is not JSON, holds a NUL character, or is not a `T`; the message names the
/// path of the offending value (`messages[0].content[1].image_url`) and `param` its
/// top-level field.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let invalid =
        |e: serde_json::Error| ApiError::invalid(format!("invalid request body: {e}"), None);
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
    if let Some(path) = nul_at(&value, "") {
        return Err(ApiError::invalid(
            format!("`{path}` holds a NUL character (U+0000), which no model reads"),
            Some(path.split(['.', '[']).next().unwrap_or_default()),
        ));
    }
    integral_floats_as_integers(&mut value);
    let fields = value.clone();
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            // A flattened part (the guidance options) reports its errors at the root, its
            // path lost in serde's buffering: name the top-level field at fault.
            match field_at_fault::<T>(&fields, &inner.to_string()) {
                Some(field) => ApiError::invalid(
                    format!("invalid request body: `{field}`: {inner}"),
                    Some(&field),
                ),
                None => invalid(inner),
            }
        } else {
            ApiError::invalid(
                format!("invalid request body: `{path}`: {inner}"),
                Some(path.split(['.', '[']).next().unwrap_or_default()),
            )
        }
    })
}

/// The top-level field of `body` that causes `message`, an error reported at the root: the
/// first field whose removal clears that error (the body then reads as a `T`, or fails only
/// for another reason that is not the field's absence).
fn field_at_fault<T: serde::de::DeserializeOwned>(
    body: &serde_json::Value,
    message: &str,
) -> Option<String> {
    let fields = body.as_object()?;
    fields.keys().find_map(|k| {
        let mut without = fields.clone();
        without.remove(k);
        match serde_json::from_value::<T>(serde_json::Value::Object(without)) {
            Ok(_) => Some(k.clone()),
            Err(e) => {
                let e = e.to_string();
                (e != message && !e.starts_with("missing field")).then(|| k.clone())
            }
        }
    })
}

/// The path (`messages[0].content`) of the first string of `v`, key or value, holding a NUL
/// character: the tokenizers take C strings, so no request text may hold one.
fn nul_at(v: &serde_json::Value, at: &str) -> Option<String> {
    match v {
        serde_json::Value::String(s) => s.contains('\0').then(|| at.to_owned()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_at(x, &format!("{at}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, x)| {
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if k.contains('\0') {
                Some(path)
            } else {
                nul_at(x, &path)
            }
        }),
        _ => None,
    }
}

/// JSON has one number type: `2.0` is the integer 2 (JSON Schema's `integer` accepts it), so
/// every number with no fractional part is read as an integer wherever one is expected (a
/// float field reads an integer as well).
fn integral_floats_as_integers(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    *v = serde_json::Value::from(f as i64);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use colm_api::collab::{CreateSession, GuidanceRequest};

    /// An error inside the flattened guidance options names its field, as any other field's
    /// error does; a field after it, or a required field before it, is not blamed.
    #[test]
    fn errors_in_flattened_options_name_their_field() {
        for (body, field, says) in [
            (
                r#"{"model": "m", "query": "q", "mode": "shout"}"#,
                "mode",
                "shout",
            ),
            (
                r#"{"query": "q", "selector": "dice", "max_tokens": 5}"#,
                "selector",
                "dice",
            ),
            (r#"{"refs": "three", "query": "q"}"#, "refs", "three"),
            (
                r#"{"query": "q", "aggregate_drafts": [1]}"#,
                "aggregate_drafts",
                "",
            ),
        ] {
            let e = parse_json::<GuidanceRequest>(body.as_bytes()).unwrap_err();
            let m = e.body().error.message;
            assert_eq!(e.param.as_deref(), Some(field), "{body}: {m}");
            assert!(
                m.contains(&format!("`{field}`")) && m.contains(says),
                "{body}: {m}"
            );
        }
        let e = parse_json::<CreateSession>(br#"{"query": "q", "screen": "some"}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("screen"));
        // Outside the flattened part the path comes from serde itself.
        let e = parse_json::<GuidanceRequest>(br#"{"query": "q", "round": "two"}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("round"));
    }
}
