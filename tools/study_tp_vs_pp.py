#!/usr/bin/env python3
"""The TP-versus-PP serving study (docs/STUDY-tp-vs-pp.md). For each model:
  * `parallama bench sweep` over the layouts below, from light load to past
    saturation (JSON, Markdown table and plot per model);
  * the pipeline bubble: each rank's busy fraction (forward-pass time / wall
    time, from the run report) under `bench throughput` with all requests at
    once, the saturated regime where idle time is bubble or waiting on a
    slower stage, not missing load.
Needs root for the emulated hosts (scripts/emulate_hosts.sh).

    sudo tools/study_tp_vs_pp.py [--binary build/release/parallama] [--models default,400m]
        [--out docs/study-tp-vs-pp]
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EMU = os.path.join(ROOT, "scripts", "emulate_hosts.sh")
PREFIX = "stb"

# Names carry no commas or semicolons (the sweep's separators).
LAYOUTS = [
    ("tp1 (2 threads)", "tp=1,threads=2"),
    ("tp2", "tp=2,threads=1"),
    ("pp2", "pp=2,threads=1"),
    ("tp2xpp2 TP inside hosts", "tp=2,pp=2,threads=1,hosts=2,map=slot"),
    ("tp2xpp2 TP across hosts", "tp=2,pp=2,threads=1,hosts=2,map=node"),
    ("tp2xpp2 TP inside hosts 1 Gbit/s", "tp=2,pp=2,threads=1,hosts=2,map=slot,link=1gbit"),
    ("tp2xpp2 TP across hosts 1 Gbit/s", "tp=2,pp=2,threads=1,hosts=2,map=node,link=1gbit"),
]
SYNTH_400M = ["--type", "Q4_0", "--embd-type", "Q8_0", "--layers", "32", "--heads", "16", "--kv-heads", "4",
              "--head-dim", "64", "--ff", "2816", "--vocab", "49152", "--ctx", "2048"]
# name -> (description, synth options or None, rates, requests per rate)
MODELS = {
    "default": ("SmolLM2-135M-Instruct Q4_1 (the default model)", None, "2,4,6,8,10,14", 80),
    "400m": ("synthetic ~400M: 32 layers, n_embd 1024, 16/4 heads, ff 2816, vocab 49152, Q4_0",
             SYNTH_400M, "0.5,1,2,3,4,6", 40),
}
IN_LEN, OUT_LEN = 128, 64
BUBBLE_PROMPTS = 48


def model_path(binary, name, synth_dir):
    synth = MODELS[name][1]
    if synth is None:
        return None
    path = os.path.join(synth_dir, "study-%s.gguf" % name)
    if not os.path.exists(path):
        subprocess.run([binary, "synth", "-o", path, *synth], check=True)
    return path


def layout_args(spec):
    kv = dict(item.split("=") for item in spec.split(","))
    a = []
    if kv.get("tp", "1") != "1":
        a += ["--tp", kv["tp"]]
    if kv.get("pp", "1") != "1":
        a += ["--pp", kv["pp"]]
    if "threads" in kv:
        a += ["-t", kv["threads"]]
    hosts = int(kv.get("hosts", "0"))
    if hosts:
        slots = int(kv.get("tp", "1")) * int(kv.get("pp", "1")) // hosts
        a += ["--hosts", ",".join("%sh%d:%d" % (PREFIX, h, slots) for h in range(1, hosts + 1)),
              "--map-by", kv.get("map", "slot")]
    return a, hosts, kv.get("link")


def bubble(binary, model, spec):
    """Busy fraction per rank under bench throughput (all requests at once)."""
    args, hosts, link = layout_args(spec)
    cmd = [binary, "bench", "throughput", *args, "--num-prompts", str(BUBBLE_PROMPTS), "--input-len", str(IN_LEN),
           "--output-len", str(OUT_LEN), "--json"] + (["-m", model] if model else [])
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    if hosts:
        subprocess.run([EMU, "down", "--prefix", PREFIX], capture_output=True)
        subprocess.run([EMU, "up", str(hosts), "--prefix", PREFIX] + (["--rate", link] if link else []), check=True,
                       capture_output=True)
        cmd = [EMU, "run", "--prefix", PREFIX, "--", *cmd]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    finally:
        if hosts:
            subprocess.run([EMU, "down", "--prefix", PREFIX], capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (" ".join(cmd), r.stderr[-2000:]))
    d = json.loads(r.stdout)
    ranks = d.get("parallel", {}).get("ranks") or [{"rank": 0, "pp_stage": 0, "tp_rank": 0, "compute_s": None,
                                                    "wall_s": d["elapsed_s"]}]
    stages = {}
    for rk in ranks:
        if rk["compute_s"] is not None:
            stages.setdefault(rk["pp_stage"], []).append(rk["compute_s"] / rk["wall_s"])
    return {"command": " ".join(cmd), "output_tok_s": d["output_tok_s"],
            "stage_busy": [sum(v) / len(v) for _, v in sorted(stages.items())],
            "ranks": [{k: rk.get(k) for k in ("rank", "pp_stage", "tp_rank", "compute_s", "comm_s", "wall_s")}
                      for rk in ranks]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "release", "parallama"))
    ap.add_argument("--models", default="default,400m")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "study-tp-vs-pp"))
    ap.add_argument("--synth-dir", default=os.path.join(ROOT, "build", "synth"))
    ap.add_argument("--skip-sweep", action="store_true", help="only the bubble runs")
    a = ap.parse_args()
    os.makedirs(a.synth_dir, exist_ok=True)
    layouts = "; ".join("%s,name=%s" % (spec, name) for name, spec in LAYOUTS)
    result = {"in_len": IN_LEN, "out_len": OUT_LEN, "models": {}}
    if os.path.exists(a.out + ".json"):
        result = json.load(open(a.out + ".json"))
    for name in a.models.split(","):
        desc, _, rates, n = MODELS[name]
        model = model_path(a.binary, name, a.synth_dir)
        entry = result["models"].setdefault(name, {"description": desc})
        out = "%s-%s" % (a.out, name)
        if not a.skip_sweep:
            cmd = [a.binary, "bench", "sweep", "--layouts", layouts, "--rates", rates, "--num-prompts", str(n),
                   "--random-input-len", str(IN_LEN), "--random-output-len", str(OUT_LEN), "--ignore-eos",
                   "--max-unsustained", "2", "--out", out] + (["-m", model] if model else [])
            print("study: " + " ".join(cmd), file=sys.stderr)
            t0 = time.time()
            subprocess.run(cmd, check=False)
            entry["sweep_command"] = " ".join(cmd).replace(ROOT + "/", "")
            entry["sweep_s"] = time.time() - t0
        entry["bubble"] = {}
        for lname, spec in LAYOUTS:
            print("study: bubble of %s / %s" % (name, lname), file=sys.stderr)
            entry["bubble"][lname] = bubble(a.binary, model, spec)
        with open(a.out + ".json", "w") as f:
            json.dump(result, f, indent=1)
    for name, entry in result["models"].items():
        print("\n### %s: busy fraction per stage, all requests at once\n" % entry["description"])
        print("| layout | output tok/s | stage 0 busy | stage 1 busy |\n|---|---:|---:|---:|")
        for lname, b in entry.get("bubble", {}).items():
            busy = ["%.0f%%" % (100 * x) for x in b["stage_busy"]] + [""]
            print("| %s | %.0f | %s | %s |" % (lname, b["output_tok_s"], busy[0], busy[1]))


if __name__ == "__main__":
    main()
