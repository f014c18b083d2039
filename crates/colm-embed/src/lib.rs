//! colm-embed: sentence embeddings in process, for `POST /v1/embeddings` and for the places
//! where colm compares texts.
//!
//! A catalog embedding model ([`colm_models::EmbedderEntry`], all-MiniLM-L6-v2) is a BERT
//! encoder run with candle (Hugging Face's Rust tensor library, whose `candle-transformers`
//! holds the BERT of `transformers`) and tokenized with the `tokenizers` crate (the Rust core
//! of Hugging Face's Python tokenizers, reading the model's own `tokenizer.json`): the two
//! libraries the model's publishers maintain, so the vectors match the Python reference
//! (tested against `sentence-transformers`' own vectors, cosine ≥ 0.999). A vector is read as
//! sentence-transformers reads it for this model (its `modules.json`): the encoder's last
//! hidden states, their mean over the tokens under the attention mask (`1_Pooling`), then L2
//! normalisation (`2_Normalize`); inputs longer than the model's `max_seq_length` (256 tokens)
//! are cut there, as sentence-transformers cuts them.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use colm_core::{EmbeddingModel, Embeddings, ModelError};
use colm_models::EmbedderEntry;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Inputs encoded in one forward pass (padded to the longest of them).
pub const BATCH: usize = 16;

/// Errors of loading and running an embedding model.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A file of the model's folder cannot be read or parsed.
    #[error("cannot load {file}: {reason}")]
    Load {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// The tokenizer refused an input.
    #[error("cannot tokenize input {index}: {reason}")]
    Tokenize {
        /// The input's index in the request.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The encoder failed.
    #[error("embedding failed: {0}")]
    Inference(String),
}

fn inference(e: candle_core::Error) -> EmbedError {
    EmbedError::Inference(e.to_string())
}

/// A loaded embedding model: cheap to clone (the weights are shared), safe to call from several
/// threads at once (each call runs its own forward passes). [`Embedder::embed`] blocks; through
/// the [`EmbeddingModel`] trait a call runs on tokio's blocking pool.
#[derive(Clone)]
pub struct Embedder(Arc<Loaded>);

struct Loaded {
    name: String,
    model: BertModel,
    /// Cuts at `max_tokens` and pads a batch to its longest input.
    tokenizer: Tokenizer,
    /// The same, without the cut (to count what an input would need).
    counter: Tokenizer,
    dimensions: usize,
    max_tokens: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("name", &self.0.name)
            .field("dimensions", &self.0.dimensions)
            .finish()
    }
}

impl Embedder {
    /// Loads `entry` from its folder in the cache (`config.json`, `tokenizer.json`,
    /// `model.safetensors`; see [`colm_models::Cache::ensure_embedder`]) on the CPU.
    ///
    /// # Errors
    /// [`EmbedError::Load`] naming the file that cannot be read.
    pub fn load(dir: &Path, entry: &EmbedderEntry) -> Result<Self, EmbedError> {
        let load = |file: &str, reason: String| EmbedError::Load {
            file: dir.join(file).display().to_string(),
            reason,
        };
        let config = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| load("config.json", e.to_string()))?;
        let config: Config =
            serde_json::from_str(&config).map_err(|e| load("config.json", e.to_string()))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| load("tokenizer.json", e.to_string()))?;
        let mut counter = tokenizer.clone();
        counter
            .with_truncation(None)
            .map_err(|e| load("tokenizer.json", e.to_string()))?;
        counter.with_padding(None);
        // The file pads and cuts at 128; sentence-transformers cuts at the model's
        // max_seq_length and pads a batch to its longest input.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: entry.max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| load("tokenizer.json", e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        // Read into memory (90 MB), not memory-mapped: candle's mapping is `unsafe` (the file
        // could change underneath) and the copy costs a fraction of a second once.
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| load("model.safetensors", e.to_string()))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| load("model.safetensors", e.to_string()))?;
        let model =
            BertModel::load(vb, &config).map_err(|e| load("model.safetensors", e.to_string()))?;
        Ok(Self(Arc::new(Loaded {
            name: entry.name.to_owned(),
            model,
            tokenizer,
            counter,
            dimensions: entry.dimensions,
            max_tokens: entry.max_tokens,
        })))
    }

    /// The catalog name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Length of a vector.
    pub fn dimensions(&self) -> usize {
        self.0.dimensions
    }

    /// Most tokens of one input read; the rest is cut off.
    pub fn max_tokens(&self) -> usize {
        self.0.max_tokens
    }

    /// Tokens `text` is (with `[CLS]` and `[SEP]`), before any cut.
    ///
    /// # Errors
    /// [`EmbedError::Tokenize`].
    pub fn count_tokens(&self, text: &str) -> Result<usize, EmbedError> {
        self.0
            .counter
            .encode(text, true)
            .map(|e| e.get_ids().len())
            .map_err(|e| EmbedError::Tokenize {
                index: 0,
                reason: e.to_string(),
            })
    }

    /// The vectors of `inputs`, in order, encoded [`BATCH`] at a time. Blocking (CPU-bound).
    ///
    /// # Errors
    /// [`EmbedError::Tokenize`] naming the input, [`EmbedError::Inference`].
    pub fn embed<S: AsRef<str>>(&self, inputs: &[S]) -> Result<Embeddings, EmbedError> {
        let mut vectors = Vec::with_capacity(inputs.len());
        let mut prompt_tokens = 0;
        for (b, batch) in inputs.chunks(BATCH).enumerate() {
            let texts: Vec<&str> = batch.iter().map(AsRef::as_ref).collect();
            let encodings =
                self.0
                    .tokenizer
                    .encode_batch(texts, true)
                    .map_err(|e| EmbedError::Tokenize {
                        index: b * BATCH,
                        reason: e.to_string(),
                    })?;
            let rows = encodings.len();
            let width = encodings.first().map_or(0, |e| e.get_ids().len());
            let (mut ids, mut types, mut mask) = (Vec::new(), Vec::new(), Vec::new());
            for e in &encodings {
                ids.extend_from_slice(e.get_ids());
                types.extend_from_slice(e.get_type_ids());
                mask.extend_from_slice(e.get_attention_mask());
                prompt_tokens += e
                    .get_attention_mask()
                    .iter()
                    .map(|&m| u64::from(m))
                    .sum::<u64>();
            }
            let tensor =
                |v: Vec<u32>| Tensor::from_vec(v, (rows, width), &Device::Cpu).map_err(inference);
            let (ids, types, mask) = (tensor(ids)?, tensor(types)?, tensor(mask)?);
            let hidden = self
                .0
                .model
                .forward(&ids, &types, Some(&mask))
                .map_err(inference)?;
            vectors.extend(pool(&hidden, &mask).map_err(inference)?);
        }
        Ok(Embeddings {
            vectors,
            prompt_tokens,
        })
    }
}

/// An [`Embedder`] behind the [`EmbeddingModel`] trait: each call runs on tokio's blocking
/// pool.
#[async_trait::async_trait]
impl EmbeddingModel for Embedder {
    fn name(&self) -> &str {
        &self.0.name
    }
    fn dimensions(&self) -> usize {
        self.0.dimensions
    }
    fn max_tokens(&self) -> usize {
        self.0.max_tokens
    }
    fn count_tokens(&self, text: &str) -> Result<usize, ModelError> {
        Embedder::count_tokens(self, text).map_err(model_error)
    }
    async fn embed(&self, inputs: &[String]) -> Result<Embeddings, ModelError> {
        let (this, inputs) = (self.clone(), inputs.to_vec());
        tokio::task::spawn_blocking(move || this.embed(&inputs))
            .await
            .map_err(|e| ModelError::Inference(format!("embedding task: {e}")))?
            .map_err(model_error)
    }
}

fn model_error(e: EmbedError) -> ModelError {
    match e {
        EmbedError::Tokenize { .. } => ModelError::InvalidRequest(e.to_string()),
        EmbedError::Load { .. } | EmbedError::Inference(_) => ModelError::Inference(e.to_string()),
    }
}

/// Mean of `hidden` (`rows × tokens × dims`) over the tokens where `mask` (`rows × tokens`)
/// is 1, each row then divided by its L2 norm (sentence-transformers' `Pooling` with
/// `pooling_mode_mean_tokens`, then `Normalize`).
fn pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    // sentence-transformers clamps the count at 1e-9 (an all-padding row cannot occur here).
    let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    mean.broadcast_div(&norm)?.to_vec2::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_averages_the_masked_tokens_and_normalises() {
        // Two rows of three tokens, two dims; the second row's last token is padding.
        let hidden = Tensor::from_vec(
            vec![
                1f32, 0., 3., 0., 2., 0., /* row 2 */ 0., 1., 0., 3., 100., 100.,
            ],
            (2, 3, 2),
            &Device::Cpu,
        )
        .unwrap();
        let mask = Tensor::from_vec(vec![1u32, 1, 1, 1, 1, 0], (2, 3), &Device::Cpu).unwrap();
        let v = pool(&hidden, &mask).unwrap();
        // Row 1: mean (2, 0) → (1, 0). Row 2: mean (0, 2) (padding left out) → (0, 1).
        assert_eq!(v, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
    }
}
