#!/usr/bin/env bash
# A real guidance exchange between `colm client` and `colm serve` on loopback, written to
# docs/wire-format.md (never edit it by hand): the request and response bodies as JSON, and
# the bytes on the wire as the client measured them (zstd request, negotiated response).
#
# Usage: bench/wire-example.sh        Env: MAX_TOKENS (default 128)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/lib/common.sh
max_tokens="${MAX_TOKENS:-128}"
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
  --listen 127.0.0.1:0 >"$tmp/client.out" 2>"$tmp/client.err" &
pids+=($!)
client="$(wait_addr "$tmp/client.out")"

question=$(head -2 ../shared/data/gsm8k/dev.jsonl | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["question"])')
python3 - "$server" "$client" "$client_model" "$server_model" "$question" "$max_tokens" \
  "$("$colm" --version)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)" \
  >docs/wire-format.md <<'PY'
import datetime, json, sys, urllib.request
server, client, client_model, server_model, question, max_tokens, version, cpu = sys.argv[1:]
max_tokens = int(max_tokens)

def post(base, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)

chat = {"model": client_model, "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens}
# What the client sends: its own draft (greedy, so the same as the client's local draft).
draft = post(server, "/v1/chat/completions", chat)["choices"][0]["message"]["content"]
g_req = {"model": server_model, "query": question, "drafts": [draft], "round": 1,
         "mode": "synthesis", "max_tokens": max_tokens}
g_resp = post(server, "/v1/colm/guidance", g_req)
# The same exchange through the client, which reports the bytes on the wire.
answer = post(client, "/v1/chat/completions", chat)
wire = answer["colm"]["wire"]
req_json = json.dumps(g_req)
resp_json = json.dumps(g_resp)

out = [
    "# Wire format of the collaboration API",
    "",
    f"- date: {datetime.date.today().isoformat()}; machine: {cpu}; {version}",
    "- command: `bench/wire-example.sh` (real models on loopback; this file is generated)",
    f"- client model `{client_model}`, server model `{server_model}`, GSM8K dev item 2, "
    f"max_tokens {max_tokens}",
    "",
    "A client that drafted an answer on its device asks the server for guidance with",
    "`POST /v1/colm/guidance`. The body is JSON; `colm client` sends it zstd-compressed",
    "(`Content-Encoding: zstd`) and accepts a compressed response (`Accept-Encoding: zstd, gzip`).",
    "Errors use OpenAI's error shape (`{\"error\": {\"message\", \"type\", \"param\", \"code\"}}`).",
    "",
    "## Request",
    "",
    "```json",
    json.dumps(g_req, indent=2, ensure_ascii=False),
    "```",
    "",
    "## Response",
    "",
    "```json",
    json.dumps(g_resp, indent=2, ensure_ascii=False),
    "```",
    "",
    "## Bytes on the wire (measured by `colm client` for the same exchange)",
    "",
    "| direction | JSON bytes | on the wire | ratio |",
    "|---|---|---|---|",
    f"| request | {wire['bytes_sent_uncompressed']} | {wire['bytes_sent']} (zstd) | "
    f"{wire['bytes_sent'] / wire['bytes_sent_uncompressed']:.2f} |",
    f"| response | {wire['bytes_received_uncompressed']} | {wire['bytes_received']} | "
    f"{wire['bytes_received'] / wire['bytes_received_uncompressed']:.2f} |",
    "",
    f"(The compact JSON bodies printed above are {len(req_json)} and {len(resp_json)} bytes.)",
    "The client's refined answer:",
    "",
    "```text",
    answer["choices"][0]["message"]["content"].strip(),
    "```",
]
print("\n".join(out))
PY
cat docs/wire-format.md
