#!/usr/bin/env python3
"""Time to first byte of streamed answers, over raw HTTP (no client library in the way).

Sends N streamed chat completions one after the other (distinct GSM8K questions) and, per
request, records the time from sending the request to: the response headers, the first
server-sent event, the first colm progress event (a strategy's step finished), the first
non-empty content delta, and the end of the stream. Prints one JSON object with every sample
and p50 / p95 / max per measure, in ms.

Usage: ttfb.py BASE_URL MODEL --requests N --max-tokens T --data FILE [--offset O]
"""
import argparse
import http.client
import json
import time
import urllib.parse

from stats import percentile


def one(url, model, question, max_tokens):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=900)
    body = json.dumps({
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": max_tokens,
        "stream": True,
    })
    t = {}
    sent = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    t["headers_ms"] = (time.perf_counter() - sent) * 1000
    if resp.status != 200:
        raise RuntimeError(f"status {resp.status}: {resp.read()[:300]!r}")
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.decode().strip()
        if not line.startswith("data: "):
            continue
        now = (time.perf_counter() - sent) * 1000
        t.setdefault("first_event_ms", now)
        data = line[len("data: "):]
        if data == "[DONE]":
            t["done_ms"] = now
            break
        chunk = json.loads(data)
        if "error" in chunk:
            raise RuntimeError(chunk["error"])
        if (chunk.get("colm") or {}).get("progress"):
            t.setdefault("first_progress_ms", now)
        choices = chunk.get("choices") or []
        if choices and (choices[0].get("delta") or {}).get("content"):
            t.setdefault("first_content_ms", now)
    conn.close()
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("model")
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--data", required=True)
    ap.add_argument("--offset", type=int, default=0)
    a = ap.parse_args()
    with open(a.data) as f:
        questions = [json.loads(line)["question"] for line in f if line.strip()]
    samples = [
        one(a.base, a.model, questions[(a.offset + i) % len(questions)], a.max_tokens)
        for i in range(a.requests)
    ]
    keys = ["headers_ms", "first_event_ms", "first_progress_ms", "first_content_ms", "done_ms"]
    summary = {}
    for k in keys:
        xs = [s[k] for s in samples if k in s]
        summary[k] = {
            "n": len(xs),
            "p50": percentile(xs, 0.5),
            "p95": percentile(xs, 0.95),
            "max": max(xs) if xs else None,
        }
    print(json.dumps({"model": a.model, "requests": a.requests, "max_tokens": a.max_tokens,
                      "summary": summary, "samples": samples}))


if __name__ == "__main__":
    main()
