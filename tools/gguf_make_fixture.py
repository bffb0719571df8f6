#!/usr/bin/env python3
"""Writes tests/fixtures/gguf_small_reference.gguf-fixture with the reference `gguf`
Python package (pip install gguf): every metadata value type, a nested
array, and tensors of several ggml types filled with a deterministic byte
pattern. tests/gguf/gguf_reference_file_test.cpp reads it and rebuilds the
same file with GgufWriter, expecting identical bytes. Keep both in sync.

Usage: tools/gguf_make_fixture.py [OUT]
"""
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as V

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "fixtures", "gguf_small_reference.gguf-fixture")


def pattern(n, seed):
    # Same formula as byte_pattern() in the C++ test.
    return np.array([(seed * 31 + i * 7) % 251 for i in range(n)], dtype=np.uint8)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    w = gguf.GGUFWriter(out, arch="test")  # writes general.architecture first
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 3.14159)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "h\u00e9llo\nworld")
    w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", -(2**63))
    w.add_float64("t.f64", 2.718281828459045)
    w.add_key_value("t.arr_i32", [1, -2, 3], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("t.arr_f32", [0.5, -1.25], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("t.arr_str", ["a", "", "\u00fc"], V.ARRAY, sub_type=V.STRING)
    w.add_key_value("t.arr_bool", [True, False], V.ARRAY, sub_type=V.BOOL)
    w.add_key_value("t.arr_u64", [7, 2**40], V.ARRAY, sub_type=V.UINT64)
    w.add_key_value("t.nested", [[1, 2], [3]], V.ARRAY, sub_type=V.ARRAY)  # inner: int32

    # (name, type, GGUF dims with dims[0] = row length)
    specs = [
        ("f32", Q.F32, [4, 3]),
        ("f16", Q.F16, [8, 2]),
        ("bf16", Q.BF16, [16]),
        ("q8_0", Q.Q8_0, [64, 2]),
        ("q4_k", Q.Q4_K, [256, 1, 2]),
        ("q5_0", Q.Q5_0, [32]),  # known to ggml, not computable by us: must still parse
    ]
    for seed, (name, qt, dims) in enumerate(specs):
        block, tsize = gguf.GGML_QUANT_SIZES[qt]
        rows = int(np.prod(dims[1:])) if len(dims) > 1 else 1
        row_bytes = dims[0] // block * tsize
        data = pattern(rows * row_bytes, seed).reshape(list(reversed(dims[1:])) + [row_bytes])
        w.add_tensor(name, data, raw_dtype=qt)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
