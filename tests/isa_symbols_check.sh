#!/usr/bin/env bash
# Fails if a per-ISA object file (*_avx2.cpp.o, *_avx512*.cpp.o) defines a weak symbol
# outside its own ISA namespace. The linker keeps one copy of each weak symbol for the
# whole program, so such a copy (say std::vector<float>::_M_default_append compiled
# with -mavx512f) can be the one every caller uses, and then faults on CPUs without
# that ISA (see src/ops/scratch.h). Arguments: the object files of a library, as
# separate arguments or as one CMake list (';'-separated).
set -euo pipefail
IFS=';' read -r -a objs <<< "$(IFS=';'; echo "$*")"
bad=0
checked=0
for o in "${objs[@]}"; do
  case "$(basename "$o")" in
    *_avx2.cpp.o | *_avx512.cpp.o | *_avx512vnni.cpp.o) ;;
    *) continue ;;
  esac
  checked=$((checked + 1))
  # W/V: weak, u: unique global (also merged across objects).
  while IFS= read -r sym; do
    case "$sym" in
      DW.ref.__gxx_personality_v0) continue ;;  # data, the same in every object
    esac
    # Symbols in an ISA-specific namespace (parallama::avx2::, parallama::nn_avx512::,
    # parallama::x16_avx2:: ...) are distinct per ISA, so merging them is harmless.
    if [[ "$sym" =~ (^|[^a-z_:])parallama::[a-z0-9_]*avx[a-z0-9_]*:: ]]; then continue; fi
    echo "$(basename "$o"): shared weak symbol compiled with ISA flags: $sym"
    bad=1
  done < <(nm -C --defined-only "$o" | awk '$2 == "W" || $2 == "V" || $2 == "u" { $1 = ""; $2 = ""; sub(/^  /, ""); print }')
done
if [ "$checked" -eq 0 ]; then
  echo "no per-ISA object files among the arguments" >&2
  exit 1
fi
echo "checked $checked per-ISA objects"
exit "$bad"
