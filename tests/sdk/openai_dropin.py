"""What clients of other servers send, from the official `openai` Python SDK to `colm serve`:
embeddings (the SDK's default base64, floats, lists, the token limit, errors), legacy text
completions (plain, several prompts with n, echo, logprobs, streamed), and the chat fields
llama-server, vLLM and OpenAI clients send (`top_k`, `min_p`, `repeat_penalty` /
`repetition_penalty`, `store`, a message's `name`). Then LangChain's `OpenAIEmbeddings`.

Usage: python3 tests/sdk/openai_dropin.py BASE_URL CHAT_MODEL EMBEDDING_MODEL FIXTURE
FIXTURE: tests/fixtures/embeddings/all-minilm-l6-v2.json (sentence-transformers' vectors).

Prints one `ok:` line per check and exits non-zero on the first failure.
"""
import json
import math
import sys
import time
import urllib.request

import openai

base, chat_model, embedder, fixture_path = sys.argv[1:5]
client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
fixture = json.load(open(fixture_path))


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def refused(call, param):
    try:
        call()
    except openai.BadRequestError as e:
        assert e.status_code == 400, e
        assert e.body["param"] == param, e.body
        return e.body["message"]
    raise AssertionError(f"no 400 for {param}")


# --- Embeddings -------------------------------------------------------------------------
models = {m.id: m for m in client.models.list().data}
assert embedder in models and chat_model in models, models
sentences = fixture["sentences"][:3]
# The SDK asks for base64 unless told otherwise, and decodes it.
r = client.embeddings.create(model=embedder, input=sentences)
assert r.object == "list" and r.model == embedder, r
assert [d.index for d in r.data] == [0, 1, 2], r.data
for d, ref in zip(r.data, fixture["embeddings"]):
    assert len(d.embedding) == 384
    assert cosine(d.embedding, ref) >= 0.999, cosine(d.embedding, ref)
assert r.usage.prompt_tokens == r.usage.total_tokens > 3 * 10, r.usage
print("ok: embeddings of a list, base64 as the SDK asks, equal to sentence-transformers'")

one = client.embeddings.create(model=embedder, input=sentences[0], encoding_format="float")
assert len(one.data) == 1 and cosine(one.data[0].embedding, fixture["embeddings"][0]) >= 0.999
print("ok: embedding of one string as floats")

long = fixture["sentences"][-1]
message = refused(lambda: client.embeddings.create(model=embedder, input=[sentences[0], long]),
                  "input")
assert "input[1]" in message and "256" in message, message
cut = client.embeddings.create(model=embedder, input=long, extra_body={"truncate": True})
assert cosine(cut.data[0].embedding, fixture["embeddings"][-1]) >= 0.999
assert cut.usage.prompt_tokens == 256, cut.usage
print("ok: an input over 256 tokens is refused with its size, or cut with truncate")

refused(lambda: client.embeddings.create(model=embedder, input="x", dimensions=128), "dimensions")
refused(lambda: client.embeddings.create(model=embedder, input=[[1, 2, 3]]), "input")
refused(lambda: client.embeddings.create(model=chat_model, input="x"), "model")
try:
    client.embeddings.create(model="no-such-embedder", input="x")
    raise AssertionError("no 404")
except openai.NotFoundError as e:
    assert embedder in e.body["message"], e.body
print("ok: embedding errors name the field")

# --- Legacy completions -----------------------------------------------------------------
prompt = "def add(a, b):\n    return"
c = client.completions.create(model=chat_model, prompt=prompt, max_tokens=8)
assert c.object == "text_completion" and len(c.choices) == 1, c
greedy = c.choices[0].text
assert greedy.strip() and c.choices[0].finish_reason in ("stop", "length"), c
assert 1 <= c.usage.completion_tokens <= 8, c.usage
print("ok: text completion")

c = client.completions.create(model=chat_model, prompt=[prompt, "1, 2, 3,"], n=2,
                              max_tokens=4, temperature=0.8, seed=5)
assert [ch.index for ch in c.choices] == [0, 1, 2, 3], c.choices
assert all(ch.text and ch.finish_reason in ("stop", "length") for ch in c.choices), c.choices
assert 4 <= c.usage.completion_tokens <= 16, c.usage
print("ok: several prompts, n choices each")

c = client.completions.create(model=chat_model, prompt=prompt, max_tokens=6, echo=True)
assert c.choices[0].text.startswith(prompt), c.choices[0].text
assert c.choices[0].text[len(prompt):] == greedy[:len(c.choices[0].text) - len(prompt)], c
print("ok: echo")

c = client.completions.create(model=chat_model, prompt=prompt, max_tokens=6, logprobs=2)
lp = c.choices[0].logprobs
assert len(lp.tokens) == c.usage.completion_tokens == len(lp.token_logprobs), lp
assert all(len(t) <= 2 for t in lp.top_logprobs) and all(x <= 0 for x in lp.token_logprobs), lp
assert "".join(lp.tokens) == c.choices[0].text, (lp.tokens, c.choices[0].text)
assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[0] == 0, lp
print("ok: logprobs")

stream = client.completions.create(model=chat_model, prompt=prompt, max_tokens=8, stream=True,
                                   stream_options={"include_usage": True})
text, usage, finish = "", None, None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for ch in chunk.choices:
        text += ch.text
        finish = ch.finish_reason or finish
assert text == greedy, (text, greedy)
assert usage is not None and usage.completion_tokens >= 1 and finish in ("stop", "length")
print("ok: streamed text completion equals the plain one")

refused(lambda: client.completions.create(model=chat_model, prompt=prompt, suffix="x"), "suffix")
refused(lambda: client.completions.create(model="colm", prompt=prompt), "model")
print("ok: completion errors name the field")

# --- The fields clients send --------------------------------------------------------------
question = [{"role": "user", "content": "Name three fruits."}]
greedy = client.chat.completions.create(model=chat_model, messages=question, max_tokens=16)
greedy_text = greedy.choices[0].message.content
for extra in ({"top_k": 1}, {"min_p": 1.0}):
    for seed in (1, 2):
        r = client.chat.completions.create(model=chat_model, messages=question, max_tokens=16,
                                           temperature=1.0, seed=seed, extra_body=extra)
        assert r.choices[0].message.content == greedy_text, (extra, seed, r)
print("ok: top_k = 1 and min_p = 1 sample the greedy answer at temperature 1")

loop = [{"role": "user", "content": "Write the word apple twenty times, separated by spaces."}]
plain = client.chat.completions.create(model=chat_model, messages=loop, max_tokens=24)
for extra in ({"repeat_penalty": 1.5}, {"repetition_penalty": 1.5}):
    r = client.chat.completions.create(model=chat_model, messages=loop, max_tokens=24,
                                       extra_body=extra)
    assert r.choices[0].message.content != plain.choices[0].message.content, (extra, r)
refused(lambda: client.chat.completions.create(
    model=chat_model, messages=loop, extra_body={"repeat_penalty": 1.1,
                                                 "repetition_penalty": 1.2}),
    "repetition_penalty")
refused(lambda: client.chat.completions.create(
    model=chat_model, messages=loop, extra_body={"repetition_penalty": 0}), "repetition_penalty")
print("ok: repeat_penalty and repetition_penalty change a repetitive answer")

named = [{"role": "user", "name": "Ada", "content": "Name three fruits."}]
r = client.chat.completions.create(model=chat_model, messages=named, max_tokens=4)
assert r.usage.prompt_tokens > greedy.usage.prompt_tokens, (r.usage, greedy.usage)
print("ok: a message's name reaches the prompt")

secret = "my locker code is 4417"
raw = client.chat.completions.with_raw_response.create(
    model=chat_model, messages=[{"role": "user", "content": secret}], max_tokens=4, store=False)
raw.parse()
record_id = raw.headers["x-colm-record-id"]
kept = client.chat.completions.with_raw_response.create(
    model=chat_model, messages=[{"role": "user", "content": "Say hi."}], max_tokens=4, store=True)
kept.parse()


def record(rid):
    for _ in range(50):
        try:
            with urllib.request.urlopen(f"{base}/v1/colm/records/{rid}") as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
            time.sleep(0.1)
    raise AssertionError(f"record {rid} never appeared")


forgotten = record(record_id)
assert forgotten["query"] is None and forgotten["answer"] is None, forgotten
assert forgotten["completion_tokens"] >= 1, forgotten
assert record(kept.headers["x-colm-record-id"])["query"] == "Say hi."
print("ok: store=false keeps the record without its texts")

# --- LangChain's OpenAIEmbeddings ----------------------------------------------------------
from langchain_openai import OpenAIEmbeddings  # noqa: E402

# By default LangChain sends token ids of OpenAI's tokenizer (and fetches that tokenizer);
# with other servers' models it is told to send the text.
lc = OpenAIEmbeddings(model=embedder, base_url=f"{base}/v1", api_key="unused",
                      check_embedding_ctx_length=False, max_retries=0)
docs = lc.embed_documents(sentences)
assert len(docs) == 3 and all(cosine(d, ref) >= 0.999 for d, ref in zip(docs, fixture["embeddings"]))
q = lc.embed_query("How much does Janet make at the farmers' market each day?")
scores = [cosine(q, d) for d in docs]
assert scores.index(max(scores)) == 0, scores
print("ok: LangChain OpenAIEmbeddings documents and query, nearest document right")
