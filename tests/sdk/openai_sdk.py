"""The official `openai` Python SDK against `colm serve`: a chat completion, a streamed one,
the request fields colm honours for a single model (`response_format` with a JSON schema,
`logprobs`, `n`, penalties, `user`), tool calls (plain and streamed, and the tool's result sent
back), a conversation and a streamed answer of the virtual `colm` model (its progress events
ignored by the SDK), and proper errors (an unknown model, a bad value, a field colm does not
honour). Usage: python3 tests/sdk/openai_sdk.py BASE_URL MODEL [VIRTUAL_MODEL]

Prints one line per check and exits non-zero on the first failure.
"""
import json
import sys

import openai

base, model = sys.argv[1], sys.argv[2]
virtual = sys.argv[3] if len(sys.argv) > 3 else None
client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
question = "Janet's ducks lay 16 eggs per day. How many eggs do they lay in a week?"

r = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": question}], max_tokens=12
)
assert r.object == "chat.completion", r
assert r.choices[0].message.role == "assistant", r
assert r.choices[0].message.content.strip(), r
assert r.choices[0].finish_reason in ("stop", "length"), r
assert 1 <= r.usage.completion_tokens <= 12, r.usage
assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage
print("ok: chat completion")

stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": question}],
    max_tokens=12,
    stream=True,
    stream_options={"include_usage": True},
)
text, usage, finish = "", None, None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        text += choice.delta.content or ""
        finish = choice.finish_reason or finish
assert text == r.choices[0].message.content, (text, r.choices[0].message.content)
assert usage is not None and usage.completion_tokens == r.usage.completion_tokens, usage
assert finish in ("stop", "length"), finish
print("ok: streamed chat completion")

try:
    client.chat.completions.create(
        model="no-such-model", messages=[{"role": "user", "content": "hi"}]
    )
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as e:
    assert e.status_code == 404, e
    assert e.code == "model_not_found", e.body
print("ok: error for an unknown model")

try:
    client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], temperature=5
    )
    raise AssertionError("temperature 5 accepted")
except openai.BadRequestError as e:
    assert e.status_code == 400 and e.param == "temperature", e.body
print("ok: error for a bad parameter")

schema = {
    "type": "object",
    "properties": {"eggs_per_week": {"type": "integer"}},
    "required": ["eggs_per_week"],
    "additionalProperties": False,
}
r = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": question + " Answer in JSON."}],
    max_tokens=40,
    response_format={
        "type": "json_schema",
        "json_schema": {"name": "eggs", "schema": schema, "strict": True},
    },
    user="sdk-test",
)
answer = json.loads(r.choices[0].message.content)
assert set(answer) == {"eggs_per_week"} and isinstance(answer["eggs_per_week"], int), answer
print("ok: response_format json_schema")

r = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": question}],
    max_tokens=8,
    logprobs=True,
    top_logprobs=2,
)
lp = r.choices[0].logprobs.content
assert len(lp) == r.usage.completion_tokens, (len(lp), r.usage)
assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in lp), lp
assert "".join(t.token for t in lp) == r.choices[0].message.content, lp
print("ok: logprobs")

r = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Name a colour."}],
    max_tokens=6,
    n=3,
    temperature=1.0,
    seed=7,
    frequency_penalty=0.5,
    presence_penalty=0.5,
)
assert [c.index for c in r.choices] == [0, 1, 2], r.choices
assert all(c.message.content.strip() for c in r.choices), r.choices
assert r.usage.completion_tokens >= 3, r.usage
print("ok: n = 3 with penalties")

try:
    client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"mirostat": 2},
    )
    raise AssertionError("an unknown field was accepted")
except openai.BadRequestError as e:
    assert e.status_code == 400 and e.param == "mirostat", e.body
print("ok: error for a field colm does not honour")

tools = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather of a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
weather = [{"role": "user", "content": "What is the weather like in Paris today?"}]
r = client.chat.completions.create(
    model=model, messages=weather, tools=tools, tool_choice="required", max_tokens=64
)
choice = r.choices[0]
assert choice.finish_reason == "tool_calls", r
call = choice.message.tool_calls[0]
assert call.type == "function" and call.function.name == "get_weather", call
assert "Paris" in json.loads(call.function.arguments)["city"], call
print("ok: tool call")

stream = client.chat.completions.create(
    model=model, messages=weather, tools=tools, tool_choice="required", max_tokens=64, stream=True
)
streamed, finish = {}, None
for chunk in stream:
    for c in chunk.choices:
        for tc in c.delta.tool_calls or []:
            entry = streamed.setdefault(tc.index, {"name": "", "arguments": ""})
            entry["name"] += tc.function.name or ""
            entry["arguments"] += tc.function.arguments or ""
        finish = c.finish_reason or finish
assert finish == "tool_calls" and streamed[0]["name"] == "get_weather", (finish, streamed)
assert json.loads(streamed[0]["arguments"]) == json.loads(call.function.arguments), streamed
print("ok: streamed tool call")

followup = weather + [
    choice.message.model_dump(exclude_none=True),
    {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 17, "sky": "sunny"}'},
]
r = client.chat.completions.create(model=model, messages=followup, tools=tools, max_tokens=48)
assert not r.choices[0].message.tool_calls, r
assert "17" in r.choices[0].message.content, r.choices[0].message.content
print("ok: tool result answered")

if virtual:
    conversation = [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "My name is Zorblax. Please remember it."},
        {"role": "assistant", "content": "Nice to meet you, Zorblax."},
        {"role": "user", "content": "What is my name? Answer with the name only."},
    ]
    stream = client.chat.completions.create(
        model=virtual, messages=conversation, max_tokens=16, stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, steps = "", None, []
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        # colm's progress events: an extra `colm` field the SDK keeps and ignores.
        progress = (getattr(chunk, "colm", None) or {}).get("progress")
        if progress:
            steps.append(progress["step"])
        for c in chunk.choices:
            text += c.delta.content or ""
    assert "Zorblax" in text, text
    # The default round drafts only when the guidance is late (draft=auto), so a draft step may
    # or may not appear; the server's references, the guidance and the refinement always do.
    assert {"reference", "guidance", "refinement"} <= set(steps), steps
    assert usage is not None and usage.completion_tokens > 0, usage
    print("ok: streamed conversation with the virtual colm model")
