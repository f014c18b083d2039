"""The device's draft only when it is needed (bench/draft-when-needed.sh).

Two arms, each a real `colm client` device endpoint on its own `colm serve` (its own store):
`always` (the device drafts at once, as colm did before `draft=auto`) and `auto` (the new
default). For each question, interleaved (both arms on question 1, then both on question 2,
…), an arm gets CLIENTS client queries: one first (a store miss: the server writes the
references) and, once it has its answer, the other CLIENTS − 1 at once (store hits). Per query
it keeps the round latency, the device's decode tokens (the answer's `usage`: every draft,
cancelled draft and refinement the device ran) and the answer. Prints one JSON object.
"""

import argparse
import json
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


def ask(device, model, question, max_tokens):
    t = time.time()
    r = post(
        f"{device}/v1/chat/completions",
        {"model": model, "messages": [{"role": "user", "content": question}],
         "max_tokens": max_tokens},
    )
    return {
        "latency_s": time.time() - t,
        "decode_tokens": r["usage"]["completion_tokens"],
        "prompt_tokens": r["usage"]["prompt_tokens"],
        "fallback": bool((r.get("colm") or {}).get("fallback")),
        "answer": r["choices"][0]["message"]["content"],
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("client_model")
    p.add_argument("--arm", action="append", nargs=2, metavar=("NAME", "DEVICE_URL"),
                   required=True)
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--questions", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--data", default="../shared/data/gsm8k/dev.jsonl")
    a = p.parse_args()
    items = [json.loads(l) for l in open(a.data) if l.strip()][: a.questions]
    rows, errors = [], []
    lock = threading.Lock()
    for qi, item in enumerate(items):
        for name, device in a.arm:
            def one(kind):
                try:
                    r = ask(device, a.client_model, item["question"], a.max_tokens)
                    with lock:
                        rows.append({"arm": name, "question": qi, "kind": kind, **r})
                except Exception as e:  # noqa: BLE001 - reported, not hidden
                    with lock:
                        errors.append(f"{name} q{qi} {kind}: {e}")
            one("miss")
            threads = [threading.Thread(target=one, args=("hit",)) for _ in range(a.clients - 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    json.dump({"rows": rows, "errors": errors}, sys.stdout)


if __name__ == "__main__":
    main()
