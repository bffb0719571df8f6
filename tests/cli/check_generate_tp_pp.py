#!/usr/bin/env python3
"""cli.generate_tp2_pp2: `parallama generate` under TP x PP gives, for every prompt,
the same greedy tokens as a single-rank run, and exactly the requested number.

usage: check_generate_tp_pp.py <parallama> <model> <tp> <pp>
Runs (prompts and token count fixed below)
  parallama generate -m MODEL --tp TP --pp PP -t 1 -p P1 -p P2 -n 8 --json
  parallama generate -m MODEL -t 2 -p P1 -p P2 -n 8 --json
Both must exit 0 and their results[i].tokens must be equal and of length 8.
"""
import sys

from cli_json import run_json

PROMPTS = ["The capital of France is", "1, 2, 3,"]
N_TOKENS = 8


def run(cmd):
    return run_json(cmd, "check_generate_tp_pp")


def tokens_of(out, what):
    """results[i].tokens for each prompt, or None after saying why."""
    results = out.get("results") if isinstance(out, dict) else None
    if not isinstance(results, list) or len(results) != len(PROMPTS):
        print(f"check_generate_tp_pp: FAIL: {what}: want {len(PROMPTS)} results, got {results!r}")
        return None
    toks = [r.get("tokens") if isinstance(r, dict) else None for r in results]
    for i, t in enumerate(toks):
        if not isinstance(t, list) or len(t) != N_TOKENS:
            print(f"check_generate_tp_pp: FAIL: {what}: prompt {i} tokens {t!r}, "
                  f"want a list of {N_TOKENS}")
            return None
    return toks


def main() -> int:
    exe, model, tp, pp = sys.argv[1:5]
    prompts = [a for p in PROMPTS for a in ("-p", p)]
    tail = [*prompts, "-n", str(N_TOKENS), "--json"]
    par = run([exe, "generate", "-m", model, "--tp", tp, "--pp", pp, "-t", "1", *tail])
    one = run([exe, "generate", "-m", model, "-t", "2", *tail])
    if par is None or one is None:
        return 1
    par_toks = tokens_of(par, f"tp={tp} pp={pp}")
    one_toks = tokens_of(one, "single rank")
    if par_toks is None or one_toks is None:
        return 1
    ok = True
    for i, (a, b) in enumerate(zip(par_toks, one_toks)):
        if a != b:
            print(f"check_generate_tp_pp: FAIL: prompt {i} ({PROMPTS[i]!r}): "
                  f"tp={tp} pp={pp} gave {a}, single rank {b}")
            ok = False
    if ok:
        print(f"check_generate_tp_pp: OK: tp={tp} pp={pp} matches single rank: {par_toks}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
