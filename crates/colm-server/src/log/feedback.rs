//! `POST /v1/colm/feedback`: a tenant's outcome or score attached to one of its records.

use axum::extract::State;
use axum::response::Response;

use crate::AppState;

use super::Feedback;

/// `POST /v1/colm/feedback`.
#[utoipa::path(post, path = "/v1/colm/feedback", tag = "colm",
    summary = "Attach an outcome (right / wrong) or a score to a served request",
    description = "Names the request by the record id of its response (`x-colm-record-id`); \
        only the tenant that made the request may. Needs a server that keeps an interaction \
        log (`colm serve --interaction-log`).",
    request_body = colm_api::collab::FeedbackRequest,
    responses(
        (status = 200, description = "The feedback was kept", body = colm_api::collab::FeedbackResponse),
        crate::error::ErrorResponses,
    ))]
pub async fn feedback(
    State(state): State<AppState>,
    tenant: Option<axum::Extension<crate::auth::Tenant>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    use axum::response::IntoResponse as _;
    match feedback_inner(&state, tenant, body).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn feedback_inner(
    state: &AppState,
    tenant: Option<axum::Extension<crate::auth::Tenant>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<colm_api::collab::FeedbackResponse, crate::error::ApiError> {
    use crate::error::ApiError;
    use axum::http::StatusCode;
    let req: colm_api::collab::FeedbackRequest =
        crate::body::parse_body(state, "/v1/colm/feedback", body)?;
    if req.outcome.is_none() && req.score.is_none() {
        return Err(ApiError::invalid(
            "give an `outcome` (right or wrong), a `score` (0 to 1), or both",
            Some("outcome"),
        ));
    }
    if let Some(s) = req.score.filter(|s| !(0.0..=1.0).contains(s)) {
        return Err(ApiError::invalid(
            format!("`score` takes 0 to 1, got {s}"),
            Some("score"),
        ));
    }
    let not_found = |why: &str| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            Some("record_not_found"),
            format!("no record `{}`: {why}", req.record_id),
        )
    };
    let Some(log) = state.log().cloned() else {
        return Err(not_found(
            "this server keeps no interaction log (colm serve --interaction-log)",
        ));
    };
    let tenant = tenant.map_or_else(String::new, |axum::Extension(t)| t.name);
    let kept = Feedback {
        outcome: req.outcome.map(|o| o.as_str().to_owned()),
        score: req.score,
    };
    // A record is appended once its response has been sent: feedback may arrive first, so an
    // unknown id is looked for again for up to 2 s.
    let well_formed = req
        .record_id
        .strip_prefix("rec_")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    let mut found = false;
    for _ in 0..if well_formed { 40 } else { 0 } {
        let (log, id, tenant, kept) = (
            log.clone(),
            req.record_id.clone(),
            tenant.clone(),
            kept.clone(),
        );
        found = log
            .feedback(&id, &tenant, &kept)
            .await
            .map_err(|e| ApiError::from(colm_core::ModelError::Inference(e.to_string())))?;
        if found {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if !found {
        return Err(not_found("unknown to this tenant, or not logged yet"));
    }
    Ok(colm_api::collab::FeedbackResponse {
        object: "colm.feedback".into(),
        record_id: req.record_id,
        outcome: req.outcome,
        score: req.score,
    })
}
