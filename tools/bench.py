#!/usr/bin/env python3
"""Side-by-side speed benchmark: parallama vs llama.cpp (through llama-cpp-python).

For each thread count and each of R rounds, alternately runs
  (a) <binary> bench -m MODEL --threads T --prompt-tokens P --gen-tokens G --json
  (b) python3 tools/bench.py --llama-worker ...   (llama.cpp, same model and threads)
each as a fresh process, so both pay the same load/page-cache conditions. Each process
does one warm-up batch, then times one P-token prompt batch (prompt tok/s), G
single-token decode steps after it (decode tok/s, at depth P), and G single-token steps
from an empty context (decode0 tok/s, llama-bench's tg). One discarded warm-up invocation of each
engine runs first so the model file is in the page cache for every timed round.

Prints progress to stderr, then a Markdown table of medians and the ratio
parallama/llama.cpp (> 1: parallama faster). Raw results go to --out (JSON) and, when
matplotlib is importable, a bar chart to --plot (PNG). See docs/PERF.md for the method.

Usage: python3 tools/bench.py [--model M] [--binary build/release/parallama]
                              [--threads 1,2] [--rounds 5] [--out bench.json] [--plot bench.png]

--suite kernels: the CPU-kernel model set instead of one model (see run_suite): the
default model and synthetic models in several weight types (written by `parallama synth`,
cached under ~/.cache/parallama/synth/), each against llama.cpp, with the machine's read
bandwidth (`parallama membw`) measured in the same invocation: a long reading before and
after the models, and a short one between consecutive rounds of each model. Decode speed
is reported as a fraction of the bandwidth bound (weight bytes read per token, from the
`gguf` package, / bandwidth), per round against the higher of the short readings just
before and just after that round (this VM's bandwidth swings by up to 75% within minutes),
then the median over rounds. A model whose footprint (weight bytes per token) streams
at least CACHE_SERVED_GAIN x faster than memory (a membw reading over a buffer of that
size, before its first and after its last round) is partly served by the caches: its
fraction is reported, the 70% target not applied. A bandwidth-by-buffer-size sweep per
thread count shows where the caches stop helping (plotted next to --plot as *_membw.png).
The synthetic models need a binary whose `synth` has --embd-type.
Paired readings (--paired-reads N, default 8 in the suite): parallama also decodes the
empty-context steps once more in N groups, each between two plain reads of 256 MiB taken
in the same process (`parallama bench --paired-reads`), so each group's bound comes from
the bandwidth of the same tenth of a second; "bw frac paired" is the median over groups,
then over rounds, and is what the 70% target for empty-context decode is judged on where
it exists (llama.cpp has no such readings; its fraction uses the round readings).
  python3 tools/bench.py --suite kernels [--models q4_1,q4_0,...] [--threads 1,2]
                         [--rounds 5] [--out kernels.json] [--plot kernels.png]
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
# decode: the steps after the prompt (depth = prompt tokens); decode0: the same number of
# steps from an empty context, as llama-bench's tg measures it.
METRICS = [("prompt_tok_s", "prompt tok/s"), ("decode_tok_s", "decode tok/s"),
           ("decode0_tok_s", "decode tok/s (empty context)")]


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
    # A Q8_0 cache needs llama.cpp's flash attention; f16 keeps its defaults.
    kv_args = {"type_k": llama_cpp.GGML_TYPE_Q8_0, "type_v": llama_cpp.GGML_TYPE_Q8_0,
               "flash_attn": True} if args.kv_type == "q8_0" else {}
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=n_ctx, n_batch=args.prompt_tokens,
                          n_ubatch=args.prompt_tokens, n_threads=args.threads,
                          n_threads_batch=args.threads, logits_all=False, verbose=False, **kv_args)
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

    # The same steps from an empty context (llama-bench's tg); the batches carry no
    # positions (they continue from the cache), so they are reused.
    clear()
    t0 = time.perf_counter()
    for _, b in batches:
        if llama_cpp.llama_decode(ctx, b) != 0:
            raise RuntimeError("llama_decode failed")
        llama_cpp.llama_synchronize(ctx)
    decode0_s = time.perf_counter() - t0

    print(json.dumps({
        "engine": "llama.cpp", "llama_cpp_python_version": llama_cpp.__version__,
        "threads": args.threads, "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens, "load_s": load_s, "prompt_s": prompt_s,
        "decode_s": decode_s, "prompt_tok_s": args.prompt_tokens / prompt_s,
        "decode_tok_s": args.gen_tokens / decode_s,
        "decode0_s": decode0_s, "decode0_tok_s": args.gen_tokens / decode0_s,
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


def engine_cmd(engine, args, threads, model=None):
    model = model or args.model
    common = ["--prompt-tokens", str(args.prompt_tokens), "--gen-tokens", str(args.gen_tokens),
              "--kv-type", args.kv_type]
    if engine == "parallama":
        paired = ["--paired-reads", str(args.paired_reads)] if args.paired_reads else []
        return [args.binary, "bench", "-m", model, "--threads", str(threads)] + common + paired + ["--json"]
    return [sys.executable, os.path.abspath(__file__), "--llama-worker", "--model", model,
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


def pyplot():
    """matplotlib.pyplot on the file-only backend, or None (with a message) without it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not importable: no plot written", file=sys.stderr)
        return None
    return plt


def plot(rows, path):
    plt = pyplot()
    if plt is None:
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


# ---------------------------------------------------------------------------------------
# --suite kernels: several weight types and sizes against llama.cpp, with the bandwidth
# bound of the machine measured in the same invocation.

SYNTH_DIR = os.path.expanduser("~/.cache/parallama/synth")
# The default model's shape (SmolLM2-135M): 30 layers, 9 heads / 3 kv heads of 64, ff 1536.
SMOL_SHAPE = ["--layers", "30", "--heads", "9", "--kv-heads", "3", "--head-dim", "64",
              "--ff", "1536", "--vocab", "49152", "--ctx", "2048"]
# name -> (description, None for the real default model or the `parallama synth` options)
SUITE_MODELS = {
    "q4_1": ("SmolLM2-135M-Instruct Q4_1 (the default model; Q8_0 embeddings, tied)", None),
    "q4_0": ("synthetic, default shape, Q4_0 (Q8_0 embeddings, tied)",
             SMOL_SHAPE + ["--type", "Q4_0", "--embd-type", "Q8_0"]),
    "q8_0": ("synthetic, default shape, Q8_0 (Q8_0 embeddings, tied)",
             SMOL_SHAPE + ["--type", "Q8_0", "--embd-type", "Q8_0"]),
    "f16": ("synthetic, default shape, F16 (F16 embeddings, tied)",
            SMOL_SHAPE + ["--type", "F16", "--embd-type", "F16"]),
    # Q4_K rows must be multiples of 256 and 576 is not: nearest aligned shape, n_embd 512.
    "q4_k": ("synthetic, default shape but n_embd 512 = 8 heads x 64 (2 kv heads), since Q4_K "
             "rows need multiples of 256; Q4_K (Q8_0 embeddings, tied)",
             ["--layers", "30", "--heads", "8", "--kv-heads", "2", "--head-dim", "64",
              "--ff", "1536", "--vocab", "49152", "--ctx", "2048",
              "--type", "Q4_K", "--embd-type", "Q8_0"]),
    # TinyLlama-1.1B shape.
    "1b_q4_0": ("synthetic ~1B: TinyLlama-1.1B shape but tied (22 layers, n_embd 2048, "
                "32/4 heads, ff 5632, vocab 32000), Q4_0 (Q4_0 embeddings, tied)",
                ["--layers", "22", "--heads", "32", "--kv-heads", "4", "--head-dim", "64",
                 "--ff", "5632", "--vocab", "32000", "--ctx", "2048",
                 "--type", "Q4_0", "--embd-type", "Q4_0"]),
}


def suite_model_path(args, name):
    """Path of a suite model, generating a synthetic one when it is missing. The file name
    carries a hash of the synth options, so changing them never reuses a stale file."""
    desc, synth = SUITE_MODELS[name]
    if synth is None:
        return args.model
    import hashlib
    tag = hashlib.sha1(" ".join(synth).encode()).hexdigest()[:8]
    path = os.path.join(args.synth_dir, f"{name}-{tag}.gguf")
    if os.path.exists(path):
        return path
    os.makedirs(args.synth_dir, exist_ok=True)
    tmp = path + f".tmp{os.getpid()}"
    print(f"synth: writing {path} ({desc})", file=sys.stderr)
    t0 = time.perf_counter()
    p = subprocess.run([args.binary, "synth", "-o", tmp] + synth, capture_output=True, text=True)
    if p.returncode != 0:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise RuntimeError(f"parallama synth failed for {name}:\n{p.stderr[-2000:]}")
    os.replace(tmp, path)  # atomic: an interrupted run never leaves a partial model behind
    print(f"synth: {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return path


def weight_bytes_per_token(path):
    """Bytes of weights one decode step reads, from the GGUF file via the `gguf` package
    (independent of parallama's loader): every tensor except the token embeddings, plus
    the output head (output.weight, or the whole token_embd when tied), plus the one
    embedding row the lookup reads. Also returns a description of the file."""
    from gguf import GGUFReader
    r = GGUFReader(path)
    by_name = {t.name: t for t in r.tensors}
    emb = by_name["token_embd.weight"]
    n_vocab = int(emb.shape[-1])
    total = sum(int(t.n_bytes) for t in r.tensors if t.name != "token_embd.weight")
    tied = "output.weight" not in by_name
    total += int(emb.n_bytes) // n_vocab
    if tied:
        total += int(emb.n_bytes)
    layer_types = {}
    for t in r.tensors:
        if t.name.startswith("blk.") and len(t.shape) == 2:
            layer_types[t.tensor_type.name] = layer_types.get(t.tensor_type.name, 0) + int(t.n_bytes)
    main_type = max(layer_types, key=layer_types.get) if layer_types else "?"
    n_params = sum(int(t.n_elements) for t in r.tensors)

    def kv(key, default=None):
        f = r.fields.get(key)
        return int(f.parts[f.data[0]][0]) if f is not None else default
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    info = {"weight_type": main_type, "embd_type": emb.tensor_type.name,
            "head": "tied" if tied else by_name["output.weight"].tensor_type.name,
            "n_params": n_params, "n_vocab": n_vocab,
            "n_layer": kv(f"{arch}.block_count"), "n_embd": kv(f"{arch}.embedding_length"),
            "n_head": kv(f"{arch}.attention.head_count"),
            "n_head_kv": kv(f"{arch}.attention.head_count_kv"),
            "n_ff": kv(f"{arch}.feed_forward_length")}
    info["head_dim"] = kv(f"{arch}.attention.key_length") or info["n_embd"] // info["n_head"]
    return total, info


KV_VALUE_BYTES = {"f16": 2.0, "q8_0": 34 / 32}  # per cached value (Q8_0: f16 scale per 32)


def kv_bytes_per_token(info, prompt_tokens, gen_tokens, kv_type="f16"):
    """Bytes of K and V cache one decode step reads, averaged over the gen_tokens steps
    after a prompt_tokens prompt: step i attends over prompt_tokens + i + 1 positions,
    each holding K and V for every layer and KV head."""
    per_pos = info["n_layer"] * 2 * info["n_head_kv"] * info["head_dim"] * KV_VALUE_BYTES[kv_type]
    return per_pos * (prompt_tokens + (gen_tokens + 1) / 2)


def llc_bytes():
    """Size of the largest CPU cache (sysfs), or None."""
    best = None
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for d in os.listdir(base):
            try:
                with open(os.path.join(base, d, "size")) as f:
                    v = f.read().strip()
            except OSError:
                continue
            mult = {"K": 1024, "M": 1 << 20, "G": 1 << 30}.get(v[-1:], 1)
            n = int(v.rstrip("KMG")) * mult
            best = n if best is None or n > best else best
    except (OSError, ValueError):
        pass
    return best


def measure_membw(args, threads, short=False, tag=None, size_mib=None):
    """One `parallama membw` reading; short ones (between rounds) use a smaller buffer
    and fewer passes, still far beyond the caches; size_mib (with the short pass count)
    reads a buffer of that size instead, e.g. a model's footprint. tag = (model, threads, slot)."""
    mib, reps = (args.membw_round_mib, args.membw_round_reps) if short else (args.membw_mib, args.membw_reps)
    if size_mib is not None:
        mib, reps = size_mib, args.membw_round_reps
    res = run_json([args.binary, "membw", "--threads", str(threads), "--size-mib",
                    str(mib), "--reps", str(reps), "--json"], args.timeout)
    if tag:
        res.update({"model": tag[0], "threads": tag[1], "slot": tag[2]})
    what = f" ({mib} MiB)" if size_mib is not None else " (between rounds)" if short else ""
    print(f"membw threads={threads}{what}: median "
          f"{res['median_gb_s']:.2f} GB/s, best {res['best_gb_s']:.2f} GB/s", file=sys.stderr)
    return res


def footprint_mib(m):
    """A model's weight bytes per token in whole MiB: the membw buffer of its footprint."""
    return max(1, -(-m["bytes_per_token"] // 1048576))


def cache_gain(footprint_bw, round_bw, model, threads):
    """Median read bandwidth at the model's footprint / median of the beyond-cache
    readings next to its rounds: how much faster its working set streams than memory."""
    fp = [b["median_gb_s"] for b in footprint_bw if b["model"] == model and b["threads"] == threads]
    mem = [b["median_gb_s"] for b in round_bw if b["model"] == model and b["threads"] == threads]
    return statistics.median(fp) / statistics.median(mem) if fp and mem else None


def round_bandwidth(round_bw, model, threads, r):
    """GB/s for round r: the higher of the short readings just before and just after it,
    so background load during one reading cannot inflate the fractions."""
    vals = [b["median_gb_s"] for b in round_bw
            if b["model"] == model and b["threads"] == threads and b["slot"] in (r, r + 1)]
    return max(vals) if vals else None


# A model counts as served by the caches at a thread count when a buffer of its
# footprint streams this much faster than memory (membw at the same moments).
CACHE_SERVED_GAIN = 1.25


def paired_fraction(paired, bytes_per_token):
    """Median over the groups of a `bench --paired-reads` run of decode bytes/s over the
    higher of the two reads around the group."""
    k, reads = paired["group_tokens"], paired["read_gb_s"]
    return statistics.median(k / s * bytes_per_token / (max(reads[g], reads[g + 1]) * 1e9)
                             for g, s in enumerate(paired["group_s"]))


def suite_rows(models, runs, membw, engines, threads_list, round_bw, footprint_bw):
    """One row per model x threads: medians, ratios, bandwidth fractions."""
    rows = []
    for m in models:
        for t in threads_list:
            rounds = sorted({r["round"] for r in runs if r["model"] == m["name"] and r["threads"] == t})
            per_round = [round_bandwidth(round_bw, m["name"], t, r) for r in rounds]
            per_round = [b for b in per_round if b]
            # Without paired readings, the higher of the long readings before and after.
            bw = statistics.median(per_round) if per_round else max(r["median_gb_s"] for r in membw[t])
            row = {"model": m["name"], "type": m["info"]["weight_type"],
                   "embd": m["info"]["embd_type"], "size_mib": m["size_mib"], "threads": t,
                   "bytes_per_token": m["bytes_per_token"], "membw_gb_s": bw,
                   "fits_llc": m["fits_llc"], "errors": m["errors"]}
            fp = [b["median_gb_s"] for b in footprint_bw if b["model"] == m["name"] and b["threads"] == t]
            row["footprint_gb_s"] = statistics.median(fp) if fp else None
            row["cache_gain"] = cache_gain(footprint_bw, round_bw, m["name"], t)
            row["cache_served"] = m["fits_llc"] or (row["cache_gain"] or 0) >= CACHE_SERVED_GAIN
            for key in ("decode_tok_s", "decode0_tok_s", "prompt_tok_s"):
                for e in engines:
                    vals = [r[key] for r in runs if key in r and
                            r["model"] == m["name"] and r["engine"] == e and r["threads"] == t]
                    row[f"{key}:{e}"] = statistics.median(vals) if vals else None
                p, l = row.get(f"{key}:parallama"), row.get(f"{key}:llama.cpp")
                row[f"{key}:ratio"] = p / l if p and l else None
            row["kv_bytes_per_token"] = m["kv_bytes_per_token"]
            row["kv0_bytes_per_token"] = m.get("kv0_bytes_per_token")
            # Decode at depth P (after the prompt) and from an empty context (suffix 0).
            for key, sfx, kv_key in (("decode_tok_s", "", "kv_bytes_per_token"),
                                     ("decode0_tok_s", "0", "kv0_bytes_per_token")):
                for e in engines:
                    fracs, kv_fracs = [], []
                    for r in runs:
                        if r["model"] != m["name"] or r["engine"] != e or r["threads"] != t or key not in r:
                            continue
                        b = round_bandwidth(round_bw, m["name"], t, r["round"]) or bw
                        fracs.append(r[key] * m["bytes_per_token"] / (b * 1e9))
                        kv_fracs.append(r[key] * (m["bytes_per_token"] + (m.get(kv_key) or 0)) / (b * 1e9))
                    row[f"bw_frac{sfx}:{e}"] = statistics.median(fracs) if fracs else None
                    # Counting the KV cache each step also reads (not part of the issue's bound).
                    row[f"bw_frac{sfx}_kv:{e}"] = statistics.median(kv_fracs) if kv_fracs else None
                if sfx:  # empty context: the in-process paired readings, where the engine has them
                    for e in engines:
                        per_run = [paired_fraction(r["paired"], m["bytes_per_token"]) for r in runs
                                   if r["model"] == m["name"] and r["engine"] == e and r["threads"] == t
                                   and r.get("paired")]
                        row[f"bw_frac0_paired:{e}"] = statistics.median(per_run) if per_run else None
                # Targets of the issue: decode >= 1.2x llama.cpp and >= 70% of the bandwidth
                # bound (models beyond the caches only: neither within the last-level cache's
                # size nor streaming CACHE_SERVED_GAIN x faster than memory at their
                # footprint), prompt >= 1.0x llama.cpp (judged with the depth-P row).
                miss = []
                dr, pr, bf = row[f"{key}:ratio"], row["prompt_tok_s:ratio"], row.get(f"bw_frac{sfx}:parallama")
                if sfx and row.get("bw_frac0_paired:parallama") is not None:
                    bf = row["bw_frac0_paired:parallama"]
                if dr is not None and dr < 1.2:
                    miss.append("decode<1.2x")
                if bf is not None and not row["cache_served"] and bf < 0.7:
                    miss.append("bw<70%")
                if pr is not None and pr < 1.0 and not sfx:
                    miss.append("prompt<1.0x")
                tg = "n/a" if dr is None and bf is None else ("met" if not miss else " ".join(miss))
                if bf is not None and row["cache_served"]:
                    tg += "; bw n/a (cached)"
                row[f"targets{sfx}"] = tg
            rows.append(row)
    return rows


def suite_markdown(rows, args, models, membw, threads_list, sweep=None):
    f = lambda v, spec: "n/a" if v is None else format(v, spec)
    pct = lambda v: "n/a" if v is None else f"{100 * v:.0f}%"
    out = [f"Medians of {args.rounds} alternating rounds; prompt = one {args.prompt_tokens}-token "
           f"batch, decode = {args.gen_tokens} single-token steps after it. Bandwidth bound = "
           "weight bytes read per token / measured read bandwidth (`parallama membw`); "
           "bw GB/s = median over the rounds of the higher of the readings just before and "
           "after each round; bw frac = median over the rounds of decode / that round's bound. "
           "footprint GB/s = membw over a buffer the size of the weights read per token; where "
           f"it is >= {CACHE_SERVED_GAIN}x bw GB/s (\"cached\") the caches serve part of every "
           "token's reads, decode is not bound by memory bandwidth and the 70% target does not "
           f"apply. bw frac +KV counts the KV cache ({args.kv_type}) each decode step also reads (averaged "
           "over the steps), which the target's bound leaves out.", "",
           "| model | type | embd | MiB | thr | decode ours | decode llama.cpp | ratio | "
           f"pp{args.prompt_tokens} ours | pp{args.prompt_tokens} llama.cpp | ratio | "
           "bw GB/s | footprint GB/s | bw bound tok/s | bw frac ours | bw frac llama.cpp | "
           "bw frac +KV ours | targets |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        bound = r["membw_gb_s"] * 1e9 / r["bytes_per_token"]
        out.append(
            f"| {r['model']} | {r['type']} | {r['embd']} | {r['size_mib']:.0f} | {r['threads']} | "
            f"{f(r.get('decode_tok_s:parallama'), '.1f')} | {f(r.get('decode_tok_s:llama.cpp'), '.1f')} | "
            f"{f(r['decode_tok_s:ratio'], '.2f')} | {f(r.get('prompt_tok_s:parallama'), '.1f')} | "
            f"{f(r.get('prompt_tok_s:llama.cpp'), '.1f')} | {f(r['prompt_tok_s:ratio'], '.2f')} | "
            f"{r['membw_gb_s']:.1f} | {f(r['footprint_gb_s'], '.1f')}"
            f"{' (cached)' if r['cache_served'] and not r['fits_llc'] else ''} | "
            f"{bound:.0f} | {pct(r.get('bw_frac:parallama'))} | "
            f"{pct(r.get('bw_frac:llama.cpp'))} | {pct(r.get('bw_frac_kv:parallama'))} | "
            f"{r['targets']} |")
    if any(r.get("decode0_tok_s:parallama") for r in rows):
        out += ["", f"Decode from an empty context ({args.gen_tokens} single-token steps from position 0, "
                "llama-bench's tg): the steps read the weights and little else (bw frac +KV counts "
                "the KV cache they read, averaged over the steps). Same rounds and bandwidth "
                "readings as above. bw frac paired: the same steps again in groups, each against "
                "plain reads taken just before and after it in the same process (median over "
                "groups, then rounds); where present, the 70% target is judged on it.", "",
                "| model | type | thr | decode ours | decode llama.cpp | ratio | bw bound tok/s | "
                "bw frac ours | bw frac llama.cpp | bw frac +KV ours | bw frac paired ours | targets |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            bound = r["membw_gb_s"] * 1e9 / r["bytes_per_token"]
            out.append(
                f"| {r['model']} | {r['type']} | {r['threads']} | "
                f"{f(r.get('decode0_tok_s:parallama'), '.1f')} | {f(r.get('decode0_tok_s:llama.cpp'), '.1f')} | "
                f"{f(r.get('decode0_tok_s:ratio'), '.2f')} | {bound:.0f} | {pct(r.get('bw_frac0:parallama'))} | "
                f"{pct(r.get('bw_frac0:llama.cpp'))} | {pct(r.get('bw_frac0_kv:parallama'))} | "
                f"{pct(r.get('bw_frac0_paired:parallama'))} | {r.get('targets0', 'n/a')} |")
    out.append("")
    for t in threads_list:
        meds = ", ".join(f"{r['median_gb_s']:.2f}" for r in membw[t])
        out.append(f"- membw {t} thread(s), long readings before/after the models: medians {meds} GB/s")
    if sweep:
        for t in threads_list:
            pts = ", ".join(f"{p['size_mib']} MiB {p['median_gb_s']:.0f}" for p in sweep.get(t, []))
            out.append(f"- membw {t} thread(s) by buffer size (GB/s): {pts}")
    for m in models:
        note = f"- {m['name']}: {m['desc']}; {m['info']['n_params'] / 1e6:.0f}M params, " \
               f"{m['bytes_per_token'] / 1e6:.1f} MB of weights and " \
               f"{m['kv_bytes_per_token'] / 1e6:.1f} MB of KV cache read per decode step" \
               f"{' (fits the last-level cache)' if m['fits_llc'] else ''}"
        for e in m["errors"]:
            note += f"; {e}"
        out.append(note)
    return "\n".join(out)


def suite_plot(rows, engines, path):
    plt = pyplot()
    if plt is None:
        return
    panels = [("decode_tok_s", "decode tok/s (after the prompt)"), ("prompt_tok_s", "prompt tok/s"),
              ("bw_frac", "decode after the prompt / bandwidth bound"),
              ("bw_frac0", "decode from an empty context / bandwidth bound")]
    if any(r.get("bw_frac0_paired:parallama") is not None for r in rows):
        panels.append(("bw_frac0_paired", "decode from an empty context / paired bandwidth bound"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(8, 0.9 * len(rows) + 2), 3.25 * len(panels)))
    xs = list(range(len(rows)))
    labels = [f"{r['model']}\n{r['threads']} thr" for r in rows]
    for ax, (key, title) in zip(axes, panels):
        # Engines with values in this panel (llama.cpp has no paired readings).
        present = [e for e in engines if any(r.get(f"{key}:{e}") is not None for r in rows)]
        w = 0.8 / max(1, len(present))
        for i, e in enumerate(present):
            ax.bar([x + (i - (len(present) - 1) / 2) * w for x in xs],
                   [r.get(f"{key}:{e}") or 0 for r in rows], w, label=e)
        if key.startswith("bw_frac"):
            ax.axhline(0.7, color="gray", linestyle="--", linewidth=1, label="70% target")
        ax.set_xticks(xs, labels, fontsize=8)
        ax.set_title(title + " (median)")
        ax.set_yscale("linear" if key.startswith("bw_frac") else "log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}", file=sys.stderr)


def sweep_plot(sweep, models, path):
    """Read bandwidth against buffer size per thread count, the models' footprints marked."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(9, 5))
    for t, pts in sorted(sweep.items()):
        ax.plot([p["size_mib"] for p in pts], [p["median_gb_s"] for p in pts], marker="o",
                label=f"{t} thread(s)")
    for m in models:
        x = m["bytes_per_token"] / 1048576
        ax.axvline(x, color="gray", linestyle=":", linewidth=1)
        ax.text(x, ax.get_ylim()[1] * 0.97, m["name"], rotation=90, va="top", ha="right", fontsize=8)
    ax.set_xscale("log")
    sizes = sorted({p["size_mib"] for pts in sweep.values() for p in pts})
    ax.set_xticks(sizes, [str(v) for v in sizes])
    ax.minorticks_off()
    ax.set_xlabel("buffer streamed repeatedly (MiB); dotted: weight bytes per token of each model")
    ax.set_ylabel("read GB/s (median of passes)")
    ax.set_title("parallama membw by buffer size: beyond the knee, memory bandwidth")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}", file=sys.stderr)


def run_suite(args, engines, threads_list):
    """Builds the model set, measures bandwidth, runs every model x threads x round with the
    engines alternating, then reports medians against the bandwidth bound."""
    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models else list(SUITE_MODELS)
    for n in names:
        if n not in SUITE_MODELS:
            sys.exit(f"unknown model {n!r} (choose from {', '.join(SUITE_MODELS)})")
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"binary not found or not executable: {args.binary} (needed for synth and membw)")
    llc = llc_bytes()
    models = []
    for n in names:
        path = suite_model_path(args, n)
        bpt, info = weight_bytes_per_token(path)
        models.append({"name": n, "desc": SUITE_MODELS[n][0], "path": path, "info": info,
                       "size_mib": os.path.getsize(path) / 1048576, "bytes_per_token": bpt,
                       "kv_bytes_per_token": kv_bytes_per_token(info, args.prompt_tokens, args.gen_tokens,
                                                                args.kv_type),
                       "kv0_bytes_per_token": kv_bytes_per_token(info, 0, args.gen_tokens, args.kv_type),
                       "fits_llc": llc is not None and bpt <= llc, "errors": []})
        print(f"model {n}: {path} ({info['weight_type']}, {bpt / 1e6:.1f} MB/token)", file=sys.stderr)

    membw = {t: [measure_membw(args, t)] for t in threads_list}
    # Bandwidth by buffer size: where the caches stop serving a streamed working set.
    sweep = {t: [{"size_mib": mib, **measure_membw(args, t, size_mib=mib)} for mib in args.sweep_sizes]
             for t in threads_list}
    runs = []
    round_bw = []  # short readings: slot r is just before round r, slot r + 1 just after
    footprint_bw = []  # at each model's footprint, just before its first and after its last round
    for m in models:
        active = list(engines)
        # The discarded warm-up of each engine doubles as the check that the engine loads
        # the file; an engine that refuses it is reported and left out for this model.
        for e in engines:
            print(f"{m['name']}: warm-up {e} (discarded)", file=sys.stderr)
            try:
                run_json(engine_cmd(e, args, threads_list[0], m["path"]), args.timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as ex:
                msg = str(ex).strip().splitlines()[-1] if str(ex).strip() else type(ex).__name__
                m["errors"].append(f"{e} failed: {msg[:200]}")
                print(f"{m['name']}: {e} FAILED, left out: {ex}", file=sys.stderr)
                active.remove(e)
        for t in threads_list:
            round_bw.append(measure_membw(args, t, short=True, tag=(m["name"], t, 0)))
            footprint_bw.append(measure_membw(args, t, tag=(m["name"], t, 0), size_mib=footprint_mib(m)))
            for r in range(args.rounds):
                order = active if r % 2 == 0 else list(reversed(active))
                for e in order:
                    res = run_json(engine_cmd(e, args, t, m["path"]), args.timeout)
                    res.update({"engine": e, "threads": t, "round": r, "model": m["name"]})
                    runs.append(res)
                    paired = (f"  paired bw frac {100 * paired_fraction(res['paired'], m['bytes_per_token']):.0f}%"
                              if res.get("paired") else "")
                    print(f"{m['name']} threads={t} round={r + 1}/{args.rounds} {e:9s} prompt "
                          f"{res['prompt_tok_s']:8.1f} tok/s  decode {res['decode_tok_s']:7.1f} / "
                          f"{res.get('decode0_tok_s', 0):7.1f} (empty ctx) tok/s{paired}", file=sys.stderr)
                round_bw.append(measure_membw(args, t, short=True, tag=(m["name"], t, r + 1)))
            footprint_bw.append(measure_membw(args, t, tag=(m["name"], t, args.rounds),
                                              size_mib=footprint_mib(m)))
    for t in threads_list:
        membw[t].append(measure_membw(args, t))

    rows = suite_rows(models, runs, membw, engines, threads_list, round_bw, footprint_bw)
    print(suite_markdown(rows, args, models, membw, threads_list, sweep))
    if args.out:
        meta = {"suite": "kernels", "binary": args.binary, "threads": threads_list, "kv_type": args.kv_type,
                "rounds": args.rounds, "prompt_tokens": args.prompt_tokens,
                "gen_tokens": args.gen_tokens, "cpu": cpu_name(), "nproc": os.cpu_count(),
                "llc_bytes": llc, "platform": platform.platform(),
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "models": models, "membw": membw, "round_membw": round_bw,
                       "footprint_membw": footprint_bw, "membw_sweep": sweep,
                       "summary": rows, "runs": runs}, f, indent=1)
            f.write("\n")
        print(f"wrote {args.out}", file=sys.stderr)
    if args.plot:
        suite_plot(rows, engines, args.plot)
        if any(sweep.values()):
            sweep_plot(sweep, models, os.path.splitext(args.plot)[0] + "_membw.png")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "release", "parallama"))
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (worker: one)")
    ap.add_argument("--kv-type", choices=["f16", "q8_0"], default="f16",
                    help="KV cache type of both engines (q8_0: llama.cpp with flash attention)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--engines", default="parallama,llama.cpp", help="subset to run")
    ap.add_argument("--no-warmup", action="store_true", help="skip the discarded first invocation")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per invocation")
    ap.add_argument("--out", default=None, help="raw results JSON")
    ap.add_argument("--plot", default=None, help="bar chart PNG (needs matplotlib)")
    ap.add_argument("--suite", choices=["kernels"], default=None,
                    help="kernels: the model set of the CPU-kernel benchmark (see run_suite)")
    ap.add_argument("--models", default=None,
                    help="suite subset, comma-separated: " + ",".join(SUITE_MODELS))
    ap.add_argument("--synth-dir", default=SYNTH_DIR, help="cache of the synthetic models")
    ap.add_argument("--membw-mib", type=int, default=1024, help="membw buffer size (suite)")
    ap.add_argument("--membw-reps", type=int, default=10, help="membw passes (suite)")
    ap.add_argument("--membw-round-mib", type=int, default=256,
                    help="membw buffer size of the readings between rounds (suite)")
    ap.add_argument("--membw-round-reps", type=int, default=5,
                    help="membw passes of the readings between rounds (suite)")
    ap.add_argument("--paired-reads", type=int, default=None,
                    help="parallama: decode groups between in-process plain reads (suite default 8, "
                         "else 0 = off; see the docstring)")
    ap.add_argument("--membw-sweep", default="16,32,48,64,96,128,192,256,512,1024",
                    help="buffer sizes (MiB) of the bandwidth-by-size readings (suite; empty: none)")
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
    if min(args.membw_mib, args.membw_reps, args.membw_round_mib, args.membw_round_reps) < 1:
        sys.exit("--membw-mib, --membw-reps, --membw-round-mib and --membw-round-reps must be positive")
    try:
        args.sweep_sizes = [int(v) for v in args.membw_sweep.split(",") if v.strip()]
    except ValueError:
        sys.exit(f"--membw-sweep: comma-separated MiB sizes expected, got {args.membw_sweep!r}")
    if any(v < 1 for v in args.sweep_sizes):
        sys.exit("--membw-sweep sizes must be positive")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in engines:
        if e not in ("parallama", "llama.cpp"):
            sys.exit(f"unknown engine {e!r} (parallama, llama.cpp)")
    if "parallama" in engines and not os.access(args.binary, os.X_OK):
        sys.exit(f"binary not found or not executable: {args.binary} (build it, or --engines llama.cpp)")
    threads_list = [int(t) for t in args.threads.split(",")]
    if args.paired_reads is None:
        args.paired_reads = 8 if args.suite == "kernels" else 0
    if args.paired_reads < 0 or args.paired_reads > args.gen_tokens:
        sys.exit("--paired-reads must be in [0, --gen-tokens]")
    if args.suite == "kernels":
        run_suite(args, engines, threads_list)
        return

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
