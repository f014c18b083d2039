//! The text form of options: `key=value,…`, the keys being the JSON field names; through serde,
//! so it accepts exactly what the JSON form does.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::invalid::Invalid;

/// Keys of the text form read under their current name: `select` (now `selector`) and
/// `drafts` (now `aggregate_drafts`), as strategy names of earlier records spell them.
pub const RENAMED: [(&str, &str); 2] = [("select", "selector"), ("drafts", "aggregate_drafts")];

/// Parses `args` (`key=value,…`; a later key wins) into options; `what` names them in
/// messages (`colm option`).
///
/// # Errors
/// A pair that is not `key=value`, an unknown key (the message lists the known ones, those
/// of `T::default()`), or a value the key does not take.
pub fn parse<T: Serialize + DeserializeOwned + Default>(
    what: &str,
    args: &str,
) -> Result<T, Invalid> {
    let known = keys::<T>();
    let mut map = Map::new();
    for kv in args.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("`{kv}` is not key=value"))?;
        let k = RENAMED
            .iter()
            .find(|(old, _)| *old == k)
            .map_or(k, |(_, new)| *new);
        if !known.iter().any(|n| n == k) {
            return Err(Invalid(format!(
                "unknown {what} `{k}` ({})",
                known.join(", ")
            )));
        }
        // A number or boolean is read as one, unless the key takes text (`id=7`).
        let text = Value::String(v.to_owned());
        let value = match serde_json::from_str::<Value>(v) {
            Ok(n @ (Value::Number(_) | Value::Bool(_))) => {
                let alone = |v: &Value| Map::from_iter([(k.to_owned(), v.clone())]);
                let typed_fails = serde_json::from_value::<T>(Value::Object(alone(&n))).is_err();
                if typed_fails && serde_json::from_value::<T>(Value::Object(alone(&text))).is_ok() {
                    text
                } else {
                    n
                }
            }
            _ => text,
        };
        map.insert(k.to_owned(), value);
    }
    serde_json::from_value(Value::Object(map.clone())).map_err(|e| {
        // Name the key at fault: the first that fails alone.
        let culprit = map.iter().find_map(|(k, v)| {
            let alone = Map::from_iter([(k.clone(), v.clone())]);
            serde_json::from_value::<T>(Value::Object(alone))
                .err()
                .map(|e| (k.clone(), e))
        });
        let (key, e) = culprit.map_or((None, e), |(k, e)| (Some(k), e));
        let message = e.to_string().replace("unknown variant", "unknown value");
        Invalid(match key {
            Some(k) => format!("{what} `{k}`: {message}"),
            None => format!("{what}s: {message}"),
        })
    })
}

/// The known keys of `T`, in order: the fields of its serde form.
pub fn keys<T: Serialize + Default>() -> Vec<String> {
    match serde_json::to_value(T::default()) {
        Ok(Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The text form of `options`: its given keys in field order (`refs=3,selector=model`).
pub fn format<T: Serialize>(options: &T) -> String {
    let Ok(Value::Object(map)) = serde_json::to_value(options) else {
        return String::new();
    };
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            // A whole number held as a float reads as one (`t=1`, not `t=1.0`).
            Value::Number(n) => match n.as_f64().filter(|_| n.is_f64()) {
                Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{k}={}", f as i64),
                _ => format!("{k}={n}"),
            },
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The canonical text of a strategy or writer named `head` with `options`: the options that
/// differ from `defaults`, in field order (`debate:topology=ring`), or `head` alone.
pub fn named<T: Serialize + DeserializeOwned + Clone>(
    head: &str,
    options: &T,
    defaults: &T,
) -> String {
    let given = without_defaults(options, defaults).unwrap_or_else(|_| options.clone());
    let text = format(&given);
    if text.is_empty() {
        head.to_owned()
    } else {
        format!("{head}:{text}")
    }
}

/// `top` over `base`: every key given in `top` replaces `base`'s.
pub(crate) fn overlay<T: Serialize + DeserializeOwned>(
    base: &T,
    top: &T,
) -> Result<T, serde_json::Error> {
    let mut merged = object(base)?;
    for (k, v) in object(top)? {
        if !v.is_null() {
            merged.insert(k, v);
        }
    }
    serde_json::from_value(Value::Object(merged))
}

/// `options` with every key equal to its value in `defaults` left out.
pub(crate) fn without_defaults<T: Serialize + DeserializeOwned>(
    options: &T,
    defaults: &T,
) -> Result<T, serde_json::Error> {
    let d = object(defaults)?;
    let mut map = object(options)?;
    for (k, v) in &mut map {
        if d.get(k) == Some(v) {
            *v = Value::Null;
        }
    }
    serde_json::from_value(Value::Object(map))
}

fn object<T: Serialize>(v: &T) -> Result<Map<String, Value>, serde_json::Error> {
    match serde_json::to_value(v)? {
        Value::Object(m) => Ok(m),
        _ => Ok(Map::new()),
    }
}
