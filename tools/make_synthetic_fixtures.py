#!/usr/bin/env python3
"""Reference outputs of llama.cpp on Parallama's synthetic models.

For every tensor type (and a few shapes the default model lacks) this writes a
random-weight model with `parallama synth` (deterministic for a given seed),
runs it in llama.cpp through llama-cpp-python, and records the greedy
continuation of a fixed prompt with the top-2 logit margin of each step and
the logits of the first and last steps (prefill, then decode over the cache). tests/model/synthetic_match_test.cpp rebuilds the same
models in-process and compares.

    python3 tools/make_synthetic_fixtures.py --binary build/release/parallama
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

SMALL = ["--layers", "2", "--heads", "4", "--kv-heads", "2", "--head-dim", "16", "--ff", "96"]
KTYPE = ["--layers", "2", "--heads", "4", "--kv-heads", "2", "--head-dim", "64", "--ff", "512"]
CASES = [
    ("f32", ["--type", "F32"] + SMALL),
    ("f16", ["--type", "F16"] + SMALL),
    ("bf16", ["--type", "BF16"] + SMALL),
    ("q8_0", ["--type", "Q8_0"] + SMALL),
    ("q4_0", ["--type", "Q4_0"] + SMALL),
    ("q4_1", ["--type", "Q4_1"] + SMALL),
    ("q4_k", ["--type", "Q4_K"] + KTYPE),
    ("q5_k", ["--type", "Q5_K"] + KTYPE),
    ("q6_k", ["--type", "Q6_K"] + KTYPE),
    # qwen2: NEOX RoPE, Q/K/V biases, separate output head.
    ("qwen2_q8_0", ["--type", "Q8_0", "--arch", "qwen2", "--qkv-bias", "--untied"] + SMALL),
    # Head layouts for tensor parallelism: 9 query / 3 KV heads (as SmolLM2), and 6 / 6.
    ("h9kv3_q8_0", ["--type", "Q8_0", "--layers", "3", "--heads", "9", "--kv-heads", "3",
                    "--head-dim", "32", "--ff", "160"]),
    ("h6kv6_q4_0", ["--type", "Q4_0", "--layers", "4", "--heads", "6", "--kv-heads", "6",
                    "--head-dim", "32", "--ff", "128"]),
]
PROMPT = [256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 84, 104, 101]
STEPS = 16


def spec_of(args):
    """The synth options as a dict the C++ test turns into a SyntheticModelSpec."""
    spec = {"seed": 7, "arch": "llama", "qkv_bias": False, "tied_output": True}
    i = 0
    while i < len(args):
        k = args[i].lstrip("-").replace("-", "_")
        if k == "qkv_bias":
            spec["qkv_bias"] = True
        elif k == "untied":
            spec["tied_output"] = False
        else:
            v = args[i + 1]
            spec[k] = v if k in ("type", "arch") else int(v)
            i += 1
        i += 1
    return spec


def run_case(binary, name, args, tmp):
    from llama_cpp import Llama
    import llama_cpp

    path = os.path.join(tmp, name + ".gguf")
    subprocess.run([binary, "synth", "-o", path, "--seed", "7"] + args, check=True,
                   stdout=subprocess.DEVNULL)
    llm = Llama(model_path=path, n_ctx=256, n_batch=256, n_threads=2, logits_all=True,
                verbose=False)
    n_vocab = llm.n_vocab()
    llm.reset()
    llm.eval(PROMPT)
    steps, first, last = [], None, None
    for i in range(STEPS):
        logits = np.array(llm.scores[llm.n_tokens - 1][:n_vocab], dtype=np.float64)
        if first is None:
            first = logits.copy()
        last = logits
        order = np.argsort(-logits, kind="stable")
        tok = int(order[0])
        steps.append({"token": tok, "margin": float(logits[order[0]] - logits[order[1]])})
        llm.eval([tok])
    del llm
    print(f"{name}: tokens {[s['token'] for s in steps]}, min margin "
          f"{min(s['margin'] for s in steps):.3f}", file=sys.stderr)
    return {"name": name, "synth_args": ["--seed", "7"] + args, "spec": spec_of(args),
            "prompt_tokens": PROMPT,
            "steps": steps, "first_logits": [float(x) for x in first],
            "last_logits": [float(x) for x in last],
            "llama_cpp_python_version": llama_cpp.__version__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="build/release/parallama")
    ap.add_argument("--out", default="tests/fixtures/model/synthetic_greedy.json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cases = [run_case(a.binary, n, args, tmp) for n, args in CASES]
    with open(a.out, "w") as f:
        json.dump({"generator": "tools/make_synthetic_fixtures.py", "cases": cases}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
