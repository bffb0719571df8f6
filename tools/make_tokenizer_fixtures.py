#!/usr/bin/env python3
"""Generates tokenizer fixtures from llama.cpp (through llama-cpp-python).

Outputs under tests/fixtures/tokenizer/:
  smollm2_tokens.json  the default model's tokenizer (gpt2 / smollm pre-tokenizer):
                       ids, pieces and detokenized text for many strings, plus the
                       end-of-generation token set.
  bpe_pre_tokens.json  the same vocab and merges re-labelled with other
                       tokenizer.ggml.pre values (llama3, qwen2, gpt-2, ...), to check
                       each pre-tokenizer regex list.
  spm_tokens.json      a small hand-made SentencePiece ("llama") vocab, stored in the
                       fixture so the C++ test can rebuild the same GGUF, and its
                       tokenizations.

The GGUF files written here are vocab-only (no tensors) and live in a temp dir.
Usage: python3 tools/make_tokenizer_fixtures.py [--model PATH]
"""
import argparse
import ctypes
import json
import os
import sys
import tempfile

import gguf
import llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
DEFAULT_MODEL = os.path.expanduser("~/.cache/parallama/models/SmolLM2-135M-Instruct.Q4_1.gguf")

TEXTS = [
    "",
    " ",
    "  ",
    "\n",
    "\n\n\n",
    "Hello world",
    "Hello, world!",
    " Hello world",
    "hello   world",
    "Hello\tworld\t\ttabs",
    "line1\nline2\r\nline3\n\n\nend",
    "trailing spaces   ",
    "   leading spaces",
    "don't I'll we've you're she's I'm he'd",
    "DON'T I'LL WE'VE",
    "1234567",
    "3.14159 and 1,000,000 and 42nd",
    "The year 2024 had 366 days.",
    "café naïve résumé Ångström",
    "Straße über Ölfeld",
    "日本語のテキストです。",
    "中文测试：你好，世界！",
    "한국어 텍스트",
    "Привет, мир! Как дела?",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "emoji: 😀🎉🦙 👍🏽 👨‍👩‍👧",
    "mixed: hello世界123abc!?",
    "def f(x):\n\treturn x * 2  # comment\n",
    "for (int i = 0; i < n; ++i) {\n    sum += a[i];\n}",
    "    indented code\n        more",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more",
    "<|im_start|><|im_end|>",
    "<|im_start",
    "a<reponame>b<file_sep>c",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "antidisestablishmentarianism supercalifragilisticexpialidocious",
    "https://example.com/path?query=1&x=y#frag",
    "user@example.com $100 50% a+b=c x^2 ~tilde |pipe| `code`",
    "!!!??? ... --- *** ///",
    "ALL CAPS SENTENCE HERE",
    "\u00a0non-breaking\u00a0space and\u2003em space",
    "zero\u200bwidth",
    "a\u0301 combining accent",
    "½ ² ³ Ⅻ ١٢٣ ๔๕",
    "'s 't 're",
    "x  \n\n  y",
    "ok!!\n\n\nnext",
    "\r\n\r\n",
    "I'VE 'Re it's",
    "word\u3000word a\u0085b",
    "tab\t\t\n\tend  ",
    "$5+$6=<11> ^_^ ~~ || ``",
    "x" * 100,
    "The quick brown fox jumps over the lazy dog. " * 3,
]

PRE_TYPES = ["default", "gpt-2", "llama3", "llama-bpe", "qwen2", "smollm", "starcoder",
             "falcon", "deepseek-llm", "deepseek-coder", "refact", "no-such-pre"]


class Vocab:
    def __init__(self, path):
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self.model = llama_cpp.llama_model_load_from_file(path.encode(), params)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n = llama_cpp.llama_vocab_n_tokens(self.vocab)

    def tokenize(self, text: bytes, add_special: bool, parse_special: bool):
        cap = len(text) * 2 + 16
        buf = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(self.vocab, text, len(text), buf, cap, add_special, parse_special)
        assert n >= 0, n
        return list(buf[:n])

    def piece(self, tok: int) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = llama_cpp.llama_token_to_piece(self.vocab, tok, buf, 256, 0, True)
        assert 0 <= n <= 256
        return buf.raw[:n]

    def detokenize(self, toks):
        arr = (llama_cpp.llama_token * max(1, len(toks)))(*toks)
        cap = 64 + 64 * len(toks)
        out = ctypes.create_string_buffer(cap)
        n = llama_cpp.llama_detokenize(self.vocab, arr, len(toks), out, cap, False, True)
        assert n >= 0
        return out.raw[:n]

    def info(self):
        v = self.vocab
        return {
            "n_vocab": self.n,
            "bos": llama_cpp.llama_vocab_bos(v),
            "eos": llama_cpp.llama_vocab_eos(v),
            "eot": llama_cpp.llama_vocab_eot(v),
            "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(v)),
            "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(v)),
            "eog": [i for i in range(self.n) if llama_cpp.llama_vocab_is_eog(v, i)],
        }

    def close(self):
        llama_cpp.llama_model_free(self.model)


def b2s(b: bytes) -> str:
    # JSON needs text; pieces may be partial UTF-8, so keep them as a list of byte values.
    return list(b)


def cases(vocab: Vocab, texts):
    out = []
    for text in texts:
        raw = text.encode("utf-8")
        for add_special in (False, True):
            for parse_special in (False, True):
                ids = vocab.tokenize(raw, add_special, parse_special)
                out.append({
                    "text": text,
                    "add_special": add_special,
                    "parse_special": parse_special,
                    "ids": ids,
                    "pieces": [b2s(vocab.piece(t)) for t in ids],
                    "detokenized": b2s(vocab.detokenize(ids)),
                })
    return out


def copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter, override: dict):
    """Copies every metadata key except the header ones, replacing those in `override`."""
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if key in override:
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            sub = field.types[1]
            if sub == gguf.GGUFValueType.STRING:
                val = [bytes(field.parts[i]).decode("utf-8", errors="surrogateescape") for i in field.data]
            else:
                val = [field.parts[i].tolist()[0] for i in field.data]
            writer.add_key_value(key, val, vtype, sub_type=sub)
        elif vtype == gguf.GGUFValueType.STRING:
            writer.add_key_value(key, bytes(field.parts[field.data[0]]).decode("utf-8"), vtype)
        else:
            writer.add_key_value(key, field.parts[field.data[0]].tolist()[0], vtype)
    for key, (val, vtype) in override.items():
        writer.add_key_value(key, val, vtype)


def write_vocab_only(path, arch, build):
    w = gguf.GGUFWriter(path, arch)
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# A small SentencePiece vocab. Scores pick the merge order (higher merges first).
SPM_PIECES = [
    # (text, score, type)  type: 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte
    ("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3),
] + [(f"<0x{b:02X}>", 0.0, 6) for b in range(256)] + [
    ("\u2581", -1.0, 1), ("\u2581t", -2.0, 1), ("he", -3.0, 1), ("\u2581the", -1.5, 1),
    ("h", -5.0, 1), ("e", -5.0, 1), ("l", -5.0, 1), ("o", -5.0, 1), ("w", -5.0, 1),
    ("r", -5.0, 1), ("d", -5.0, 1), ("t", -5.0, 1), ("a", -5.0, 1), ("n", -5.0, 1),
    ("ll", -2.5, 1), ("llo", -2.0, 1), ("hello", -1.2, 1), ("\u2581hello", -0.5, 1),
    ("\u2581h", -4.0, 1), ("\u2581w", -4.0, 1), ("or", -3.5, 1), ("\u2581wor", -3.0, 1),
    ("\u2581world", -0.8, 1), ("ld", -3.2, 1), ("an", -3.3, 1), ("\u2581an", -2.2, 1),
    ("\u2581and", -1.1, 1), ("\u2581a", -4.5, 1), ("\u2581\u2581", -3.9, 1),
    ("\u4e2d", -6.0, 1), ("\u6587", -6.0, 1), ("\u4e2d\u6587", -2.8, 1), ("é", -6.0, 1),
    ("<|user|>", 0.0, 4), ("<|im_start|>", 0.0, 3), ("<|im_end|>", 0.0, 3),
    ("x", -5.0, 1), ("xx", -4.9, 1), ("xxx", -4.8, 1), ("1", -5.0, 1), ("12", -4.0, 1),
]

SPM_TEXTS = [
    "", " ", "hello", "hello world", " hello  world", "the", "and the world",
    "hell", "hellohello", "wordl", "héllo", "中文", "中文字", "🦙", "hello\nworld",
    "xxxxxxx", "1212312", "<|user|>hello<|im_start|>world<|im_end|>",
    "a<s>b</s>c", "tab\there", "  ", "the  the   the",
]


def spm_fixture(tmp):
    path = os.path.join(tmp, "spm_tiny.gguf")

    def build(w):
        w.add_context_length(64)
        w.add_embedding_length(8)
        w.add_block_count(1)
        w.add_feed_forward_length(16)
        w.add_head_count(2)
        w.add_head_count_kv(2)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_rope_dimension_count(4)
        w.add_tokenizer_model("llama")
        w.add_token_list([p[0] for p in SPM_PIECES])
        w.add_token_scores([p[1] for p in SPM_PIECES])
        w.add_token_types([p[2] for p in SPM_PIECES])
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)

    write_vocab_only(path, "llama", build)
    v = Vocab(path)
    data = {
        "source": "llama.cpp via llama-cpp-python " + llama_cpp.__version__,
        "vocab": [{"text": p[0], "score": p[1], "type": p[2]} for p in SPM_PIECES],
        "info": v.info(),
        "cases": cases(v, SPM_TEXTS),
    }
    v.close()
    return data


def bpe_pre_fixture(model, tmp):
    reader = gguf.GGUFReader(model)
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    texts = [t for t in TEXTS if len(t) < 120]
    out = {"source": "llama.cpp via llama-cpp-python " + llama_cpp.__version__, "pre": {}}
    for pre in PRE_TYPES:
        path = os.path.join(tmp, f"bpe_{pre}.gguf")
        override = {"tokenizer.ggml.pre": (pre, gguf.GGUFValueType.STRING)}
        write_vocab_only(path, arch, lambda w: copy_metadata(reader, w, override))
        try:
            v = Vocab(path)
        except RuntimeError as e:
            print(f"  pre '{pre}': llama.cpp refuses it ({e}); skipped", file=sys.stderr)
            continue
        # ids only: pieces and decoding are covered by the smollm2 fixture
        out["pre"][pre] = {"info": v.info(), "cases": [
            {"text": c["text"], "parse_special": c["parse_special"], "ids": c["ids"]}
            for c in cases(v, texts) if not c["add_special"]]}
        v.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args()
    os.makedirs(OUT_DIR, exist_ok=True)

    v = Vocab(args.model)
    smol = {
        "source": "llama.cpp via llama-cpp-python " + llama_cpp.__version__,
        "model": os.path.basename(args.model),
        "info": v.info(),
        "cases": cases(v, TEXTS),
    }
    v.close()
    with open(os.path.join(OUT_DIR, "smollm2_tokens.json"), "w") as f:
        json.dump(smol, f, ensure_ascii=False, indent=1)

    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(OUT_DIR, "spm_tokens.json"), "w") as f:
            json.dump(spm_fixture(tmp), f, ensure_ascii=False, indent=1)
        with open(os.path.join(OUT_DIR, "bpe_pre_tokens.json"), "w") as f:
            json.dump(bpe_pre_fixture(args.model, tmp), f, ensure_ascii=False, separators=(",", ":"))
    print("wrote fixtures to", OUT_DIR)


if __name__ == "__main__":
    main()
