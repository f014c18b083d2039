//! colm-models: the catalog of known GGUF models and `pull` into a verified local cache.
//!
//! - [`catalog`]: names, sizes, sha256 and sources of the models in DESIGN.md §4;
//! - [`pull`]: the cache (`$COLM_HOME/models`, default `~/.cache/colm/models`), model
//!   references (catalog name or `.gguf` path) and pulls that try each source in order and
//!   verify size and sha256 before a file is renamed into place.

pub mod catalog;
pub mod pull;

pub use catalog::{CatalogEntry, Source, CATALOG};
pub use pull::{Cache, CacheStatus, ModelRef, PullError, PullOptions};
