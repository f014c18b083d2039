#!/usr/bin/env bash
# Bytes on the wire per CoLM round (one client's guidance exchange), on real models over
# loopback, for ITEMS GSM8K dev items. Four ways to ship the same round:
#   1. full JSON transcript: the client posts its transcript (question + draft as chat
#      messages) to the server's plain OpenAI endpoint and gets a full chat.completion back,
#      uncompressed — what a client without a collaboration protocol would do;
#   2. colm one-shot guidance, plain JSON (bytes before compression, as measured by the client);
#   3. the same, zstd both ways (as sent);
#   4. zstd + drafts trimmed to a rationale of TRIM tokens plus the final answer.
# Sizes 2–4 are what `colm client` reports in `colm.wire`; 1 is measured on the real request
# and response bodies. Writes docs/benchmarks/wire-bytes.md (never edit it by hand).
#
# Usage: bench/wire-bytes.sh     Env: ITEMS (8), MAX_TOKENS (256), TRIM (64)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/lib/common.sh
items="${ITEMS:-8}"; max_tokens="${MAX_TOKENS:-256}"; trim="${TRIM:-64}"
client_model=qwen2.5-coder-0.5b-instruct
server_model=qwen2.5-coder-1.5b-instruct
scripts/setup
cargo build --release -q -p colm-cli
colm=target/release/colm
tmp="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

"$colm" serve --model "$server_model" --model "$client_model" --bind 127.0.0.1:0 >"$tmp/serve.out" 2>"$tmp/serve.err" &
pids+=($!)
server="$(wait_addr "$tmp/serve.out")"
"$colm" client --server-url "$server" --model "$client_model" --server-model "$server_model" \
  --listen 127.0.0.1:0 --deadline-ms 900000 >"$tmp/full.out" 2>"$tmp/full.err" &
pids+=($!)
full="$(wait_addr "$tmp/full.out")"
"$colm" client --server-url "$server" --model "$client_model" --server-model "$server_model" \
  --listen 127.0.0.1:0 --deadline-ms 900000 --trim-draft-tokens "$trim" >"$tmp/trim.out" 2>"$tmp/trim.err" &
pids+=($!)
trimmed="$(wait_addr "$tmp/trim.out")"

mkdir -p docs/benchmarks
python3 - "$server" "$full" "$trimmed" "$client_model" "$server_model" "$items" "$max_tokens" \
  "$trim" "$("$colm" --version)" "$(machine)" >docs/benchmarks/wire-bytes.md <<'PY'
import datetime, json, statistics, sys, urllib.request
server, full, trimmed, client_model, server_model, items, max_tokens, trim, version, machine = sys.argv[1:]
items, max_tokens = int(items), int(max_tokens)

def post(base, path, body):
    data = json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        raw = r.read()
    return len(data), len(raw), json.loads(raw)

questions = [json.loads(l)["question"] for l in open("../shared/data/gsm8k/dev.jsonl")][:items]
ASK = "Check the answer above and write guidance: what is right, what is wrong, and the correct reasoning."
rows = []
for q in questions:
    chat = {"model": client_model, "messages": [{"role": "user", "content": q}], "max_tokens": max_tokens}
    # 2-3: colm one-shot with the whole draft; 4: trimmed draft. Each client reports its bytes.
    answers = [post(c, "/v1/chat/completions", chat)[2]["colm"] for c in (full, trimmed)]
    for c in answers:
        if c.get("fallback"):
            sys.exit(f"a client fell back to its draft: {c['fallback']}")
    a, t = (c["wire"] for c in answers)
    # 1: the same draft (greedy, same model) as a chat transcript to the plain OpenAI endpoint.
    draft = post(server, "/v1/chat/completions", chat)[2]["choices"][0]["message"]["content"]
    transcript = {"model": server_model, "max_tokens": max_tokens, "messages": [
        {"role": "user", "content": q}, {"role": "assistant", "content": draft},
        {"role": "user", "content": ASK}]}
    sent, received, _ = post(server, "/v1/chat/completions", transcript)
    rows.append({"transcript": sent + received,
                 "plain": a["bytes_sent_uncompressed"] + a["bytes_received_uncompressed"],
                 "zstd": a["bytes_sent"] + a["bytes_received"],
                 "trim": t["bytes_sent"] + t["bytes_received"],
                 "plain_sent": a["bytes_sent_uncompressed"], "zstd_sent": a["bytes_sent"],
                 "trim_sent": t["bytes_sent"], "transcript_sent": sent})

def m(k):
    return statistics.mean(r[k] for r in rows)
base = m("transcript")
out = ["# Bytes on the wire per CoLM round\n",
       f"- date: {datetime.date.today().isoformat()}; machine: {machine}; {version}",
       f"- command: `ITEMS={items} MAX_TOKENS={max_tokens} TRIM={trim} bench/wire-bytes.sh`",
       f"- client `{client_model}` (draft, refinement), server `{server_model}` (guidance), "
       f"GSM8K dev items 1–{items}, greedy, max_tokens {max_tokens} per step, synthesis mode, loopback\n",
       "One round = one client's guidance exchange (request + response bodies; HTTP headers not counted). "
       "Means over the items; ratio = full transcript / row.\n",
       "| how the round is shipped | bytes per round (mean) | of which client → server | vs full transcript |",
       "|---|---:|---:|---:|",
       f"| full JSON transcript to a plain chat endpoint, uncompressed | {base:.0f} | {m('transcript_sent'):.0f} | 1.00× |",
       f"| colm guidance API, plain JSON | {m('plain'):.0f} | {m('plain_sent'):.0f} | {base / m('plain'):.2f}× smaller |",
       f"| colm guidance API, zstd both ways | {m('zstd'):.0f} | {m('zstd_sent'):.0f} | {base / m('zstd'):.2f}× smaller |",
       f"| colm, zstd + drafts trimmed to {trim} tokens + final answer | {m('trim'):.0f} | {m('trim_sent'):.0f} | {base / m('trim'):.2f}× smaller |",
       "",
       "Per item (bytes per round): " + "; ".join(
           f"{i + 1}: {r['transcript']} / {r['plain']} / {r['zstd']} / {r['trim']}" for i, r in enumerate(rows)),
       "",
       f"Summary: {base:.0f} B per round as a full JSON transcript, {m('zstd'):.0f} B with colm's zstd guidance API, "
       f"{m('trim'):.0f} B with trimmed drafts ({base / m('trim'):.1f}× fewer bytes).",
       "",
       "Reading: the guidance answer (server → client) is most of the bytes; trimming only shrinks the "
       "client → server part. The response of the plain endpoint also carries the chat.completion envelope."]
print("\n".join(out))
PY
cat docs/benchmarks/wire-bytes.md
