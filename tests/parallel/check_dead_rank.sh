#!/usr/bin/env bash
# Launches dead_rank_main under mpirun and checks that when one rank dies the
# whole job ends quickly, with a non-zero status and a message naming the rank.
#   check_dead_rank.sh <dead_rank_main> <kill|throw|exit> <victim rank> [n_ranks] [limit_s]
# MPIEXEC overrides the mpirun path.
set -u
bin=$1 mode=$2 victim=$3 n=${4:-4} limit=${5:-20}
mpirun=${MPIEXEC:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT

start=$(date +%s%N)
timeout -k 5 $((limit + 10)) "$mpirun" -n "$n" --oversubscribe --bind-to none \
  --mca mpi_yield_when_idle 1 "$bin" "$mode" "$victim" >"$out" 2>&1
rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
cat "$out"
echo "check_dead_rank: mode=$mode victim=$victim rc=$rc elapsed=${elapsed_ms}ms"

fail=0
if [ "$rc" -eq 0 ]; then echo "FAIL: job exited 0 although rank $victim died"; fail=1; fi
if [ "$rc" -eq 124 ]; then echo "FAIL: job hung and was killed by timeout"; fail=1; fi
if [ "$elapsed_ms" -ge $((limit * 1000)) ]; then
  echo "FAIL: took ${elapsed_ms}ms, limit ${limit}s"; fail=1
fi
# The naming must come from MPI or from our abort path, not the victim's own
# farewell line ("dead_rank_main: rank N ... dies now").
if ! grep -v '^dead_rank_main:' "$out" |
     grep -Eq "rank ${victim}([^0-9]|\$)|\[\[[0-9]+,[0-9]+\],${victim}\]"; then
  echo "FAIL: output does not name the lost rank $victim"; fail=1
fi
sleep 0.5
left=$(ps -eo args= | awk -v p="$bin $mode $victim" 'index($0, p) == 1' | wc -l)
if [ "$left" -ne 0 ]; then echo "FAIL: $left ranks left running"; fail=1; fi
[ "$fail" -eq 0 ] && echo "check_dead_rank: OK"
exit "$fail"
