"""Schemathesis against /openapi.json of a running `parallama serve`, bounded.

Run as a script (CTest): starts `parallama serve --port 0 -t 2 --max-model-len
512`, sends one greedy request, runs the schemathesis CLI (deterministic
generation, EXAMPLES cases per operation, examples, coverage and fuzzing
phases; 15-45 s on two cores) with the checks in CHECKS, then requires the
server to be still up (/health 200), to answer the greedy request exactly as
before, and to stop with exit status 0 on SIGTERM. Any schemathesis failure
fails the test.

positive_data_acceptance is not checked: some refusals of schema-valid bodies
are right, as a prompt's length in tokens, which no schema states, and others
are small quirks of the parser (token ids written as 1.0, a top_p so small that
it is 0 as a float).

Imported by schemathesis (SCHEMATHESIS_HOOKS=schemathesis_test), this module
registers two hooks:
- before_load_schema narrows what the document says in prose to this server:
  the model's name, max_model_len and the vocabulary size. Positive cases then
  reach the parser (rather than all stopping at a 404 for a random model
  name), and negative cases probe those bounds, which must be refused.
- before_call gives a generation request whose token budget is valid at most
  MAX_TOKENS tokens (absent: MAX_TOKENS), so that, say, a chat request with
  n=16 does not generate up to the whole context. Only valid values are
  replaced, by other valid values, so negative cases stay negative.
"""
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import schemathesis

MAX_TOKENS = 4
MAX_MODEL_LEN = 512
EXAMPLES = int(os.environ.get("PARALLAMA_SCHEMATHESIS_EXAMPLES", "100"))
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,negative_data_rejection,unsupported_method,allow_header_conformance,"
          "missing_required_header")


@schemathesis.hook
def before_load_schema(ctx, raw_schema):
    schemas = raw_schema.get("components", {}).get("schemas", {})
    name = os.environ.get("PARALLAMA_SERVED_MODEL")
    if name and "ModelName" in schemas:
        schemas["ModelName"] = {"enum": [name, None]}
    if "MaxTokens" in schemas:
        schemas["MaxTokens"] = {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_MODEL_LEN}
    n_vocab = os.environ.get("PARALLAMA_N_VOCAB")
    if n_vocab and "TokenId" in schemas:
        schemas["TokenId"] = {"type": "integer", "minimum": 0, "maximum": int(n_vocab) - 1}


def _valid_budget(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v == int(v)
            and 1 <= v <= MAX_MODEL_LEN)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if ctx.operation is None or ctx.operation.path not in ("/v1/completions", "/v1/chat/completions"):
        return
    body = case.body
    if not isinstance(body, dict):
        return
    # The server reads max_completion_tokens when it is present and not null, else max_tokens.
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    if body.get(key) is None:
        body[key] = MAX_TOKENS
    elif _valid_budget(body[key]):
        body[key] = min(int(body[key]), MAX_TOKENS)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    from openai_client_test import Server

    t0 = time.time()
    server = Server("-t", "2", "--max-model-len", str(MAX_MODEL_LEN), "--no-log-requests")
    print(f"server ready in {time.time() - t0:.1f} s at {server.url}", flush=True)

    def post(path, body):
        req = urllib.request.Request(server.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def greedy():
        status, body = post("/v1/completions", {"prompt": "The capital of France is", "max_tokens": 12,
                                                "temperature": 0})
        assert status == 200, f"greedy request: {status} {body}"
        return body["choices"][0]["text"]

    def vocab_size():  # the first token id /detokenize refuses
        def known(token):
            status, body = post("/detokenize", {"tokens": [token]})
            assert status in (200, 400), f"/detokenize [{token}]: {status} {body}"
            return status == 200
        lo, hi = 0, 1 << 24
        assert known(lo) and not known(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if known(mid) else (lo, mid)
        return hi

    failures = []
    try:
        before = greedy()
        n_vocab = vocab_size()
        print(f"serves {server.model!r}, vocabulary of {n_vocab} tokens", flush=True)
        st = os.path.join(os.path.dirname(sys.executable), "schemathesis")
        # One worker: schemathesis's generation is not thread-safe here (CPython 3.11's ast.parse
        # from several threads fails with "AST constructor recursion depth mismatch").
        cmd = [st, "run", server.url + "/openapi.json", "--max-examples", str(EXAMPLES),
               "--phases", "examples,coverage,fuzzing", "--checks", CHECKS, "--workers", "1",
               "--generation-deterministic", "--continue-on-failure", "--request-timeout", "30",
               "--suppress-health-check", "too_slow", "--output-sanitize", "false", "--no-color"]
        env = dict(os.environ, SCHEMATHESIS_HOOKS="schemathesis_test", PARALLAMA_SERVED_MODEL=server.model,
                   PARALLAMA_N_VOCAB=str(n_vocab), PYTHONPATH=here + os.pathsep + os.environ.get("PYTHONPATH", ""))
        print("$ SCHEMATHESIS_HOOKS=schemathesis_test " + " ".join(cmd), flush=True)
        t1 = time.time()
        with tempfile.TemporaryDirectory() as scratch:  # for Hypothesis's and schemathesis's caches
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=200, env=env, cwd=scratch)
        print(r.stdout[-30000:], r.stderr[-4000:], sep="\n")
        print(f"schemathesis: exit status {r.returncode} in {time.time() - t1:.1f} s", flush=True)
        if r.returncode != 0:
            failures.append("schemathesis found failures (see above)")
        with urllib.request.urlopen(server.url + "/health", timeout=10) as h:
            if h.status != 200:
                failures.append(f"/health answers {h.status} after the fuzzing")
        after = greedy()
        if after != before:
            failures.append(f"the same greedy request answers {after!r} after the fuzzing, {before!r} before")
    except Exception as e:  # noqa: BLE001 - reported, and the server still stopped
        failures.append(f"{type(e).__name__}: {e}")
    finally:
        server.proc.send_signal(signal.SIGTERM)
        try:
            rc = server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            rc = "none (killed after 30 s)"
        if rc != 0:
            failures.append(f"server exit status {rc} after SIGTERM:\n" + "".join(server.log[-20:]))
    print(f"total {time.time() - t0:.1f} s", flush=True)
    for f in failures:
        print("FAILED:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
