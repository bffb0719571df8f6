#!/usr/bin/env python3
"""parallama plan against published GPU figures (docs/study-planner-gpu.md).

For every entry of data/plan/published.json this builds the `parallama plan`
command that reproduces the entry's conditions (model, GPU, layout, batch,
lengths, rate), runs it, and compares the predicted figure with the published
one:

  throughput   TensorRT-LLM's gptSessionBenchmark runs ONE static batch of B
               requests with fixed lengths; throughput = B x output_len / the
               batch's whole time, per GPU. Simulated as B requests all at once
               (--rate 1e9), --num-prompts B --max-num-seqs B, and
               --max-num-batched-tokens min(B x input_len, 8192) (see CHUNK).
  ttft         gptSessionBenchmark at batch 1, output length 1: one prompt's
               context phase. Simulated as 3 lone requests (--rate 0.01, so
               each arrives to an idle engine), --output-len 1,
               --max-num-batched-tokens = input_len (the whole prompt in one step).
  seed         TensorRT-LLM issue #1144: LLaMA-13B on 4 x A100-40GB at 3 req/s,
               p90 E2E latency per layout and whether PP=4 keeps up. The
               workload is not stated; a grid of input/output lengths is swept.

The engine efficiencies (mem, flops at small and large token counts, a fixed
cost per layer per step) are fitted on a calibration subset -- the LLaMA-2-7B
TP=1 points -- by minimising the squared log error (Nelder-Mead over the
binary, --efficiency on a temporary file); every other point is held out.
Writes data/plan/efficiency-gpu.json, docs/study-planner-gpu.{json,md,png}.

    build/venv/bin/python tools/study_planner_gpu.py
"""
import argparse
import concurrent.futures as cf
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUBLISHED = os.path.join(ROOT, "data/plan/published.json")
EFF_OUT = os.path.join(ROOT, "data/plan/efficiency-gpu.json")
# Tokens per step for the throughput entries. gptSessionBenchmark runs the
# whole batch's context phase in one pass; our scheduler chunks it. 8192 tokens
# is deep in the compute-bound regime on an A100 (2 x 8192 flop per weight
# byte against a machine balance of ~150), so chunking changes the predicted
# prefill time only by the per-step costs, while a bigger budget would take KV
# room: the planner reserves f32 activations for max-num-batched-tokens
# (1.4 GB at 8192 tokens for LLaMA-2-7B, 21 GB at B x input_len = 163840 for
# the 70B 1280 x 128 entry) which TensorRT-LLM does not.
CHUNK = 8192
LINK = {"a100-40gb": "nvlink3", "a100-80gb": "nvlink3", "h100-sxm": "nvlink4", "h200": "nvlink4"}
# Seed (issue #1144): what the issue leaves unstated is swept.
SEED_GRID = [(128, 128), (128, 512), (256, 256), (512, 128), (512, 256), (512, 512), (1024, 128), (1024, 256),
             (1024, 512), (2048, 128), (2048, 256), (2048, 512), (128, 1024), (512, 1024)]
SEED_PROMPTS = 300          # 100 s of arrivals at 3 req/s
SEED_SCHED = (256, 2048)    # max-num-seqs, max-num-batched-tokens: plan's defaults (the engine's limits are unstated)
# The engine's batch limit is unstated too: a few workloads at smaller max-num-seqs.
SEED_BATCH_GRID = [(128, 512), (256, 256), (512, 512), (1024, 256)]
SEED_BATCH_LIMITS = [16, 24, 32, 64]

# The highest memory fraction the fit may use: sustained streaming reaches about
# 90% of an HBM datasheet figure, not all of it. Unbounded (1.0), the fit goes to
# 1.0 and makes up for it with a larger fixed cost; that is the variant
# "mem up to 1.0" in the results.
MEM_MAX = 0.9
# The fitted parameters: (key, low, high, start). The fixed cost is per layer
# (kernel launches and the gaps between them scale with the layers a step runs;
# for a fixed model it cannot be told apart from a per-step cost, see VARIANTS).
PARAMS = [("mem", 0.3, MEM_MAX, 0.8), ("flops_lo", 0.05, 1.0, 0.4), ("flops_hi", 0.2, 1.0, 0.7),
          ("per_layer_overhead_s", 0.0, 1e-3, 1e-4)]
FLOPS_CURVE_TOKENS = (128, 4096)  # the flops fraction is flops_lo at <= 128 tokens, flops_hi at >= 4096


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def efficiency_of(p, overhead_per="layer"):
    """Efficiency JSON (plan --efficiency) of a parameter dict."""
    e = {"mem": p["mem"], "flops": p["flops_hi"],
         "flops_curve": [[FLOPS_CURVE_TOKENS[0], p["flops_lo"]], [FLOPS_CURVE_TOKENS[1], p["flops_hi"]]]}
    if overhead_per == "layer":
        e["per_layer_overhead_s"] = p["per_layer_overhead_s"]
    else:  # the same cost per step of a 32-layer model, charged per step
        e["step_overhead_s"] = p["per_layer_overhead_s"] * 32
    for k in ("comm", "attn"):
        if k in p:
            e[k] = p[k]
    return e


class Planner:
    def __init__(self, binary, tmpdir, workers):
        self.binary = binary
        self.tmpdir = tmpdir
        self.pool = cf.ThreadPoolExecutor(max_workers=workers)
        self.calls = 0
        self._n = 0

    def eff_file(self, eff):
        self._n += 1
        path = os.path.join(self.tmpdir, f"eff{self._n}.json")
        with open(path, "w") as f:
            json.dump(eff, f)
        return path

    def run(self, args):
        self.calls += 1
        out = subprocess.run([self.binary, "plan", *args, "--json"], check=True, capture_output=True, text=True)
        return json.loads(out.stdout)

    def map(self, fn, items):
        return list(self.pool.map(fn, items))


def gpus(e):
    return e["tp"] * e["pp"]


def plan_args(e, eff_path, num_prompts_factor=1):
    """The plan arguments reproducing entry e's conditions, and the row's key."""
    base = ["--model-name", e["model"], "--dtype", e.get("dtype", "fp16"), "--gpu", e["gpu"],
            "--gpus-per-node", str(gpus(e)), "--intra-node", LINK.get(e["gpu"], "nvlink3")]
    if eff_path:
        base += ["--efficiency", eff_path]
    m = e["metric"]
    if m == "output_tok_s_per_gpu" or m == "output_tok_s":
        b = e["batch"]
        return base + ["--rate", "1e9", "--input-len", str(e["input_len"]), "--output-len", str(e["output_len"]),
                       "--num-prompts", str(b * num_prompts_factor), "--max-num-seqs", str(b),
                       "--max-num-batched-tokens", str(min(b * e["input_len"], CHUNK))]
    if m == "ttft_ms":
        return base + ["--rate", "0.01", "--input-len", str(e["input_len"]), "--output-len", "1",
                       "--num-prompts", "3", "--max-num-seqs", "1",
                       "--max-num-batched-tokens", str(max(e["input_len"], 16))]
    raise ValueError(m)


def seed_args(inp, out, eff_path, max_num_seqs=SEED_SCHED[0]):
    a = ["--model-name", "llama-2-13b", "--dtype", "fp16", "--gpu", "a100-40gb", "--gpus-per-node", "4",
         "--intra-node", "nvlink3", "--rate", "3", "--input-len", str(inp), "--output-len", str(out),
         "--num-prompts", str(SEED_PROMPTS), "--max-num-seqs", str(max_num_seqs),
         "--max-num-batched-tokens", str(SEED_SCHED[1])]
    if eff_path:
        a += ["--efficiency", eff_path]
    return a


def row_of(rows, tp, pp):
    for r in rows:
        if r["tp"] == tp and r["pp"] == pp:
            return r
    raise KeyError((tp, pp))


def predict(pl, e, eff_path, num_prompts_factor=1):
    r = row_of(pl.run(plan_args(e, eff_path, num_prompts_factor)), e["tp"], e["pp"])
    if not r["fits"]:
        return None, r
    if e["metric"] == "output_tok_s_per_gpu":
        return r["output_tok_s"] / gpus(e), r
    if e["metric"] == "output_tok_s":
        return r["output_tok_s"], r
    return r["median_ttft_ms"], r


def is_point(e):
    return e["metric"] in ("output_tok_s_per_gpu", "output_tok_s", "ttft_ms")


def calibration(e):
    return e["model"] == "llama-2-7b" and e["tp"] == 1 and e["pp"] == 1 and is_point(e)


# -- fitting ---------------------------------------------------------------------------------------------

def to_params(x, params):
    p = {}
    for (k, lo, hi, _), xi in zip(params, x):
        p[k] = lo + (hi - lo) / (1 + math.exp(-xi))
    return p


def from_params(p, params):
    x = []
    for k, lo, hi, _ in params:
        f = min(max((p[k] - lo) / (hi - lo), 1e-6), 1 - 1e-6)
        x.append(math.log(f / (1 - f)))
    return x


def nelder_mead(f, x0, step=0.6, iters=160, tol=1e-7):
    n = len(x0)
    pts = [list(x0)] + [[x0[j] + (step if j == i else 0) for j in range(n)] for i in range(n)]
    vals = [f(p) for p in pts]
    for _ in range(iters):
        order = sorted(range(n + 1), key=lambda i: vals[i])
        pts = [pts[i] for i in order]
        vals = [vals[i] for i in order]
        if vals[-1] - vals[0] < tol:
            break
        c = [sum(p[j] for p in pts[:-1]) / n for j in range(n)]
        xr = [c[j] + (c[j] - pts[-1][j]) for j in range(n)]
        fr = f(xr)
        if fr < vals[0]:
            xe = [c[j] + 2 * (c[j] - pts[-1][j]) for j in range(n)]
            fe = f(xe)
            pts[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = xr, fr
        else:
            xc = [c[j] + 0.5 * (pts[-1][j] - c[j]) for j in range(n)]
            fc = f(xc)
            if fc < vals[-1]:
                pts[-1], vals[-1] = xc, fc
            else:
                for i in range(1, n + 1):
                    pts[i] = [pts[0][j] + 0.5 * (pts[i][j] - pts[0][j]) for j in range(n)]
                    vals[i] = f(pts[i])
    i = min(range(n + 1), key=lambda i: vals[i])
    return pts[i], vals[i]


def fit(pl, cal, overhead_per="layer", params=None):
    params = params or PARAMS
    def loss_of(p):
        path = pl.eff_file(efficiency_of(p, overhead_per))
        preds = pl.map(lambda e: predict(pl, e, path)[0], cal)
        return sum((math.log(v / e["value"]) if v else 5.0) ** 2 for v, e in zip(preds, cal))

    cache = {}

    def f(x):
        key = tuple(round(v, 9) for v in x)
        if key not in cache:
            cache[key] = loss_of(to_params(x, params))
        return cache[key]

    x0 = from_params({k: s for k, _, _, s in params}, params)
    best_x, best = nelder_mead(f, x0)
    best_x, best = nelder_mead(f, best_x, step=0.25, iters=100)  # a restart around the optimum
    return to_params(best_x, params), best, len(cache)


# -- evaluation ------------------------------------------------------------------------------------------

def evaluate(pl, entries, eff_path, num_prompts_factor=1):
    pts = [e for e in entries if is_point(e)]
    res = pl.map(lambda e: predict(pl, e, eff_path, num_prompts_factor), pts)
    out = []
    for e, (v, row) in zip(pts, res):
        item = {"id": e["id"], "model": e["model"], "gpu": e["gpu"], "tp": e["tp"], "pp": e["pp"],
                "workload": workload(e), "metric": e["metric"], "published": e["value"], "predicted": v,
                "error": (v / e["value"] - 1) if v else None,
                "set": "calibration" if calibration(e) else "held-out",
                "engine": e.get("engine", ""), "source": e["source"],
                "preemptions": row.get("preemptions"), "fits": row["fits"],
                "command": "build/release/parallama plan " + " ".join(plan_args(e, "data/plan/efficiency-gpu.json",
                                                                                   num_prompts_factor)) + " --json"}
        if e["metric"] == "ttft_ms":
            item["note"] = "median TTFT of lone requests"
        out.append(item)
    return out


def workload(e):
    if e["metric"] == "ttft_ms":
        return f"batch 1, {e['input_len']} in"
    if "batch" in e:
        return f"batch {e['batch']}, {e['input_len']}/{e['output_len']}"
    return e.get("workload", "")


def med(items, key=lambda i: abs(i["error"])):
    v = [key(i) for i in items if i["error"] is not None]
    return statistics.median(v) if v else None


def summarize(items):
    s = {}
    for name, sel in (("calibration", [i for i in items if i["set"] == "calibration"]),
                      ("held_out", [i for i in items if i["set"] == "held-out"]),
                      ("all", items)):
        errs = [abs(i["error"]) for i in sel if i["error"] is not None]
        s[name] = {"n": len(errs), "median_abs_error": statistics.median(errs) if errs else None,
                   "max_abs_error": max(errs) if errs else None,
                   "within_20pct": sum(x <= 0.2 for x in errs),
                   "median_signed_error": statistics.median([i["error"] for i in sel if i["error"] is not None])
                   if errs else None}
    return s


def seed_study(pl, eff_path, grid=None, max_num_seqs=SEED_SCHED[0]):
    """p90 E2E latency of the three layouts over the grid of workloads."""
    def one(w):
        rows = pl.run(seed_args(w[0], w[1], eff_path, max_num_seqs))
        d = {}
        for name, tp, pp in (("tp4", 4, 1), ("tp2pp2", 2, 2), ("pp4", 1, 4)):
            r = row_of(rows, tp, pp)
            d[name] = {"fits": r["fits"], "sustains_rate": r.get("sustains_rate"),
                       "p90_e2el_s": r["p90_e2el_ms"] / 1e3 if r["fits"] else None,
                       "p50_e2el_s": r["p50_e2el_ms"] / 1e3 if r["fits"] else None,
                       "median_ttft_ms": r.get("median_ttft_ms"), "median_tpot_ms": r.get("median_tpot_ms"),
                       "pace": r.get("pace"), "output_tok_s": r.get("output_tok_s"),
                       "stage_busy": r.get("stage_busy")}
        ratio = d["tp2pp2"]["p90_e2el_s"] / d["tp4"]["p90_e2el_s"]
        return {"input_len": w[0], "output_len": w[1], "max_num_seqs": max_num_seqs, "layouts": d,
                "ratio_tp2pp2_over_tp4": ratio,
                "ratio_error": ratio / (10.2 / 6.4) - 1, "pp4_falls_behind": not d["pp4"]["sustains_rate"],
                "tp4_p90_error": d["tp4"]["p90_e2el_s"] / 6.4 - 1}
    return pl.map(one, grid or SEED_GRID)


def pick_seed_workload(grid):
    """The grid workload whose predicted TP4 p90 is nearest (in log) the published 6.4 s."""
    return min(grid, key=lambda g: abs(math.log(g["layouts"]["tp4"]["p90_e2el_s"] / 6.4)))


def seed_items(g, published):
    by = {e["id"]: e for e in published}
    w = f"{g['input_len']} in / {g['output_len']} out (assumed: the grid point nearest seed-tp4's 6.4 s)"
    cmd = ("build/release/parallama plan " + " ".join(seed_args(g["input_len"], g["output_len"],
                                                                   "data/plan/efficiency-gpu.json")) + " --json")
    out = []
    for sid, lay in (("seed-tp4", "tp4"), ("seed-tp2pp2", "tp2pp2")):
        e = by[sid]
        v = g["layouts"][lay]["p90_e2el_s"]
        out.append({"id": sid, "model": e["model"], "gpu": e["gpu"], "tp": e["tp"], "pp": e["pp"], "workload": w,
                    "metric": "p90_e2el_s", "published": e["value"], "predicted": v, "error": v / e["value"] - 1,
                    "set": "workload-matched" if sid == "seed-tp4" else "held-out", "source": e["source"],
                    "engine": "Triton + TensorRT-LLM (in-flight batching)", "command": cmd})
    e = by["seed-pp4"]
    out.append({"id": "seed-pp4", "model": e["model"], "gpu": e["gpu"], "tp": 1, "pp": 4, "workload": w,
                "metric": "sustains_rate", "published": False, "predicted": g["layouts"]["pp4"]["sustains_rate"],
                "error": None, "set": "held-out", "source": e["source"],
                "engine": "Triton + TensorRT-LLM (in-flight batching)", "command": cmd,
                "note": f"pace {g['layouts']['pp4']['pace']:.2f}, p90 {g['layouts']['pp4']['p90_e2el_s']:.1f} s"})
    return out


def seed_capacity(pl, eff_path, inp, out):
    """For one workload: each layout's p90 and keep-up verdict over a range of rates, and the highest rate
    it keeps up with (it and every lower rate)."""
    rates = [1, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6, 8]

    def one(rate):
        a = seed_args(inp, out, eff_path)
        a[a.index("--rate") + 1] = f"{rate:g}"
        a[a.index("--num-prompts") + 1] = str(max(SEED_PROMPTS, int(100 * rate)))
        return pl.run(a)
    runs = pl.map(one, rates)
    res = {}
    for name, tp, pp in (("tp4", 4, 1), ("tp2pp2", 2, 2), ("pp4", 1, 4)):
        pts, sustained, ok = [], 0.0, True
        for rate, rows in zip(rates, runs):
            r = row_of(rows, tp, pp)
            pts.append({"rate": rate, "p90_e2el_s": r["p90_e2el_ms"] / 1e3, "keeps_up": r["sustains_rate"],
                        "pace": r["pace"]})
            ok = ok and r["sustains_rate"]
            if ok:
                sustained = rate
        res[name] = {"sustained_rate": sustained, "runs": pts}
    return {"input_len": inp, "output_len": out, "layouts": res}


def scaled(eff, knob, k):
    """eff with one knob scaled by k: "flops" (flops and every flops_curve point) or "mem"."""
    e = json.loads(json.dumps(eff))
    if knob == "flops":
        e["flops"] = min(e["flops"] * k, 1.0)
        e["flops_curve"] = [[n, min(f * k, 1.0)] for n, f in e["flops_curve"]]
    else:
        e["mem"] = min(e["mem"] * k, 1.0)
    return e


def needed_factor(pl, e, eff, knob):
    """The factor on one efficiency that makes entry e's prediction equal the published figure (bisection in
    log k over [1/4, 4]); None when even the ends do not reach it (or the knob is capped at 1)."""
    def err(k):
        v = predict(pl, e, pl.eff_file(scaled(eff, knob, k)))[0]
        return math.log(v / e["value"]) if v else None
    lo, hi = 0.25, 4.0
    elo, ehi = err(lo), err(hi)
    if elo is None or ehi is None or elo * ehi > 0:
        return None
    # Throughput rises with k, latency falls: the sign of err flips once either way.
    for _ in range(10):
        mid = math.sqrt(lo * hi)
        em = err(mid)
        if (em > 0) == (elo > 0):
            lo, elo = mid, em
        else:
            hi = mid
    return math.sqrt(lo * hi)


def allreduce_cost_sweep(pl, entries, eff, costs_us=(0, 10, 25, 50, 100)):
    """The planner's all-reduce has no fixed cost per collective (NCCL's base latency, a custom all-reduce's
    launch and barrier); per_layer_overhead_s was fitted on TP=1 points, which have none. Emulate a fixed cost
    c per all-reduce by adding 2c (two all-reduces per layer) to per_layer_overhead_s for the TP > 1 entries
    only: the held-out TP > 1 errors against c. A diagnostic of a missing term, not part of the fit."""
    pts = [e for e in entries if is_point(e) and e["tp"] > 1]
    out = []
    for c in costs_us:
        e2 = dict(eff, per_layer_overhead_s=eff["per_layer_overhead_s"] + 2 * c * 1e-6)
        path = pl.eff_file(e2)
        preds = pl.map(lambda e: predict(pl, e, path)[0], pts)
        errs = {e["id"]: v / e["value"] - 1 for e, v in zip(pts, preds)}
        out.append({"allreduce_fixed_cost_us": c, "errors": errs,
                    "median_abs_error": statistics.median(abs(x) for x in errs.values())})
    return out


# -- output ----------------------------------------------------------------------------------------------

def fmt(v, metric):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "keeps up" if v else "falls behind"
    if metric == "p90_e2el_s":
        return f"{v:.2f} s"
    if metric == "ttft_ms":
        return f"{v:.1f} ms"
    return f"{v:.0f}"


METRIC_NAME = {"output_tok_s_per_gpu": "out tok/s/GPU", "ttft_ms": "TTFT", "p90_e2el_s": "p90 E2EL",
               "sustains_rate": "keeps up at 3 req/s"}


def short_source(s):
    if "issues/1144" in s:
        return "[TRT-LLM #1144](https://github.com/NVIDIA/TensorRT-LLM/issues/1144)"
    if "v0.9.0" in s:
        return "[TRT-LLM v0.9.0 perf](https://github.com/NVIDIA/TensorRT-LLM/blob/v0.9.0/docs/source/performance.md)"
    return ("[TRT-LLM 138f96d perf](https://github.com/NVIDIA/TensorRT-LLM/blob/"
            "138f96d45f90b9667426f7c47297d8c06bafac73/docs/source/performance.md)")


def table(items):
    lines = ["| id | model | GPU | layout | workload | metric | published | predicted | error | set | source |",
             "|---|---|---|---|---|---|---:|---:|---:|---|---|"]
    for i in items:
        lay = f"TP{i['tp']}" + (f" x PP{i['pp']}" if i["pp"] > 1 else "")
        if i["tp"] == 1 and i["pp"] > 1:
            lay = f"PP{i['pp']}"
        err = "-" if i["error"] is None else f"{100 * i['error']:+.0f}%"
        if i["metric"] == "sustains_rate":
            err = "agrees" if i["predicted"] == i["published"] else "disagrees"
        wl = i["workload"].split(" (")[0]
        lines.append(f"| {i['id']} | {i['model']} | {i['gpu']} | {lay} | {wl} | {METRIC_NAME.get(i['metric'], i['metric'])} | "
                     f"{fmt(i['published'], i['metric'])} | {fmt(i['predicted'], i['metric'])} | {err} | {i['set']} | "
                     f"{short_source(i['source'])} |")
    return "\n".join(lines)


def pct(x):
    return "-" if x is None else f"{100 * x:.0f}%"


def spct(x):
    """A signed percentage, with no "-0%"."""
    v = round(100 * x)
    return f"{v:+d}%" if v else "0%"


def plot(items, path, defaults=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.2))
    groups = [("output_tok_s_per_gpu", "output throughput (tok/s per GPU)"), ("ttft_ms", "time to first token (ms) / p90 E2E latency (s)")]
    styles = {"calibration": ("s", "tab:blue"), "held-out": ("o", "tab:orange"), "workload-matched": ("D", "tab:green")}
    for ax, (metric, title) in zip(axes, groups):
        sel = [i for i in items if (i["metric"] == metric or (metric == "ttft_ms" and i["metric"] == "p90_e2el_s"))
               and i["predicted"] is not None]
        vals = [v for i in sel for v in (i["published"], i["predicted"])]
        if defaults:
            vals += [d["predicted"] for d in defaults if d["metric"] == metric and d["predicted"]]
        lo, hi = min(vals) * 0.6, max(vals) * 1.6
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, label="predicted = published")
        ax.fill_between([lo, hi], [lo * 0.8, hi * 0.8], [lo * 1.2, hi * 1.2], color="0.88", label="within 20%")
        if defaults:
            d = [x for x in defaults if x["metric"] == metric and x["predicted"]]
            ax.scatter([x["published"] for x in d], [x["predicted"] for x in d], marker="x", color="0.55", s=22,
                       label="built-in default efficiencies")
        for s, (marker, color) in styles.items():
            for m2, fill in ((metric, True), ("p90_e2el_s", False)):
                pts = [i for i in sel if i["set"] == s and i["metric"] == m2]
                if not pts:
                    continue
                lab = s + (" (seed, p90 E2EL in s)" if m2 == "p90_e2el_s" else "")
                ax.scatter([i["published"] for i in pts], [i["predicted"] for i in pts], marker=marker, s=40,
                           facecolors=color if fill else "none", edgecolors=color, label=lab)
                for i in pts:
                    if abs(i["error"]) > 0.2 or m2 == "p90_e2el_s":
                        ax.annotate(i["id"], (i["published"], i["predicted"]), fontsize=6, xytext=(3, -8),
                                    textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("published")
        ax.set_ylabel("predicted by parallama plan (fitted efficiencies)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("parallama plan against published TensorRT-LLM figures (A100 FP16; squares: calibration, "
                 "LLaMA-2-7B TP1; circles: held out)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown(res):
    s = res["summary"]
    fe = res["efficiency"]
    seed = res["seed"]
    g = seed["chosen"]
    L = []
    L.append("## Against published GPU figures\n")
    L.append(f"`parallama plan` predicts {s['all']['n']} published TensorRT-LLM figures for LLaMA-2-7B and "
             "LLaMA-2-70B in FP16 on A100-80GB SXM GPUs: throughput per GPU at a given batch and lengths, and "
             "the first-token latency at batch 1. The sources are the `A100 GPUs (FP16)` tables of "
             "TensorRT-LLM's `docs/source/performance.md`, v0.6.1 and v0.9.0. Those throughputs are **per GPU**. At "
             "commit 77d24b5 the same v0.6.1 table, with the same numbers, is headed 'out tok/s/GPU', and so are "
             "the v0.8.0 and v0.9.0 tables. The planner predicts a total, so the script divides it by TP x PP. "
             "Before this study, data/plan/published.json read the 70B TP4 and 7B TP2 entries as totals. They "
             "are now per GPU, and the v0.9.0 entries are added. TensorRT-LLM measured them with "
             "`gptSessionBenchmark`, which runs one static batch of B requests with fixed lengths, so each "
             "entry is simulated as B requests arriving together (`--rate 1e9 --num-prompts B --max-num-seqs B`) "
             f"with `--max-num-batched-tokens min(B x input, {CHUNK})`. At {CHUNK} tokens a prefill chunk is "
             "deeply compute-bound on an A100 (about 8192 flop per weight byte against a machine balance of "
             "about 150), so chunking changes the prefill time only by the per-step costs. A budget the size "
             "of the whole batch would make the planner reserve f32 activations (21 GB per rank for the 70B "
             "1280 x 128 entry) that TensorRT-LLM does not need. Each first-token latency is the median TTFT "
             "of lone requests (`--rate 0.01 --output-len 1`, the whole prompt in one step).\n")
    L.append("**Fit.** Four efficiencies are fitted on the calibration subset, the "
             f"{s['calibration']['n']} LLaMA-2-7B TP=1 points: `mem`, the fraction of peak flops at 128 and at "
             "4096 tokens or more (`flops_curve`, interpolated in log tokens), and `per_layer_overhead_s`. The "
             "fit minimises the squared log error with Nelder-Mead over the binary, using `--efficiency` on a "
             f"temporary file ({res['fit']['evaluations']} evaluations). `comm`, `attn`, `mem_util` and "
             "`kv_bytes` keep their defaults. The TP=1 points carry no communication, so they cannot fit "
             "`comm`. For one model, a fixed cost per layer and a fixed cost per step cannot be told apart; "
             "the cost is charged per layer, chosen before looking at the held-out points (see the "
             "variants below). Every other point is held out: the 7B TP=2 point, all 70B TP=4 and TP=8 points, "
             "and the seed.\n")
    L.append("| efficiency | fitted | built-in default |\n|---|---:|---:|")
    L.append(f"| mem (fraction of 2039 GB/s that weight and KV streams reach) | {fe['mem']:.3f} | 0.8 |")
    L.append(f"| flops at <= 128 tokens (fraction of 312 TFLOPS) | {fe['flops_curve'][0][1]:.3f} | 0.6 |")
    L.append(f"| flops at >= 4096 tokens | {fe['flops_curve'][1][1]:.3f} | 0.6 |")
    L.append(f"| per_layer_overhead_s | {fe['per_layer_overhead_s'] * 1e6:.1f} us | 0 |")
    L.append("| comm, step_overhead_s, token_overhead_s, attn, mem_util | defaults (0.8, 0, 0, = mem, 0.9) | |\n")
    L.append(f"**Errors** (|predicted / published - 1|): calibration median {pct(s['calibration']['median_abs_error'])} "
             f"(n={s['calibration']['n']}, max {pct(s['calibration']['max_abs_error'])}); held-out median "
             f"{pct(s['held_out']['median_abs_error'])} (n={s['held_out']['n']}, max {pct(s['held_out']['max_abs_error'])}, "
             f"{s['held_out']['within_20pct']} within 20%); all published GPU points {pct(s['all']['median_abs_error'])} "
             f"(n={s['all']['n']}, {s['all']['within_20pct']} within 20%). The target was a median of at most 20%. "
             f"With the built-in defaults (no fit) the median over all points is "
             f"{pct(res['defaults']['summary']['all']['median_abs_error'])}. The seed's p90 latencies are not in "
             "these medians; they are reported below.\n")
    L.append(table(res["points"] + res["seed_items"]) + "\n")
    L.append("Throughput is out tok/s per GPU. 'set' is calibration, held-out, or workload-matched: seed-tp4's "
             "unstated workload was chosen so that its predicted p90 is nearest the published one, so seed-tp4 "
             "is not a test.\n")
    L.append("**Variants** (the same fit procedure, each reported on all points):\n")
    L.append("| variant | calibration median | held-out median | all |\n|---|---:|---:|---:|")
    for v in res["variants"]:
        vs = v["summary"]
        L.append(f"| {v['name']} | {pct(vs['calibration']['median_abs_error'])} | "
                 f"{pct(vs['held_out']['median_abs_error'])} | {pct(vs['all']['median_abs_error'])} |")
    L.append("")
    L.append("### Where it is off, and why\n")
    L.append(res["analysis"] + "\n")
    L.append("## Against the seed\n")
    L.append("TensorRT-LLM issue #1144 gives LLaMA-13B on 4 x A100-40GB SXM behind Triton with in-flight batching, "
             "at 3 requests/s: TP=4 p90 E2E latency 6.4 s, TP=2 x PP=2 10.2 s, and PP=4 could not sustain the "
             "rate. The issue does not state the input and output lengths, the dataset or the engine's batch "
             "limits. A search of the issue text and its thread, and of the Triton backend's benchmark script, "
             "which takes the lengths as required arguments, did not find them. So the script sweeps them, with "
             f"the fitted efficiencies, {SEED_PROMPTS} Poisson arrivals at 3 req/s, and plan's default scheduler "
             f"limits (max-num-seqs {SEED_SCHED[0]}, max-num-batched-tokens {SEED_SCHED[1]}). The published "
             "ratio TP2xPP2 / TP4 is 10.2 / 6.4 = 1.59; the target is to be within 25% of it.\n")
    L.append("| input / output | TP4 p90 | TP2xPP2 p90 | PP4 p90 | ratio TP2xPP2/TP4 | vs 1.59 | PP4 keeps up (pace) |")
    L.append("|---|---:|---:|---:|---:|---:|---|")
    for r in seed["grid"]:
        d = r["layouts"]
        mark = " **(chosen)**" if r is g or (r["input_len"] == g["input_len"] and r["output_len"] == g["output_len"]) else ""
        L.append(f"| {r['input_len']} / {r['output_len']}{mark} | {d['tp4']['p90_e2el_s']:.2f} s | "
                 f"{d['tp2pp2']['p90_e2el_s']:.2f} s | {d['pp4']['p90_e2el_s']:.2f} s | {r['ratio_tp2pp2_over_tp4']:.2f} | "
                 f"{100 * r['ratio_error']:+.0f}% | {'yes' if d['pp4']['sustains_rate'] else 'no'} ({d['pp4']['pace']:.2f}) |")
    L.append("")
    L.append(res["seed_text"] + "\n")
    L.append("| max-num-seqs | input / output | TP4 p90 | TP2xPP2 p90 | ratio | TP4 keeps up | PP4 keeps up (pace) |")
    L.append("|---:|---|---:|---:|---:|---|---|")
    for r in sorted(seed["batch_limit_grid"], key=lambda r: (r["input_len"], r["output_len"], r["max_num_seqs"])):
        d = r["layouts"]
        L.append(f"| {r['max_num_seqs']} | {r['input_len']} / {r['output_len']} | {d['tp4']['p90_e2el_s']:.2f} s | "
                 f"{d['tp2pp2']['p90_e2el_s']:.2f} s{'' if d['tp2pp2']['sustains_rate'] else ' (behind)'} | "
                 f"{r['ratio_tp2pp2_over_tp4']:.2f} | {'yes' if d['tp4']['sustains_rate'] else 'no'} | "
                 f"{'yes' if d['pp4']['sustains_rate'] else 'no'} ({d['pp4']['pace']:.2f}) |")
    L.append("")
    L.append("### Reproduce\n")
    L.append("```\n"
             "build/venv/bin/python tools/study_planner_gpu.py\n```\n")
    L.append("It writes data/plan/efficiency-gpu.json and docs/study-planner-gpu.{json,md,png}, and takes about "
             f"{res['elapsed_s']:.0f} s on 2 cores ({res['plan_calls']} plan runs). Each point's `parallama plan` "
             "command, with the fitted efficiencies, is in docs/study-planner-gpu.json under `command`, for example:\n")
    L.append("```\n" + res["points"][0]["command"] + "\n```\n")
    return "\n".join(L)


def analysis_text(res):
    """The paragraphs on where the fit is off and why, with the numbers of this run."""
    it = {i["id"]: i for i in res["points"]}
    dflt = {i["id"]: i for i in res["defaults"]["points"]}
    var = {v["name"]: v for v in res["variants"]}
    fe = res["efficiency"]
    diag = res["diagnostics"]
    sweep = {x["allreduce_fixed_cost_us"]: x for x in diag["allreduce_fixed_cost_sweep"]}
    e = lambda i: spct(it[i]["error"])
    ed = lambda i: spct(dflt[i]["error"])
    step = next(v for n, v in var.items() if n.startswith("fixed cost per step"))
    memv = next(v for n, v in var.items() if n.startswith("mem allowed"))
    wave = next(v for n, v in var.items() if "2B" in n)
    ho_tp = [k for k in sweep[0]["errors"]]
    nf = diag["needed_factor"]
    P = []
    P.append(
        f"*The fixed cost.* Without it, under the built-in defaults, the batch-1 first-token latencies at 128 tokens "
        f"are far too short: 7B {ed('trt05-7b-ttft-128')}, 70B TP4 {ed('trt05-70b-ttft-128-tp4')}. The roofline "
        f"of a 128-token LLaMA-2-7B step is about 7 ms (13.5 GB of weights at 2039 GB/s), and TensorRT-LLM "
        f"measured 16 ms. The fit finds {fe['per_layer_overhead_s'] * 1e6:.0f} us per layer "
        f"({fe['per_layer_overhead_s'] * 32e3:.1f} ms per 7B step) and {fe['flops_curve'][0][1]:.2f} of peak "
        f"flops at 128 tokens, against {fe['flops_curve'][1][1]:.2f} at 4096 tokens or more. Charged per step "
        f"instead (the same {fe['per_layer_overhead_s'] * 32e3:.1f} ms at 32 layers), the cost does not grow with "
        f"the 70B's 80 layers. The held-out median then rises from "
        f"{pct(res['summary']['held_out']['median_abs_error'])} to "
        f"{pct(step['summary']['held_out']['median_abs_error'])}, with 70B TP4 TTFT-128 at "
        f"{100 * (step['points']['trt05-70b-ttft-128-tp4'] / 47 - 1):+.0f}%. Kernel launches and the gaps between "
        f"them scale with the layers a step runs, which is why the cost is charged per layer.")
    P.append(
        f"*Memory efficiency at its bound.* `mem` ends at the fit's upper bound of {MEM_MAX}. Allowed up to 1.0 "
        f"(the datasheet bandwidth), the fit goes to {memv['efficiency']['mem']:.2f}, with a larger fixed cost of "
        f"{memv['efficiency']['per_layer_overhead_s'] * 1e6:.0f} us per layer and errors of "
        f"{pct(memv['summary']['calibration']['median_abs_error'])} / "
        f"{pct(memv['summary']['held_out']['median_abs_error'])} (calibration / held-out). Decode steps at large "
        f"batches come out faster than 'streaming at 90% plus a fixed cost' allows, so the split between "
        f"bandwidth and fixed cost is not well determined by these points; 0.9 is kept as the physical limit. "
        f"Simulating two waves of requests (`--num-prompts 2B`) instead of one static batch changes the median "
        f"by under a point ({pct(wave['summary']['all']['median_abs_error'])}).")
    P.append(
        f"*Tensor-parallel decode is predicted too fast.* The decode-heavy TP>1 points are all over-predicted: "
        f"7B TP2 2048/2048 {e('trt061-7b-2048-2048-tp2')}, 70B TP4 2048/2048 {e('trt090-70b-2048-2048-tp4')}, "
        f"70B TP8 128/2048 {e('trt090-70b-128-2048-tp8')}, 70B TP4 128/2048 (v0.6.1) "
        f"{e('trt061-70b-128-2048-tp4')}. The prefill-heavy TP>1 throughputs are within "
        f"{100 * max(abs(it[i]['error']) for i in ('trt061-70b-128-128-tp4', 'trt061-70b-2048-128-tp4', 'trt090-70b-128-128-tp4', 'trt090-70b-2048-128-tp4')):.0f}%. The cost model's ring "
        f"all-reduce has no fixed cost per collective: NCCL's base latency, or a custom all-reduce's launch and "
        f"barrier. The fixed cost that was fitted is per layer, on TP=1 points, which have no all-reduce. To "
        f"emulate the missing term, the script adds 2c (two all-reduces per layer) to the per-layer cost of the "
        f"TP>1 entries. This is a diagnostic, not a fit. The held-out TP>1 median goes from "
        f"{pct(sweep[0]['median_abs_error'])} (c = 0) to {pct(sweep[25]['median_abs_error'])} at c = 25 us and "
        f"{pct(sweep[50]['median_abs_error'])} at 50 us. At 50 us the 7B TP2 point is at "
        f"{spct(sweep[50]['errors']['trt061-7b-2048-2048-tp2'])} and 70B 2048/2048 at "
        f"{spct(sweep[50]['errors']['trt090-70b-2048-2048-tp4'])}, but 70B TTFT-128 overshoots "
        f"({spct(sweep[50]['errors']['trt090-70b-ttft-128-tp4'])}), and at 100 us the median rises again "
        f"({pct(sweep[100]['median_abs_error'])}). So a fixed cost of roughly 25-50 us per all-reduce (about "
        f"4-8 ms per 70B step) is the missing term these points ask for; the planner would need it as a separate "
        f"efficiency (per collective, scaled by the number of TP ranks), not as part of per_layer_overhead_s. "
        f"The v0.6.1 70B 128/2048 point is still {100 * sweep[50]['errors']['trt061-70b-128-2048-tp4']:+.0f}% "
        f"at 50 us. To match it alone, the flops efficiency would have to be x"
        f"{nf['trt061-70b-128-2048-tp4']['flops']:.2f} or the memory efficiency x"
        f"{nf['trt061-70b-128-2048-tp4']['mem']:.2f}. Its batch of 240 x 2176 tokens is also more KV than the "
        f"planner's pool holds ({it['trt061-70b-128-2048-tp4']['preemptions']} preemptions by recompute; "
        f"TensorRT-LLM fits it with less reserved). That makes the prediction slower, not faster, so it is not "
        f"the cause. The published number may reflect a v0.6.1 generation-attention kernel for grouped-query "
        f"attention that did worse than the roofline; that cannot be checked from the table.")
    tp8 = nf.get("trt090-70b-ttft-2048-tp8", {}).get("flops")
    P.append(
        f"*Tensor parallelism narrows the matrices.* 70B TTFT at 2048 tokens is {e('trt05-70b-ttft-2048-tp4')} on "
        f"TP4 but {e('trt090-70b-ttft-2048-tp8')} on TP8. To match, the TP8 prefill needs the flops efficiency "
        f"x{tp8:.2f}, about {fe['flops_curve'][1][1] * tp8:.2f} of peak instead of "
        f"{fe['flops_curve'][1][1]:.2f}. The cost model's flops fraction depends only on the tokens in a step, "
        f"but each rank multiplies matrices 1/tp as wide (1024 output columns per rank for 70B's 8192 at TP8), "
        f"which run further from peak. A flops fraction that also depended on the per-rank width would capture "
        f"this; one point does not fit it." if tp8 else "")
    return "\n\n".join(x for x in P if x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/release/parallama"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/study-planner-gpu"))
    ap.add_argument("--efficiency-out", default=EFF_OUT)
    ap.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2))
    ap.add_argument("--no-variants", action="store_true", help="skip the variant fits (faster)")
    a = ap.parse_args()
    t0 = time.time()
    with open(PUBLISHED) as f:
        published = json.load(f)["entries"]
    cal = [e for e in published if calibration(e)]
    with tempfile.TemporaryDirectory() as d:
        pl = Planner(a.binary, d, a.workers)
        # Built-in defaults: an empty efficiency object (data/plan/efficiency-gpu.json would be read otherwise).
        defaults_path = pl.eff_file({})
        defaults = evaluate(pl, published, defaults_path)
        log(f"defaults: median |err| {summarize(defaults)['all']['median_abs_error']:.3f}")

        p, loss, nev = fit(pl, cal)
        p = {k: float(f"{v:.3g}") for k, v in p.items()}  # written and evaluated rounded
        eff = efficiency_of(p)
        log(f"fit: {p} loss {loss:.4f} ({nev} evaluations, {time.time() - t0:.0f} s)")
        eff_path = pl.eff_file(eff)
        items = evaluate(pl, published, eff_path)
        summ = summarize(items)
        log(f"fitted: calibration {summ['calibration']['median_abs_error']:.3f}, held-out "
            f"{summ['held_out']['median_abs_error']:.3f}, all {summ['all']['median_abs_error']:.3f}")

        variants = []
        if not a.no_variants:
            # (1) the fixed cost charged per step instead of per layer (same at 32 layers)
            pv, lv, _ = fit(pl, cal, overhead_per="step")
            iv = evaluate(pl, published, pl.eff_file(efficiency_of(pv, "step")))
            variants.append({"name": "fixed cost per step (step_overhead_s) instead of per layer",
                             "efficiency": efficiency_of(pv, "step"), "loss": lv, "summary": summarize(iv),
                             "points": {i["id"]: i["predicted"] for i in iv}})
            # (2) the memory fraction allowed up to the datasheet figure
            pm, lm, _ = fit(pl, cal, params=[("mem", 0.3, 1.0, 0.8)] + PARAMS[1:])
            im = evaluate(pl, published, pl.eff_file(efficiency_of(pm)))
            variants.append({"name": "mem allowed up to 1.0 (the datasheet bandwidth)",
                             "efficiency": efficiency_of(pm), "loss": lm, "summary": summarize(im),
                             "points": {i["id"]: i["predicted"] for i in im}})
            # (3) two waves of requests (num-prompts 2B) instead of one static batch
            i2 = evaluate(pl, published, eff_path, num_prompts_factor=2)
            variants.append({"name": "fitted efficiencies, throughput entries with --num-prompts 2B",
                             "efficiency": eff, "summary": summarize(i2),
                             "points": {i["id"]: i["predicted"] for i in i2}})
            # (4) built-in defaults, no fit
            variants.append({"name": "built-in defaults (mem 0.8, flops 0.6, comm 0.8, no overheads), no fit",
                             "efficiency": {}, "summary": summarize(defaults),
                             "points": {i["id"]: i["predicted"] for i in defaults}})

        log(f"variants done ({time.time() - t0:.0f} s)")
        grid = seed_study(pl, eff_path)
        chosen = pick_seed_workload(grid)
        sitems = seed_items(chosen, published)
        grid_defaults = seed_study(pl, defaults_path)
        capacity = seed_capacity(pl, eff_path, chosen["input_len"], chosen["output_len"])
        batch_grid = [g for n in SEED_BATCH_LIMITS for g in seed_study(pl, eff_path, SEED_BATCH_GRID, n)]
        log(f"seed done ({time.time() - t0:.0f} s)")

        # Diagnostics: what one efficiency would have to be for the held-out points off by more than 10%,
        # and a fixed cost per all-reduce (a term the cost model leaves out).
        by_id = {e["id"]: e for e in published}
        needed = {}
        for i in items:
            if i["set"] == "held-out" and i["error"] is not None and abs(i["error"]) > 0.1:
                e = by_id[i["id"]]
                needed[i["id"]] = {k: needed_factor(pl, e, eff, k) for k in ("flops", "mem")}
        ar_sweep = allreduce_cost_sweep(pl, published, eff)
        calls = pl.calls

    fit_info = {
        "calibration_entries": [e["id"] for e in cal],
        "held_out_entries": [e["id"] for e in published if not calibration(e)],
        "seed_note": "seed-tp4's unstated workload is chosen so that its predicted p90 is nearest the published "
                     "6.4 s (docs/study-planner-gpu.md, 'Against the seed'); seed-tp2pp2 and seed-pp4 are tests",
        "loss_sum_sq_log_error": loss, "evaluations": nev,
        "method": "Nelder-Mead on logistic-bounded parameters, minimising sum over the calibration entries of "
                  "log(predicted / published)^2; then a restart around the optimum",
        "median_abs_error": {k: v["median_abs_error"] for k, v in summ.items()},
        "max_abs_error": {k: v["max_abs_error"] for k, v in summ.items()},
        "errors": {i["id"]: round(i["error"], 4) for i in items if i["error"] is not None},
    }
    eff_doc = {"about": ("Engine efficiencies of a GPU serving engine (TensorRT-LLM FP16 on A100 SXM) for parallama "
                         "plan --gpu: read when --efficiency is not given. Fitted by tools/study_planner_gpu.py to "
                         "the LLaMA-2-7B TP=1 entries of data/plan/published.json (TensorRT-LLM v0.6.1 and v0.9.0 "
                         "throughput and first-token latency, A100-80GB); every other entry held out. "
                         "See docs/study-planner-gpu.md."), **eff, "fit": fit_info}
    with open(a.efficiency_out, "w") as f:
        json.dump(eff_doc, f, indent=1)
        f.write("\n")

    res = {"about": "parallama plan against published GPU figures; written by tools/study_planner_gpu.py",
           "binary": os.path.relpath(a.binary, ROOT), "efficiency": eff, "fit": fit_info,
           "summary": summ, "points": items, "variants": variants,
           "defaults": {"summary": summarize(defaults), "points": defaults},
           "seed": {"grid": grid, "chosen": chosen, "grid_with_defaults": grid_defaults,
                    "published": {"tp4_p90_s": 6.4, "tp2pp2_p90_s": 10.2, "ratio": 10.2 / 6.4,
                                  "pp4": "could not sustain 3 req/s"},
                    "rate": 3.0, "num_prompts": SEED_PROMPTS, "max_num_seqs": SEED_SCHED[0],
                    "max_num_batched_tokens": SEED_SCHED[1], "capacity": capacity,
                    "batch_limit_grid": batch_grid},
           "seed_items": sitems,
           "diagnostics": {"needed_factor": needed, "allreduce_fixed_cost_sweep": ar_sweep}}
    res["analysis"] = analysis_text(res)
    res["seed_text"] = seed_text(res)
    res["elapsed_s"] = time.time() - t0
    res["plan_calls"] = calls
    with open(a.out + ".json", "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    plot(items + sitems, a.out + ".png", defaults)
    with open(a.out + ".md", "w") as f:
        f.write(markdown(res))
    log(f"wrote {a.out}.{{json,md,png}} and {a.efficiency_out} in {res['elapsed_s']:.0f} s ({calls} plan runs)")


def capx(c):
    top = c["runs"][-1]["rate"]
    return f"at least {top:g} req/s" if c["sustained_rate"] >= top else f"{c['sustained_rate']:g} req/s"


def seed_text(res):
    sd = res["seed"]
    g = sd["chosen"]
    grid = sd["grid"]
    ratios = [r["ratio_tp2pp2_over_tp4"] for r in grid]
    within = [r for r in grid if abs(r["ratio_error"]) <= 0.25]
    behind = [r for r in grid if r["pp4_falls_behind"]]
    dr = [r["ratio_tp2pp2_over_tp4"] for r in sd["grid_with_defaults"]]
    d = g["layouts"]
    cap = sd["capacity"]["layouts"]
    fe = res["efficiency"]
    w = 13.0e9 * 2 / 4 / (1555e9 * fe["mem"])  # 13B fp16 weights per GPU over 4 GPUs, streamed
    o = 40 * fe["per_layer_overhead_s"]
    b32 = next((x for x in sd["batch_limit_grid"] if x["max_num_seqs"] == 32 and x["input_len"] == g["input_len"]
                and x["output_len"] == g["output_len"]), None)
    P = []
    P.append(
        f"**Ratio.** With the workload chosen as the grid point whose predicted TP4 p90 is nearest 6.4 s "
        f"({g['input_len']} in / {g['output_len']} out), the predicted p90s are TP4 {d['tp4']['p90_e2el_s']:.2f} s, "
        f"TP2xPP2 {d['tp2pp2']['p90_e2el_s']:.2f} s and PP4 {d['pp4']['p90_e2el_s']:.2f} s. The ratio TP2xPP2 / TP4 "
        f"is {g['ratio_tp2pp2_over_tp4']:.2f} against the published 1.59 ({100 * g['ratio_error']:+.0f}%). Over the "
        f"whole grid it runs from {min(ratios):.2f} to {max(ratios):.2f}, and {len(within)} of {len(grid)} "
        f"workloads are within 25% of 1.59. With the built-in defaults (no fixed costs) it would be "
        f"{min(dr):.2f} to {max(dr):.2f}. The fixed cost per layer is what brings it down. In light decode, TP4 "
        f"streams a quarter of the weights per token (W = {w * 1e3:.1f} ms at {fe['mem']:.2f} x 1555 GB/s) and pays "
        f"40 layers' fixed cost (O = {o * 1e3:.1f} ms). TP2xPP2 streams a quarter twice, once per stage, and pays "
        f"20 + 20 layers. The per-token ratio is then (2W + O) / (W + O) = {(2 * w + o) / (w + o):.2f}, and 2 "
        f"with O = 0. Prompts and queueing move the p90 ratio a little off that.")
    P.append(
        f"**PP4.** With plan's default batch limit ({SEED_SCHED[0]} sequences), PP4 is predicted to keep up with "
        f"3 req/s for {len(grid) - len(behind)} of {len(grid)} workloads. It falls behind only at "
        + ", ".join(f"{r['input_len']}/{r['output_len']}" for r in behind) + ". At the chosen workload it keeps up "
        f"(pace {d['pp4']['pace']:.2f}): its predicted capacity is {cap['pp4']['sustained_rate']:g} req/s, "
        f"against {capx(cap['tp4'])} for TP4 and {capx(cap['tp2pp2'])} for TP2xPP2 (rates tried: 1 to 8), with the p90 climbing from {cap['pp4']['runs'][4]['p90_e2el_s']:.0f} s at 3 req/s to "
        f"{cap['pp4']['runs'][5]['p90_e2el_s']:.0f} s at 3.5 req/s. So the model ranks PP4 last, with the lowest "
        f"capacity, but with a generous batch limit it does not reproduce 'cannot sustain 3 req/s'.")
    if b32:
        dd = b32["layouts"]
        P.append(
            f"**The batch limit.** The issue does not give the engine's batch limit either, and the verdict hangs on "
            f"it. Under PP the scheduler spreads the running sequences over pp micro-batches, so each PP4 micro-batch "
            f"carries at most a quarter of the limit, and each stage streams its weights once per micro-batch. With "
            f"`--max-num-seqs 32` at {g['input_len']}/{g['output_len']}, the model is consistent with all three published "
            f"observations: TP4 {dd['tp4']['p90_e2el_s']:.2f} s "
            f"({100 * (dd['tp4']['p90_e2el_s'] / 6.4 - 1):+.0f}% against 6.4 s), TP2xPP2 "
            f"{dd['tp2pp2']['p90_e2el_s']:.2f} s ({100 * (dd['tp2pp2']['p90_e2el_s'] / 10.2 - 1):+.0f}% against "
            f"10.2 s, ratio {b32['ratio_tp2pp2_over_tp4']:.2f}), and PP4 falls behind (pace {dd['pp4']['pace']:.2f}). "
            f"The table below shows the limit against the verdict. In TensorRT-LLM the limit is a build-time "
            f"setting of the engine (max_batch_size), and the issue does not give it, so this shows the model is "
            f"consistent with the observations, not that it is confirmed by them.")
    return "\n\n".join(P)


if __name__ == "__main__":
    main()
