"""The server end to end through the official `openai` Python client.

Started by CTest with the virtual environment's python (scripts/run_tests.sh
installs openai and pytest there). Each module-level server is a real
`parallama serve` on a free port of 127.0.0.1, stopped at the end with SIGTERM
(which must end it with exit status 0).

Expected values come from outside the server: llama.cpp's greedy continuations
(tests/fixtures/model/smollm2_greedy.json, made by tools/make_model_fixtures.py),
the client's own parsing of every response, and requests run alone (batch
invariance: 16 concurrent requests must return what each returns alone).
"""
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

import openai
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("PARALLAMA_BINARY", os.path.join(ROOT, "build", "release", "parallama"))
MODEL = os.path.expanduser("~/.cache/parallama/models/SmolLM2-135M-Instruct.Q4_1.gguf")
LAYOUT = os.environ.get("PARALLAMA_LAYOUT", "")  # e.g. "--tp 2 -t 1"


class Server:
    def __init__(self, *extra):
        assert os.path.exists(MODEL), f"default model not found at {MODEL}: run scripts/fetch_model.sh"
        args = [BINARY, "serve", "-m", MODEL, "--port", "0", "--ctx", "8192", *LAYOUT.split(), *extra]
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
        self.log = []
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("server exited before it was ready:\n" + "".join(self.log))
            self.log.append(line)
            m = re.search(r"ready: (http://[\d.]+:\d+)/v1 serves '([^']+)'", line)
            if m:
                self.url, self.model = m.group(1), m.group(2)
                break
        else:
            raise RuntimeError("server not ready in 120 s")
        # Keep reading stderr so the pipe never fills.
        import threading
        threading.Thread(target=lambda: [self.log.append(l) for l in self.proc.stderr], daemon=True).start()

    def client(self, **kw):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=kw.pop("api_key", "none"), max_retries=0, **kw)

    def post(self, path, body, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        assert rc == 0, "server exit status %d:\n%s" % (rc, "".join(self.log[-20:]))


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def fixture_cases():
    with open(os.path.join(ROOT, "tests", "fixtures", "model", "smollm2_greedy.json")) as f:
        return json.load(f)["cases"]


def test_models_and_health(server):
    models = server.client().models.list()
    assert [m.id for m in models.data] == [server.model]
    with urllib.request.urlopen(server.url + "/health") as r:
        assert r.status == 200


def test_greedy_completion_matches_llama_cpp(server):
    # Token ids in, greedy out: llama.cpp's tokens up to the first near-tie of its own run.
    c = server.client()
    checked = 0
    for case in fixture_cases():
        steps = case["steps"]
        r = c.completions.create(model=server.model, prompt=case["prompt_tokens"], max_tokens=len(steps),
                                 temperature=0, logprobs=1, extra_body={"ignore_eos": True})
        got = r.choices[0].logprobs.tokens
        want = [server_tokenize_piece(server, s["token"]) for s in steps]
        for i, st in enumerate(steps):
            if got[i] != want[i]:
                assert st["margin"] < 0.5, f"{case['name']} step {i}: {got[i]!r} vs llama.cpp {want[i]!r}"
                break
            checked += 1
        assert r.usage.prompt_tokens == len(case["prompt_tokens"])
        assert r.usage.completion_tokens == len(steps)
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert checked >= 200  # about 280 of 448 steps agree before a near-tie (tests/e2e)


_pieces = {}


def server_tokenize_piece(server, tok):
    if tok not in _pieces:
        st, body = server.post("/detokenize", {"tokens": [tok]})
        assert st == 200
        _pieces[tok] = body["prompt"]
    return _pieces[tok]


def test_stream_equals_non_stream_and_usage(server):
    c = server.client()
    kw = dict(model=server.model, prompt="The capital of France is", max_tokens=24, temperature=0)
    full = c.completions.create(**kw)
    chunks = list(c.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    assert text == full.choices[0].text
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == full.choices[0].finish_reason


def test_chat_stream_and_non_stream(server):
    c = server.client()
    msgs = [{"role": "user", "content": "Name three colors."}]
    full = c.chat.completions.create(model=server.model, messages=msgs, max_tokens=32, temperature=0)
    assert full.choices[0].message.role == "assistant"
    parts = list(c.chat.completions.create(model=server.model, messages=msgs, max_tokens=32, temperature=0,
                                           stream=True))
    assert parts[0].choices[0].delta.role == "assistant"
    assert parts[0].choices[0].delta.content  # the first chunk already carries text
    assert "".join(p.choices[0].delta.content or "" for p in parts) == full.choices[0].message.content
    assert full.choices[0].finish_reason in ("stop", "length")


def test_stop_string_is_cut_and_never_streamed(server):
    c = server.client()
    kw = dict(model=server.model, prompt="1, 2, 3, 4,", max_tokens=30, temperature=0)
    free = c.completions.create(**kw).choices[0].text
    assert " 7" in free
    stop = " 7,"
    r = c.completions.create(stop=[stop, "zzz"], **kw)
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].text == free[: free.index(stop)]
    streamed = ""
    for ch in c.completions.create(stop=stop, stream=True, **kw):
        streamed += ch.choices[0].text
        assert " 7" not in streamed
    assert streamed == r.choices[0].text


def test_n_seed_and_logprobs(server):
    c = server.client()
    kw = dict(model=server.model, prompt="Once upon a time", max_tokens=12, temperature=0.9, seed=7, n=2)
    a = c.completions.create(**kw)
    b = c.completions.create(**kw)
    assert len(a.choices) == 2
    assert [x.text for x in a.choices] == [x.text for x in b.choices]  # same seed, same text
    assert 2 <= a.usage.completion_tokens <= 24 and a.usage.completion_tokens == b.usage.completion_tokens
    r = c.chat.completions.create(model=server.model, messages=[{"role": "user", "content": "Hi"}], max_tokens=5,
                                  temperature=0, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for e in content:
        assert e.logprob <= 0
        assert len(e.top_logprobs) == 3
        assert e.top_logprobs[0].token == e.token  # greedy takes the most likely
        assert e.top_logprobs[0].logprob == pytest.approx(e.logprob)


def test_concurrent_requests_equal_solo(server):
    c = server.client()
    prompts = [f"Write a sentence about the number {i}." for i in range(16)]

    def one(p):
        return c.completions.create(model=server.model, prompt=p, max_tokens=16 + len(p) % 7, temperature=0).choices[0].text

    solo = [one(p) for p in prompts]
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        together = list(ex.map(one, prompts))
    assert together == solo


@pytest.mark.parametrize("body,status,param", [
    (b"{not json", 400, None),
    ({"prompt": "hi", "max_tokens": "ten"}, 400, "max_tokens"),
    ({"prompt": "hi", "temperature": 5}, 400, "temperature"),
    ({"prompt": "hi", "top_p": 0}, 400, "top_p"),
    ({"prompt": ""}, 400, "prompt"),
    ({"prompt": [1, 2, 10**9]}, 400, "prompt"),
    ({"max_tokens": 3}, 400, "prompt"),
    ({"prompt": "hi", "model": "no-such-model"}, 404, "model"),
    ({"prompt": "hi", "stop": ["a"] * 17}, 400, "stop"),
    ({"prompt": "hi", "n": 0}, 400, "n"),
    ({"prompt": "hi " * 9000}, 400, "prompt"),
])
def test_bad_input_gets_openai_error(server, body, status, param):
    st, j = server.post("/v1/completions", body)
    assert st == status
    err = j["error"]
    assert err["code"] == status and err["message"] and err["type"]
    assert err["param"] == param


def test_body_too_large_and_unknown_route(server):
    st, j = server.post("/v1/completions", b"{" + b" " * (5 << 20) + b"}")
    assert st == 413 and j["error"]["code"] == 413
    st, j = server.post("/v1/nothing", {})
    assert st == 404 and j["error"]["code"] == 404
    # The server still answers correctly afterwards.
    r = server.client().completions.create(model=server.model, prompt="Hello", max_tokens=3, temperature=0)
    assert r.usage.completion_tokens == 3


def test_tokenize_detokenize(server):
    st, j = server.post("/tokenize", {"model": server.model, "prompt": "Hello world"})
    assert st == 200 and j["count"] == len(j["tokens"]) and j["max_model_len"] > 0
    st, d = server.post("/detokenize", {"model": server.model, "tokens": j["tokens"]})
    assert st == 200 and d["prompt"] == "Hello world"


def test_client_disconnect_aborts_and_frees(server):
    c = server.client()
    stream = c.completions.create(model=server.model, prompt="Tell a long story:", max_tokens=2000,
                                  temperature=0, stream=True, extra_body={"ignore_eos": True})
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        with urllib.request.urlopen(server.url + "/metrics") as r:
            text = r.read().decode()
        running = re.search(r'^parallama:num_requests_running\{[^}]*\} (\S+)', text, re.M)
        usage = re.search(r'^parallama:kv_cache_usage_perc\{[^}]*\} (\S+)', text, re.M)
        if running and float(running.group(1)) == 0 and float(usage.group(1)) == 0:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the abandoned request still runs:\n" + text)
    assert re.search(r'parallama:request_success_total\{[^}]*finished_reason="abort"[^}]*\} [1-9]', text)


def test_api_key():
    s = Server("--api-key", "sekrit")
    try:
        with pytest.raises(openai.AuthenticationError):
            s.client(api_key="wrong").completions.create(model=s.model, prompt="hi", max_tokens=1)
        r = s.client(api_key="sekrit").completions.create(model=s.model, prompt="hi", max_tokens=1)
        assert r.usage.completion_tokens == 1
    finally:
        s.stop()
