//! Tool calling for embedded models whose chat template supports tools (Qwen2.5's, and the
//! Hermes format it shares): the request is rendered by the model's own Jinja template with the
//! tools (llama.cpp's built-in templater ignores them), `tool_choice` `required` or a named
//! function is decoded under a grammar of the tools' argument schemas (llguidance), and the
//! `<tool_call>{"name": …, "arguments": …}</tool_call>` blocks of the answer become
//! [`ToolCall`]s.
//!
//! Sources: the tool-call format is the one Qwen2.5's chat template (in its GGUF metadata)
//! describes to the model; the template is rendered as Hugging Face `transformers` renders it
//! (`apply_chat_template` with `tools`, `add_generation_prompt`, its `tojson` with Python's
//! separators, `raise_exception`), with minijinja.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use colm_core::{ChatMessage, Role, SamplingParams, Tool, ToolCall, ToolChoice};
use serde_json::{json, Value};

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

/// Whether a request's answer may call tools: tools are offered and `tool_choice` is not
/// `none` (its text is then parsed for calls, not streamed).
pub(crate) fn offered(params: &SamplingParams) -> bool {
    !params.tools.is_empty() && params.tool_choice != ToolChoice::None
}

/// Whether a request needs the template rendered with tools: it offers tools the model may
/// call, or its conversation holds tool calls or tool results.
pub(crate) fn needed(messages: &[ChatMessage], params: &SamplingParams) -> bool {
    offered(params)
        || messages
            .iter()
            .any(|m| m.role == Role::Tool || !m.tool_calls.is_empty())
}

/// A model's Jinja chat template, compiled once when the model loads, that renders requests
/// with tools in the format [`parse_calls`] reads.
pub(crate) struct Renderer {
    env: minijinja::Environment<'static>,
    bos: String,
    eos: String,
}

impl Renderer {
    /// The renderer of `template` (with the model's BOS and EOS token texts).
    ///
    /// # Errors
    /// Why the template cannot render tools: it has none, or it does not compile.
    pub(crate) fn new(template: String, bos: String, eos: String) -> Result<Self, String> {
        const NO_TOOLS: &str = "this model's chat template does not support tools";
        if !(template.contains("tools") && template.contains(OPEN)) {
            return Err(NO_TOOLS.into());
        }
        let mut env = minijinja::Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template_owned("chat", template)
            .map_err(|e| format!("{NO_TOOLS}: it does not compile ({e})"))?;
        Ok(Self { env, bos, eos })
    }

    /// Whether a prompt begins with the BOS text (the template wrote it: the tokenizer must not
    /// add another).
    pub(crate) fn writes_bos(&self, prompt: &str) -> bool {
        !self.bos.is_empty() && prompt.starts_with(&self.bos)
    }

    /// The prompt of `messages` with `tools` (none when `choice` is `none`), ending with the
    /// assistant's turn opened.
    ///
    /// # Errors
    /// The template does not render (an exception it raises: the message says).
    pub(crate) fn render(
        &self,
        messages: &[ChatMessage],
        tools: &[Tool],
        choice: &ToolChoice,
    ) -> Result<String, String> {
        let messages: Vec<Value> = messages.iter().map(message_value).collect();
        let tools: Vec<Value> = match choice {
            ToolChoice::None => Vec::new(),
            _ => tools
                .iter()
                .map(|t| {
                    let mut function = json!({"name": t.name, "parameters": t.parameters});
                    if let Some(d) = &t.description {
                        function["description"] = json!(d);
                    }
                    json!({"type": "function", "function": function})
                })
                .collect(),
        };
        let tools = (!tools.is_empty()).then_some(tools);
        self.env
            .get_template("chat")
            .and_then(|t| {
                t.render(minijinja::context! {
                    messages => messages,
                    tools => tools,
                    add_generation_prompt => true,
                    bos_token => self.bos,
                    eos_token => self.eos,
                })
            })
            .map_err(|e| format!("chat template: {e}"))
    }
}

/// A message as templates read it: `content` (null for a turn of tool calls only),
/// `tool_calls` with their arguments as JSON objects (as `transformers` passes them), and
/// `tool_call_id`.
fn message_value(m: &ChatMessage) -> Value {
    let mut v = json!({"role": m.role.as_str(), "content": m.content_with_name()});
    if !m.tool_calls.is_empty() {
        if m.content.is_empty() {
            v["content"] = Value::Null;
        }
        v["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| {
                let arguments = serde_json::from_str(&c.arguments)
                    .unwrap_or_else(|_| Value::String(c.arguments.clone()));
                json!({"id": c.id, "type": "function",
                       "function": {"name": c.name, "arguments": arguments}})
            })
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    v
}

/// Jinja's `tojson` as `transformers` defines it for chat templates: `json.dumps` with
/// Python's separators (`", "`, `": "`), keys in their given order, no HTML escaping.
fn tojson(value: minijinja::Value) -> Result<minijinja::Value, minijinja::Error> {
    let v: Value = serde_json::to_value(&value).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
    })?;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    serde::Serialize::serialize(&v, &mut ser).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
    })?;
    Ok(minijinja::Value::from_safe_string(
        String::from_utf8_lossy(&out).into_owned(),
    ))
}

/// serde_json's compact output with Python's `json.dumps` separators.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        separate(writer, first)
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        separate(writer, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

/// Python's item separator before every item but the first.
fn separate<W: ?Sized + std::io::Write>(writer: &mut W, first: bool) -> std::io::Result<()> {
    if first {
        Ok(())
    } else {
        writer.write_all(b", ")
    }
}

/// The Lark grammar (llguidance) a `required` or named `tool_choice` decodes under: one
/// `<tool_call>` block whose JSON names one of the allowed tools and holds arguments valid
/// under its schema. `None` for `auto` and `none` (free decoding).
///
/// # Errors
/// A named function that is not among the tools.
pub(crate) fn grammar(tools: &[Tool], choice: &ToolChoice) -> Result<Option<String>, String> {
    let allowed: Vec<&Tool> = match choice {
        ToolChoice::Auto | ToolChoice::None => return Ok(None),
        ToolChoice::Required => tools.iter().collect(),
        ToolChoice::Function(name) => {
            let t = tools
                .iter()
                .find(|t| &t.name == name)
                .ok_or_else(|| format!("tool_choice names `{name}`, which is not in `tools`"))?;
            vec![t]
        }
    };
    if allowed.is_empty() {
        return Err("tool_choice `required` needs at least one tool".into());
    }
    let variants: Vec<Value> = allowed
        .iter()
        .map(|t| {
            json!({
                "type": "object",
                "properties": {"name": {"const": t.name}, "arguments": t.parameters},
                "required": ["name", "arguments"],
                "additionalProperties": false
            })
        })
        .collect();
    let schema = json!({"anyOf": variants});
    Ok(Some(format!(
        "start: \"{OPEN}\\n\" call \"\\n{CLOSE}\"\ncall: %json {schema}\n"
    )))
}

/// Splits a generated answer into its text and its tool calls: each well-formed
/// `<tool_call>{"name": …, "arguments": {…}}</tool_call>` block becomes a call (with a fresh
/// id) and leaves the text; a block that does not parse stays in the text as written. Small
/// models often write the call's JSON without its tags: an answer that is exactly such an
/// object, naming one of `tools`, is a call too.
pub(crate) fn parse_calls(text: &str, tools: &[Tool]) -> (String, Vec<ToolCall>) {
    let bare = text.trim();
    if bare.starts_with('{') && !bare.contains(OPEN) {
        if let Some(call) = parse_call(bare) {
            if tools.iter().any(|t| t.name == call.name) {
                return (String::new(), vec![call]);
            }
        }
    }
    let mut rest = String::new();
    let mut calls = Vec::new();
    let mut tail = text;
    while let Some(start) = tail.find(OPEN) {
        let after = &tail[start + OPEN.len()..];
        let Some(end) = after.find(CLOSE) else {
            break;
        };
        match parse_call(after[..end].trim()) {
            Some(call) => {
                rest.push_str(&tail[..start]);
                calls.push(call);
            }
            None => rest.push_str(&tail[..start + OPEN.len() + end + CLOSE.len()]),
        }
        tail = &after[end + CLOSE.len()..];
    }
    rest.push_str(tail);
    let rest = if calls.is_empty() {
        rest
    } else {
        rest.trim().to_owned()
    };
    (rest, calls)
}

/// The call a `{"name": …, "arguments": {…}}` object describes (arguments may also be given
/// as JSON text).
fn parse_call(body: &str) -> Option<ToolCall> {
    let v = serde_json::from_str::<Value>(body).ok()?;
    let name = v.get("name")?.as_str()?.to_owned();
    let arguments = match v.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        Some(a @ Value::Object(_)) => a.to_string(),
        None => "{}".to_owned(),
        Some(_) => return None,
    };
    Some(ToolCall {
        id: call_id(),
        name,
        arguments,
    })
}

/// A fresh tool-call id, `call_` and 24 hex digits (time and a counter: unique within a
/// process, not a secret).
fn call_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("call_{t:016x}{:08x}", n as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_parsed_and_bad_blocks_stay_text() {
        let tools = [Tool {
            name: "get_weather".into(),
            description: None,
            parameters: json!({"type": "object"}),
        }];
        let (text, calls) = parse_calls(
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
            &tools,
        );
        assert_eq!(text, "");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(calls[0].arguments, r#"{"city":"Paris"}"#);
        assert!(calls[0].id.starts_with("call_"));
        let (text, calls) = parse_calls("Sure.\n<tool_call>\nnot json\n</tool_call>", &tools);
        assert!(calls.is_empty());
        assert_eq!(text, "Sure.\n<tool_call>\nnot json\n</tool_call>");
        let (text, calls) = parse_calls("no calls here", &tools);
        assert_eq!((text.as_str(), calls.len()), ("no calls here", 0));
        // The call's JSON without its tags, naming an offered tool, is a call; another
        // object is the answer's text.
        let bare = r#" {"name": "get_weather", "arguments": {"city": "Oslo"}}"#;
        assert_eq!(parse_calls(bare, &tools).1.len(), 1);
        let other = r#"{"name": "Ada", "arguments": {}}"#;
        assert_eq!(parse_calls(other, &tools), (other.to_owned(), Vec::new()));
    }

    #[test]
    fn tojson_writes_python_separators() {
        let v = minijinja::Value::from_serialize(json!({"a": [1, 2], "b": "<x>"}));
        assert_eq!(
            tojson(v).unwrap().to_string(),
            r#"{"a": [1, 2], "b": "<x>"}"#
        );
    }

    #[test]
    fn named_choice_must_be_a_tool() {
        let tools = [Tool {
            name: "f".into(),
            description: None,
            parameters: json!({"type": "object"}),
        }];
        assert!(grammar(&tools, &ToolChoice::Auto).unwrap().is_none());
        let g = grammar(&tools, &ToolChoice::Function("f".into()))
            .unwrap()
            .unwrap();
        assert!(g.contains("%json") && g.contains("\"const\":\"f\""), "{g}");
        assert!(grammar(&tools, &ToolChoice::Function("g".into())).is_err());
        assert!(grammar(&[], &ToolChoice::Required).is_err());
    }
}
