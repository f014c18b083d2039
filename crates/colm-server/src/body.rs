//! Request bodies: read within the body limit ([`read_body`]) and parsed as JSON with errors
//! that name the field at fault ([`parse_json`], [`parse_body`]), for every JSON route.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;

use crate::error::ApiError;
use crate::AppState;

/// The request body, or 413 over the configured limit / 408 when it stopped arriving
/// ([`crate::listen::ConnectionLimits::body_read`]) / 400 when unreadable.
///
/// # Errors
/// As above, OpenAI-shaped.
pub fn read_body(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        if timed_out(&r) {
            let limit = state.config().connections.body_read;
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                Some("body_timeout"),
                format!(
                    "the request body stopped arriving: no byte for {} ms",
                    limit.as_millis()
                ),
            )
        } else if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "request body over the limit of {} bytes",
                state.config().max_body_bytes
            ))
        } else {
            ApiError::invalid(r.body_text(), None)
        }
    })
}

/// Whether a body was refused because it stopped arriving (tower-http's body timeout,
/// somewhere in the error's chain of sources).
fn timed_out(r: &BytesRejection) -> bool {
    let mut e: Option<&(dyn std::error::Error + 'static)> = Some(r);
    while let Some(err) = e {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        e = err.source();
    }
    false
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
    if let Some(path) = duplicate_key(body) {
        return Err(ApiError::invalid(
            format!("`{path}` is given twice; a field may appear once"),
            Some(path.split(['.', '[']).next().unwrap_or_default()),
        ));
    }
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
            let message = inner.to_string();
            // A field missing, or one no such body has: named by serde's message.
            let named = ["missing field `", "unknown field `"].iter().find_map(|p| {
                let rest = message.strip_prefix(p)?;
                rest.split('`').next().map(str::to_owned)
            });
            if let Some(field) = named {
                return ApiError::invalid(format!("invalid request body: {message}"), Some(&field));
            }
            match field_at_fault::<T>(&fields, &message) {
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

/// The path (`messages[0].role`) of the first key of the JSON text `body` that its object
/// holds twice (`serde_json` would keep the last silently), or `None` (also for text that is
/// not JSON, which the caller reports).
fn duplicate_key(body: &[u8]) -> Option<String> {
    use serde::de::DeserializeSeed as _;
    let mut de = serde_json::Deserializer::from_slice(body);
    match (Unique { at: String::new() }).deserialize(&mut de) {
        Err(e) => e
            .to_string()
            .strip_prefix(DUPLICATE)
            .and_then(|rest| rest.split('\u{1f}').next())
            .map(str::to_owned),
        Ok(()) => None,
    }
}

/// The start of [`Unique`]'s error, the duplicated key's path following it.
const DUPLICATE: &str = "duplicate key\u{1f}";

/// Reads a JSON value, failing at the first object key given twice ([`DUPLICATE`] and its
/// path).
struct Unique {
    /// The path of the value being read.
    at: String,
}

impl<'de> serde::de::DeserializeSeed<'de> for Unique {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Unique {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq
            .next_element_seed(Unique {
                at: format!("{}[{i}]", self.at),
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = if self.at.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.at)
            };
            if !seen.insert(key) {
                return Err(serde::de::Error::custom(format!("{DUPLICATE}{at}\u{1f}")));
            }
            map.next_value_seed(Unique { at })?;
        }
        Ok(())
    }
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

    /// A key given twice is refused with its path (serde_json alone keeps the last); the
    /// same key in two objects is not a duplicate.
    #[test]
    fn duplicate_keys_are_named() {
        for (body, path, param) in [
            (r#"{"query": "a", "query": "b"}"#, "query", "query"),
            (
                r#"{"query": "q", "drafts": [{"x": 1}], "options": {"mode": "a", "mode": "b"}}"#,
                "options.mode",
                "options",
            ),
            (r#"{"m": [1, {"a": 1, "a": 2}]}"#, "m[1].a", "m"),
        ] {
            let e = parse_json::<serde_json::Value>(body.as_bytes()).unwrap_err();
            let m = e.body().error.message;
            assert!(
                m.contains(&format!("`{path}` is given twice")),
                "{body}: {m}"
            );
            assert_eq!(e.param.as_deref(), Some(param), "{body}");
        }
        let ok = r#"{"a": {"k": 1}, "b": {"k": 2}, "c": [{"k": 1}, {"k": 2}]}"#;
        assert!(parse_json::<serde_json::Value>(ok.as_bytes()).is_ok());
        assert_eq!(duplicate_key(b"not json"), None);
    }

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

    /// A missing field is named in `param` too, not left `null`.
    #[test]
    fn a_missing_field_is_the_param() {
        let e = parse_json::<CreateSession>(br#"{"k": 2}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("query"), "{}", e.message);
        let e = parse_json::<colm_api::openai::ChatCompletionRequest>(br#"{"model": "m"}"#)
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"), "{}", e.message);
    }
}
