#!/usr/bin/env python3
"""`parallama plan` end to end: the seed's cluster (LLaMA-2-13B fp16 on 4 x
A100-40GB over NVLink at 3 req/s) lists exactly the layouts with tp x pp = 4,
each with the fields scripts rely on; a 70B fp16 model on one 80 GB card does
not fit (140 GB of weights) and says why; a GGUF model and a hardware
profile file work, and so do request lengths from a ShareGPT file; bad input (unknown GPU, both -m and --model-name, a
profile with an unknown key) is refused with a clear error, not a crash.

    check_plan_cli.py PARALLAMA MODEL.gguf
"""
import json
import os
import subprocess
import sys
import tempfile

FIELDS = {"tp", "pp", "fits", "sustains_rate", "p50_e2el_ms", "p90_e2el_ms", "median_ttft_ms", "median_tpot_ms",
          "output_tok_s"}


def plan(binary, *args, ok=True):
    r = subprocess.run([binary, "plan", *args], capture_output=True, text=True, timeout=120)
    if ok:
        assert r.returncode == 0, "plan %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr[-2000:])
    return r


def main():
    binary, model = sys.argv[1], sys.argv[2]
    rows = json.loads(plan(binary, "--model-name", "llama-2-13b", "--gpu", "a100-40gb", "--gpus-per-node", "4",
                           "--rate", "3", "--input-len", "256", "--output-len", "128", "--num-prompts", "300",
                           "--json").stdout)
    assert sorted((r["tp"], r["pp"]) for r in rows) == [(1, 4), (2, 2), (4, 1)], rows
    for r in rows:
        assert r["fits"], r  # 26 GB of fp16 weights over 4 x 40 GB
        assert FIELDS <= set(r), FIELDS - set(r)
        assert r["p90_e2el_ms"] >= r["p50_e2el_ms"] > r["median_ttft_ms"] > 0, r
        assert r["completed"] == 300, r
    text = plan(binary, "--model-name", "llama-2-13b", "--gpu", "a100-40gb", "--gpus-per-node", "4", "--rate", "3",
                "--num-prompts", "200").stdout
    assert "recommended:" in text and "tp4 x pp1" in text, text

    big = json.loads(plan(binary, "--model-name", "llama-2-70b", "--gpu", "a100-80gb", "--gpus-per-node", "1",
                          "--json").stdout)
    assert len(big) == 1 and not big[0]["fits"] and big[0]["why_not"], big

    with tempfile.TemporaryDirectory() as d:
        prof = os.path.join(d, "host.json")
        hw = {"device": {"name": "cpu", "mem_bw_Bps": 20e9, "peak_flops": 200e9, "mem_bytes": 8 * 2**30},
              "devices_per_node": 2, "nodes": 1,
              "intra": {"name": "shm", "bw_Bps": 5e9, "latency_s": 5e-6},
              "inter": {"name": "tcp", "bw_Bps": 0.125e9, "latency_s": 50e-6}}
        json.dump(hw, open(prof, "w"))
        rows = json.loads(plan(binary, "-m", model, "--profile", prof, "--hosts", "2", "--rate", "2",
                               "--input-len", "64", "--output-len", "32", "--num-prompts", "100", "--json").stdout)
        assert sorted((r["tp"], r["pp"]) for r in rows) == [(1, 4), (2, 2), (4, 1)], rows
        assert any(r["fits"] for r in rows), rows
        # ShareGPT lengths (counted by the model's tokenizer): every conversation below has
        # sentences of 8+ words on both sides, so all five become requests.
        sg = os.path.join(d, "sharegpt.json")
        convs = [{"conversations": [{"from": "human", "value": "Please explain in a few words why the sky is blue %d." % i},
                                    {"from": "gpt", "value": "Sunlight scatters off air molecules, and blue scatters most %d." % i}]}
                 for i in range(5)]
        json.dump(convs + [{"conversations": [{"from": "human", "value": "one turn only"}]}], open(sg, "w"))
        rows = json.loads(plan(binary, "-m", model, "--profile", prof, "--rate", "2", "--dataset-path", sg,
                               "--num-prompts", "50", "--json").stdout)
        assert all(r["completed"] == 5 for r in rows if r["fits"]), rows
        r = plan(binary, "--model-name", "llama-2-7b", "--gpu", "a100-80gb", "--gpus-per-node", "1",
                 "--dataset-path", sg, ok=False)
        assert r.returncode != 0 and "--tokenizer" in r.stderr, r.stderr
        hw["intra"]["bandwidth"] = 1
        json.dump(hw, open(prof, "w"))
        r = plan(binary, "-m", model, "--profile", prof, ok=False)
        assert r.returncode != 0 and "bandwidth" in r.stderr and "terminate" not in r.stderr, r.stderr

    r = plan(binary, "--model-name", "llama-2-13b", "--gpu", "a100-41gb", "--gpus-per-node", "4", ok=False)
    assert r.returncode != 0 and "a100-40gb" in r.stderr, r.stderr  # the known names are listed
    r = plan(binary, "-m", model, "--model-name", "llama-2-13b", "--gpu", "a100-40gb", "--gpus-per-node", "1", ok=False)
    assert r.returncode != 0 and "-m FILE.gguf or --model-name" in r.stderr, r.stderr
    print("plan: seed cluster layouts, memory refusal, GGUF + profile, bad input: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
