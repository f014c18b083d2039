#!/usr/bin/env bash
# Paraphrase-aware sharing (colm serve --share-paraphrases): on GSM8K dev items, how often a
# paraphrase written by the server model is served its original's references (share rate), and
# how often a near-duplicate whose numbers were changed is served anything (false shares), at
# several similarity thresholds, next to the embedding alone (no literal signature). The pairs
# are written once into docs/benchmarks/data/gsm8k-paraphrases.jsonl (bench/lib/paraphrase.py:
# the paraphrases by `colm serve --model SERVER`, greedy; the near-duplicates made without a
# model) and reused; the decisions are the real ParaphraseStore's
# (crates/colm-cli/examples/paraphrase_sharing.rs). Writes docs/benchmarks/paraphrase-sharing.md
# (never by hand).
#
# Usage: bench/paraphrase-sharing.sh   Env: ITEMS (100), SERVER (qwen2.5-coder-1.5b-instruct)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/lib/common.sh
items="${ITEMS:-100}"; server_model="${SERVER:-qwen2.5-coder-1.5b-instruct}"
pairs=docs/benchmarks/data/gsm8k-paraphrases.jsonl
scripts/setup
cargo build --release -q -p colm-cli --bin colm --example paraphrase_sharing
colm=target/release/colm
python3 -c 'import openai' 2>/dev/null || python3 -m pip install -q openai
have=$(grep -c '"kind": "paraphrase"' "$pairs" 2>/dev/null || true)
if [ "${have:-0}" -lt "$items" ]; then
  "$colm" models pull "$server_model" >/dev/null
  tmp="$(mktemp -d)"
  "$colm" serve --bind 127.0.0.1:0 --model "$server_model" --parallel 4 --ctx 4096 >"$tmp/serve.log" 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
  base="$(wait_addr "$tmp/serve.log")"
  python3 bench/lib/paraphrase.py "$base" "$server_model" ../shared/data/gsm8k/dev.jsonl "$items" "$pairs"
  kill $pid
fi
result="$(target/release/examples/paraphrase_sharing "$pairs")"
{
  echo "# Paraphrase-aware sharing of server work"
  echo
  echo "- date: $(date -u +%F); machine: $(machine)"
  echo "- command: \`ITEMS=$items bench/paraphrase-sharing.sh\`"
  echo "- pairs: \`$pairs\` — for GSM8K dev items 1–$items, the paraphrase \`$server_model\` wrote (greedy, prompt in \`bench/lib/paraphrase.py\`: keep every number, name and quantity) and near-duplicates with one number changed (each of a question's first three distinct numbers, +1; a number word becomes the next)."
  echo "- rule: \`colm serve --share-ttl … --share-paraphrases SIMILARITY\` (\`colm_core::colm::paraphrase::ParaphraseStore\`): a question shares the references of the stored question whose all-MiniLM-L6-v2 embedding is nearest, when the cosine is at least SIMILARITY *and* their literal signatures (numbers as a multiset, quoted strings, names) are equal. All $items originals are stored first; each variant is then looked up. Intervals: Wilson 95%."
  echo
  echo "$result"
} > docs/benchmarks/paraphrase-sharing.md
cat docs/benchmarks/paraphrase-sharing.md
