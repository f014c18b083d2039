//! colm-models: the catalog of known GGUF models and `pull` into a verified local cache.
//!
//! - [`catalog`]: names, sizes, sha256 and sources of the models in DESIGN.md §4;
//! - [`pull`]: the cache (`$COLM_HOME/models`, default `~/.cache/colm/models`), model
//!   references (catalog name or `.gguf` path) and pulls that try each source in order and
//!   verify size and sha256 before a file is renamed into place;
//! - [`embedders`]: the sentence-embedding models (folders of weights, tokenizer and
//!   configuration, each file verified) and their pull;
//! - [`remote`]: GGUF files pulled from a URL or `hf:OWNER/REPO/FILE`, their sha256 recorded
//!   on the first pull and checked on every later one.

pub mod catalog;
pub mod embedders;
pub mod pull;
pub mod remote;

pub use catalog::{CatalogEntry, Source, CATALOG};
pub use embedders::{BundleFile, BundleSource, EmbedderEntry, DEFAULT_EMBEDDER, EMBEDDERS};
pub use pull::{Cache, CacheStatus, ModelRef, PullError, PullOptions};
pub use remote::{PulledRecord, RemoteSource};
