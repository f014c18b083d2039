//! [`Named`]: option values that are one of a few names, spelled by their serde form.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::invalid::Invalid;

/// A value of an option that is one of a few names (a mode, a selector, …): its name is its
/// serde form, so the text form, the CLI, the API and the records spell it alike.
pub trait Named: Serialize + DeserializeOwned + Sized {
    /// The name (`reference-critique`, `keywords`, …).
    fn name(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(e) => format!("<{e}>"),
        }
    }

    /// The value named `name`.
    ///
    /// # Errors
    /// serde's message, which names the accepted values.
    fn parse(name: &str) -> Result<Self, Invalid> {
        serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|e| {
            Invalid(
                e.to_string()
                    .replace("unknown variant", "unknown value")
                    .replace(" at line 1 column 0", ""),
            )
        })
    }
}
