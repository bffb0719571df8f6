#!/usr/bin/env python3
"""`parallama plan calibrate` end to end on the default model: the profile
holds a device with a fitted flops curve, the engine steps it was fitted to
(and how well), and the "threads" and "shm" links fitted to the engine's own
TP steps; `plan --profile --layouts` then predicts the study's one-host
layouts from it (pipeline stages in series cost more per token than a TP
split over the same cores, which the predictions must show); bad input is
refused with a clear error.

    check_plan_calibrate.py PARALLAMA MODEL.gguf
"""
import json
import os
import subprocess
import sys
import tempfile


def run(binary, *args, ok=True, timeout=600):
    r = subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)
    if ok:
        assert r.returncode == 0, "%s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr[-3000:])
    return r


def main():
    binary, model = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as d:
        prof = os.path.join(d, "host.json")
        run(binary, "plan", "calibrate", "-m", model, "-o", prof, "--reps", "1")
        p = json.load(open(prof))
        eff = p["efficiency"]
        curve = eff["flops_curve"]
        assert len(curve) >= 8 and all(a[0] < b[0] for a, b in zip(curve, curve[1:])), curve
        assert all(f > 0 for _, f in curve) and 0 < eff["mem"] <= 1 and 0 < eff["attn"] <= 1, eff
        assert p["device"]["mem_bw_Bps"] > 1e9 and p["device"]["peak_flops"] > 1e9, p["device"]
        cal = p["calibration"]
        assert len(cal["steps"]) == 27, len(cal["steps"])
        # A fit that misses the steps it was fitted to by half is broken, whatever the machine's noise.
        assert cal["fit_rms_log_error"] < 0.4, cal["fit_rms_log_error"]
        for name in ("threads", "shm"):
            link = p["links"][name]
            assert link["bw_Bps"] > 0 and link["latency_s"] >= 0, link
            assert len(cal["links"][name]["tp_steps"]) == 27, name

        rows = json.loads(run(binary, "plan", "--profile", prof, "-m", model, "--layouts",
                              "tp=1,threads=2,name=t; tp=2,name=tp; pp=2,name=pp", "--rates", "1,2",
                              "--input-len", "64", "--output-len", "32", "--num-prompts", "40", "--json").stdout)
        assert len(rows) == 6, rows
        by = {(r["label"], r["rate"]): r for r in rows}
        for r in rows:
            assert r["fits"] and r["p90_e2el_ms"] >= r["p50_e2el_ms"] > r["median_ttft_ms"] > 0, r
        assert by[("pp", 1.0)]["median_tpot_ms"] > by[("tp", 1.0)]["median_tpot_ms"], (by[("pp", 1.0)], by[("tp", 1.0)])

        r = run(binary, "plan", "--profile", prof, "-m", model, "--layouts", "tp=2,pp=2,hosts=2", ok=False)
        assert r.returncode != 0 and "no link 'tcp'" in r.stderr and "shm" in r.stderr, r.stderr
        r = run(binary, "plan", "--profile", prof, "-m", model, "--layouts", "tp=2,threads=2", ok=False)
        assert r.returncode != 0 and "not modelled" in r.stderr, r.stderr
        r = run(binary, "plan", "--model-name", "llama-2-7b", "--gpu", "a100-80gb", "--gpus-per-node", "1",
                "--layouts", "tp=1", ok=False)
        assert r.returncode != 0 and "--profile" in r.stderr, r.stderr
        r = run(binary, "plan", "calibrate", "-m", os.path.join(d, "missing.gguf"), "-o", prof, ok=False)
        assert r.returncode != 0 and "missing.gguf" in r.stderr and "terminate" not in r.stderr, r.stderr
    print("plan calibrate: profile, fitted links, layouts predicted from it, bad input: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
