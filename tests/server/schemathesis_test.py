"""Schemathesis against /openapi.json of a running `parallama serve`, bounded
(30 examples per operation): no 5xx, documented status codes, content types,
headers and response schemas, invalid data rejected, undeclared methods 405.
Not checked: positive_data_acceptance, because some of the server's refusals
depend on the model or on other fields (token ids within the vocabulary, a
prompt within the context, stream_options only with stream), which a static
schema cannot state. Afterwards the server must still be up and answer a
greedy request exactly as before, and stop with exit status 0 on SIGTERM.
"""
import json
import os
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from openai_client_test import Server  # noqa: E402

st = os.path.join(os.path.dirname(sys.executable), "schemathesis")
server = Server("--max-model-len", "512", "--no-log-requests")
ok = False


def greedy():
    body = {"prompt": "The capital of France is", "max_tokens": 12, "temperature": 0}
    req = urllib.request.Request(server.url + "/v1/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=60))["choices"][0]["text"]


try:
    before = greedy()
    r = subprocess.run([st, "run", server.url + "/openapi.json", "-n", "30", "--checks", "all",
                        "--exclude-checks", "positive_data_acceptance", "--request-timeout", "60",
                        "--generation-deterministic", "--no-color"],
                       capture_output=True, text=True, timeout=240)
    print(r.stdout[-6000:], r.stderr[-2000:])
    assert r.returncode == 0, "schemathesis found failures (see above)"
    with urllib.request.urlopen(server.url + "/health", timeout=10) as h:
        assert h.status == 200
    assert greedy() == before, "the same greedy request answers differently after the fuzzing"
    ok = True
finally:
    server.stop()
sys.exit(0 if ok else 1)
