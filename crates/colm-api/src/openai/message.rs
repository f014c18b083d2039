//! The messages of a chat completion request: roles, text and image content parts, tool
//! calls (OpenAI's `messages[]`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::ToSchema;

impl RequestMessage {
    /// The roles a request message may have (`developer` is read as `system`).
    pub const ROLES: [&'static str; 5] = ["system", "developer", "user", "assistant", "tool"];
}

/// The schema of a message's `role`: one of [`RequestMessage::ROLES`].
fn role_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(RequestMessage::ROLES))
        .description(Some(
            "`system`, `developer` (treated as system), `user`, `assistant` or `tool`.",
        ))
}

/// `stop` as OpenAI accepts it: one string or a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop string.
    One(String),
    /// Up to four stop strings.
    Many(Vec<String>),
}

/// Message content: a string, or a list of `text` and `image_url` parts. Read by hand (not
/// `untagged`) so that an error inside a part names the part's path.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts.
    Parts(Vec<ContentPart>),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Content;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Content, E> {
                Ok(Content::Text(s.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Content, E> {
                Ok(Content::Text(s))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Content, A::Error> {
                let mut parts = Vec::new();
                while let Some(part) = seq.next_element()? {
                    parts.push(part);
                }
                Ok(Content::Parts(parts))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// One content part. An unknown field is refused by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentPart {
    /// Part type: `text`, or `image_url` (models that accept images only).
    #[serde(rename = "type")]
    pub kind: String,
    /// Text of a `text` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Image of an `image_url` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl>,
}

impl ContentPart {
    /// A `text` part.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            kind: "text".into(),
            text: Some(text.into()),
            image_url: None,
        }
    }

    /// An `image_url` part.
    pub fn image(url: impl Into<String>) -> Self {
        Self {
            kind: "image_url".into(),
            text: None,
            image_url: Some(ImageUrl {
                url: url.into(),
                detail: None,
            }),
        }
    }
}

/// The image of an `image_url` content part. An unknown field is refused by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageUrl {
    /// `data:image/png;base64,…` (PNG, JPEG, GIF, WebP), or `https://…` where the server
    /// allows it.
    pub url: String,
    /// `auto` only: the vision model reads every image at the resolution its projector takes
    /// (OpenAI's `low` and `high` are a 400, not silently ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = detail_schema)]
    pub detail: Option<String>,
}

impl ImageUrl {
    /// The values of `detail` the server honours.
    pub const DETAILS: [&'static str; 1] = ["auto"];
}

/// The schema of `image_url.detail`: one of [`ImageUrl::DETAILS`], or null.
fn detail_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Null,
        ]))
        .enum_values(Some(
            ImageUrl::DETAILS.iter().map(|d| Some(*d)).chain([None]),
        ))
        .description(Some(
            "`auto` (or absent): the model reads the image at its own resolution.",
        ))
}

/// One request message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestMessage {
    /// `system`, `developer` (treated as system), `user`, `assistant` or `tool`.
    #[schema(schema_with = role_schema)]
    pub role: String,
    /// The content; `null` only for an assistant turn with `tool_calls`.
    pub content: Option<Content>,
    /// An assistant turn's tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallObject>>,
    /// A `tool` message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The participant's name (OpenAI's `name`): written before the content as `name: …` for
    /// templates that have no place for it (llama.cpp's built-in ones), passed as the message's
    /// `name` to a Jinja template and to upstream servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Every other field of the message: a 400 naming the first of them.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(ignore)]
    pub unsupported: BTreeMap<String, serde_json::Value>,
}

impl From<&colm_core::ChatMessage> for RequestMessage {
    fn from(m: &colm_core::ChatMessage) -> Self {
        let calls = !m.tool_calls.is_empty();
        // Images go first, then the text (the order colm keeps them in).
        let content = if m.images.is_empty() {
            Content::Text(m.content.clone())
        } else {
            let mut parts: Vec<ContentPart> = m.images.iter().map(ContentPart::image).collect();
            parts.push(ContentPart::text(m.content.clone()));
            Content::Parts(parts)
        };
        Self {
            role: m.role.as_str().to_owned(),
            content: (!calls_only(calls, &m.content)).then_some(content),
            tool_calls: calls.then(|| m.tool_calls.iter().map(ToolCallObject::from).collect()),
            tool_call_id: m.tool_call_id.clone(),
            name: m.name.clone(),
            unsupported: BTreeMap::new(),
        }
    }
}

/// Whether an assistant turn only calls tools (it has calls and no text): its `content` is
/// then `null`, as OpenAI writes it.
pub(super) fn calls_only(has_calls: bool, text: &str) -> bool {
    has_calls && text.is_empty()
}

/// A tool call as OpenAI writes it (`tool_calls[]` of an assistant message). Answers of
/// other servers may carry more fields, so they are collected, not refused, when read; a
/// request carrying one is a 400 naming it ([`ToolCallObject::unsupported_field`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCallObject {
    /// The call's id.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function called and its arguments.
    pub function: FunctionCall,
    /// Every other field of the call.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(ignore)]
    pub unsupported: BTreeMap<String, serde_json::Value>,
}

impl ToolCallObject {
    /// The first field of the call (`foo`, or `function.foo`) that OpenAI's API does not
    /// define, if any.
    pub fn unsupported_field(&self) -> Option<String> {
        self.unsupported.keys().next().cloned().or_else(|| {
            self.function
                .unsupported
                .keys()
                .next()
                .map(|k| format!("function.{k}"))
        })
    }
}

/// The function of a [`ToolCallObject`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// Its arguments: a JSON object, as text.
    pub arguments: String,
    /// Every other field of the function.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(ignore)]
    pub unsupported: BTreeMap<String, serde_json::Value>,
}

impl From<&colm_core::ToolCall> for ToolCallObject {
    fn from(c: &colm_core::ToolCall) -> Self {
        Self {
            id: c.id.clone(),
            kind: "function".into(),
            function: FunctionCall {
                name: c.name.clone(),
                arguments: c.arguments.clone(),
                unsupported: BTreeMap::new(),
            },
            unsupported: BTreeMap::new(),
        }
    }
}

impl From<&ToolCallObject> for colm_core::ToolCall {
    fn from(c: &ToolCallObject) -> Self {
        Self {
            id: c.id.clone(),
            name: c.function.name.clone(),
            arguments: c.function.arguments.clone(),
        }
    }
}
