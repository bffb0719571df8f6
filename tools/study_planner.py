#!/usr/bin/env python3
"""The planner against our own measurements (docs/STUDY-planner.md).

For every layout and rate of the TP-versus-PP study (docs/study-tp-vs-pp-*.json:
both models, one host and emulated hosts, shaped links), `parallama plan
--layouts ... --rates ...` predicts the served run from a hardware profile
written by `parallama plan calibrate`, with the same requests (bench sweep's
seeds, so the same arrival times) and the same scheduler settings; this
compares its p50 / p90 end-to-end latency, median TTFT and TPOT, output
throughput and keep-up verdict with the measured ones.

The profile measures the engine (steps and links); what serving adds on top
(HTTP, streaming, the load generator sharing the two cores) is fitted here to
a calibration subset -- the default model's one-rank layout at the rates it
kept up with -- as two numbers: a cost per step and a cost per sampled token on
rank 0. Every other point is held out and reported separately.

    build/venv/bin/python tools/study_planner.py --profile build/cal/default.json

writes docs/study-planner.{json,md,png} and docs/study-planner-profile.json
(the profile with the fitted serving costs); --replicate adds the run-to-run
spread of study runs measured again.
"""
import argparse
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDIES = [("default", "docs/study-tp-vs-pp-default.json"), ("400m", "docs/study-tp-vs-pp-400m.json")]
# The calibration subset: (study, layout label); the runs that kept up.
CALIBRATION = [("default", "tp1 (2 threads)")]
METRICS = [("p50_e2el_ms", "median_e2el_ms"), ("p90_e2el_ms", "p90_e2el_ms"), ("median_ttft_ms", "median_ttft_ms"),
           ("median_tpot_ms", "median_tpot_ms"), ("output_tok_s", "output_throughput")]


def load_study(path):
    with open(os.path.join(ROOT, path)) as f:
        return json.load(f)


def predict(binary, profile, study, layouts=None):
    """{(label, rate): predicted row} for the study's layouts (or a subset) at its rates."""
    lays = [l for l in study["layouts"] if layouts is None or l["label"] in layouts]
    spec = "; ".join(f"{l['layout']},name=L{i}" for i, l in enumerate(lays))
    rates = ",".join(f"{r:g}" for r in study["rates"])
    cmd = [binary, "plan", "--profile", profile, "-m", study["model"], "--layouts", spec, "--rates", rates,
           "--input-len", str(study["random_input_len"]), "--output-len", str(study["random_output_len"]),
           "--num-prompts", str(study["num_prompts"]), "--seed", str(study["seed"]), "--emulated-hosts", "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = {}
    for r in json.loads(out):
        rows[(lays[int(r["label"][1:])]["label"], r["rate"])] = r
    return rows


def pairs(study, rows, name):
    """Measured and predicted figures of every run of the study."""
    out = []
    for l in study["layouts"]:
        for run in l["runs"]:
            p = rows.get((l["label"], run["request_rate"]))
            if p is None or not p.get("fits"):
                continue
            item = {"study": name, "layout": l["label"], "rate": run["request_rate"],
                    "measured_keeps_up": bool(run["keeps_up"]), "predicted_keeps_up": bool(p["sustains_rate"]),
                    "calibration": (name, l["label"]) in CALIBRATION and bool(run["keeps_up"])}
            for pk, mk in METRICS:
                item["measured_" + pk] = run[mk]
                item["predicted_" + pk] = p[pk]
            out.append(item)
    return out


def err(item, metric):
    return item["predicted_" + metric] / item["measured_" + metric] - 1


def with_serving(profile, step_s, token_s, path):
    p = json.loads(json.dumps(profile))
    p["efficiency"]["step_overhead_s"] = profile["efficiency"]["step_overhead_s"] + step_s
    p["efficiency"]["token_overhead_s"] = token_s
    p["serving_fit"] = {"added_step_overhead_s": step_s, "token_overhead_s": token_s,
                        "calibration_runs": [f"{s}: {l}, the rates it kept up with" for s, l in CALIBRATION]}
    with open(path, "w") as f:
        json.dump(p, f, indent=1)


def fit_serving(binary, profile, studies, tmp):
    """The per-step and per-token serving costs that predict the calibration runs best (log error of
    p90 and p50 E2EL and median TPOT), by a coarse grid then a finer one around the best."""
    cal_studies = {s for s, _ in CALIBRATION}

    def loss(step_s, token_s):
        with_serving(profile, step_s, token_s, tmp)
        total = 0.0
        for name, st in studies:
            if name not in cal_studies:
                continue
            labels = {l for s, l in CALIBRATION if s == name}
            for it in pairs(st, predict(binary, tmp, st, labels), name):
                if it["calibration"]:
                    total += sum(math.log1p(err(it, m)) ** 2 for m in ("p90_e2el_ms", "p50_e2el_ms", "median_tpot_ms"))
        return total

    best = (float("inf"), 0.0, 0.0)
    for step_s, token_s in itertools.product([0, 1e-4, 2e-4, 4e-4, 8e-4], [0, 5e-5, 1e-4, 2e-4, 4e-4]):
        best = min(best, (loss(step_s, token_s), step_s, token_s))
    _, s0, t0 = best
    for step_s, token_s in itertools.product([s0 * f for f in (0.6, 0.8, 1, 1.25, 1.5)] if s0 else [0, 2.5e-5, 5e-5],
                                             [t0 * f for f in (0.6, 0.8, 1, 1.25, 1.5)] if t0 else [0, 1e-5, 2.5e-5]):
        best = min(best, (loss(step_s, token_s), step_s, token_s))
    print(f"serving fit: +{best[1] * 1e6:.0f} us per step, {best[2] * 1e6:.0f} us per sampled token "
          f"(loss {best[0]:.3f})", file=sys.stderr)
    return best[1], best[2]


def summary(items, metric, below_saturation=True):
    sel = [i for i in items if i["measured_keeps_up"] or not below_saturation]
    e = [abs(err(i, metric)) for i in sel]
    if not e:
        return None
    return {"n": len(e), "median_abs_error": statistics.median(e), "max_abs_error": max(e),
            "within_25pct": sum(x <= 0.25 for x in e)}


def rankings(items):
    """Per (study, rate): the layouts measured there, ordered by measured and by predicted p90."""
    out = []
    key = lambda i: (i["study"], i["rate"])
    for (study, rate), group in itertools.groupby(sorted(items, key=key), key=key):
        g = list(group)
        if len(g) < 2:
            continue
        meas = [i["layout"] for i in sorted(g, key=lambda i: i["measured_p90_e2el_ms"])]
        pred = [i["layout"] for i in sorted(g, key=lambda i: i["predicted_p90_e2el_ms"])]
        # Pairs ordered alike, and pairs whose measured p90s differ by more than 10% ordered alike.
        agree = total = clear = clear_agree = 0
        for a, b in itertools.combinations(g, 2):
            dm = a["measured_p90_e2el_ms"] - b["measured_p90_e2el_ms"]
            dp = a["predicted_p90_e2el_ms"] - b["predicted_p90_e2el_ms"]
            total += 1
            agree += (dm > 0) == (dp > 0)
            if abs(dm) > 0.1 * min(a["measured_p90_e2el_ms"], b["measured_p90_e2el_ms"]):
                clear += 1
                clear_agree += (dm > 0) == (dp > 0)
        out.append({"study": study, "rate": rate, "measured": meas, "predicted": pred, "same": meas == pred,
                    "pairs": total, "pairs_agree": agree, "clear_pairs": clear, "clear_pairs_agree": clear_agree})
    return out


def plot(items, path):
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    panels = [("p90_e2el_ms", "p90 end-to-end latency (ms)"), ("median_ttft_ms", "median TTFT (ms)"),
              ("output_tok_s", "output throughput (tok/s)")]
    for ax, (m, title) in zip(axes, panels):
        lo = min(min(i["measured_" + m], i["predicted_" + m]) for i in items) * 0.8
        hi = max(max(i["measured_" + m], i["predicted_" + m]) for i in items) * 1.25
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        ax.fill_between([lo, hi], [lo * 0.75, hi * 0.75], [lo * 1.25, hi * 1.25], color="0.9", label="within 25%")
        for study, color in (("default", "tab:blue"), ("400m", "tab:orange")):
            for cal, marker in ((True, "s"), (False, "o")):
                sel = [i for i in items if i["study"] == study and i["calibration"] == cal]
                for keeps, fill in ((True, True), (False, False)):
                    s2 = [i for i in sel if i["measured_keeps_up"] == keeps]
                    if not s2:
                        continue
                    ax.scatter([i["measured_" + m] for i in s2], [i["predicted_" + m] for i in s2], marker=marker,
                               facecolors=color if fill else "none", edgecolors=color, s=28,
                               label=f"{study}{' calibration' if cal else ''}{'' if keeps else ', fell behind'}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("measured")
        ax.set_ylabel("predicted")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("parallama plan against the served TP-versus-PP study (squares: calibration runs; "
                 "hollow: the measured run fell behind)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(items):
    lines = ["| model | layout | rate | measured p90 (ms) | predicted | err | measured TTFT | predicted | "
             "measured tok/s | predicted | err | keeps up (meas./pred.) | set |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for i in items:
        lines.append(
            f"| {i['study']} | {i['layout']} | {i['rate']:g} | {i['measured_p90_e2el_ms']:.0f} | "
            f"{i['predicted_p90_e2el_ms']:.0f} | {100 * err(i, 'p90_e2el_ms'):+.0f}% | "
            f"{i['measured_median_ttft_ms']:.0f} | {i['predicted_median_ttft_ms']:.0f} | "
            f"{i['measured_output_tok_s']:.0f} | {i['predicted_output_tok_s']:.0f} | "
            f"{100 * err(i, 'output_tok_s'):+.0f}% | {'yes' if i['measured_keeps_up'] else 'no'} / "
            f"{'yes' if i['predicted_keeps_up'] else 'no'} | {'calibration' if i['calibration'] else 'held out'} |")
    return "\n".join(lines)


def replicate_noise(studies, rep_paths):
    """Run-to-run spread: each replicated run (same layout, rate and seed, so the same requests) against
    the study's, as |replicate / study - 1| per metric."""
    out = []
    for path in rep_paths:
        with open(path) as f:
            rep = json.load(f)
        name = next(n for n, st in studies if os.path.basename(st["model"]) == os.path.basename(rep["model"]))
        st = dict(studies)[name]
        orig = {(l["label"], r["request_rate"]): r for l in st["layouts"] for r in l["runs"]}
        for l in rep["layouts"]:
            for r in l["runs"]:
                o = orig.get((l["label"], r["request_rate"]))
                if o is None:
                    continue
                item = {"study": name, "layout": l["label"], "rate": r["request_rate"],
                        "keeps_up": [bool(o["keeps_up"]), bool(r["keeps_up"])]}
                for pk, mk in METRICS:
                    item[pk] = [o[mk], r[mk]]
                out.append(item)
    return out


def sustained(items):
    """{(study, layout): (measured, predicted)} highest rate kept up with, every lower rate too (0: none)."""
    out = {}
    for i in items:
        out.setdefault((i["study"], i["layout"]), []).append(i)
    res = {}
    for k, runs in out.items():
        runs.sort(key=lambda i: i["rate"])
        vals = []
        for who in ("measured_keeps_up", "predicted_keeps_up"):
            best = 0
            for i in runs:
                if not i[who]:
                    break
                best = i["rate"]
            vals.append(best)
        res[k] = tuple(vals)
    return res


def pct(x):
    return "-" if x is None else f"{100 * x:.0f}%"


def markdown(result, noise):
    L = ["| points | runs | p90 E2EL median / max error | p50 E2EL | median TTFT | median TPOT | "
         "output tok/s | p90 within 25% | keep-up verdicts agree |",
         "|---|---:|---|---|---|---|---|---:|---:|"]
    for key, title in (("calibration", "calibration runs"), ("held_out", "held out, below saturation"),
                       ("held_out_all", "held out, every rate"), ("all", "all, below saturation")):
        sm = result["summary"][key]
        cell = lambda m: "-" if sm[m] is None else f"{pct(sm[m]['median_abs_error'])} / {pct(sm[m]['max_abs_error'])}"
        p90 = sm["p90_e2el_ms"]
        L.append(f"| {title} | {p90['n'] if p90 else 0} | {cell('p90_e2el_ms')} | {cell('p50_e2el_ms')} | "
                 f"{cell('median_ttft_ms')} | {cell('median_tpot_ms')} | {cell('output_tok_s')} | "
                 f"{p90['within_25pct'] if p90 else '-'} of {p90['n'] if p90 else 0} | "
                 f"{sm['keep_up_verdicts_agree']} of {sm['runs']} |")
    if noise:
        L += ["", "Run to run (the same runs measured twice, same requests):", "",
              "| runs | p90 E2EL median / max spread | p50 E2EL | median TTFT | median TPOT | p90 within 25% | "
              "keep-up verdicts agree |", "|---:|---|---|---|---|---:|---:|"]
        for below, title in ((True, "below saturation"), (False, "every rate")):
            sel = [n for n in noise if (n["keeps_up"][0] or not below)]
            spread = lambda m: [abs(n[m][1] / n[m][0] - 1) for n in sel]
            cell = lambda m: f"{pct(statistics.median(spread(m)))} / {pct(max(spread(m)))}" if sel else "-"
            L.append(f"| {len(sel)} ({title}) | {cell('p90_e2el_ms')} | {cell('p50_e2el_ms')} | "
                     f"{cell('median_ttft_ms')} | {cell('median_tpot_ms')} | "
                     f"{sum(x <= 0.25 for x in spread('p90_e2el_ms'))} of {len(sel)} | "
                     f"{sum(n['keeps_up'][0] == n['keeps_up'][1] for n in sel)} of {len(sel)} |")
    if noise:
        rep = {(n["study"], n["layout"], n["rate"]): n for n in noise}
        L += ["", "Held-out predictions against the mean of the two measurements (runs measured twice):", "",
              "| runs | p90 E2EL median / max error | p50 E2EL | median TTFT | median TPOT | p90 within 25% |",
              "|---:|---|---|---|---|---:|"]
        for below, title in ((True, "below saturation"), (False, "every rate")):
            sel = [(i, rep[(i["study"], i["layout"], i["rate"])]) for i in result["points"]
                   if not i["calibration"] and (i["study"], i["layout"], i["rate"]) in rep
                   and (i["measured_keeps_up"] or not below)]
            e = lambda m: [abs(i["predicted_" + m] / ((n[m][0] + n[m][1]) / 2) - 1) for i, n in sel]
            cell = lambda m: f"{pct(statistics.median(e(m)))} / {pct(max(e(m)))}" if sel else "-"
            L.append(f"| {len(sel)} ({title}) | {cell('p90_e2el_ms')} | {cell('p50_e2el_ms')} | "
                     f"{cell('median_ttft_ms')} | {cell('median_tpot_ms')} | "
                     f"{sum(x <= 0.25 for x in e('p90_e2el_ms'))} of {len(sel)} |")
    L += ["", "Sustained rate (the highest rate kept up with, every lower one too), measured and predicted:", "",
          "| model | layout | measured | predicted |", "|---|---|---:|---:|"]
    for (study, layout), sus in sustained(result["points"]).items():
        L.append(f"| {study} | {layout} | {sus[0]:g} | {sus[1]:g} |")
    L += ["", "Ranking of the layouts by p90 E2EL at each rate (pairs of layouts ordered alike; 'clear': pairs "
          "whose measured p90s differ by more than 10%):", "",
          "| model | rate | layouts | same order | pairs alike | clear pairs alike |", "|---|---:|---:|---|---:|---:|"]
    for r in result["rankings"]:
        L.append(f"| {r['study']} | {r['rate']:g} | {len(r['measured'])} | {'yes' if r['same'] else 'no'} | "
                 f"{r['pairs_agree']} of {r['pairs']} | {r['clear_pairs_agree']} of {r['clear_pairs']} |")
    L += ["", table(result["points"])]
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", required=True, help="written by parallama plan calibrate")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/release/parallama"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/study-planner"))
    ap.add_argument("--no-fit", action="store_true", help="use the profile as it is (no serving costs fitted)")
    ap.add_argument("--replicate", nargs="*", default=[],
                    help="bench sweep results repeating study runs (same layouts, rates, seed): run-to-run spread")
    a = ap.parse_args()
    with open(a.profile) as f:
        profile = json.load(f)
    studies = [(name, load_study(path)) for name, path in STUDIES]
    fitted = a.out + "-profile.json"
    with tempfile.TemporaryDirectory() as d:
        step_s, token_s = (0.0, 0.0) if a.no_fit else fit_serving(a.binary, profile, studies, os.path.join(d, "p.json"))
    with_serving(profile, step_s, token_s, fitted)
    items = []
    for name, st in studies:
        items += pairs(st, predict(a.binary, fitted, st), name)
    result = {"profile": os.path.relpath(fitted, ROOT), "serving_fit": {"step_s": step_s, "token_s": token_s},
              "points": items, "rankings": rankings(items), "summary": {}}
    held = [i for i in items if not i["calibration"]]
    for sel_name, sel, below in (("all", items, True), ("held_out", held, True), ("held_out_all", held, False),
                                 ("calibration", [i for i in items if i["calibration"]], True)):
        result["summary"][sel_name] = {m: summary(sel, m, below) for m, _ in METRICS}
        result["summary"][sel_name]["keep_up_verdicts_agree"] = sum(
            i["measured_keeps_up"] == i["predicted_keeps_up"] for i in sel)
        result["summary"][sel_name]["runs"] = len(sel)
    noise = replicate_noise(studies, a.replicate)
    result["replicate"] = noise
    with open(a.out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    plot(items, a.out + ".png")
    with open(a.out + ".md", "w") as f:
        f.write(markdown(result, noise) + "\n")
    print(json.dumps(result["summary"], indent=1))
    for r in result["rankings"]:
        print(r["study"], r["rate"], "same" if r["same"] else "differs", r["pairs_agree"], "/", r["pairs"],
              "clear", r["clear_pairs_agree"], "/", r["clear_pairs"])


if __name__ == "__main__":
    main()
