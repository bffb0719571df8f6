#!/usr/bin/env python3
"""Decode at one request: through HTTP (`parallama serve`, one streaming
completion read by curl) against `parallama generate` on the same prompt,
same threads, alternated for --rounds rounds; medians and their ratio.

HTTP decode tok/s = (output tokens - 1) / (curl's time_total - time_starttransfer):
the server sends nothing before the first token, so the first byte is the first
token, and the last byte follows the last token ([DONE]). curl is the client
because it costs the 2-core machine almost nothing per token (a Python client
parses every event on the cores the engine computes on).

    python3 tools/bench_http_decode.py --rounds 7 [--threads 2] [--tokens 128]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench_server import PROMPT, ROOT, free_port  # the same prompt as the server benchmark


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "release", "parallama"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    port = free_port()
    srv = subprocess.Popen([a.binary, "serve", "--port", str(port), "-t", str(a.threads), "--no-log-requests"],
                           stderr=subprocess.PIPE, text=True)
    try:
        for line in srv.stderr:
            if line.startswith("ready:"):
                break
        body = json.dumps({"prompt": PROMPT, "max_tokens": a.tokens, "temperature": 0, "stream": True,
                           "ignore_eos": True})
        curl = ["curl", "-sN", "-o", "/dev/null", "-w", "%{time_starttransfer} %{time_total}", "-H",
                "Content-Type: application/json", "-d", body, f"http://127.0.0.1:{port}/v1/completions"]
        subprocess.run(curl, check=True, capture_output=True)  # warm-up
        http, gen = [], []
        for rnd in range(a.rounds):
            for what in (["http", "gen"] if rnd % 2 == 0 else ["gen", "http"]):
                if what == "http":
                    first, total = map(float, subprocess.run(curl, check=True, capture_output=True,
                                                             text=True).stdout.split())
                    http.append((a.tokens - 1) / (total - first))
                else:
                    out = subprocess.run([a.binary, "generate", "-t", str(a.threads), "-p", PROMPT, "-n",
                                          str(a.tokens), "--ignore-eos", "--json"], capture_output=True, text=True,
                                         check=True)
                    gen.append(json.loads(out.stdout)["timings"]["decode_tok_s"])
            print("round %d: HTTP %.1f tok/s, generate %.1f tok/s" % (rnd, http[-1], gen[-1]), file=sys.stderr)
            time.sleep(0.2)
        h, g = statistics.median(http), statistics.median(gen)
        print("HTTP decode (curl) %.1f tok/s, generate %.1f tok/s (medians of %d): ratio %.3f; per-round ratios %s"
              % (h, g, a.rounds, h / g, " ".join("%.2f" % (x / y) for x, y in zip(http, gen))))
    finally:
        srv.terminate()
        srv.wait(30)


if __name__ == "__main__":
    main()
