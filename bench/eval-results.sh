#!/usr/bin/env bash
# The CoLM results: client qwen2.5-coder-0.5b-instruct, server qwen2.5-coder-1.5b-instruct,
# strategies local / server / colm (the default: one reference by the server model, its own
# answer, as guidance, refined in the reference code's form), colm:refine=draft (the client sees
# its draft while refining) and the drafts-only modes (colm:mode=synthesis, colm:mode=critique), on
# GSM8K dev items 1–100 and ARC-Challenge dev items 1–100.
#
#   bench/eval-results.sh [gsm8k|arc]...      (default: both)
#
# GSM8K also runs the strategies of the collaboration issue (confidence cascade at three τ, about
# the quartiles of the local drafts' mean token log-probability; mixture-of-agents;
# self-consistency, n = 5; debate, 3 agents × 2 rounds) and the ablations of the reference
# issue (reference-critique; the draft aggregated with the reference; 2 rounds; 3 references
# from one model with different seeds at temperature 0.7, or from 4 specialisations); both suites
# run the server-side ensembles of the ensembles issue (the greedy reference and samples at
# temperature 0.3, `pool_t`'s default, from the server model, aggregated by vote at N = 8, 5, 3
# and adaptively up to 5 and up to 8 at confidence 0.8 and 0.9, by selection at N = 5 on GSM8K;
# and the vote at N = 5 where a client keeps its draft under a 0.6 share; N = 5 first, whose
# references the others reuse from the call cache). STRATEGIES="…" replaces
# `local server` and that list for any suite (added to the same run folder, so the report puts
# every strategy on one frontier, with the learned router cross-fitted on `local` and `server`).
#
# Runs are resumable: runs/<suite>-100 (kept out of git) is seeded from the committed records
# in docs/results/<suite>-100/run/ when it does not exist, and each finished run's records,
# report (Markdown, JSON, plots) and exact command go back to docs/results/<suite>-100/. Hours on
# 2 cores: start it with nohup and check runs/<suite>-100.log. CONCURRENCY (default 4) items are
# in flight per strategy (batched decoding; 1 = bit-reproducible greedy runs), PARALLEL (default 8)
# requests decoded together per model. LIMIT (default 100)
# runs only the first LIMIT items, into the same folder (a partial strategy is reported with its
# item count; a later run with a larger LIMIT completes it).
set -euo pipefail
cd "$(dirname "$0")/.."
CONCURRENCY="${CONCURRENCY:-4}"
# Requests decoded together per model: 8, so that the 8 references of one question share a batch.
PARALLEL="${PARALLEL:-8}"
LIMIT="${LIMIT:-100}"
COLM="${COLM:-target/release/colm}"
[ -x "$COLM" ] || cargo build --release -p colm-cli
ensembles="colm:refs=5,aggregate=vote colm:refs=5,aggregate=vote,adaptive=0.8
           colm:refs=5,aggregate=vote,adaptive=0.9 colm:refs=3,aggregate=vote
           colm:refs=5,aggregate=vote,keep_draft=0.6 colm:refs=8,aggregate=vote,adaptive=0.8
           colm:refs=8,aggregate=vote colm:refs=8,aggregate=vote,adaptive=0.9"
suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(gsm8k arc)
for suite in "${suites[@]}"; do
  case "$suite" in
    gsm8k) data=../shared/data/gsm8k/dev.jsonl
           extra="local server colm cascade:tau=-0.12 cascade:tau=-0.1 cascade:tau=-0.08 moa
                  self-consistency debate colm:mode=synthesis colm:refine=draft colm:refs=3,pool_t=0.7
                  colm:mode=reference-critique colm:refs=3,pool=roles colm:rounds=2
                  colm:aggregate_drafts=true colm:mode=critique $ensembles
                  colm:refs=5,aggregate=select" ;;
    arc) data=../shared/data/arc/arc-challenge-dev.jsonl
         extra="local server colm colm:refine=draft colm:mode=synthesis colm:mode=critique
                $ensembles" ;;
    *) echo "unknown suite $suite (gsm8k, arc)" >&2; exit 2 ;;
  esac
  out="runs/$suite-100"
  docs="docs/results/$suite-100"
  strategies=(${STRATEGIES-$extra})
  cmd=(colm eval "$suite" --data "$data" --limit "$LIMIT"
       --client qwen2.5-coder-0.5b-instruct --server qwen2.5-coder-1.5b-instruct)
  for s in "${strategies[@]}"; do cmd+=(--strategy "$s"); done
  cmd+=(--concurrency "$CONCURRENCY" --parallel "$PARALLEL" --out "$out")
  mkdir -p runs
  if [ ! -e "$out" ] && [ -e "$docs/run/run.json" ]; then
    mkdir -p "$out" && cp "$docs/run/run.json" "$docs/run/records.jsonl" "$out/"
  fi
  "$COLM" "${cmd[@]:1}" >> "runs/$suite-100.log" 2>&1
  "$COLM" eval report "$out" --out "$docs" --command "${cmd[*]}" > /dev/null
  mkdir -p "$docs/run" && cp "$out/run.json" "$out/records.jsonl" "$docs/run/"
  echo "$docs/report.md"
done
