#!/usr/bin/env bash
# Engine speed vs llama.cpp's llama-bench, same model, same threads, same llama.cpp build flags,
# interleaved in one run. Writes docs/benchmarks/engine-speed.md (never edit it by hand).
#
# Usage: bench/engine-speed.sh [MODEL_NAME ...]   (default: the two default models)
# Env:   THREADS (default 2), REPS (default 3)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
threads="${THREADS:-2}"
reps="${REPS:-3}"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct)

scripts/setup
cargo build --release -q -p colm-cli
cargo build --release -q -p colm-engine --example speed
bench="$(bench/build-llama-peer.sh llama-bench)"
case "$bench" in
  */llama-bench-build/*) peer_src="llama.cpp vendored by llama-cpp-sys-2 (llama-bench source from the llama-cpp-python 0.3.36 sdist)" ;;
  *) peer_src="llama.cpp of the llama-cpp-python 0.3.36 sdist (did not build against the vendored copy)" ;;
esac
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for name in "${models[@]}"; do
  target/release/colm models pull "$name" >/dev/null
  path="$(target/release/colm models path "$name")"
  for ((r = 1; r <= reps; r++)); do
    # Interleave: one llama-bench repetition, then one engine repetition.
    # pp512 from an empty context; tg128 at depth 512, as the engine generates after its prompt.
    { "$bench" -m "$path" -t "$threads" -p 512 -n 0 -r 1 -o jsonl 2>/dev/null
      "$bench" -m "$path" -t "$threads" -p 0 -n 128 -d 512 -r 1 -o jsonl 2>/dev/null; } |
      sed "s/^/{\"model\": \"$name\", \"tool\": \"llama-bench\", \"row\": /; s/$/}/" >>"$tmp/rows.jsonl"
    target/release/examples/speed "$path" "$threads" 1 |
      sed "s/^/{\"model\": \"$name\", \"tool\": \"colm-engine\", \"row\": /; s/$/}/" >>"$tmp/rows.jsonl"
  done
done

mkdir -p docs/benchmarks
python3 - "$tmp/rows.jsonl" "$threads" "$reps" "$peer_src" "$(target/release/colm --version)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)" "$(nproc)" \
  "$(free -g | awk '/Mem:/{print $2}')" "${models[*]}" >docs/benchmarks/engine-speed.md <<'PY'
import json, statistics, sys, datetime
rows_path, threads, reps, peer_src, version, cpu, cores, mem, models = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
def stats(xs):
    m = statistics.mean(xs)
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return m, sd
out = []
out.append("# Engine speed vs llama-bench\n")
out.append(f"- date: {datetime.date.today().isoformat()}")
out.append(f"- machine: {cpu}, {cores} cores, {mem} GiB RAM, no GPU")
out.append(f"- colm: {version}; llama.cpp built with GGML_NATIVE=ON, GGML_OPENMP=OFF, Release (both sides)")
out.append(f"- peer: llama-bench from {peer_src}")
out.append(f"- threads: {threads}; repetitions: {reps}, interleaved (llama-bench, engine, llama-bench, …)")
out.append(f"- command: `THREADS={threads} REPS={reps} bench/engine-speed.sh {models}`\n")
out.append("The engine is measured through the same `ChatModel` path as `colm ask` "
           "(`crates/colm-engine/examples/speed.rs`): a ≈500-token templated prompt, then 128 "
           "generated tokens with end-of-generation ignored, greedy sampling and the per-token "
           "log-probability computed (work llama-bench does not do). llama-bench runs `-p 512 -n 0` "
           "(pp512) and `-p 0 -n 128 -d 512` (tg128 at context depth 512, like the engine's "
           "generation after its prompt).\n")
out.append("| model | pp llama-bench tok/s | pp engine tok/s | pp ratio | tg128@d512 llama-bench tok/s | tg engine tok/s | tg ratio |")
out.append("|---|---|---|---|---|---|---|")
for model in dict.fromkeys(r["model"] for r in rows):
    lb_pp = [r["row"]["avg_ts"] for r in rows if r["model"] == model and r["tool"] == "llama-bench" and r["row"]["n_prompt"] > 0]
    lb_tg = [r["row"]["avg_ts"] for r in rows if r["model"] == model and r["tool"] == "llama-bench" and r["row"]["n_gen"] > 0]
    en_pp = [r["row"]["pp_tok_s"] for r in rows if r["model"] == model and r["tool"] == "colm-engine"]
    en_tg = [r["row"]["tg_tok_s"] for r in rows if r["model"] == model and r["tool"] == "colm-engine"]
    (a, sa), (b, sb), (c, sc), (d, sd) = stats(lb_pp), stats(en_pp), stats(lb_tg), stats(en_tg)
    out.append(f"| {model} | {a:.1f} ± {sa:.1f} | {b:.1f} ± {sb:.1f} | {b/a:.2f} | {c:.1f} ± {sc:.1f} | {d:.1f} ± {sd:.1f} | {d/c:.2f} |")
out.append("\nRatio = engine / llama-bench (1.00 = same speed). ± is the standard deviation over repetitions.")
print("\n".join(out))
PY
cat docs/benchmarks/engine-speed.md
