#!/usr/bin/env python3
"""tp=2 x pp=2 over two emulated hosts (scripts/emulate_hosts.sh), with TP
inside the hosts (--map-by slot: each pipeline stage on one host) against TP
across them (--map-by node: every all-reduce crosses the link), with the link
unshaped, at 1 Gbit/s and at 100 Mbit/s. For each model and layout:
  * decode latency at batch 1 (`parallama generate`, greedy, ignore EOS) and
    the communication time per decoded token (the run report of rank 0);
  * output tokens/s of `parallama bench throughput` (all requests at once).
Writes a JSON file, a Markdown table (stdout) and a plot. Needs root.

    sudo tools/study_multihost.py [--binary build/release/parallama]
        [--models q4_1,1b_q4_0] [--rates none,1gbit,100mbit] [--out docs/study-multihost]
"""
import argparse
import json
import os
import subprocess
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench import SUITE_MODELS, suite_model_path  # noqa: E402

EMU = os.path.join(ROOT, "scripts", "emulate_hosts.sh")
PREFIX = "pls"
HOSTS = f"{PREFIX}h1:2,{PREFIX}h2:2"
# Per model: (decode tokens, throughput requests, input len, output len); the
# 1B model is ~8x the work per token, so its requests are shorter. With TP
# across a 100 Mbit/s link every token moves ~0.3 MB (default) or ~0.7 MB (1B)
# through it: those runs use 16 + 16 tokens per request.
WORK = {"q4_1": (128, 200, 64, 64), "1b_q4_0": (32, 200, 16, 16)}
SLOW_WORK = {"q4_1": (32, 200, 16, 16), "1b_q4_0": (16, 200, 16, 16)}
MAPS = {"slot": "TP inside hosts", "node": "TP across hosts"}


def emu(*args):
    subprocess.run([EMU, *args], check=True, capture_output=True, text=True)


def on_host1(cmd, timeout):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    r = subprocess.run([EMU, "run", "--prefix", PREFIX, "--", *cmd], capture_output=True, text=True,
                       timeout=timeout, env=env)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s" % (" ".join(cmd), r.returncode, r.stderr[-3000:]))
    return json.loads(r.stdout)


def rx_tx(ns):
    out = subprocess.run(["ip", "-n", ns, "-s", "link", "show", "eth0"], capture_output=True, text=True).stdout
    lines = out.splitlines()
    rx = tx = 0
    for i, l in enumerate(lines):
        if l.strip().startswith("RX:"):
            rx = int(lines[i + 1].split()[0])
        if l.strip().startswith("TX:"):
            tx = int(lines[i + 1].split()[0])
    return rx + tx


def measure(binary, model, name, map_by, rate):
    n_dec, n_req, in_len, out_len = (SLOW_WORK if rate == "100mbit" and map_by == "node" else WORK)[name]
    common = ["--tp", "2", "--pp", "2", "-t", "1", "-m", model, "--hosts", HOSTS, "--map-by", map_by]
    b0 = rx_tx(f"{PREFIX}h2")
    g = on_host1([binary, "generate", *common, "-n", str(n_dec), "--ignore-eos", "-p", "Once upon a time",
                  "--json"], 900)
    b1 = rx_tx(f"{PREFIX}h2")
    t = on_host1([binary, "bench", "throughput", *common, "--num-prompts", str(n_req), "--input-len", str(in_len),
                  "--output-len", str(out_len), "--json"], 3600)
    tokens = g["timings"]["decode_tokens"] + g["timings"]["prompt_tokens"]
    ranks = g["parallel"]["ranks"]
    return {
        "decode_ms_per_token": 1000.0 / g["timings"]["decode_tok_s"],
        # Mean over the ranks of the time inside communication calls (waiting for
        # the other stage included) per generated token.
        "comm_ms_per_token": 1000.0 * sum(r["comm_s"] for r in ranks) / len(ranks) / g["timings"]["decode_tokens"],
        "link_kib_per_token": (b1 - b0) / 1024.0 / max(1, tokens),
        "output_tok_s": t["output_tok_s"],
        "throughput_elapsed_s": t["elapsed_s"],
        "work": {"decode_tokens": n_dec, "requests": n_req, "input_len": in_len, "output_len": out_len},
    }


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = sorted({r["model"] for r in results}, key=list(WORK).index)
    rates = list(dict.fromkeys(r["rate"] for r in results))
    fig, axes = plt.subplots(2, len(models), figsize=(5.5 * len(models), 7), squeeze=False)
    for j, m in enumerate(models):
        for i, (key, label) in enumerate([("decode_ms_per_token", "decode latency, batch 1 (ms/token, lower is better)"),
                                          ("output_tok_s", "bench throughput (output tok/s, higher is better)")]):
            ax = axes[i][j]
            width = 0.38
            for k, (mp, desc) in enumerate(MAPS.items()):
                ys = [next((r[key] for r in results if r["model"] == m and r["rate"] == rt and r["map_by"] == mp),
                           0) for rt in rates]
                xs = [x + (k - 0.5) * width for x in range(len(rates))]
                bars = ax.bar(xs, ys, width, label=desc)
                ax.bar_label(bars, fmt="%.3g", fontsize=8)
            ax.set_xticks(range(len(rates)), [r if r != "none" else "unshaped" for r in rates])
            ax.set_title(f"{m}: {label}", fontsize=9)
            ax.legend(fontsize=8)
    fig.suptitle("tp=2 x pp=2 on 2 emulated hosts x 2 ranks (1 thread each)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "release", "parallama"))
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/parallama/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--synth-dir", default=os.path.expanduser("~/.cache/parallama/synth"))
    ap.add_argument("--models", default="q4_1,1b_q4_0")
    ap.add_argument("--rates", default="none,1gbit,100mbit")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "study-multihost"))
    ap.add_argument("--append", action="store_true", help="keep the results in OUT.json, measure only the rest")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("study_multihost: needs root (network namespaces)")
    names = a.models.split(",")
    paths = {n: suite_model_path(types.SimpleNamespace(model=a.model, synth_dir=a.synth_dir, binary=a.binary), n)
             for n in names}
    results = []
    if a.append and os.path.exists(a.out + ".json"):
        with open(a.out + ".json") as f:
            results = json.load(f)["results"]
    done = {(r["model"], r["rate"], r["map_by"]) for r in results}
    total = len(names) * len(MAPS) * len(a.rates.split(","))
    t0 = time.time()
    for rate in a.rates.split(","):
        subprocess.run([EMU, "down", "--prefix", PREFIX], capture_output=True)
        emu("up", "2", "--prefix", PREFIX, *([] if rate == "none" else ["--rate", rate]))
        try:
            for n in names:
                for mp in MAPS:
                    if (n, rate, mp) in done:
                        continue
                    r = {"model": n, "rate": rate, "map_by": mp, **measure(a.binary, paths[n], n, mp, rate)}
                    results.append(r)
                    with open(a.out + ".json", "w") as f:  # as it goes: a long run keeps what it measured
                        json.dump({"models": {n: SUITE_MODELS[n][0] for n in names}, "results": results}, f,
                                  indent=1)
                    print("[%d/%d %.0f s] %s %s %s: %.1f ms/token, comm %.2f ms/token, %.1f KiB/token over the link, "
                          "%.0f output tok/s" % (len(results), total, time.time() - t0, n, rate, mp,
                                                 r["decode_ms_per_token"], r["comm_ms_per_token"] or 0,
                                                 r["link_kib_per_token"], r["output_tok_s"]), file=sys.stderr)
        finally:
            subprocess.run([EMU, "down", "--prefix", PREFIX], capture_output=True)
    with open(a.out + ".json", "w") as f:
        json.dump({"models": {n: SUITE_MODELS[n][0] for n in names}, "results": results}, f, indent=1)
    plot(results, a.out + ".png")
    print("| model | link | layout | decode ms/token (batch 1) | comm ms/token | link KiB/token | output tok/s |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in results:
        print("| %s | %s | %s | %.1f | %.2f | %.1f | %.0f |" % (
            r["model"], "unshaped" if r["rate"] == "none" else r["rate"], MAPS[r["map_by"]],
            r["decode_ms_per_token"], r["comm_ms_per_token"] or 0, r["link_kib_per_token"], r["output_tok_s"]))


if __name__ == "__main__":
    main()
