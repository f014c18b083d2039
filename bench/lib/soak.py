#!/usr/bin/env python3
"""Soak load for `colm serve` (bench/soak.sh): N requests at C in flight over loopback, mixed
across the three APIs — a chat completion on MODEL (max_tokens 2), one-shot `vote` guidance (no
model call) and a shared session (create with k = 1, post a draft, fetch the guidance), in
turn. Every request gets a distinct GSM8K question. Prints one JSON object: the status count of
every HTTP answer, latency p50/p95 per kind (ms; a session's is its three exchanges), requests
sent and wall time.

Usage: soak.py BASE_URL MODEL --requests N --concurrency C --data FILE
"""
import argparse
import asyncio
import collections
import json
import time

import httpx

from stats import percentile


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("model")
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--data", required=True)
    a = ap.parse_args()
    questions = [json.loads(l)["question"] for l in open(a.data) if l.strip()]
    statuses = collections.Counter()
    latency = collections.defaultdict(list)
    queue = asyncio.Queue()
    for i in range(a.requests):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=a.concurrency, max_keepalive_connections=a.concurrency)
    async with httpx.AsyncClient(base_url=a.base, timeout=300, limits=limits) as http:

        async def call(method, path, body=None):
            r = await http.request(method, path, json=body)
            statuses[r.status_code] += 1
            return r

        async def one(i):
            q = f"{questions[i % len(questions)]} (#{i})"
            kind = ("chat", "guidance", "session")[i % 3]
            t = time.perf_counter()
            if kind == "chat":
                await call("POST", "/v1/chat/completions", {
                    "model": a.model, "max_tokens": 2,
                    "messages": [{"role": "user", "content": q}]})
            elif kind == "guidance":
                await call("POST", "/v1/colm/guidance", {
                    "query": q, "mode": "vote",
                    "drafts": ["The answer is 18.", "So 18.", "I get 20."]})
            else:
                r = await call("POST", "/v1/colm/sessions",
                               {"query": q, "mode": "vote", "k": 1, "window_ms": 60000})
                if r.status_code in (200, 201):
                    sid = r.json()["id"]
                    d = await call("POST", f"/v1/colm/sessions/{sid}/drafts",
                                   {"draft": "The answer is 18."})
                    if d.status_code == 200:
                        await call("GET", f"/v1/colm/sessions/{sid}/guidance?wait_ms=10000")
            latency[kind].append((time.perf_counter() - t) * 1000)

        async def worker():
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    await one(i)
                except httpx.HTTPError as e:
                    statuses[f"transport error: {type(e).__name__}"] += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(a.concurrency)))
        wall = time.perf_counter() - start
    print(json.dumps({
        "requests": a.requests,
        "concurrency": a.concurrency,
        "wall_s": wall,
        "statuses": {str(k): v for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))},
        "latency_ms": {k: {"p50": percentile(v, 0.5), "p95": percentile(v, 0.95), "n": len(v)}
                       for k, v in sorted(latency.items())},
    }))


asyncio.run(main())
