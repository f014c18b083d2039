"""Schemathesis hooks of the contract test (scripts/schemathesis/run).

Generated chat requests name a random model, which is a 404 (a documented answer, tested
elsewhere) and never reaches a model; they are pointed at the model the test serves (COLM_MODEL)
so the fuzzing reaches real inference. Token limits are capped so a generated request cannot keep the
model decoding for minutes. Both edits keep a valid request valid.
"""

import os

import schemathesis

MODEL = os.environ.get("COLM_MODEL", "")
MAX_TOKENS = 8


@schemathesis.hook
def map_case(ctx, case):
    case.body = shape(case.body)
    return case


def shape(body):
    if not isinstance(body, dict):
        return body
    if MODEL and isinstance(body.get("model"), str):
        body["model"] = MODEL
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TOKENS:
            body[key] = MAX_TOKENS
    return body
