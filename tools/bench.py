#!/usr/bin/env python3
"""Side-by-side speed benchmark: parallama vs llama.cpp (through llama-cpp-python).

For each thread count and each of R rounds, alternately runs
  (a) <binary> bench -m MODEL --threads T --prompt-tokens P --gen-tokens G --json
  (b) python3 tools/bench.py --llama-worker ...   (llama.cpp, same model and threads)
each as a fresh process, so both pay the same load/page-cache conditions. Each process
does one warm-up batch, then times one P-token prompt batch (prompt tok/s) and G
single-token decode steps (decode tok/s). One discarded warm-up invocation of each
engine runs first so the model file is in the page cache for every timed round.

Prints progress to stderr, then a Markdown table of medians and the ratio
parallama/llama.cpp (> 1: parallama faster). Raw results go to --out (JSON) and, when
matplotlib is importable, a bar chart to --plot (PNG). See docs/PERF.md for the method.

Usage: python3 tools/bench.py [--model M] [--binary build/release/parallama]
                              [--threads 1,2] [--rounds 5] [--out bench.json] [--plot bench.png]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.expanduser("~/.cache/parallama/models/SmolLM2-135M-Instruct.Q4_1.gguf")
METRICS = [("prompt_tok_s", "prompt tok/s"), ("decode_tok_s", "decode tok/s")]


def lcg_tokens(n, n_vocab, state=12345):
    """Pseudo-random ids away from special tokens; same generator as `parallama bench`
    (state = state*1664525 + 1013904223 mod 2^32; id = 100 + (state>>8) % (n_vocab-200)).
    Returns (ids, final state)."""
    out = []
    for _ in range(n):
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        out.append(100 + (state >> 8) % (n_vocab - 200))
    return out, state


def llama_worker(args):
    """One llama.cpp measurement in this process; prints one JSON object on stdout."""
    import ctypes
    import llama_cpp

    t_load = time.perf_counter()
    n_ctx = max(1024, args.prompt_tokens + args.gen_tokens + 16)
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=n_ctx, n_batch=args.prompt_tokens,
                          n_ubatch=args.prompt_tokens, n_threads=args.threads,
                          n_threads_batch=args.threads, logits_all=False, verbose=False)
    load_s = time.perf_counter() - t_load
    ctx = llm._ctx.ctx
    n_vocab = llm.n_vocab()

    def decode(ids):
        # llama_batch_get_one: positions continue from the KV cache; logits for the last token.
        arr = (llama_cpp.llama_token * len(ids))(*ids)
        rc = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, len(ids)))
        if rc != 0:
            raise RuntimeError(f"llama_decode failed: {rc}")
        llama_cpp.llama_synchronize(ctx)

    def clear():
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)

    # Warm-up, as parallama bench does: one short batch, then start from an empty cache.
    decode([1, 2, 3, 4])
    clear()

    prompt, state = lcg_tokens(args.prompt_tokens, n_vocab)
    t0 = time.perf_counter()
    decode(prompt)
    prompt_s = time.perf_counter() - t0

    # Decode ids are pre-generated (no sampling in the timed loop); the cost of a step does
    # not depend on which id it is. The ctypes arrays are built up front as well.
    gen, _ = lcg_tokens(args.gen_tokens, n_vocab, state)
    batches = []
    for tok in gen:
        arr = (llama_cpp.llama_token * 1)(tok)
        batches.append((arr, llama_cpp.llama_batch_get_one(arr, 1)))
    t0 = time.perf_counter()
    for _, b in batches:
        if llama_cpp.llama_decode(ctx, b) != 0:
            raise RuntimeError("llama_decode failed")
        llama_cpp.llama_synchronize(ctx)
    decode_s = time.perf_counter() - t0

    print(json.dumps({
        "engine": "llama.cpp", "llama_cpp_python_version": llama_cpp.__version__,
        "threads": args.threads, "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens, "load_s": load_s, "prompt_s": prompt_s,
        "decode_s": decode_s, "prompt_tok_s": args.prompt_tokens / prompt_s,
        "decode_tok_s": args.gen_tokens / decode_s,
        "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(),
    }))


def run_json(cmd, timeout):
    """Runs cmd, returns the last JSON object line of its stdout."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr[-2000:]}")
    for line in reversed(p.stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"{' '.join(cmd)} printed no JSON object:\n{p.stdout[-2000:]}")


def engine_cmd(engine, args, threads):
    common = ["--prompt-tokens", str(args.prompt_tokens), "--gen-tokens", str(args.gen_tokens)]
    if engine == "parallama":
        return [args.binary, "bench", "-m", args.model, "--threads", str(threads)] + common + ["--json"]
    return [sys.executable, os.path.abspath(__file__), "--llama-worker", "--model", args.model,
            "--threads", str(threads)] + common


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def summarize(runs, engines, threads_list):
    rows = []
    for t in threads_list:
        for key, label in METRICS:
            med = {}
            for e in engines:
                vals = [r[key] for r in runs if r["engine"] == e and r["threads"] == t]
                med[e] = statistics.median(vals) if vals else None
            p, l = med.get("parallama"), med.get("llama.cpp")
            rows.append({"threads": t, "metric": label, "parallama": p, "llama.cpp": l,
                         "ratio": (p / l) if p and l else None})
    return rows


def markdown(rows, rounds):
    f = lambda v, spec: "n/a" if v is None else format(v, spec)
    out = [f"| threads | metric | parallama (median of {rounds}) | llama.cpp (median of {rounds}) | ratio |",
           "|---:|---|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['threads']} | {r['metric']} | {f(r['parallama'], '.1f')} | "
                   f"{f(r['llama.cpp'], '.1f')} | {f(r['ratio'], '.2f')} |")
    return "\n".join(out)


def plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not importable: no plot written", file=sys.stderr)
        return
    fig, axes = plt.subplots(1, len(METRICS), figsize=(10, 4))
    for ax, (_, label) in zip(axes, METRICS):
        sel = [r for r in rows if r["metric"] == label]
        xs = range(len(sel))
        w = 0.38
        ax.bar([x - w / 2 for x in xs], [r["parallama"] or 0 for r in sel], w, label="parallama")
        ax.bar([x + w / 2 for x in xs], [r["llama.cpp"] or 0 for r in sel], w, label="llama.cpp")
        ax.set_xticks(list(xs), [f"{r['threads']} thr" for r in sel])
        ax.set_title(label + " (median)")
        ax.set_ylabel("tokens / s")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "release", "parallama"))
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (worker: one)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--engines", default="parallama,llama.cpp", help="subset to run")
    ap.add_argument("--no-warmup", action="store_true", help="skip the discarded first invocation")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per invocation")
    ap.add_argument("--out", default=None, help="raw results JSON")
    ap.add_argument("--plot", default=None, help="bar chart PNG (needs matplotlib)")
    ap.add_argument("--llama-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.llama_worker:
        args.threads = int(args.threads)
        llama_worker(args)
        return
    if not os.path.exists(args.model):
        sys.exit(f"model not found: {args.model}")
    if args.rounds < 1 or args.prompt_tokens < 1 or args.gen_tokens < 1:
        sys.exit("--rounds, --prompt-tokens and --gen-tokens must be positive")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in engines:
        if e not in ("parallama", "llama.cpp"):
            sys.exit(f"unknown engine {e!r} (parallama, llama.cpp)")
    if "parallama" in engines and not os.access(args.binary, os.X_OK):
        sys.exit(f"binary not found or not executable: {args.binary} (build it, or --engines llama.cpp)")
    threads_list = [int(t) for t in args.threads.split(",")]

    if not args.no_warmup:
        for e in engines:
            print(f"warm-up: {e} (discarded)", file=sys.stderr)
            run_json(engine_cmd(e, args, threads_list[0]), args.timeout)

    runs = []
    for t in threads_list:
        for r in range(args.rounds):
            # Alternate which engine goes first, so drift (thermal, background load) is shared.
            order = engines if r % 2 == 0 else list(reversed(engines))
            for e in order:
                res = run_json(engine_cmd(e, args, t), args.timeout)
                res.update({"engine": e, "threads": t, "round": r})
                runs.append(res)
                print(f"threads={t} round={r + 1}/{args.rounds} {e:9s} prompt {res['prompt_tok_s']:8.1f} tok/s"
                      f"  decode {res['decode_tok_s']:7.1f} tok/s", file=sys.stderr)

    rows = summarize(runs, engines, threads_list)
    table = markdown(rows, args.rounds)
    print(table)
    if args.out:
        meta = {"model": args.model, "binary": args.binary, "threads": threads_list,
                "rounds": args.rounds, "prompt_tokens": args.prompt_tokens,
                "gen_tokens": args.gen_tokens, "cpu": cpu_name(), "nproc": os.cpu_count(),
                "platform": platform.platform(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "summary": rows, "runs": runs}, f, indent=1)
            f.write("\n")
        print(f"wrote {args.out}", file=sys.stderr)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
