"""Concurrent guidance clients spread over colm server replicas (bench/replicas.sh).

CLIENTS clients at once; client c asks the replica c mod R, and asks each of the QUESTIONS
questions one after the other (client c starts at question c mod QUESTIONS), one-shot
`POST /v1/colm/guidance` in reference mode. Before and after, the replicas' /metrics give the
model calls (`colm_model_calls_total{model}`: the reference computations), the completion
tokens and the shared-store hits, summed over replicas. Prints one JSON object.

Usage: replica_clients.py MODEL DATA.jsonl --clients C --questions Q --max-tokens T URL [URL…]
"""

import argparse
import asyncio
import json
import re
import time

import httpx

from stats import percentile


def series(text, name):
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def counters(client, urls, model):
    out = {"calls": 0.0, "completion_tokens": 0.0, "hits": 0.0}
    for u in urls:
        text = (await client.get(f"{u}/metrics")).text
        out["calls"] += series(text, f'colm_model_calls_total{{model="{model}"}}')
        out["completion_tokens"] += series(text, f'colm_completion_tokens_total{{model="{model}"}}')
        out["hits"] += series(text, "colm_shared_guidance_hits_total")
    return out


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("urls", nargs="+")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--questions", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=128)
    a = ap.parse_args()
    with open(a.data) as f:
        qs = [json.loads(l)["question"] for l in f if l.strip()][: a.questions]
    limits = httpx.Limits(max_connections=a.clients + 10)
    async with httpx.AsyncClient(timeout=3600, limits=limits) as client:
        before = await counters(client, a.urls, a.model)
        latencies, errors = [], []

        async def one(c):
            url = a.urls[c % len(a.urls)]
            for i in range(a.questions):
                q = qs[(c + i) % a.questions]
                sent = time.perf_counter()
                try:
                    r = await client.post(f"{url}/v1/colm/guidance", json={
                        "query": q, "model": a.model, "mode": "reference",
                        "max_tokens": a.max_tokens})
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                        continue
                except Exception as e:  # recorded, never hidden
                    errors.append(repr(e))
                    continue
                latencies.append(time.perf_counter() - sent)

        start = time.perf_counter()
        await asyncio.gather(*(one(c) for c in range(a.clients)))
        wall = time.perf_counter() - start
        after = await counters(client, a.urls, a.model)
    queries = a.clients * a.questions
    d = {k: after[k] - before[k] for k in after}
    print(json.dumps({
        "replicas": len(a.urls),
        "queries": queries,
        "answered": len(latencies),
        "errors": errors[:5],
        "error_count": len(errors),
        "wall_s": wall,
        "model_calls": d["calls"],
        "calls_per_query": d["calls"] / queries,
        "completion_tokens": d["completion_tokens"],
        "hits": d["hits"],
        "p50_ms": 1000 * (percentile(latencies, 0.5) or float("nan")),
        "p95_ms": 1000 * (percentile(latencies, 0.95) or float("nan")),
    }))


asyncio.run(main())
