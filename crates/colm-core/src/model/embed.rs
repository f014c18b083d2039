//! The embedding-model trait: texts in, one vector each out (OpenAI's `/v1/embeddings`, and
//! the places where colm compares texts: the `embedding` selector of collaborators, sharing
//! references between paraphrases).

use async_trait::async_trait;

use super::ModelError;

/// What [`EmbeddingModel::embed`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector of [`EmbeddingModel::dimensions`] floats per input, in input order; unit
    /// length (L2-normalised), so a dot product is a cosine similarity.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read over all inputs, with the encoder's special tokens.
    pub prompt_tokens: u64,
}

/// A sentence-embedding model. Cheap to share (`Arc<dyn EmbeddingModel>`), safe to call
/// concurrently.
#[async_trait]
pub trait EmbeddingModel: Send + Sync {
    /// The model's name (catalog name).
    fn name(&self) -> &str;

    /// Length of a vector.
    fn dimensions(&self) -> usize;

    /// Most tokens of one input the model reads ([`EmbeddingModel::count_tokens`] counts them).
    fn max_tokens(&self) -> usize;

    /// Tokens `text` is read as, with the encoder's special tokens and before any cut.
    ///
    /// # Errors
    /// [`ModelError::InvalidRequest`] when the tokenizer refuses the text.
    fn count_tokens(&self, text: &str) -> Result<usize, ModelError>;

    /// The vectors of `inputs`; an input longer than [`EmbeddingModel::max_tokens`] is read up
    /// to that many tokens (callers that must not cut check [`EmbeddingModel::count_tokens`]).
    ///
    /// # Errors
    /// [`ModelError::InvalidRequest`] for an input the tokenizer refuses,
    /// [`ModelError::Inference`] when the encoder fails.
    async fn embed(&self, inputs: &[String]) -> Result<Embeddings, ModelError>;
}

/// Cosine similarity of two vectors (their dot product over their norms; 0 when one is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let n = norm(a) * norm(b);
    if n == 0.0 {
        0.0
    } else {
        dot / n
    }
}
