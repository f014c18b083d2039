#!/usr/bin/env bash
# The web page in headless Chromium (crates/colm-cli/tests/ui_real.rs, its ignored test):
# screenshots of the main views under docs/ui/ (desktop and phone width), and the time from
# pressing "Ask" to the first visible text — of the draft for the virtual model `colm`
# (gemma-3-270m drafts, qwen2.5-coder-0.5b writes the reference), of the answer for the bare
# gemma-3-270m stream — RUNS times each, interleaved, on GSM8K dev questions 1..RUNS. Writes
# docs/benchmarks/ui-first-text.md (never edit by hand).
#
# Usage: bench/ui.sh   Env: RUNS (5)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/lib/common.sh
scripts/setup
scripts/browser-setup
# The test build makes the same binary as the tests (one feature set: no second llama.cpp build).
cargo test --release -q -p colm-cli --test ui_real --no-run
target/release/colm models pull gemma-3-270m qwen2.5-coder-0.5b-instruct >/dev/null
mkdir -p docs/ui docs/benchmarks
UI_RUNS="${RUNS:-5}" UI_SHOTS="$root/docs/ui" UI_REPORT="$root/docs/benchmarks/ui-first-text.md" \
  UI_MACHINE="$(machine)" UI_VERSION="$(target/release/colm --version)" \
  cargo test --release -q -p colm-cli --test ui_real -- --ignored --nocapture
