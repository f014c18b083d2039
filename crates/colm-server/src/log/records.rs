//! `GET /v1/colm/records` and `GET /v1/colm/records/{id}`: a tenant's own records of the
//! interaction log, with their transcripts. Another tenant's record is a 404, the same as an
//! unknown id.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use colm_api::record::{RecordList, RecordObject, RecordsQuery};

use crate::auth::Tenant;
use crate::error::{ApiError, ErrorResponses};
use crate::AppState;

use super::store::InteractionLog;

/// Most records one list returns.
pub const MAX_RECORDS: u32 = 100;

/// Records listed when the request names no `limit`.
const DEFAULT_RECORDS: u32 = 20;

/// The 404 of a server that keeps no log.
fn no_log() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found_error",
        Some("no_interaction_log"),
        "this server keeps no interaction log (colm serve --interaction-log)",
    )
}

fn log_of(state: &AppState) -> Result<&std::sync::Arc<InteractionLog>, ApiError> {
    state.log().ok_or_else(no_log)
}

fn db_error(e: super::LogError) -> ApiError {
    ApiError::from(colm_core::ModelError::Inference(e.to_string()))
}

fn tenant_name(tenant: Option<Extension<Tenant>>) -> String {
    tenant.map_or_else(String::new, |Extension(t)| t.name)
}

/// `GET /v1/colm/records/{id}`.
#[utoipa::path(get, path = "/v1/colm/records/{id}", tag = "colm",
    summary = "One of your served requests, with its transcript",
    description = "The record of a request this tenant made (its id is the response's \
        `x-colm-record-id`): model, strategy, tokens, latency, texts (unless left out) and, for \
        a collaboration, its transcript — each draft, reference, guidance and refinement. \
        Needs a server that keeps an interaction log (`colm serve --interaction-log`); a \
        record is written once its response has been sent.",
    params(("id" = String, Path, description = "Record id (`rec_` and 32 hex digits)")),
    responses(
        (status = 200, description = "The record", body = RecordObject),
        ErrorResponses,
    ))]
pub async fn show(
    State(state): State<AppState>,
    tenant: Option<Extension<Tenant>>,
    Path(id): Path<String>,
) -> Result<Json<RecordObject>, ApiError> {
    let record = log_of(&state)?
        .get(&id, &tenant_name(tenant))
        .await
        .map_err(db_error)?;
    record
        .map(|(r, f)| Json(RecordObject::new(r, f)))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found_error",
                Some("record_not_found"),
                format!("no record `{id}`: unknown to this tenant, or not logged yet"),
            )
        })
}

/// `GET /v1/colm/records`.
#[utoipa::path(get, path = "/v1/colm/records", tag = "colm",
    summary = "Your most recent served requests",
    description = "This tenant's newest records, newest first, without their transcripts \
        (fetch one by id for it).",
    params(RecordsQuery),
    responses(
        (status = 200, description = "The records", body = RecordList),
        ErrorResponses,
    ))]
pub async fn list(
    State(state): State<AppState>,
    tenant: Option<Extension<Tenant>>,
    q: Result<Query<RecordsQuery>, QueryRejection>,
) -> Result<Json<RecordList>, ApiError> {
    let limit = match q {
        Ok(Query(q)) => q.limit.unwrap_or(DEFAULT_RECORDS),
        Err(e) => {
            return Err(ApiError::invalid(
                format!("invalid query string: {}", e.body_text()),
                Some("limit"),
            ))
        }
    };
    if !(1..=MAX_RECORDS).contains(&limit) {
        return Err(ApiError::invalid(
            format!("`limit` takes 1 to {MAX_RECORDS}, got {limit}"),
            Some("limit"),
        ));
    }
    let records = log_of(&state)?
        .recent(&tenant_name(tenant), limit)
        .await
        .map_err(db_error)?;
    Ok(Json(RecordList {
        object: "list".into(),
        data: records
            .into_iter()
            .map(|(mut r, f)| {
                r.transcript = None;
                RecordObject::new(r, f)
            })
            .collect(),
    }))
}
