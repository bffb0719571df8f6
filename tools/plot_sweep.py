#!/usr/bin/env python3
"""Plots a `parallama bench sweep` result: p90 end-to-end latency, median TTFT
and median TPOT against the request rate, one line per layout. Filled markers:
the layout kept up with the rate; hollow: it fell behind (its queue grew over
the run). The star on the latency panel marks each layout's sustained rate.

    plot_sweep.py SWEEP.json OUT.png [--title TEXT]
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = [("p90_e2el_ms", "p90 end-to-end latency (s)", 1e-3),
          ("median_ttft_ms", "median TTFT (s)", 1e-3),
          ("median_tpot_ms", "median TPOT (ms)", 1.0)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sweep")
    ap.add_argument("out")
    ap.add_argument("--title", default=None)
    a = ap.parse_args()
    with open(a.sweep) as f:
        sweep = json.load(f)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5.2 * len(PANELS), 4.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, lay in enumerate(sweep["layouts"]):
        runs = [r for r in lay.get("runs", []) if not isinstance(r["request_rate"], str)]
        if not runs:
            continue
        c = colors[i % len(colors)]
        rates = [r["request_rate"] for r in runs]
        for ax, (key, label, scale) in zip(axes, PANELS):
            ys = [r[key] * scale for r in runs]
            ax.plot(rates, ys, "-", color=c, label=lay["label"])
            ok = [bool(r.get("keeps_up")) for r in runs]
            ax.scatter([x for x, k in zip(rates, ok) if k], [y for y, k in zip(ys, ok) if k], color=c, zorder=3)
            ax.scatter([x for x, k in zip(rates, ok) if not k], [y for y, k in zip(ys, ok) if not k],
                       facecolors="white", edgecolors=c, zorder=3)
            s = lay.get("sustained_rate") or 0
            if key == "p90_e2el_ms" and s > 0:
                y = [r[key] * scale for r in runs if r["request_rate"] == s][0]
                ax.scatter([s], [y], marker="*", s=220, color=c, edgecolors="black", zorder=4)
    for ax, (key, label, _) in zip(axes, PANELS):
        ax.set_xlabel("request rate (req/s)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.set_yscale("log")  # one slow layout would otherwise flatten the rest
    axes[0].legend(fontsize=8)
    model = sweep.get("model", "").rsplit("/", 1)[-1]
    fig.suptitle(a.title or "%s, %d requests, input %s / output %s tokens; star: highest rate kept up with, "
                 "hollow: fell behind" % (model, sweep["num_prompts"], sweep["random_input_len"],
                                          sweep["random_output_len"]), fontsize=10)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)


if __name__ == "__main__":
    main()
