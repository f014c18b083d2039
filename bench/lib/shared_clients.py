"""Real CoLM clients asking the same questions at once (bench/shared-references.sh).

For each question, CLIENTS requests go at once to the device endpoints of real `colm client`
processes (spread evenly over them); each client drafts with its own model, asks the server for
guidance (reference mode: while it drafts) and refines. The server's decode tokens are read from
its /metrics before and after, so the figure is what the server really decoded. Then the
server model alone answers each question once (the same draft prompt, through the server's
/v1/chat/completions), in the same run, for the ratio. Prints one JSON object.
"""

import argparse
import json
import re
import sys
import threading
import time
import urllib.request


def post(url, body, timeout=1800):
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def decode_tokens(server, model):
    text = urllib.request.urlopen(f"{server}/metrics", timeout=30).read().decode()
    m = re.search(r'^colm_completion_tokens_total\{model="' + re.escape(model) + r'"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def hits(server):
    text = urllib.request.urlopen(f"{server}/metrics", timeout=30).read().decode()
    m = re.search(r"^colm_shared_guidance_hits_total (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("server")
    p.add_argument("server_model")
    p.add_argument("client_model")
    p.add_argument("devices", nargs="+", help="base URLs of the colm client endpoints")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--questions", type=int, default=5)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--data", default="../shared/data/gsm8k/dev.jsonl")
    a = p.parse_args()
    items = [json.loads(l) for l in open(a.data) if l.strip()][: a.questions]
    questions = [i["question"] for i in items]

    before = decode_tokens(a.server, a.server_model)
    latencies, errors, fallbacks = [], [], 0
    lock = threading.Lock()
    start = time.time()
    for q in questions:
        def one(i):
            nonlocal fallbacks
            device = a.devices[i % len(a.devices)]
            t = time.time()
            try:
                r = post(
                    f"{device}/v1/chat/completions",
                    {"model": a.client_model, "messages": [{"role": "user", "content": q}],
                     "max_tokens": a.max_tokens},
                )
                with lock:
                    latencies.append(time.time() - t)
                    if (r.get("colm") or {}).get("fallback"):
                        fallbacks += 1
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                with lock:
                    errors.append(str(e))
        threads = [threading.Thread(target=one, args=(i,)) for i in range(a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    wall = time.time() - start
    after = decode_tokens(a.server, a.server_model)
    shared_hits = hits(a.server)

    # The server model alone, same run: the draft prompt, once per question.
    alone = 0.0
    for q in questions:
        r = post(
            f"{a.server}/v1/chat/completions",
            {"model": a.server_model, "max_tokens": a.max_tokens,
             "messages": [{"role": "system", "content": "You are a helpful assistant."},
                          {"role": "user", "content": q}]},
        )
        alone += r["usage"]["completion_tokens"]
    latencies.sort()
    pct = lambda f: latencies[min(len(latencies) - 1, int(f * len(latencies)))] if latencies else 0.0
    queries = a.clients * len(questions)
    json.dump({
        "queries": queries,
        "answered": len(latencies),
        "fallbacks": fallbacks,
        "errors": errors,
        "server_decode_colm": after - before,
        "server_decode_per_query": (after - before) / max(queries, 1),
        "server_alone_decode_per_query": alone / max(len(questions), 1),
        "shared_hits": shared_hits,
        "latency_p50_s": pct(0.5),
        "latency_p95_s": pct(0.95),
        "wall_s": wall,
    }, sys.stdout)


if __name__ == "__main__":
    main()
