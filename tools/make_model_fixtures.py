#!/usr/bin/env python3
"""Generates llama.cpp reference fixtures for the default model's forward pass.

For each prompt: the prompt token ids exactly as llama.cpp tokenizes them, then 32
greedy decode steps, one token at a time (prompt evaluated in one batch, then each
chosen token evaluated alone), recording per step the chosen token (argmax of the
logits, lowest id on ties), its logit and the top-2 logit margin; for step 0 also the
top-16 (id, logit) pairs and mean/std/max of the full logits vector. Decoding does not
stop at an end-of-generation token: all 32 steps are always recorded.

Outputs under tests/fixtures/model/:
  smollm2_greedy.json       everything above (no full logit vectors)
  smollm2_logits_<k>.f32    for a few prompts k: the full step-0 logits, [n_vocab] f32
                            little-endian, for a tolerance comparison

add_bos follows llama.cpp's default for the model (tokenizer.ggml.add_bos_token, as
reported by llama_vocab_get_add_bos); the value used is recorded in the header.
Prompts marked special=true are tokenized with special-token parsing (ChatML markers).

With --kv-type q8_0, llama.cpp runs with a Q8_0 K and V cache (type_k = type_v =
Q8_0, which needs its flash attention, so flash_attn is on) and the greedy steps go to
smollm2_greedy_kv_q8_0.json instead (no logit files).

Usage: python3 tools/make_model_fixtures.py [--model PATH] [--steps 32] [--kv-type q8_0]
"""
import argparse
import ctypes
import hashlib
import json
import os
import sys

import numpy as np
import llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "model")
DEFAULT_MODEL = os.path.expanduser("~/.cache/parallama/models/SmolLM2-135M-Instruct.Q4_1.gguf")

LONG_TEXT = (
    "The history of computing is a story of steadily shrinking machines and steadily "
    "growing ambitions. Early electronic computers filled entire rooms, consumed enormous "
    "amounts of power, and were programmed by rewiring panels or feeding in punched cards. "
    "The invention of the transistor made it possible to build smaller and more reliable "
    "machines, and the integrated circuit later packed thousands, then millions, then "
    "billions of transistors onto a single chip. Along the way, programming languages "
    "evolved from raw machine code to assembly, then to high-level languages such as "
    "Fortran, Lisp, and C, which let people express ideas instead of instructions. "
    "Operating systems appeared to share expensive hardware among many users, and networks "
    "connected those machines into a global web. Today a phone in a pocket is far more "
    "powerful than the room-sized computers of the past, and researchers are training "
    "language models that can write, translate, and answer questions. In the next chapter "
    "we will look at"
)

# (name, text, special): special=True parses special tokens such as <|im_start|>.
PROMPTS = [
    ("english", "The quick brown fox jumps over the lazy dog. Then the dog", False),
    ("question", "What is the capital of France?", False),
    ("code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n", False),
    ("list", "Shopping list:\n1. Milk\n2. Eggs\n3.", False),
    ("french", "Le chat est assis sur le tapis et il regarde", False),
    ("numbers", "1, 2, 3, 5, 8, 13, 21,", False),
    ("chat", "<|im_start|>user\nWhat is the tallest mountain in the world?<|im_end|>\n"
             "<|im_start|>assistant\n", True),
    ("chat_system", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                    "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n"
                    "<|im_start|>assistant\n", True),
    ("story", "Once upon a time, in a small village by the mountains,", False),
    ("math", "Question: If I have 12 apples and give away 5, how many are left?\nAnswer:", False),
    ("json", "{\"name\": \"Alice\", \"age\": 30, \"city\":", False),
    ("german", "Die Sonne scheint heute und wir gehen in den Park, um", False),
    ("single_word", "Hello", False),
    ("long", LONG_TEXT, False),
]
# Prompt indices whose full step-0 logits are written as .f32 files.
FULL_LOGITS = {"english": 0, "chat": 1}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def last_logits(llm, n_vocab):
    # Logits of the last token of the last llama_decode (one output row without logits_all).
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float32).copy()


def top2(logits):
    # argmax with the lowest id on ties (np.argmax returns the first maximum).
    best = int(np.argmax(logits))
    rest = np.delete(logits, best)
    return best, float(logits[best] - rest.max())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--out-dir", default=OUT_DIR)
    ap.add_argument("--kv-type", choices=["f16", "q8_0"], default="f16")
    args = ap.parse_args()
    if not os.path.exists(args.model):
        sys.exit(f"model not found: {args.model}")
    os.makedirs(args.out_dir, exist_ok=True)

    kv_q8 = args.kv_type == "q8_0"
    kv_args = {"type_k": llama_cpp.GGML_TYPE_Q8_0, "type_v": llama_cpp.GGML_TYPE_Q8_0,
               "flash_attn": True} if kv_q8 else {}
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=512, n_batch=512, n_threads=2,
                          n_threads_batch=2, seed=1234, logits_all=False, verbose=False, **kv_args)
    n_vocab = llm.n_vocab()
    add_bos = bool(llm._model.add_bos_token())

    cases = []
    for name, text, special in PROMPTS:
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)
        llm.reset()
        llm.eval(tokens)
        steps = []
        case = {"name": name, "text": text, "special": special, "prompt_tokens": tokens}
        for step in range(args.steps):
            logits = last_logits(llm, n_vocab)
            tok, margin = top2(logits)
            steps.append({"token": tok, "logit": float(logits[tok]), "margin": margin})
            if step == 0:
                order = np.lexsort((np.arange(n_vocab), -logits))[:16]  # logit desc, id asc
                case["top16"] = [[int(i), float(logits[i])] for i in order]
                case["stats"] = {"mean": float(logits.mean(dtype=np.float64)),
                                 "std": float(logits.std(dtype=np.float64)),
                                 "max": float(logits.max()), "min": float(logits.min())}
                if name in FULL_LOGITS and not kv_q8:
                    fname = f"smollm2_logits_{FULL_LOGITS[name]}.f32"
                    logits.astype("<f4").tofile(os.path.join(args.out_dir, fname))
                    case["logits_file"] = fname
            if step + 1 < args.steps:
                llm.eval([tok])
        case["steps"] = steps
        case["generated_text"] = llm.detokenize([s["token"] for s in steps]).decode("utf-8", "replace")
        cases.append(case)
        min_margin = min(s["margin"] for s in steps)
        print(f"{name:12s} {len(tokens):4d} prompt tokens, min margin {min_margin:.4f}: "
              f"{case['generated_text'][:60]!r}", file=sys.stderr)

    out = {
        "header": {
            "generator": "tools/make_model_fixtures.py",
            "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
            "llama_cpp_python_version": llama_cpp.__version__,
            "model_file": os.path.basename(args.model),
            "model_sha256": sha256(args.model),
            "n_vocab": n_vocab,
            "add_bos": add_bos,
            "n_ctx": 512,
            "n_threads": 2,
            "kv_type": args.kv_type,
            "flash_attn": kv_q8,
            "steps": args.steps,
            "notes": "Prompt evaluated in one batch, then one token per llama_decode. "
                     "token = argmax (lowest id on ties) of that step's logits; margin = "
                     "top1 - top2 logit (small margins may legitimately flip). Decoding "
                     "continues past end-of-generation tokens.",
        },
        "cases": cases,
    }
    path = os.path.join(args.out_dir, "smollm2_greedy_kv_q8_0.json" if kv_q8 else "smollm2_greedy.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
