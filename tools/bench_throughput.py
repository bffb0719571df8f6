#!/usr/bin/env python3
"""Batched throughput, side by side: parallama vs llama.cpp's llama-batched-bench.

For each parallel count N (--npl, default 8,32), both engines process N sequences of
128 prompt tokens and 128 generated tokens each, on the same model and thread count:

  llama.cpp  `llama-batched-bench -npp 128 -ntg 128 -npl 8,32 -c <max N * 256>` (one
             process per round covers every N; the tool's defaults otherwise, flash
             attention included). It prefills the N prompts (random ids) as one batch, then
             runs 128 decode steps of N tokens. Its "S t/s" (total) = N*(npp+ntg) / T, with
             T = T_PP + T_TG; we also derive its output rate N*ntg / T.
  parallama  `parallama bench throughput --num-prompts N --input-len 128 --output-len 128
             --max-num-seqs N --json` (one process per N and round): total_tok_s =
             (prompt_tokens + output_tokens) / elapsed, elapsed running from the first
             submission to the last generated token; output_tok_s = output_tokens / elapsed.

Every round starts fresh processes, and the engine order alternates from round to round.
Reported per N: medians over rounds of both totals and output rates, and the ratio
parallama/llama.cpp of total tok/s against the target (1.75x). A failing parallama
command is reported and skipped; llama.cpp's figures are still reported.

llama.cpp comes from the source tree in the PyPI sdist of llama-cpp-python (vendor/llama.cpp),
built offline under ~/.cache/parallama/llama.cpp/ when no binary is there (or --llama-bin DIR).

    python3 tools/bench_throughput.py --rounds 3 --out tp.json --plot tp.png
    python3 tools/bench_throughput.py --only llama       # llama.cpp side alone
"""
import argparse
import glob
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tarfile

CACHE = os.path.expanduser("~/.cache/parallama/llama.cpp")
DEFAULT_MODEL = os.path.expanduser("~/.cache/parallama/models/SmolLM2-135M-Instruct.Q4_1.gguf")
NPP = NTG = 128
TARGET = 1.75
CMAKE_OPTS = ["-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_USE_PREBUILT_UI=OFF",
              "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
              "-DLLAMA_OPENSSL=OFF", "-DGGML_NATIVE=ON"]
TARGETS = ["llama-batched-bench", "llama-server"]
COLS = ["pp", "tg", "pl", "n_kv", "t_pp", "speed_pp", "t_tg", "speed_tg", "t", "speed"]


def echo(cmd):
    print("+ " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)


def sh(cmd):
    echo(cmd)
    subprocess.run(cmd, check=True)


def ensure_llama_cpp(llama_bin=None, jobs=2):
    """Directory holding llama-batched-bench: --llama-bin, or CACHE/build/bin, built offline if missing."""
    if llama_bin:
        if not os.path.isfile(os.path.join(llama_bin, "llama-batched-bench")):
            sys.exit(f"no llama-batched-bench in {llama_bin}")
        return llama_bin
    bindir = os.path.join(CACHE, "build", "bin")
    if all(os.path.isfile(os.path.join(bindir, t)) for t in TARGETS):
        return bindir
    os.makedirs(CACHE, exist_ok=True)
    sdists = sorted(glob.glob(os.path.join(CACHE, "sdist", "llama_cpp_python-*.tar.gz")))
    if not sdists:
        sh([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "llama-cpp-python", "-d", os.path.join(CACHE, "sdist")])
        sdists = sorted(glob.glob(os.path.join(CACHE, "sdist", "llama_cpp_python-*.tar.gz")))
    name = os.path.basename(sdists[-1])[:-len(".tar.gz")]
    top = os.path.join(CACHE, name)
    if not os.path.isdir(top):
        with tarfile.open(sdists[-1]) as tf:
            tf.extractall(CACHE, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    src = os.path.join(top, "vendor", "llama.cpp")
    opts = list(CMAKE_OPTS)
    # The sdist has no git history; its changelog names the llama.cpp commit it vendors.
    log = os.path.join(top, "CHANGELOG.md")
    m = re.search(r"llama\.cpp@([0-9a-f]{7,40})", open(log).read()) if os.path.isfile(log) else None
    opts += ["-DLLAMA_BUILD_COMMIT=" + m.group(1)] if m else []
    build = os.path.join(CACHE, "build")
    sh(["cmake", "-S", src, "-B", build] + opts)
    sh(["cmake", "--build", build, "--target"] + TARGETS + ["-j", str(jobs)])
    return bindir


def llama_version(bindir):
    p = subprocess.run([os.path.join(bindir, "llama-batched-bench"), "--version"], capture_output=True, text=True)
    return " ".join((p.stdout + p.stderr).split())


def parse_batched_bench(text):
    """Rows of llama-batched-bench output, JSONL lines or the Markdown table, as dicts keyed by COLS."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            d = json.loads(line)
            rows.append({k: d[k] for k in COLS})
        elif re.match(r"^\|\s*\d", line):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.append({k: (float(v) if "." in v else int(v)) for k, v in zip(COLS, cells)})
    return rows


def run_llama(bindir, model, threads, npl, extra):
    exe = os.path.join(bindir, "llama-batched-bench")
    jsonl = "--output-format" in subprocess.run([exe, "--help"], capture_output=True, text=True).stdout
    cmd = [exe, "-m", model, "-t", str(threads), "-tb", str(threads), "-c", str(max(npl) * (NPP + NTG)),
           "-npp", str(NPP), "-ntg", str(NTG), "-npl", ",".join(map(str, npl))]
    cmd += (["--output-format", "jsonl"] if jsonl else []) + extra
    echo(cmd)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"cmd": cmd, "error": f"exit {p.returncode}: {p.stderr.strip()[-500:]}"}
    rows = {r["pl"]: r for r in parse_batched_bench(p.stdout)}
    for r in rows.values():
        r["output_tok_s"] = r["pl"] * r["tg"] / r["t"]
    missing = [n for n in npl if n not in rows]
    return {"cmd": cmd, "rows": rows, **({"error": f"no row for B={missing} (context too small?)"} if missing else {})}


def run_parallama(binary, model, threads, n, extra):
    cmd = [binary, "bench", "throughput", "-m", model, "-t", str(threads), "--num-prompts", str(n),
           "--input-len", str(NPP), "--output-len", str(NTG), "--max-num-seqs", str(n), "--json"] + extra
    echo(cmd)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        return {"cmd": cmd, "error": f"cannot run {binary}: {e}"}
    if p.returncode != 0:
        return {"cmd": cmd, "error": f"exit {p.returncode}: {(p.stderr or p.stdout).strip()[-500:]}"}
    objs = [ln for ln in p.stdout.splitlines() if ln.strip().startswith("{")]
    try:
        d = json.loads(objs[-1] if objs else p.stdout)
        return {"cmd": cmd, **d, "total_tok_s": float(d["total_tok_s"]),
                "output_tok_s": float(d["output_tok_s"])}
    except (ValueError, KeyError, TypeError) as e:
        return {"cmd": cmd, "error": f"unreadable JSON ({e!r}): {p.stdout.strip()[-300:]}"}


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, spec=".1f"):
    return "n/a" if x is None else format(x, spec)


def plot(path, npl, medians):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(6.5, 4))
    w = 0.38
    for i, (key, label) in enumerate([("llama_total_tok_s", "llama.cpp (llama-batched-bench)"),
                                       ("parallama_total_tok_s", "parallama (bench throughput)")]):
        xs = [j + (i - 0.5) * w for j in range(len(npl))]
        vals = [medians[str(n)][key] or 0 for n in npl]
        bars = ax.bar(xs, vals, w, label=label)
        ax.bar_label(bars, fmt=" %.0f", fontsize=8)
    for j, n in enumerate(npl):
        r = medians[str(n)]["ratio"]
        if r is not None:
            ax.annotate(f"{r:.2f}x", (j, 0), xytext=(0, -28), textcoords="offset points", ha="center", fontsize=9)
    ax.set_xticks(range(len(npl)), [f"N={n}" for n in npl])
    ax.set_ylabel("total tok/s (prompt + output), median")
    ax.set_title(f"Batched throughput, {NPP} in + {NTG} out per sequence (target {TARGET}x)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot written to {path}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--npl", default="8,32", help="parallel sequence counts N, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--binary", default="build/release/parallama")
    ap.add_argument("--llama-bin", default=None, help="directory with llama-batched-bench (default: build it)")
    ap.add_argument("--out", default="", help="write raw runs and medians as JSON")
    ap.add_argument("--plot", default="", help="write grouped bars as PNG (needs matplotlib)")
    ap.add_argument("--parallama-args", default="", help='extra arguments, e.g. "--tp 2"')
    ap.add_argument("--llama-args", default="", help='extra llama-batched-bench arguments, e.g. "-fa on"')
    ap.add_argument("--only", choices=["both", "llama", "parallama"], default="both")
    a = ap.parse_args()
    npl = [int(x) for x in a.npl.split(",") if x.strip()]
    engines = ["llama", "parallama"] if a.only == "both" else [a.only]
    bindir = ensure_llama_cpp(a.llama_bin) if "llama" in engines else None
    versions = {"llama.cpp": llama_version(bindir) if bindir else None}
    if os.getloadavg()[0] > 1.0:  # llama.cpp's spinning thread pool suffers most from a shared CPU
        print(f"WARNING: machine busy (load {os.getloadavg()[0]:.2f}): figures will be noisy", file=sys.stderr)
    runs = []
    for r in range(a.rounds):
        for eng in (engines if r % 2 == 0 else engines[::-1]):
            if eng == "llama":
                res = run_llama(bindir, a.model, a.threads, npl, shlex.split(a.llama_args))
                runs.append({"round": r, "engine": "llama.cpp", "load1": os.getloadavg()[0], **res})
                for n in npl:
                    row = res.get("rows", {}).get(n)
                    print(f"round {r} llama.cpp  N={n}: " + (f"total {row['speed']:.1f} tok/s, output "
                          f"{row['output_tok_s']:.1f} tok/s" if row else f"FAILED: {res.get('error')}"),
                          file=sys.stderr, flush=True)
            else:
                for n in npl:
                    res = run_parallama(a.binary, a.model, a.threads, n, shlex.split(a.parallama_args))
                    runs.append({"round": r, "engine": "parallama", "n": n, "load1": os.getloadavg()[0], **res})
                    print(f"round {r} parallama  N={n}: " + (f"total {res['total_tok_s']:.1f} tok/s, output "
                          f"{res['output_tok_s']:.1f} tok/s" if "error" not in res else f"FAILED: {res['error']}"),
                          file=sys.stderr, flush=True)
    medians = {}
    for n in npl:
        lrows = [x["rows"][n] for x in runs if x["engine"] == "llama.cpp" and n in x.get("rows", {})]
        pruns = [x for x in runs if x["engine"] == "parallama" and x["n"] == n and "error" not in x]
        m = {"llama_total_tok_s": med([x["speed"] for x in lrows]),
             "llama_output_tok_s": med([x["output_tok_s"] for x in lrows]),
             "llama_tg_tok_s": med([x["speed_tg"] for x in lrows]),
             "parallama_total_tok_s": med([x["total_tok_s"] for x in pruns]),
             "parallama_output_tok_s": med([x["output_tok_s"] for x in pruns]),
             "llama_rounds": len(lrows), "parallama_rounds": len(pruns)}
        ok = m["llama_total_tok_s"] and m["parallama_total_tok_s"] is not None
        m["ratio"] = m["parallama_total_tok_s"] / m["llama_total_tok_s"] if ok else None
        m["target_met"] = (m["ratio"] >= TARGET) if ok else None
        medians[str(n)] = m
    print(f"\nModel {os.path.basename(a.model)}, {a.threads} threads, {NPP} prompt + {NTG} output tokens "
          f"per sequence, medians of {a.rounds} rounds. llama.cpp: {versions['llama.cpp']}\n")
    print("| N | llama.cpp total tok/s | parallama total tok/s | ratio | target 1.75x "
          "| llama.cpp output tok/s | parallama output tok/s |")
    print("|---:|---:|---:|---:|:---:|---:|---:|")
    for n in npl:
        m = medians[str(n)]
        met = "n/a" if m["target_met"] is None else ("met" if m["target_met"] else "not met")
        print(f"| {n} | {fmt(m['llama_total_tok_s'])} | {fmt(m['parallama_total_tok_s'])} | "
              f"{fmt(m['ratio'], '.2f')} | {met} | {fmt(m['llama_output_tok_s'])} | {fmt(m['parallama_output_tok_s'])} |")
    failed = sorted({x["error"] for x in runs if x["engine"] == "parallama" and "error" in x})
    if failed:
        print(f"\nparallama failed ({len(failed)} distinct errors), first: {failed[0]}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"model": a.model, "threads": a.threads, "npl": npl, "npp": NPP, "ntg": NTG,
                       "rounds": a.rounds, "target": TARGET, "versions": versions,
                       "runs": [{**x, "rows": {str(k): v for k, v in x["rows"].items()}} if "rows" in x else x
                                for x in runs], "medians": medians}, f, indent=1)
        print(f"raw runs written to {a.out}", file=sys.stderr)
    if a.plot:
        plot(a.plot, npl, medians)


if __name__ == "__main__":
    main()
