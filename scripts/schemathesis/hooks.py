"""Schemathesis hooks of the contract test (scripts/schemathesis/run).

- Generated chat requests name a random model, which is a 404 (a documented answer, tested
  elsewhere) and never reaches a model; they are pointed at the model the test serves
  (COLM_MODEL; an embeddings request, COLM_EMBEDDING_MODEL) so the fuzzing reaches real inference. Token limits are capped so a generated
  request cannot keep the model decoding for minutes. Both edits keep a valid request valid.
- `accepts_valid_requests` replaces schemathesis' `positive_data_acceptance` (excluded by the
  run script) with one exception no static schema can state: a 400 `context_length_exceeded`
  when the prompt's tokens plus `max_tokens` do not fit the model's context (OpenAI answers the
  same; the hook above cannot cap every phase's requests). Any other refusal of a request the
  document calls valid fails the run, as the built-in check does.
"""

import os

import schemathesis

MODEL = os.environ.get("COLM_MODEL", "")
EMBEDDING_MODEL = os.environ.get("COLM_EMBEDDING_MODEL", "")
MAX_TOKENS = 8

# Statuses a valid request may get: the built-in check's defaults, plus 408 (a session that
# received no draft within its window answers 408 `no_drafts`, documented on
# GET /v1/colm/sessions/{id}/guidance).
ACCEPTED = {401, 403, 404, 408, 409, 429}


@schemathesis.hook
def map_case(ctx, case):
    embeddings = case.operation.path == "/v1/embeddings"
    case.body = shape(case.body, EMBEDDING_MODEL if embeddings else MODEL)
    return case


def shape(body, model):
    if not isinstance(body, dict):
        return body
    if model and isinstance(body.get("model"), str):
        body["model"] = model
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TOKENS:
            body[key] = MAX_TOKENS
    return body


def context_exceeded(response):
    """A 400 whose OpenAI-shaped body says the request does not fit the context, naming sizes."""
    if response.status_code != 400:
        return False
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return error.get("code") == "context_length_exceeded" and any(
        ch.isdigit() for ch in error.get("message", "")
    )


@schemathesis.check
def accepts_valid_requests(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    status = response.status_code
    if 200 <= status < 400 or status >= 500 or status in ACCEPTED or context_exceeded(response):
        return None
    raise AssertionError(
        f"Valid data should have been accepted: {status} {response.text[:500]}"
    )
