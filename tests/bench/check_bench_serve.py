#!/usr/bin/env python3
"""`parallama bench serve` end to end.

stub:   against a stub OpenAI server (this file) that waits TTFT_MS before the
        first token and ITL_MS between tokens: the measured TTFT, ITL, TPOT and
        E2EL match the delays within a few milliseconds (this checks the
        client, not a server); a stub that answers HTTP 500, and a server that
        is not there, give failed requests counted with their cause.
server: against `parallama serve`: completed + failed = sent, the input and
        output tokens equal what the server's own /metrics counted, and the
        streamed text events agree with the usage.

    check_bench_serve.py PARALLAMA stub|server
"""
import http.server
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

TTFT_MS, ITL_MS, N_TOKENS = 150, 40, 6


class Stub(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fail_all = False

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": "stub-model", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if Stub.fail_all:
            body = json.dumps({"error": {"message": "stub refuses", "type": "server_error", "code": 500}}).encode()
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        time.sleep(TTFT_MS / 1000)
        for i in range(N_TOKENS):
            if i:
                time.sleep(ITL_MS / 1000)
            ev = {"choices": [{"index": 0, "text": " t%d" % i, "finish_reason": "length" if i == N_TOKENS - 1 else None}]}
            self.wfile.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
            self.wfile.flush()
        usage = {"choices": [], "usage": {"prompt_tokens": len(req["prompt"]), "completion_tokens": N_TOKENS}}
        self.wfile.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
        self.wfile.flush()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench(binary, url, *extra):
    r = subprocess.run([binary, "bench", "serve", "--base-url", url, "--json", *extra], capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError("bench serve failed (%d): %s" % (r.returncode, r.stderr[-2000:]))
    return json.loads(r.stdout)


def check_stub(binary):
    port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Stub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    fails = []
    try:
        # 12 requests, 4 at a time.
        r = bench(binary, "http://127.0.0.1:%d" % port, "--num-prompts", "12", "--max-concurrency", "4",
                  "--random-input-len", "8", "--random-output-len", str(N_TOKENS), "--percentile-metrics",
                  "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90")
        want = {"ttft": TTFT_MS, "tpot": ITL_MS, "itl": ITL_MS, "e2el": TTFT_MS + (N_TOKENS - 1) * ITL_MS}
        for m, ms in want.items():
            for stat in ("mean", "median"):
                got = r["%s_%s_ms" % (stat, m)]
                # The stub's sleeps only add (scheduling, the loopback): a few ms over, never under.
                if not (ms - 1 <= got <= ms + 8):
                    fails.append("%s %s: %.2f ms, the stub delays %d ms" % (stat, m, got, ms))
        if r["completed"] != 12 or r["failed"] != 0 or r["total_output_tokens"] != 12 * N_TOKENS:
            fails.append("counts: %r" % {k: r[k] for k in ("completed", "failed", "total_output_tokens")})
        if r["total_input_tokens"] != 12 * 8:
            fails.append("input tokens %r, want 96 (the stub's usage)" % r["total_input_tokens"])
        print("stub: ttft %.1f/%.1f ms, itl %.1f/%.1f ms, tpot %.1f ms, e2el %.1f ms (want %d, %d, %d, %d)" % (
            r["mean_ttft_ms"], r["median_ttft_ms"], r["mean_itl_ms"], r["median_itl_ms"], r["mean_tpot_ms"],
            r["mean_e2el_ms"], TTFT_MS, ITL_MS, ITL_MS, want["e2el"]))
        # A server that answers 500, and one that is not there: failed, with the cause.
        Stub.fail_all = True
        r2 = bench(binary, "http://127.0.0.1:%d" % port, "--num-prompts", "3", "--random-input-len", "4",
                   "--random-output-len", "2")
        if r2["failed"] != 3 or r2["completed"] != 0 or not any(k.startswith("HTTP 500") for k in r2["errors"]):
            fails.append("a server answering 500: %r" % {k: r2[k] for k in ("completed", "failed", "errors")})
        r3 = bench(binary, "http://127.0.0.1:%d" % free_port(), "--num-prompts", "2", "--random-input-len", "4",
                   "--random-output-len", "2", "--model", "x")
        if r3["failed"] != 2 or r3["completed"] != 0 or not any(k.startswith("connection") for k in r3["errors"]):
            fails.append("a server that is not there: %r" % {k: r3[k] for k in ("completed", "failed", "errors")})
        print("failures counted: %r, %r" % (r2["errors"], r3["errors"]))
    finally:
        srv.shutdown()
    return fails


def metric(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith(name + "_"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def check_server(binary):
    port = free_port()
    p = subprocess.Popen([binary, "serve", "--port", str(port), "-t", "2", "--no-log-requests",
                          "--served-model-name", "smol"], stderr=subprocess.PIPE, text=True)
    fails = []
    try:
        for line in p.stderr:
            if line.startswith("ready:"):
                break
        url = "http://127.0.0.1:%d" % port
        before = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
        r = bench(binary, url, "--num-prompts", "24", "--request-rate", "20", "--random-input-len", "48",
                  "--random-output-len", "16", "--random-range-ratio", "0.5", "--seed", "3",
                  "--percentile-metrics", "ttft,tpot,itl,e2el", "--ignore-eos")
        after = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
        gen = metric(after, "parallama:generation_tokens_total") - metric(before, "parallama:generation_tokens_total")
        prompt = metric(after, "parallama:prompt_tokens_total") - metric(before, "parallama:prompt_tokens_total")
        if r["completed"] + r["failed"] != 24 or r["failed"] != 0:
            fails.append("completed %d + failed %d != 24 sent: %r" % (r["completed"], r["failed"], r["errors"]))
        if r["total_output_tokens"] != gen:
            fails.append("output tokens %d, the server's metrics counted %d" % (r["total_output_tokens"], gen))
        if r["total_input_tokens"] != prompt:
            fails.append("input tokens %d, the server's metrics counted %d" % (r["total_input_tokens"], prompt))
        # One event per token, except a token that ends inside a UTF-8
        # character: its bytes wait for the next token's (a rare, deterministic
        # merge of two tokens into one event).
        if r["usage_chunk_mismatches"] > 1:
            fails.append("%d of 24 requests streamed a different number of text events than their usage"
                         % r["usage_chunk_mismatches"])
        if not (0 < r["median_ttft_ms"] < r["mean_e2el_ms"]):
            fails.append("timings out of order: %r" % {k: v for k, v in r.items() if k.endswith("_ms")})
        print("server: %d completed, %d output tokens (metrics %d), %d usage/event mismatches, %.1f output tok/s, "
              "median TTFT %.1f ms" % (r["completed"], r["total_output_tokens"], gen, r["usage_chunk_mismatches"],
                                        r["output_throughput"], r["median_ttft_ms"]))
    finally:
        p.terminate()
        p.wait(30)
    return fails


if __name__ == "__main__":
    binary, mode = sys.argv[1], sys.argv[2]
    problems = check_stub(binary) if mode == "stub" else check_server(binary)
    for f in problems:
        print("FAIL:", f)
    sys.exit(1 if problems else 0)
