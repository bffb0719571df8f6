#!/usr/bin/env python3
"""Decode speed of TP and PP layouts against one rank, side by side in one run.

For each layout (tp=1 with 2 threads, the same as 2 thread shards, tp=2 with 1
thread per rank, pp=2 with 1 thread per rank) and batch size (1 and 8 prompts), runs
`parallama generate --json` several times, alternating layouts within each
round, and reports medians: decode tok/s (all sequences together), the time of
one decode step, and communication time per generated token.

    python3 tools/bench_parallel.py --binary build/release/parallama --rounds 5
"""
import argparse
import json
import statistics
import subprocess
import sys

# (name, tp, pp, threads per rank, extra arguments)
LAYOUTS = [("tp=1, 2 threads", 1, 1, 2, ["--thread-shards", "1"]),
           # One process, the model as 2 TP shards on its 2 threads (EngineOptions::thread_shards).
           ("tp=1, 2 thread shards", 1, 1, 2, ["--thread-shards", "2"]),
           ("tp=2, 1 thread/rank", 2, 1, 1, []),
           ("pp=2, 1 thread/rank", 1, 2, 1, []),
           # The last stage also runs the 28.7 MiB output head: give it fewer layers.
           ("pp=2 (layers 20,10), 1 thread/rank", 1, 2, 1, ["--pp-layers", "20,10"])]
PROMPTS = ["The history of the printing press", "Write a short poem about the sea",
           "List the planets of the solar system", "def fibonacci(n):",
           "Explain photosynthesis simply", "Once upon a time in a small village",
           "The three laws of motion are", "Translate to French: good morning"]


def run(binary, model, tp, pp, threads, extra, batch, tokens):
    cmd = [binary, "generate", "--json", "--ignore-eos", "-n", str(tokens), "-t", str(threads)] + extra
    if model:
        cmd += ["-m", model]
    if tp * pp > 1:
        cmd += ["--tp", str(tp), "--pp", str(pp)]
    for p in PROMPTS[:batch]:
        cmd += ["-p", p]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    d = json.loads(out.strip().splitlines()[-1])
    t = d["timings"]
    steps = t["decode_tokens"] / batch
    return {"decode_tok_s": t["decode_tok_s"],
            "step_ms": 1e3 * t["decode_s"] / steps if steps else float("nan"),
            "comm_ms_per_token": d.get("parallel", {}).get(
                "comm_ms_per_token", 1e3 * t.get("comm_s", 0.0) / max(1, t["decode_tokens"])),
            "ranks": d.get("parallel", {}).get("ranks", [])}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="build/release/parallama")
    ap.add_argument("--model", default="")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--out", default="", help="write raw runs as JSON")
    a = ap.parse_args()
    results = {}
    for r in range(a.rounds):
        for batch in (1, 8):
            for name, tp, pp, threads, extra in LAYOUTS:
                res = run(a.binary, a.model, tp, pp, threads, extra, batch, a.tokens)
                results.setdefault((name, batch), []).append(res)
                print(f"round {r + 1}/{a.rounds} batch {batch} {name}: "
                      f"{res['decode_tok_s']:.1f} tok/s", file=sys.stderr)
    print("| layout | batch | decode tok/s | step ms | vs tp=1 | comm ms/token |")
    print("|---|---|---|---|---|---|")
    for batch in (1, 8):
        base = statistics.median(x["decode_tok_s"] for x in results[(LAYOUTS[0][0], batch)])
        for name, *_ in LAYOUTS:
            runs = results[(name, batch)]
            tok_s = statistics.median(x["decode_tok_s"] for x in runs)
            step = statistics.median(x["step_ms"] for x in runs)
            comm = statistics.median(x["comm_ms_per_token"] for x in runs)
            print(f"| {name} | {batch} | {tok_s:.1f} | {step:.2f} | {tok_s / base:.2f}x | {comm:.3f} |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({f"{k[0]} / batch {k[1]}": v for k, v in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
