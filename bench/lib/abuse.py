#!/usr/bin/env python3
"""The abuse classes of the hardening issue against one running `colm serve` (bench/abuse.sh
starts it): a tenant cutting its streams under a token budget, a tenant filling its cap of open
sessions while another creates one, stalled connections, and cross-origin requests a web page can
send. Prints one JSON object of measurements (standard library only)."""

import argparse
import http.client
import json
import socket
import time
import urllib.parse


def request(base, method, path, body=None, headers=None, key=None, timeout=60):
    """(status, headers dict, body text) of one request."""
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    h = dict(headers or {})
    if key:
        h["Authorization"] = f"Bearer {key}"
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    text = r.read().decode("utf-8", "replace")
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, text


def metric(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def metrics(base, key):
    return request(base, "GET", "/metrics", key=key)[2]


def cut_stream(base, key, model, seconds, max_tokens):
    """Streams one completion and closes the connection after `seconds`: (status, deltas read)."""
    u = urllib.parse.urlparse(base)
    s = socket.create_connection((u.hostname, u.port))
    body = json.dumps({"model": model, "stream": True, "max_tokens": max_tokens,
                       "messages": [{"role": "user",
                                     "content": "Count from 1 to 1000, one number per line."}]})
    s.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
               f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
    s.settimeout(0.2)
    got = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        got += chunk
    s.close()
    text = got.decode("utf-8", "replace")
    status = int(text.split(" ", 2)[1]) if text.startswith("HTTP/1.1 ") else 0
    deltas = 0
    for event in text.split("\n\n"):
        for line in event.splitlines():
            if line.startswith("data: {"):
                try:
                    c = json.loads(line[6:])
                except ValueError:
                    continue
                if c.get("choices") and c["choices"][0]["delta"].get("content"):
                    deltas += 1
    return status, deltas


def budget_class(base, model, budget, seconds, max_tokens):
    """A tenant that closes every stream after `seconds`, until its budget refuses it."""
    started = time.monotonic()
    served = streams = 0
    status = 200
    while status == 200 and streams < 200:
        status, deltas = cut_stream(base, "sk-cut", model, seconds, max_tokens)
        if status == 200:
            streams += 1
            served += deltas
    elapsed = time.monotonic() - started
    time.sleep(1.0)  # the server settles a cut stream when it sees the connection closed
    m = metrics(base, "sk-ops")
    charged = (metric(m, 'colm_tenant_prompt_tokens_total{tenant="cut"}')
               + metric(m, 'colm_tenant_completion_tokens_total{tenant="cut"}'))
    generated = metric(m, 'colm_tenant_completion_tokens_total{tenant="cut"}')
    refill = budget / 3600.0 * elapsed
    return {
        "budget": budget, "streams": streams, "refused_with": status,
        "seconds": round(elapsed, 1), "deltas_received": served,
        "tokens_charged": int(charged), "completion_tokens_charged": int(generated),
        "refill_during_run": round(refill, 1),
        # Tokens the tenant was served beyond what its budget (and the refill) allowed.
        "tokens_beyond_budget": max(0, int(charged - budget - refill)),
    }


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sessions_class(base, model, pid, cap, query_tokens):
    """`filler` opens its cap of sessions with the largest query the model accepts; then
    `other` creates one. RSS before and after."""
    before = rss_kb(pid)
    # About a token per word of this text ("egg" is one token for these tokenizers).
    big = lambda n: f"{n} " + "egg " * query_tokens
    statuses = {}
    for n in range(cap + 1):
        st, h, _ = request(base, "POST", "/v1/colm/sessions", key="sk-filler",
                           body={"query": big(n), "model": model, "max_tokens": 16,
                                 "window_ms": 600000})
        statuses[st] = statuses.get(st, 0) + 1
        if st != 201:
            refused = {"status": st, "retry_after": h.get("retry-after")}
    after = rss_kb(pid)
    t = time.monotonic()
    st, _, body = request(base, "POST", "/v1/colm/sessions", key="sk-other",
                          body={"query": "What is 6 times 7?", "model": model, "max_tokens": 16})
    other_ms = (time.monotonic() - t) * 1000
    too_big, _, e = request(base, "POST", "/v1/colm/sessions", key="sk-other",
                            body={"query": big(0) * 4, "model": model, "max_tokens": 16})
    return {
        "cap_per_tenant": cap, "query_bytes": len(big(0).encode()), "filler_statuses": statuses,
        "filler_refused": refused, "other_tenant_status": st, "other_tenant_ms": round(other_ms, 1),
        "rss_before_kb": before, "rss_at_cap_kb": after,
        "rss_per_session_kb": round((after - before) / cap, 1),
        "oversized_query_status": too_big,
        "oversized_query_code": json.loads(e).get("error", {}).get("code"),
    }


def stalled_class(base, n_headers, n_body):
    """Connections that stall mid-headers or mid-body: seconds until the server closes each."""
    u = urllib.parse.urlparse(base)
    socks = []
    for i in range(n_headers + n_body):
        s = socket.create_connection((u.hostname, u.port))
        if i < n_headers:
            s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {u.hostname}\r\nX-A: ".encode())
        else:
            # With a valid key: the body is read (and timed out) past the key check.
            s.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
                       "Authorization: Bearer sk-other\r\nContent-Type: application/json\r\n"
                       "Content-Length: 1000\r\n\r\n{\"mo").encode())
        s.setblocking(False)
        socks.append([s, time.monotonic(), None, b""])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and any(x[2] is None for x in socks):
        for x in socks:
            if x[2] is not None:
                continue
            try:
                chunk = x[0].recv(4096)
                if chunk:
                    x[3] += chunk
                    continue
                x[2] = time.monotonic() - x[1]
            except BlockingIOError:
                pass
            except OSError:
                x[2] = time.monotonic() - x[1]
        time.sleep(0.05)
    out = {}
    for name, group in (("mid_headers", socks[:n_headers]), ("mid_body", socks[n_headers:])):
        times = sorted(x[2] for x in group if x[2] is not None)
        out[name] = {
            "connections": len(group), "closed": len(times),
            "median_s": round(times[len(times) // 2], 1) if times else None,
            "max_s": round(times[-1], 1) if times else None,
            "answered_408": sum(1 for x in group if b" 408 " in x[3][:20]),
        }
        for x in group:
            x[0].close()
    return out


def origin_class(base, model):
    """Requests a web page (or a DNS-rebinding name) can send; accepted = a 2xx answer."""
    u = urllib.parse.urlparse(base)
    session = json.dumps({"query": "What is 6 times 7?", "model": model, "max_tokens": 8})
    chat = json.dumps({"model": model, "max_tokens": 4,
                       "messages": [{"role": "user", "content": "hi"}]})
    cases = {
        "rebinding Host": ("POST", "/v1/colm/sessions", session,
                           {"Host": f"evil.example:{u.port}", "Origin": "http://evil.example",
                            "Content-Type": "application/json"}),
        "text/plain body": ("POST", "/v1/colm/sessions", session,
                            {"Origin": "http://evil.example", "Content-Type": "text/plain"}),
        "form body": ("POST", "/v1/chat/completions", chat,
                      {"Origin": "http://evil.example",
                       "Content-Type": "application/x-www-form-urlencoded"}),
        "no content type": ("POST", "/v1/chat/completions", chat,
                            {"Origin": "http://evil.example"}),
        "preflight": ("OPTIONS", "/v1/chat/completions", None,
                      {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
                       "Access-Control-Request-Headers": "content-type"}),
    }
    out = {}
    for name, (method, path, body, headers) in cases.items():
        # With a valid key: only the origin and content-type checks stand in the way.
        headers = dict(headers, Authorization="Bearer sk-other")
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        conn.putrequest(method, path, skip_host="Host" in headers)
        for k, v in headers.items():
            conn.putheader(k, v)
        data = body.encode() if body else b""
        if body is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data if body is not None else None)
        r = conn.getresponse()
        allow = r.getheader("access-control-allow-origin")
        r.read()
        conn.close()
        out[name] = {"status": r.status, "accepted": 200 <= r.status < 300 and (
            method != "OPTIONS" or allow is not None)}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("base")
    p.add_argument("model")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--budget", type=int, default=3000)
    p.add_argument("--cut-after", type=float, default=1.2)
    p.add_argument("--max-tokens", type=int, default=400)
    p.add_argument("--session-cap", type=int, default=200)
    p.add_argument("--query-tokens", type=int, default=3000)
    p.add_argument("--stalled", type=int, default=100)
    a = p.parse_args()
    out = {
        "origins": origin_class(a.base, a.model),
        # Mid-body stalls carry a key: at most 30, under the tenant's default quota of 32
        # requests in flight (more would be refused at once, not stalled).
        "stalled": stalled_class(a.base, a.stalled, min(a.stalled // 2, 30)),
        "sessions": sessions_class(a.base, a.model, a.pid, a.session_cap, a.query_tokens),
        "budget": budget_class(a.base, a.model, a.budget, a.cut_after, a.max_tokens),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
