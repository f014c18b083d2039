#!/usr/bin/env python3
"""Streaming load generator for OpenAI-compatible servers (colm serve, llama-server).

C concurrent streams; each sends R chat completions one after the other with stream=True,
max_tokens=T and ignore_eos=true (both servers accept it), so every request generates exactly
T tokens. Prompts are distinct per request (little prompt-cache reuse; --no-prompt-cache also
sends `cache_prompt: false`, llama-server's field, which colm honours too), taken from a JSONL
file of GSM8K items. Prints one JSON object: aggregate generation tok/s (all completion tokens / wall
time of the run), TTFT p50/p95 (request sent → first content delta), latency p50/p95 (request
sent → stream ended), request count.

Usage: loadgen.py BASE_URL MODEL --streams C --requests R --max-tokens T --data FILE
       [--no-prompt-cache]
"""
import argparse
import asyncio
import json
import statistics
import time

from openai import AsyncOpenAI

from stats import percentile


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("model")
    ap.add_argument("--streams", type=int, required=True)
    ap.add_argument("--requests", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--data", required=True)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--no-prompt-cache", action="store_true")
    a = ap.parse_args()
    with open(a.data) as f:
        questions = [json.loads(line)["question"] for line in f if line.strip()]
    client = AsyncOpenAI(base_url=a.base + "/v1", api_key="none", max_retries=0, timeout=600)
    ttfts, latencies, tokens, errors = [], [], [], []
    extra = {"ignore_eos": True}
    if a.no_prompt_cache:
        extra["cache_prompt"] = False

    async def stream(s):
        for r in range(a.requests):
            q = questions[(a.offset + s * a.requests + r) % len(questions)]
            sent = time.perf_counter()
            first = None
            n = None
            try:
                resp = await client.chat.completions.create(
                    model=a.model,
                    messages=[{"role": "user", "content": q}],
                    max_tokens=a.max_tokens,
                    temperature=0,
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_body=extra,
                )
                async for chunk in resp:
                    if first is None and chunk.choices and chunk.choices[0].delta.content:
                        first = time.perf_counter()
                    if chunk.usage is not None:
                        n = chunk.usage.completion_tokens
            except Exception as e:  # recorded, never hidden
                errors.append(repr(e))
                continue
            if first is not None:
                ttfts.append(first - sent)
            latencies.append(time.perf_counter() - sent)
            tokens.append(n or 0)

    start = time.perf_counter()
    await asyncio.gather(*(stream(s) for s in range(a.streams)))
    wall = time.perf_counter() - start
    print(json.dumps({
        "streams": a.streams,
        "requests": len(tokens),
        "errors": errors,
        "completion_tokens": sum(tokens),
        "wall_s": wall,
        "tok_per_s": sum(tokens) / wall if wall > 0 else 0.0,
        "ttft_p50_ms": 1000 * (percentile(ttfts, 0.5) or float("nan")),
        "ttft_p95_ms": 1000 * (percentile(ttfts, 0.95) or float("nan")),
        "ttft_mean_ms": 1000 * statistics.fmean(ttfts) if ttfts else float("nan"),
        "latency_p50_ms": 1000 * (percentile(latencies, 0.5) or float("nan")),
        "latency_p95_ms": 1000 * (percentile(latencies, 0.95) or float("nan")),
    }))


asyncio.run(main())
