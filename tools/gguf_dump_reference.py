#!/usr/bin/env python3
"""Dump facts about a GGUF file using the reference `gguf` Python package
(pip install gguf) as JSON, for tests/gguf/gguf_default_model_test.cpp.

Usage: tools/gguf_dump_reference.py [MODEL] [OUT]
Defaults: ~/.cache/parallama/models/SmolLM2-135M-Instruct.Q4_1.gguf and
tests/fixtures/gguf_default_model.json.
"""
import json
import os
import sys

import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.expanduser("~/.cache/parallama/models/SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "fixtures", "gguf_default_model.json")

TYPE_NAMES = {
    gguf.GGUFValueType.UINT8: "uint8", gguf.GGUFValueType.INT8: "int8",
    gguf.GGUFValueType.UINT16: "uint16", gguf.GGUFValueType.INT16: "int16",
    gguf.GGUFValueType.UINT32: "uint32", gguf.GGUFValueType.INT32: "int32",
    gguf.GGUFValueType.FLOAT32: "float32", gguf.GGUFValueType.BOOL: "bool",
    gguf.GGUFValueType.STRING: "string", gguf.GGUFValueType.ARRAY: "array",
    gguf.GGUFValueType.UINT64: "uint64", gguf.GGUFValueType.INT64: "int64",
    gguf.GGUFValueType.FLOAT64: "float64",
}


def plain(v):
    """numpy scalars -> JSON-able python values."""
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if hasattr(v, "item"):
        return v.item()
    return v


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    out = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_OUT
    r = gguf.GGUFReader(model)

    kvs = []
    for key, field in r.fields.items():
        if key.startswith("GGUF."):  # header pseudo-fields
            continue
        entry = {"key": key, "type": TYPE_NAMES[field.types[0]]}
        value = plain(field.contents())
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            entry["elem_type"] = TYPE_NAMES[field.types[1]] if len(field.types) > 1 else "uint8"
            entry["count"] = len(field.data)
            entry["head"] = value[:5]
            entry["tail"] = value[-3:]
        else:
            entry["value"] = value
        kvs.append(entry)

    tensors = []
    for t in r.tensors:
        tensors.append({
            "name": t.name,
            "type": int(t.tensor_type),
            "dims": [int(d) for d in t.shape],
            "offset": int(t.data_offset) - int(r.data_offset),  # relative to the data section
            "n_bytes": int(t.n_bytes),
        })

    facts = {
        "file_size": os.path.getsize(model),
        "version": int(r.fields["GGUF.version"].contents()),
        "tensor_count": int(r.fields["GGUF.tensor_count"].contents()),
        "kv_count": int(r.fields["GGUF.kv_count"].contents()),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "metadata": kvs,
        "tensors": tensors,
    }
    with open(out, "w") as f:
        json.dump(facts, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {out}: {len(kvs)} keys, {len(tensors)} tensors")


if __name__ == "__main__":
    main()
