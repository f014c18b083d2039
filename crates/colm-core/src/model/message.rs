//! The messages of a chat: who wrote each ([`Role`]), its text and images, and tool calls.

use serde::{Deserialize, Serialize};

/// Who wrote a message, with the names used by the OpenAI chat API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The user (or, in a collaboration, the party asking for an answer).
    User,
    /// The model's own earlier turns.
    Assistant,
    /// The result of a tool call the model asked for ([`ChatMessage::tool_call_id`] says
    /// which).
    Tool,
}

impl Role {
    /// The role's name as chat templates expect it: `system`, `user`, `assistant` or `tool`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Author of the message.
    pub role: Role,
    /// Plain-text content (empty for an assistant turn that only calls tools).
    pub content: String,
    /// The tools an assistant turn called (OpenAI's `tool_calls`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a [`Role::Tool`] message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Images of a user turn, shown before its text: each a URL as OpenAI's `image_url`
    /// content parts take it (`data:image/png;base64,…`, or `https://…` where the server
    /// allows it), validated by the server. Only models that accept images
    /// ([`ChatModel::accepts_images`]) get messages with images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// The participant's name (OpenAI's `name`), when the caller gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    /// A message of `role` with `content`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            images: Vec::new(),
            name: None,
        }
    }
    /// The content as a template without a place for the participant's name reads it:
    /// `name: content` when the message has a [`ChatMessage::name`], else the content.
    pub fn content_with_name(&self) -> std::borrow::Cow<'_, str> {
        match &self.name {
            Some(name) if !name.is_empty() => format!("{name}: {}", self.content).into(),
            _ => std::borrow::Cow::Borrowed(&self.content),
        }
    }
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// A call of a tool by the model (OpenAI's `tool_calls[]` entry, type `function`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id (`call_…`), quoted back by the tool's answer.
    pub id: String,
    /// The function called.
    pub name: String,
    /// Its arguments: a JSON object, as text.
    pub arguments: String,
}

/// A tool the model may call (OpenAI's `tools[]` entry, type `function`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// The function's name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its arguments (an object schema).
    pub parameters: serde_json::Value,
}

/// Whether and which tool the model must call (OpenAI's `tool_choice`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides (the default when tools are given).
    #[default]
    Auto,
    /// No tool call: the tools are not shown to the model.
    None,
    /// At least one tool call (decoded under a grammar of the tools' schemas).
    Required,
    /// A call of this function (decoded under its schema).
    Function(String),
}

impl ToolChoice {
    pub(crate) fn is_auto(&self) -> bool {
        *self == ToolChoice::Auto
    }
}
