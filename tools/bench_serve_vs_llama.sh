#!/usr/bin/env bash
# `parallama bench serve`, unchanged, against llama.cpp's llama-server and our
# server in turn, each started fresh: same model, 2 threads, same workload and
# seed, at each rate (docs/PERF.md). Prints one line per server and rate.
#
#   tools/bench_serve_vs_llama.sh [RATES...]      (default: 2 4)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${PARALLAMA:-$ROOT/build/release/parallama}
M=${MODEL:-$HOME/.cache/parallama/models/SmolLM2-135M-Instruct.Q4_1.gguf}
LB=${LLAMA_BIN:-$HOME/.cache/parallama/llama.cpp/build/bin}
OUT=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$OUT"' EXIT
wait_health() {
  for _ in $(seq 1 240); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.5; done
  echo "server on port $1 did not become healthy" >&2; return 1
}
bench() {  # name port rate
  "$B" bench serve --base-url "http://127.0.0.1:$2" --backend openai --num-prompts 80 --request-rate "$3" \
    --random-input-len 128 --random-output-len 64 --ignore-eos --seed 7 \
    --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,90,99 --json > "$OUT/$1-$3.json"
  python3 -c "
import json; d = json.load(open('$OUT/$1-$3.json'))
print('%-12s %4s req/s: done %d, failed %d, %.2f req/s, %.1f out tok/s, TTFT median/p90 %.0f/%.0f ms, '
      'TPOT median %.1f ms, E2EL median/p90 %.0f/%.0f ms' % ('$1', '$3', d['completed'], d['failed'],
      d['request_throughput'], d['output_throughput'], d['median_ttft_ms'], d['p90_ttft_ms'], d['median_tpot_ms'],
      d['median_e2el_ms'], d['p90_e2el_ms']))"
}
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(2 4)
for rate in "${RATES[@]}"; do
  LD_LIBRARY_PATH=$LB "$LB/llama-server" -m "$M" -t 2 -np 16 -c 16384 --port 18601 > "$OUT/llama.log" 2>&1 &
  PID=$!; wait_health 18601; bench llama-server 18601 "$rate"; kill "$PID"; wait "$PID" 2>/dev/null || true
  "$B" serve -m "$M" -t 2 --port 18602 --no-log-requests > "$OUT/parallama.log" 2>&1 &
  PID=$!; wait_health 18602; bench parallama 18602 "$rate"; kill "$PID"; wait "$PID" 2>/dev/null || true
  PID=""
done
