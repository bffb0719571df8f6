#!/usr/bin/env python3
"""cli.bench_throughput*: `parallama bench throughput ... --json` exits 0 and accounts
for every token: output_tokens == num_prompts * output_len, prompt_tokens ==
num_prompts * input_len (fixed lengths: the default range ratio 0 and ignore-eos),
with a positive total_tok_s.

usage: check_bench_throughput.py <parallama> [bench throughput arguments...]
The arguments must include --num-prompts, --input-len, --output-len and --json.
"""
import sys

from cli_json import run_json

KEYS = ["num_prompts", "elapsed_s", "requests_per_s", "output_tok_s", "total_tok_s", "prompt_tokens",
        "output_tokens", "peak_kv_usage", "preemptions", "tp", "pp", "threads"]


def arg(args, name):
    i = args.index(name)
    return int(args[i + 1])


def main() -> int:
    args = sys.argv[2:]
    out = run_json([sys.argv[1], "bench", "throughput", *args], "check_bench_throughput")
    if out is None:
        return 1
    if not isinstance(out, dict):
        print(f"check_bench_throughput: FAIL: want a JSON object, got {out!r}")
        return 1
    missing = [k for k in KEYS if k not in out]
    if missing:
        print(f"check_bench_throughput: FAIL: keys missing: {missing}")
        return 1
    n, n_in, n_out = arg(args, "--num-prompts"), arg(args, "--input-len"), arg(args, "--output-len")
    ok = True
    for key, want in (("num_prompts", n), ("prompt_tokens", n * n_in), ("output_tokens", n * n_out)):
        if out[key] != want:
            print(f"check_bench_throughput: FAIL: {key} is {out[key]!r}, want {want}")
            ok = False
    total = out["total_tok_s"]
    if not isinstance(total, (int, float)) or isinstance(total, bool) or not total > 0:
        print(f"check_bench_throughput: FAIL: total_tok_s is {total!r}, want a number > 0")
        ok = False
    if ok:
        print(f"check_bench_throughput: OK: {out['output_tokens']} output tokens, "
              f"{total:.1f} total tok/s (tp={out['tp']} pp={out['pp']})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
