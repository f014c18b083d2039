//! `GET /v1/models` and `GET /health`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One entry of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelObject {
    /// The id to put in a request's `model` (a name or an alias).
    pub id: String,
    /// `model`.
    pub object: String,
    /// Unix time the server started, s.
    pub created: u64,
    /// `colm`.
    pub owned_by: String,
    /// colm's extension: set for a virtual model (a strategy) and an embedding model, absent
    /// for a hosted chat model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colm: Option<ModelExtension>,
}

/// colm's extension of a [`ModelObject`] that serves a strategy or embeddings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelExtension {
    /// A virtual model: the canonical text of the strategy it runs (`colm`, `colm:k=2`,
    /// `cascade:tau=-0.1`; `collaboration` when it has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// An embedding model (served at `POST /v1/embeddings`, not for chat): the length of its
    /// vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<usize>,
}

/// The answer of `GET /v1/models` (`object: "list"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    /// `list`.
    pub object: String,
    /// The hosted models, sorted by id.
    pub data: Vec<ModelObject>,
}

impl ModelList {
    /// The list of `models` (id, and colm's extension of a virtual or embedding model), all
    /// created at `created` (Unix s).
    pub fn new(
        models: impl IntoIterator<Item = (String, Option<ModelExtension>)>,
        created: u64,
    ) -> Self {
        Self {
            object: "list".into(),
            data: models
                .into_iter()
                .map(|(id, colm)| ModelObject {
                    id,
                    object: "model".into(),
                    created,
                    owned_by: "colm".into(),
                    colm,
                })
                .collect(),
        }
    }
}

/// The answer of `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}
