#!/usr/bin/env python3
"""Multi-turn chat load for OpenAI-compatible servers (colm serve, llama-server).

CONVERSATIONS conversations of TURNS user turns each, built from MT-Bench's two-turn questions
(turns 1 and 2 as published) and fixed follow-ups (turns 3, 4, …), run over C concurrent
streams (conversation c on stream c mod C, one after the other). Each turn sends the whole
conversation so far, with the server's own earlier answers, as a chat client does; streamed,
greedy, at most T tokens per answer. Prints one JSON object: aggregate generation tok/s (all
completion tokens / wall time), TTFT (request sent → first content delta) per turn index,
prompt and cached prompt tokens per turn index (`usage.prompt_tokens_details.cached_tokens`
where the server reports it), the server's own prompt time per turn index (colm's
`colm.timings.prompt_ms`, llama-server's `timings.prompt_ms`: request admitted → first token's
logits, so TTFT minus it is the time spent outside the model), errors.

Usage: multiturn.py BASE_URL MODEL --streams C [--conversations 8] [--turns 4]
       [--max-tokens 128] --data mt_bench/question.jsonl [--offset 0]
"""
import argparse
import asyncio
import json
import time

from openai import AsyncOpenAI

from stats import percentile

FOLLOW_UPS = [
    "Now summarise your answer in three short bullet points.",
    "Which of those points matters most, and why? Answer in two sentences.",
    "Rewrite that answer for a ten-year-old.",
]


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("model")
    ap.add_argument("--streams", type=int, required=True)
    ap.add_argument("--conversations", type=int, default=8)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--data", required=True)
    ap.add_argument("--offset", type=int, default=0)
    a = ap.parse_args()
    with open(a.data) as f:
        items = [json.loads(line) for line in f if line.strip()]
    conversations = []
    for c in range(a.conversations):
        published = items[(a.offset + c) % len(items)]["turns"]
        conversations.append((published + FOLLOW_UPS)[: a.turns])
    client = AsyncOpenAI(base_url=a.base + "/v1", api_key="none", max_retries=0, timeout=900)
    ttft = [[] for _ in range(a.turns)]
    prompt = [[] for _ in range(a.turns)]
    cached = [[] for _ in range(a.turns)]
    server_prompt_ms = [[] for _ in range(a.turns)]
    tokens, errors = [], []

    async def converse(user_turns):
        messages = []
        for t, text in enumerate(user_turns):
            messages.append({"role": "user", "content": text})
            sent = time.perf_counter()
            first, answer, usage, prompt_ms = None, [], None, None
            try:
                resp = await client.chat.completions.create(
                    model=a.model,
                    messages=messages,
                    max_tokens=a.max_tokens,
                    temperature=0,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async for chunk in resp:
                    if chunk.choices and chunk.choices[0].delta.content:
                        if first is None:
                            first = time.perf_counter()
                        answer.append(chunk.choices[0].delta.content)
                    if chunk.usage is not None:
                        usage = chunk.usage
                    extra = chunk.model_extra or {}
                    timings = (extra.get("colm") or {}).get("timings") or extra.get("timings")
                    if timings and timings.get("prompt_ms") is not None:
                        prompt_ms = timings["prompt_ms"]
            except Exception as e:  # recorded, never hidden
                errors.append(f"turn {t + 1}: {e!r}")
                return
            if first is not None:
                ttft[t].append(first - sent)
            if prompt_ms is not None:
                server_prompt_ms[t].append(prompt_ms)
            if usage is not None:
                tokens.append(usage.completion_tokens)
                prompt[t].append(usage.prompt_tokens)
                details = getattr(usage, "prompt_tokens_details", None)
                cached[t].append(getattr(details, "cached_tokens", None) or 0)
            messages.append({"role": "assistant", "content": "".join(answer)})

    async def stream(s):
        for c in range(s, a.conversations, a.streams):
            await converse(conversations[c])

    start = time.perf_counter()
    await asyncio.gather(*(stream(s) for s in range(a.streams)))
    wall = time.perf_counter() - start
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
    print(json.dumps({
        "streams": a.streams,
        "requests": len(tokens),
        "errors": errors,
        "completion_tokens": sum(tokens),
        "wall_s": wall,
        "tok_per_s": sum(tokens) / wall if wall > 0 else 0.0,
        "turns": [
            {
                "turn": t + 1,
                "ttft_p50_ms": 1000 * (percentile(ttft[t], 0.5) or float("nan")),
                "ttft_mean_ms": 1000 * mean(ttft[t]),
                "prompt_tokens": mean(prompt[t]),
                "cached_tokens": mean(cached[t]),
                "server_prompt_ms": mean(server_prompt_ms[t]),
            }
            for t in range(a.turns)
        ],
    }))


asyncio.run(main())
