//! `POST /v1/embeddings` (OpenAI's Embeddings API): [`EmbeddingRequest`] in,
//! [`EmbeddingResponse`] out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most inputs one request may carry (OpenAI's limit).
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

/// `input`: one text or a list of texts. OpenAI also takes token ids (a list of integers, or a
/// list of such lists); they are read so that the server can refuse them by name (ids of
/// another tokenizer mean nothing to the model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    One(String),
    /// Several texts, each embedded on its own.
    Many(Vec<String>),
    /// Token ids (refused).
    Tokens(Vec<serde_json::Value>),
}

/// `encoding_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EncodingFormat {
    /// A JSON array of numbers.
    #[default]
    Float,
    /// The little-endian `f32` bytes of the vector in standard base64 (what the official
    /// SDKs ask for and decode).
    Base64,
}

/// The body of `POST /v1/embeddings`. A field not listed here is a 400 naming it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingRequest {
    /// A hosted embedding model (see `GET /v1/models`).
    pub model: String,
    /// The text(s) to embed: non-empty, at most 2048, each within the model's token limit
    /// (all-MiniLM-L6-v2: 256 tokens) unless `truncate` is true.
    pub input: EmbeddingInput,
    /// `float` (default) or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<EncodingFormat>,
    /// Length of the vectors; only the model's own length is accepted (the models colm
    /// serves are not trained to be cut shorter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub dimensions: Option<u32>,
    /// Read an input longer than the model's token limit up to the limit (as
    /// sentence-transformers does; the `truncate` of Hugging Face's text-embeddings-inference
    /// and Ollama) rather than refuse the request. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncate: bool,
    /// An identifier of the end user, logged with the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Every other field: a 400 naming the first of them.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(ignore)]
    pub unsupported: BTreeMap<String, serde_json::Value>,
}

/// A vector: numbers, or base64 of little-endian `f32`s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// `encoding_format: float`.
    Float(Vec<f32>),
    /// `encoding_format: base64`.
    Base64(String),
}

/// One vector of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: String,
    /// The input's index in the request.
    pub index: usize,
    /// The vector, unit length.
    pub embedding: EmbeddingVector,
}

/// `usage` of an embeddings answer, tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingUsage {
    /// Tokens read over all inputs (with the encoder's special tokens).
    pub prompt_tokens: u64,
    /// The same (nothing is generated).
    pub total_tokens: u64,
}

/// The answer of `POST /v1/embeddings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingResponse {
    /// Always `list`.
    pub object: String,
    /// One vector per input, in input order.
    pub data: Vec<Embedding>,
    /// The model that embedded them.
    pub model: String,
    /// Tokens read.
    pub usage: EmbeddingUsage,
}
