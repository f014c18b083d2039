#!/usr/bin/env bash
# Abuse classes of the hardening issue, as a hostile tenant and a hostile web page would try them,
# against `colm serve` on loopback with a small real model, three API keys (tenants `cut`,
# `filler`, `other`) and an operator key (bench/lib/abuse.py): cross-origin requests a page can
# send (accepted: goal 0), connections stalled mid-headers and mid-body (seconds until closed),
# a tenant filling its cap of open sessions with the largest queries the model accepts while
# another tenant creates one (goal: unaffected; RSS at the cap), and a tenant closing every
# stream early under a token budget (tokens served beyond the budget: goal 0). Writes
# docs/benchmarks/abuse.md (never edit by hand).
#
# Usage: bench/abuse.sh
# Env:   MODEL (gemma-3-270m), BUDGET (3000 tokens per hour), SESSION_CAP (200 per tenant),
#        QUERY_TOKENS (3000), STALLED (100 mid-headers, half as many mid-body, at most 30)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bench/lib/common.sh
model="${MODEL:-gemma-3-270m}"; budget="${BUDGET:-3000}"; cap="${SESSION_CAP:-200}"
query_tokens="${QUERY_TOKENS:-3000}"; stalled="${STALLED:-100}"
COLM="${COLM:-target/release/colm}"
[ -x "$COLM" ] || cargo build --release -q -p colm-cli
"$COLM" models pull "$model" >/dev/null
tmp="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
printf 'cut sk-cut\nfiller sk-filler\nother sk-other\nops sk-ops\n' > "$tmp/keys"
serve=(serve --bind 127.0.0.1:0 --model "$model" --ctx 4096 --parallel 2
       --api-key-file "$tmp/keys" --token-budget "$budget" --protect-ops --operator ops
       --max-sessions-per-tenant "$cap")
"$COLM" "${serve[@]}" >"$tmp/server.log" 2>&1 &
pid=$!
base="$(wait_addr "$tmp/server.log")"
# Prompt injection: the corpus test, whose line counts the variants left unquoted.
corpus="$(cargo test -q -p colm-core --lib prompts::injection -- --nocapture 2>&1 || true)"
injection="$(grep -m1 'injection corpus' <<<"$corpus" || echo 'injection corpus: the test failed to run')"
python3 bench/lib/abuse.py "$base" "$model" --pid "$pid" --budget "$budget" \
  --session-cap "$cap" --query-tokens "$query_tokens" --stalled "$stalled" > "$tmp/out.json"
command="bench/abuse.sh (colm ${serve[*]}; python3 bench/lib/abuse.py BASE $model --budget $budget --session-cap $cap --query-tokens $query_tokens --stalled $stalled)"
python3 - "$tmp/out.json" "$command" "$(machine)" "$injection" > docs/benchmarks/abuse.md <<'PY'
import json, sys, datetime
r = json.load(open(sys.argv[1]))
o, st, se, b = r["origins"], r["stalled"], r["sessions"], r["budget"]
accepted = sum(1 for v in o.values() if v["accepted"])
print("# Abuse classes against `colm serve`\n")
print(f"- date: {datetime.date.today()}; machine: {sys.argv[3]}")
print(f"- command: `{sys.argv[2]}`\n")
print(f"Summary: {accepted} cross-origin requests accepted; stalled connections closed within "
      f"{max(v['max_s'] or 0 for v in st.values())} s; another tenant's session at one's cap: "
      f"{se['other_tenant_status']}; {b['tokens_beyond_budget']} tokens served beyond a budget by "
      f"cut streams; RSS {se['rss_per_session_kb']} KiB per open session of the largest query; "
      f"{sys.argv[4].split(': ', 1)[-1]} (prompt injection corpus).\n")
print("| Class | Measured | Goal |\n|---|---|---|")
print(f"| Cross-origin requests accepted (with a valid key) | {accepted} of {len(o)} | 0 |")
for name, v in st.items():
    print(f"| Stalled {name.replace('_', '-')}: closed / median / max s | {v['closed']} of {v['connections']} / {v['median_s']} / {v['max_s']} | all, within the timeout |")
print(f"| Another tenant's session while one sits at its cap | {se['other_tenant_status']} in {se['other_tenant_ms']} ms | 201 (unaffected) |")
print(f"| RSS at the cap of {se['cap_per_tenant']} sessions of a {se['query_bytes']}-byte query | {se['rss_at_cap_kb']//1024} MiB ({se['rss_per_session_kb']} KiB per session over {se['rss_before_kb']//1024} MiB) | stated bound |")
print(f"| Tokens served beyond a budget of {b['budget']} (streams cut after ~1 s) | {b['tokens_beyond_budget']} | 0 |")
print(f"| Injection variants left unquoted (`cargo test -p colm-core --lib prompts::injection`) | {sys.argv[4].split(': ', 1)[-1]} | 0 |")
print("\n## Details\n")
print("Cross-origin requests (status, accepted):\n")
for k, v in o.items():
    print(f"- {k}: {v['status']}, {'accepted' if v['accepted'] else 'refused'}")
print(f"\nSessions: the filler tenant's statuses {se['filler_statuses']}, refused with "
      f"{se['filler_refused']}; a query too long for the model's context: "
      f"{se['oversized_query_status']} `{se['oversized_query_code']}`. A session holds one copy "
      "of its query, limited in tokens by the aggregating model's context (and in bytes by the "
      "body limit), so the session state at a cap is about the per-session RSS above times the "
      "cap (per tenant, and `--max-sessions` in all): at the default 10000 open sessions of the "
      f"largest query this context accepts, about {se['rss_per_session_kb'] * 10000 / 1024:.0f} "
      "MiB over the server's own.")
print(f"\nBudget: {b['streams']} streams cut, then {b['refused_with']}; {b['deltas_received']} "
      f"deltas received; charged {b['tokens_charged']} tokens ({b['completion_tokens_charged']} "
      f"generated) in {b['seconds']} s, while the budget refilled {b['refill_during_run']}.")
PY
echo docs/benchmarks/abuse.md
