//! `POST /v1/embeddings`: OpenAI's Embeddings API over the hosted embedding models
//! ([`crate::AppState::with_embedders`]).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use colm_api::openai::{
    Embedding, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage,
    EmbeddingVector, EncodingFormat, MAX_EMBEDDING_INPUTS,
};
use colm_core::Usage;

use crate::body::parse_body;
use crate::charge::Charge;
use crate::error::{ApiError, ErrorResponses};
use crate::AppState;

/// `POST /v1/embeddings`.
#[utoipa::path(post, path = "/v1/embeddings", tag = "openai",
    summary = "Embeddings (OpenAI-compatible)",
    description = "One unit-length vector per input text, from a hosted embedding model (see \
        `GET /v1/models`: an embedding model's entry has `colm.dimensions`). Vectors are read as \
        sentence-transformers reads them (mean pooling, L2 normalisation). An input over the \
        model's token limit is a 400 naming its size, unless `truncate` is true.",
    request_body = EmbeddingRequest,
    responses(
        (status = 200, description = "The vectors", body = EmbeddingResponse),
        ErrorResponses,
    ))]
pub async fn embeddings(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match handle(state, body).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => {
            tracing::info!(status = %e.status, message = %e.message, "request rejected");
            e.into_response()
        }
    }
}

/// The request's texts, checked: at least one, at most [`MAX_EMBEDDING_INPUTS`], none empty,
/// no token ids.
///
/// # Errors
/// 400 naming `input`.
fn texts(input: EmbeddingInput) -> Result<Vec<String>, ApiError> {
    let texts = match input {
        EmbeddingInput::One(t) => vec![t],
        EmbeddingInput::Many(ts) => ts,
        EmbeddingInput::Tokens(_) => {
            return Err(ApiError::invalid(
                "`input` as token ids is not supported: ids of another tokenizer mean nothing \
                 to this model; send the text (LangChain's OpenAIEmbeddings: \
                 check_embedding_ctx_length=False)",
                Some("input"),
            ))
        }
    };
    if texts.is_empty() || texts.len() > MAX_EMBEDDING_INPUTS {
        return Err(ApiError::invalid(
            format!(
                "`input` takes 1 to {MAX_EMBEDDING_INPUTS} texts, got {}",
                texts.len()
            ),
            Some("input"),
        ));
    }
    if let Some(i) = texts.iter().position(String::is_empty) {
        return Err(ApiError::invalid(
            format!("input[{i}] is empty"),
            Some("input"),
        ));
    }
    Ok(texts)
}

async fn handle(
    state: AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<EmbeddingResponse, ApiError> {
    let req: EmbeddingRequest = parse_body(&state, "/v1/embeddings", body)?;
    super::convert::refuse_unsupported::<EmbeddingRequest>(&req.unsupported)?;
    let names: Vec<String> = state.embedders().map(|(n, _)| n.clone()).collect();
    let Some(model) = state.embedder(&req.model) else {
        if state.hosted_id(&req.model).is_some() {
            return Err(ApiError::invalid(
                format!(
                    "`{}` is a chat model; embedding models here: {}",
                    req.model,
                    if names.is_empty() {
                        "none (colm serve --embedding-model NAME)".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
                Some("model"),
            ));
        }
        return Err(ApiError::model_not_found(&req.model, &names));
    };
    if let Some(d) = req.dimensions.filter(|&d| d as usize != model.dimensions()) {
        return Err(ApiError::invalid(
            format!(
                "dimensions: `{}` makes vectors of {} numbers, not {d}",
                req.model,
                model.dimensions()
            ),
            Some("dimensions"),
        ));
    }
    let texts = texts(req.input)?;
    // Counted before anything runs: an input over the limit is refused (unless `truncate`),
    // and the tenant's budget is asked for what the request will read.
    let limit = model.max_tokens();
    let mut estimate = 0u64;
    for (i, t) in texts.iter().enumerate() {
        let n = model
            .count_tokens(t)
            .map_err(|e| ApiError::invalid(format!("input[{i}]: {e}"), Some("input")))?;
        if n > limit && !req.truncate {
            // OpenAI's code for an input over the model's limit.
            let mut e = ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("context_length_exceeded"),
                format!(
                    "input[{i}] is {n} tokens; `{}` reads at most {limit} (send `truncate: true` \
                     to read the first {limit})",
                    req.model
                ),
            );
            e.param = Some("input".into());
            return Err(e);
        }
        estimate += n.min(limit) as u64;
    }
    let charge = Charge::reserve(&state, &req.model, estimate).await?;
    let out = model.embed(&texts).await;
    // Charged whether or not it succeeded: the tokens were read either way.
    let prompt_tokens = out.as_ref().map_or(estimate, |o| o.prompt_tokens);
    charge.settle(Usage {
        prompt_tokens,
        ..Usage::default()
    });
    let out = out.map_err(ApiError::from)?;
    let format = req.encoding_format.unwrap_or_default();
    let data = out
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| Embedding {
            object: "embedding".into(),
            index,
            embedding: encode(v, format),
        })
        .collect();
    Ok(EmbeddingResponse {
        object: "list".into(),
        data,
        model: model.name().to_owned(),
        usage: EmbeddingUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    })
}

/// A vector as `format` asks: numbers, or base64 of its little-endian `f32` bytes (as OpenAI
/// sends it and its SDKs decode it).
fn encode(v: Vec<f32>, format: EncodingFormat) -> EmbeddingVector {
    match format {
        EncodingFormat::Float => EmbeddingVector::Float(v),
        EncodingFormat::Base64 => {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_holds_the_little_endian_floats() {
        let EmbeddingVector::Base64(b) = encode(vec![1.0, -0.5], EncodingFormat::Base64) else {
            panic!("not base64");
        };
        let bytes = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
        assert_eq!(
            bytes,
            [1f32.to_le_bytes(), (-0.5f32).to_le_bytes()].concat()
        );
    }

    #[test]
    fn inputs_are_checked() {
        assert_eq!(texts(EmbeddingInput::One("a".into())).unwrap(), ["a"]);
        let err = texts(EmbeddingInput::Many(vec!["a".into(), String::new()])).unwrap_err();
        assert!(err.message.contains("input[1] is empty"), "{}", err.message);
        let err = texts(EmbeddingInput::Many(Vec::new())).unwrap_err();
        assert!(err.message.contains("got 0"), "{}", err.message);
        let err = texts(EmbeddingInput::Tokens(vec![serde_json::json!(1)])).unwrap_err();
        assert!(err.message.contains("token ids"), "{}", err.message);
        assert!(super::super::convert::fields_of::<EmbeddingRequest>()
            .contains(&"encoding_format".to_owned()));
    }
}
