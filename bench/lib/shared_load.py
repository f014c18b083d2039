#!/usr/bin/env python3
"""Scripted load for shared guidance: CLIENTS simulated clients, each asks one of QUESTIONS
distinct GSM8K questions (round-robin, so each question gets CLIENTS/QUESTIONS clients),
arriving at random times over SPREAD seconds, each posting one synthesis request with its own
draft to POST /v1/colm/guidance. The drafts are scripted (no client model runs):
"... so the answer is N" with N drawn at random. Prints one JSON object with the answers'
`shared` flags, errors and latencies; the server's /metrics gives the model calls.

Usage: shared_load.py BASE MODEL --clients 200 --questions 20 --spread 60 --data FILE
"""
import argparse
import asyncio
import json
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=3600) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("model")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--spread", type=float, default=60.0)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--data", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    with open(a.data) as f:
        questions = [json.loads(l)["question"] for l in f if l.strip()][: a.questions]
    plan = [(rng.uniform(0, a.spread), questions[c % len(questions)], rng.randint(1, 100))
            for c in range(a.clients)]
    results = []
    start = time.perf_counter()
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=a.clients)

    async def client(at, q, n):
        await asyncio.sleep(at)
        t = time.perf_counter()
        body = {"model": a.model, "query": q, "mode": "synthesis", "max_tokens": a.max_tokens,
                "drafts": [f"Working through the numbers step by step, so the answer is {n}."]}
        try:
            status, v = await loop.run_in_executor(pool, post, a.base + "/v1/colm/guidance", body)
            results.append({"status": status, "shared": v.get("shared"), "body": v if status != 200 else None,
                            "latency_s": time.perf_counter() - t})
        except Exception as e:  # recorded, never hidden
            results.append({"status": None, "error": repr(e), "latency_s": time.perf_counter() - t})

    await asyncio.gather(*(client(*p) for p in plan))
    wall = time.perf_counter() - start
    ok = [r for r in results if r["status"] == 200]
    lat = sorted(r["latency_s"] for r in ok)
    print(json.dumps({
        "clients": a.clients, "questions": len(questions), "ok": len(ok),
        "errors": [r for r in results if r["status"] != 200][:5],
        "shared_answers": sum(1 for r in ok if r["shared"]),
        "wall_s": wall,
        "latency_p50_s": lat[len(lat) // 2] if lat else None,
        "latency_p95_s": lat[int(len(lat) * 0.95)] if lat else None,
    }))


asyncio.run(main())
