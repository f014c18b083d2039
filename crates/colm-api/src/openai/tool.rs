//! Tools of a request (`tools[]`, `tool_choice`): functions the model may call.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A tool of the request (`tools[]`): a function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolParam {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDefinition,
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionDefinition {
    /// Its name (a-z, A-Z, 0-9, `_`, `-`; up to 64 characters).
    pub name: String,
    /// What it does (shown to the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its arguments (an object schema; absent: no arguments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
    /// Whether calls must follow the schema exactly. Calls under `tool_choice` `required` or
    /// a named function are always decoded under it; with `auto` they are parsed as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `tool_choice`: `none`, `auto`, `required`, or a named function. Read by hand (not
/// `untagged`) so that an unknown field of a named choice is refused by name.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ToolChoiceParam {
    /// `none`, `auto` or `required`.
    Mode(String),
    /// `{"type": "function", "function": {"name": …}}`.
    Named {
        /// Always `function`.
        #[serde(rename = "type")]
        kind: String,
        /// The function to call.
        function: NamedFunction,
    },
}

impl<'de> Deserialize<'de> for ToolChoiceParam {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// A named choice as sent.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Named {
            #[serde(rename = "type")]
            kind: String,
            function: NamedFunction,
        }
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = ToolChoiceParam;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`none`, `auto`, `required` or {\"type\": \"function\", \"function\": {\"name\": …}}")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ToolChoiceParam, E> {
                Ok(ToolChoiceParam::Mode(s.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ToolChoiceParam, A::Error> {
                let named = Named::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ToolChoiceParam::Named {
                    kind: named.kind,
                    function: named.function,
                })
            }
        }
        d.deserialize_any(Visit)
    }
}

/// The function of a named `tool_choice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedFunction {
    /// Its name.
    pub name: String,
}
