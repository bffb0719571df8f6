#!/usr/bin/env python3
"""Writes tests/fixtures/quant/: reference dequantizations from the `gguf` package.

For each type: <TYPE>.blocks holds a few blocks of random raw bytes (f16 scales
overwritten with sane values) and <TYPE>.f32 their dequantization by
gguf.quants (little-endian float32). For Q4_0/Q4_1/Q8_0, q_<TYPE>_in.f32 and
q_<TYPE>.blocks hold a float row and gguf's quantization of it.
Q8_1 and Q8_K are not in gguf.quants; their (trivial: d*q) reference is
computed here directly.

    pip install gguf numpy && python3 tools/make_quant_fixtures.py
"""
import os
import numpy as np
import gguf
from gguf import quants, GGMLQuantizationType as T

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "quant")
rng = np.random.default_rng(1234)
N_BLOCKS = 5


def f16_bytes(n):
    """n sane f16 values (random sign and magnitude in [1e-3, 0.2]) as bytes."""
    v = rng.uniform(1e-3, 0.2, n) * rng.choice([-1.0, 1.0], n)
    return v.astype(np.float16).view(np.uint8).reshape(n, 2)


def raw_blocks(name, type_size, f16_offsets):
    b = rng.integers(0, 256, size=(N_BLOCKS, type_size), dtype=np.uint8)
    for off in f16_offsets:
        b[:, off:off + 2] = f16_bytes(N_BLOCKS)
    return b


def write(name, raw, deq):
    raw.astype(np.uint8).tofile(os.path.join(OUT, name + ".blocks"))
    np.asarray(deq, dtype="<f4").reshape(-1).tofile(os.path.join(OUT, name + ".f32"))


def main():
    os.makedirs(OUT, exist_ok=True)
    # (name, gguf type, type_size, offsets of f16 fields)
    specs = [
        ("Q4_0", T.Q4_0, 18, [0]),
        ("Q4_1", T.Q4_1, 20, [0, 2]),
        ("Q8_0", T.Q8_0, 34, [0]),
        ("Q4_K", T.Q4_K, 144, [0, 2]),
        ("Q5_K", T.Q5_K, 176, [0, 2]),
        ("Q6_K", T.Q6_K, 210, [208]),
    ]
    for name, t, ts, offs in specs:
        assert gguf.GGML_QUANT_SIZES[t][1] == ts
        raw = raw_blocks(name, ts, offs)
        write(name, raw, quants.dequantize(raw.reshape(-1), t))

    # Plain float types: random finite values.
    x = rng.standard_normal(96).astype(np.float32)
    h = x.astype(np.float16)
    write("F16", h.view(np.uint8), quants.dequantize(h.view(np.uint8), T.F16))
    bf = quants.quantize(x, T.BF16)
    write("BF16", bf, quants.dequantize(bf, T.BF16))

    # Activation types (not in gguf.quants): d*q computed here.
    raw = raw_blocks("Q8_1", 36, [0, 2])
    q = raw[:, 4:].view(np.int8).astype(np.float32)
    d = raw[:, 0:2].copy().view(np.float16).astype(np.float32)
    write("Q8_1", raw, d * q)
    raw = rng.integers(0, 256, size=(2, 292), dtype=np.uint8)
    raw[:, 0:4] = rng.uniform(1e-3, 0.1, (2, 1)).astype(np.float32).view(np.uint8)
    q = raw[:, 4:260].view(np.int8).astype(np.float32)
    d = raw[:, 0:4].copy().view(np.float32)
    write("Q8_K", raw, d * q)

    # Quantization references for the simple types.
    for name, t in [("Q4_0", T.Q4_0), ("Q4_1", T.Q4_1), ("Q8_0", T.Q8_0)]:
        x = (rng.standard_normal(32 * 8) * rng.uniform(0.01, 2.0)).astype(np.float32)
        x.tofile(os.path.join(OUT, "q_" + name + "_in.f32"))
        quants.quantize(x, t).tofile(os.path.join(OUT, "q_" + name + ".blocks"))


if __name__ == "__main__":
    main()
