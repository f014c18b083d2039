#!/usr/bin/env bash
# Multi-turn chat: time to first token per turn and aggregate tokens/s of `colm serve` (prompt
# reuse on, the default), `colm serve --prompt-cache off` (every prompt read from the start, as
# colm did before prompt reuse) and `llama-server` (its default prompt cache on), same model,
# threads and context per sequence, llama.cpp built with the same flags, interleaved in one run
# (for each repetition and stream count: the three in turn). Load: bench/lib/multiturn.py
# (official `openai` SDK): 8 conversations × 4 turns from MT-Bench's two-turn questions with
# follow-ups, each turn sending the conversation so far with the server's own answers.
# Writes docs/benchmarks/multiturn.md (never by hand).
#
# Usage: bench/multiturn.sh [MODEL_NAME]   (default: qwen2.5-coder-0.5b-instruct)
# Env:   THREADS (2), REPS (2), STREAMS ("1 4"), CONVERSATIONS (8), TURNS (4), MAX_TOKENS (128),
#        CTX (4096)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/lib/common.sh
model="${1:-qwen2.5-coder-0.5b-instruct}"
threads="${THREADS:-2}"; reps="${REPS:-2}"; streams="${STREAMS:-1 4}"
conversations="${CONVERSATIONS:-8}"; turns="${TURNS:-4}"; max_tokens="${MAX_TOKENS:-128}"
ctx="${CTX:-4096}"
data="${DATA:-../shared/data/mt_bench/question.jsonl}"

scripts/setup
python3 -c 'import openai' 2>/dev/null || pip install -q openai
cargo build --release -q -p colm-cli
server_bin="$(bench/build-llama-peer.sh llama-server)"
target/release/colm models pull "$model" >/dev/null
path="$(target/release/colm models path "$model")"
tmp="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

for ((r = 1; r <= reps; r++)); do
  for n in $streams; do
    for tool in colm colm-no-reuse llama-server; do
      port="$(free_port)"
      base="http://127.0.0.1:$port"
      case "$tool" in
        colm | colm-no-reuse)
          reuse=all; [ "$tool" = colm-no-reuse ] && reuse=off
          target/release/colm serve --model "$model" --bind "127.0.0.1:$port" \
            --threads "$threads" --ctx "$ctx" --parallel "$n" --prompt-cache "$reuse" \
            >"$tmp/server.log" 2>&1 & ;;
        llama-server)
          "$server_bin" -m "$path" --host 127.0.0.1 --port "$port" -t "$threads" -tb "$threads" \
            -c $((ctx * n)) -np "$n" --no-kv-unified -a "$model" >"$tmp/server.log" 2>&1 & ;;
      esac
      pid=$!
      wait_ready "$base"
      # Warm-up conversation, not measured (a question no measured conversation asks).
      python3 bench/lib/multiturn.py "$base" "$model" --streams 1 --conversations 1 \
        --turns 1 --max-tokens 8 --data "$data" --offset 79 >/dev/null
      python3 bench/lib/multiturn.py "$base" "$model" --streams "$n" \
        --conversations "$conversations" --turns "$turns" --max-tokens "$max_tokens" \
        --data "$data" |
        sed "s/^/{\"tool\": \"$tool\", \"rep\": $r, \"row\": /; s/$/}/" >>"$tmp/rows.jsonl"
      kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    done
  done
done

mkdir -p docs/benchmarks
python3 - "$tmp/rows.jsonl" "$model" "$threads" "$reps" "$conversations" "$turns" \
  "$max_tokens" "$ctx" "$(target/release/colm --version)" "$(machine)" "$streams" \
  >docs/benchmarks/multiturn.md <<'PY'
import json, statistics, sys, datetime
(rows_path, model, threads, reps, conversations, turns, max_tokens, ctx, version, machine,
 streams) = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
tools = ["colm", "colm-no-reuse", "llama-server"]
out = ["# Multi-turn chat: prompt reuse, `colm serve` vs `llama-server`\n",
       f"- date: {datetime.date.today().isoformat()}",
       f"- machine: {machine}, no GPU",
       f"- colm: {version}; peer: llama-server built by `bench/build-llama-peer.sh` (same llama.cpp flags), its default prompt cache on",
       f"- model: {model}; threads {threads}; context {ctx} tokens per sequence; `--parallel N` / `-np N --no-kv-unified` for N streams",
       f"- load: {conversations} conversations × {turns} turns (MT-Bench question.jsonl turns 1–2, then fixed follow-ups), each turn the whole conversation so far with the server's own answers, streamed, greedy, at most {max_tokens} tokens per answer (`bench/lib/multiturn.py`, official `openai` SDK)",
       "- tools: `colm` = `colm serve` (prompt reuse `all`, the default); `colm-no-reuse` = `colm serve --prompt-cache off` (every prompt read from the start: colm before prompt reuse); `llama-server` defaults",
       f"- repetitions: {reps}, interleaved (for each repetition and N: the three tools in turn)",
       f"- command: `THREADS={threads} REPS={reps} STREAMS=\"{streams}\" CONVERSATIONS={conversations} TURNS={turns} MAX_TOKENS={max_tokens} CTX={ctx} bench/multiturn.sh {model}`\n",
       "TTFT = request sent → first content delta, p50 over the conversations' requests of that turn, averaged over repetitions. "
       "Prompt / cached = mean prompt tokens of that turn's requests and how many of them the server reused (`usage.prompt_tokens_details.cached_tokens`; llama-server reports it too). "
       "Model ms = the server's own mean prompt time for that turn (colm's `colm.timings.prompt_ms`, llama-server's `timings.prompt_ms`: the request's prompt processing: from taking a sequence to its first token's logits), so TTFT minus it is time outside the model (HTTP, templating, waiting for a sequence or a batch). "
       "Aggregate tok/s = all completion tokens / wall time of the run.\n"]
def rs(tool, n):
    return [r["row"] for r in rows if r["tool"] == tool and r["row"]["streams"] == n]
summary = []
for n in sorted({r["row"]["streams"] for r in rows}):
    out.append(f"## {n} stream{'s' if n > 1 else ''}\n")
    out.append("| turn | " + " | ".join(f"{t} TTFT p50 ms (prompt / cached; model ms)" for t in tools) +
               " | colm / llama-server | colm / colm-no-reuse |")
    out.append("|---:|" + "---:|" * (len(tools) + 2))
    for t in range(int(turns)):
        cells, p50 = [], {}
        for tool in tools:
            turn = [r["turns"][t] for r in rs(tool, n)]
            p50[tool] = statistics.mean(x["ttft_p50_ms"] for x in turn)
            prompt = statistics.mean(x["prompt_tokens"] for x in turn)
            cached = statistics.mean(x["cached_tokens"] for x in turn)
            model_ms = statistics.mean(x.get("server_prompt_ms", float("nan")) for x in turn)
            cells.append(f"{p50[tool]:.0f} ({prompt:.0f} / {cached:.0f}; {model_ms:.0f})")
        a = p50["colm"] / p50["llama-server"]
        b = p50["colm"] / p50["colm-no-reuse"]
        out.append(f"| {t + 1} | " + " | ".join(cells) + f" | **{a:.2f}** | **{b:.2f}** |")
        if t >= 1:
            summary.append((n, t + 1, a, b))
    tps = {tool: statistics.mean(r["tok_per_s"] for r in rs(tool, n)) for tool in tools}
    errs = {tool: sum(len(r["errors"]) for r in rs(tool, n)) for tool in tools}
    out.append("\n| | " + " | ".join(tools) + " |\n|---|" + "---:|" * len(tools))
    out.append("| aggregate tok/s | " + " | ".join(f"{tps[t]:.1f}" for t in tools) + " |")
    out.append("| errors | " + " | ".join(str(errs[t]) for t in tools) + " |\n")
worst_a = max(s[2] for s in summary); worst_b = max(s[3] for s in summary)
out.append(f"Summary: turns ≥ 2, worst over stream counts: colm TTFT / llama-server's = {worst_a:.2f} (goal ≤ 1.0: "
           f"{'met' if worst_a <= 1.0 else 'missed'}); colm TTFT / colm-no-reuse's = {worst_b:.2f} (goal ≤ 0.5: "
           f"{'met' if worst_b <= 0.5 else 'missed'}).")
print("\n".join(out))
PY
cat docs/benchmarks/multiturn.md
