#!/usr/bin/env python3
"""Streaming server benchmark, side by side: `parallama serve` vs llama.cpp's `llama-server`.

For each concurrency C (--concurrency, default 1,8,32) and each engine, a fresh server is
started on 127.0.0.1 with the same model and threads (llama-server: `-np C -c 512*C`, i.e.
512 tokens of context per slot; parallama: its defaults), warmed up with one request, then
C client threads each send --requests-per-client streaming /v1/completions requests back to
back: a ~128-token text prompt that opens differently for every request (so neither
server's prompt cache serves it), `max_tokens` 128, `ignore_eos`, temperature 0.

Per request: TTFT = time from sending to the first chunk that carries text; output tokens =
the streamed chunks that carry text (both servers send one token per chunk). Per run: output
tok/s = all output tokens / wall time from the first request sent to the last one done;
median and p99 TTFT over all requests. Engines alternate order per round; medians over rounds.
With --generate, `parallama generate` on the same prompt gives the batch-1 decode rate that
the 1-request HTTP figure is compared with.

    python3 tools/bench_server.py --rounds 3 --out server.json
"""
import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.expanduser("~/.cache/parallama/models/SmolLM2-135M-Instruct.Q4_1.gguf")
LLAMA_BIN = os.path.expanduser("~/.cache/parallama/llama.cpp/build/bin")
PROMPT = ("The history of computing is a story of people and machines. " * 12).strip()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(port, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %d" % proc.returncode)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server not healthy in %d s" % timeout)


def start(engine, args, conc):
    port = free_port()
    if engine == "parallama":
        cmd = [args.binary, "serve", "-m", args.model, "-t", str(args.threads), "--port", str(port),
               "--no-log-requests"]
    else:
        cmd = [os.path.join(args.llama_bin, "llama-server"), "-m", args.model, "-t", str(args.threads),
               "-tb", str(args.threads), "-np", str(conc), "-c", str(512 * conc), "--port", str(port),
               "--host", "127.0.0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_health(port, proc)
    return proc, port


_counter = iter(range(1 << 30))


def one_request(port, out):
    # A different opening per request: neither server may answer from a cached prompt.
    body = json.dumps({"prompt": "Note %d. " % next(_counter) + PROMPT, "max_tokens": 128, "temperature": 0, "stream": True,
                       "ignore_eos": True}).encode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    ttft, n, last = None, 0, 0.0
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        j = json.loads(line[6:])
        if j.get("choices") and j["choices"][0].get("text"):
            n += 1
            last = time.perf_counter() - t0
            if ttft is None:
                ttft = last
    out.append((ttft, n, (n - 1) / (last - ttft) if n > 1 and last > ttft else 0.0))


def run(engine, args, conc):
    proc, port = start(engine, args, conc)
    try:
        one_request(port, [])  # warm-up
        res = []
        per = args.requests_per_client if conc > 1 else max(args.requests_per_client, 4)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=lambda: [one_request(port, res) for _ in range(per)])
                   for _ in range(conc)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    ttfts = sorted(t for t, _, _ in res if t is not None)
    tokens = sum(n for _, n, _ in res)
    p99 = ttfts[min(len(ttfts) - 1, int(round(0.99 * (len(ttfts) - 1))))]
    return {"engine": engine, "concurrency": conc, "requests": len(res), "output_tokens": tokens,
            "wall_s": wall, "output_tok_s": tokens / wall, "median_ttft_s": statistics.median(ttfts),
            "p99_ttft_s": p99, "median_decode_tok_s": statistics.median(d for _, _, d in res)}


def generate_rate(args):
    out = subprocess.run([args.binary, "generate", "-m", args.model, "-t", str(args.threads), "-p", PROMPT,
                          "-n", "128", "--ignore-eos", "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["timings"]["decode_tok_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--requests-per-client", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "release", "parallama"))
    ap.add_argument("--llama-bin", default=LLAMA_BIN)
    ap.add_argument("--generate", action="store_true", help="also measure parallama generate's decode rate")
    ap.add_argument("--out")
    args = ap.parse_args()
    concs = [int(c) for c in args.concurrency.split(",")]
    runs, gen = [], []
    for rnd in range(args.rounds):
        order = ["parallama", "llama.cpp"] if rnd % 2 == 0 else ["llama.cpp", "parallama"]
        for conc in concs:
            for eng in order:
                r = run(eng, args, conc)
                r["round"] = rnd
                runs.append(r)
                print("round %d %-9s C=%-2d out %.1f tok/s, TTFT median %.3f s p99 %.3f s" %
                      (rnd, eng, conc, r["output_tok_s"], r["median_ttft_s"], r["p99_ttft_s"]), file=sys.stderr)
        if args.generate:
            gen.append(generate_rate(args))
    med = lambda e, c, k: statistics.median(r[k] for r in runs if r["engine"] == e and r["concurrency"] == c)
    print("| C | llama-server out tok/s | parallama out tok/s | ratio | llama-server TTFT median / p99 s | "
          "parallama TTFT median / p99 s | TTFT ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    table = []
    for c in concs:
        row = {k: {e: med(e, c, k) for e in ("llama.cpp", "parallama")}
               for k in ("output_tok_s", "median_ttft_s", "p99_ttft_s")}
        table.append({"concurrency": c, **row})
        print("| %d | %.1f | %.1f | %.2f | %.3f / %.3f | %.3f / %.3f | %.2f |" % (
            c, row["output_tok_s"]["llama.cpp"], row["output_tok_s"]["parallama"],
            row["output_tok_s"]["parallama"] / row["output_tok_s"]["llama.cpp"],
            row["median_ttft_s"]["llama.cpp"], row["p99_ttft_s"]["llama.cpp"],
            row["median_ttft_s"]["parallama"], row["p99_ttft_s"]["parallama"],
            row["median_ttft_s"]["parallama"] / row["median_ttft_s"]["llama.cpp"]))
    if gen:
        http1 = statistics.median(r["median_decode_tok_s"] for r in runs
                                  if r["engine"] == "parallama" and r["concurrency"] == 1) if 1 in concs else None
        print("parallama generate decode tok/s (median of %d): %.1f%s" % (
            len(gen), statistics.median(gen),
            "; HTTP decode at 1 request (first to last token) %.1f, ratio %.2f" % (http1, http1 / statistics.median(gen))  if http1 else ""))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"runs": runs, "medians": table, "generate_decode_tok_s": gen, "prompt": PROMPT}, f, indent=1)


if __name__ == "__main__":
    main()
