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
    /// The list of `ids`, all created at `created` (Unix s).
    pub fn new(ids: impl IntoIterator<Item = String>, created: u64) -> Self {
        Self {
            object: "list".into(),
            data: ids
                .into_iter()
                .map(|id| ModelObject {
                    id,
                    object: "model".into(),
                    created,
                    owned_by: "colm".into(),
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
