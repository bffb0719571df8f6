"""The server under abuse: a soak of mixed requests (some abandoned), the queue
limit, shutdown with requests in flight, and a rank that dies while serving.
Expectations come from the API's contract (statuses, accounting, exit codes).
"""
import concurrent.futures
import json
import os
import random
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

import openai
import pytest

from openai_client_test import MODEL, Server


def metrics(server):
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    def value(name, labels=""):
        m = re.search(r"^" + re.escape(name) + r"\{[^}]*" + re.escape(labels) + r"[^}]*\} (\S+)", text, re.M)
        return float(m.group(1)) if m else None
    return value


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def wait_idle(server, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        v = metrics(server)
        if v("parallama:num_requests_running") == 0 and v("parallama:num_requests_waiting") == 0 \
                and v("parallama:kv_cache_usage_perc") == 0:
            return v
        time.sleep(0.1)
    pytest.fail("the engine did not return to idle")


def test_soak_every_request_accounted_for():
    s = Server("--kv-blocks", "64", "--max-num-seqs", "16", "--no-log-requests")
    try:
        c = s.client(timeout=120)
        rng = random.Random(1)
        outcomes = {"completed": 0, "abandoned": 0, "refused": 0}
        engine_requests = [0]

        def one(i):
            r = random.Random(i)
            n = r.choice([1, 1, 1, 2])
            kw = dict(model=s.model, max_tokens=r.randint(1, 32), n=n,
                      prompt=[r.randint(100, 40000) for _ in range(r.randint(1, 200))])
            if r.random() < 0.5:
                kw.update(temperature=0.7, seed=i, top_p=0.9, extra_body={"top_k": 40})
            else:
                kw.update(temperature=0)
            if r.random() < 0.2:
                kw["stop"] = [" the", "."]
            if r.random() < 0.1:
                kw["logprobs"] = 2
            if r.random() < 0.03:  # invalid
                kw["temperature"] = 7
                try:
                    c.completions.create(**kw)
                except openai.BadRequestError:
                    return "refused", 0
                return "unexpected", 0
            if r.random() < 0.5:
                stream = c.completions.create(stream=True, **kw)
                if r.random() < 0.2:
                    for k, _ in enumerate(stream):
                        if k == 2:
                            break
                    stream.close()
                    return "abandoned", n
                finishes = [ch.choices[0].finish_reason for ch in stream if ch.choices]
                assert sum(f is not None for f in finishes) == n and all(f in (None, "stop", "length") for f in finishes)
                return "completed", n
            res = c.completions.create(**kw)
            assert len(res.choices) == n and all(ch.finish_reason in ("stop", "length") for ch in res.choices)
            assert res.usage.completion_tokens <= n * kw["max_tokens"]
            return "completed", n

        total = 1000
        rss_after_100 = None
        with concurrent.futures.ThreadPoolExecutor(24) as ex:
            futures = [ex.submit(one, i) for i in range(total)]
            for k, f in enumerate(concurrent.futures.as_completed(futures)):
                what, n = f.result(timeout=300)
                assert what in outcomes, what
                outcomes[what] += 1
                engine_requests[0] += n
                if k == 99:
                    rss_after_100 = rss_kib(s.proc.pid)
        assert sum(outcomes.values()) == total
        v = wait_idle(s)
        ended = sum(v("parallama:request_success_total", f'finished_reason="{r}"') for r in ("stop", "length", "abort", "error"))
        assert ended == engine_requests[0], (ended, engine_requests[0], outcomes)
        assert v("parallama:num_preemptions_total") > 0
        rss_end = rss_kib(s.proc.pid)
        assert rss_end <= rss_after_100 * 1.05, (rss_after_100, rss_end)
        print(outcomes, "rss KiB", rss_after_100, "->", rss_end)
    finally:
        s.stop()


def test_queue_limit_gives_429_with_retry_after():
    s = Server("--max-queue", "2", "--no-log-requests")
    try:
        def one(_):
            req = urllib.request.Request(s.url + "/v1/completions", json.dumps(
                {"prompt": "Count:", "max_tokens": 200, "temperature": 0, "ignore_eos": True}).encode(),
                {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    return r.status, None, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, e.headers.get("Retry-After"), json.loads(e.read())
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            res = list(ex.map(one, range(8)))
        codes = [r[0] for r in res]
        assert codes.count(429) >= 1 and codes.count(200) >= 2, codes
        for code, retry, body in res:
            if code == 429:
                assert retry == "1" and body["error"]["code"] == 429
            else:
                assert body["usage"]["completion_tokens"] == 200
    finally:
        s.stop()


def test_shutdown_aborts_after_timeout_and_exits_0():
    s = Server("--shutdown-timeout", "1", "--no-log-requests")
    c = s.client(timeout=60)
    streams = [c.completions.create(model=s.model, prompt=f"Story {i}:", max_tokens=2000, temperature=0,
                                    stream=True, extra_body={"ignore_eos": True}) for i in range(4)]
    for st in streams:
        next(iter(st))
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    try:
        with urllib.request.urlopen(s.url + "/health", timeout=5) as r:
            assert False, "health still 200 while draining"
    except urllib.error.HTTPError as e:
        assert e.code == 503
    except urllib.error.URLError:
        pass
    for st in streams:  # each stream ends (error event or end), none hangs
        try:
            for _ in st:
                pass
        except openai.APIError:
            pass
    assert s.proc.wait(timeout=10) == 0
    assert time.time() - t0 < 6


def test_shutdown_lets_short_requests_finish():
    s = Server("--shutdown-timeout", "30", "--no-log-requests")
    c = s.client(timeout=60)
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        futs = [ex.submit(c.completions.create, model=s.model, prompt=f"Hi {i}", max_tokens=40, temperature=0,
                          extra_body={"ignore_eos": True}) for i in range(4)]
        time.sleep(0.05)
        s.proc.send_signal(signal.SIGTERM)
        for f in futs:
            assert f.result(timeout=60).usage.completion_tokens == 40
    assert s.proc.wait(timeout=30) == 0


def rank_pids(root_pid):
    """parallama processes below root_pid with their OMPI_COMM_WORLD_RANK."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"serve" in cmd and b"OMPI_COMM_WORLD_RANK" in env and int(pid) != root_pid:
            out[int(env[b"OMPI_COMM_WORLD_RANK"])] = int(pid)
    return out


def test_dead_rank_ends_the_server_nonzero():
    os.environ["PARALLAMA_LAYOUT"] = ""
    s = Server("--tp", "2", "-t", "1", "--no-log-requests")
    try:
        ranks = rank_pids(s.proc.pid)
        assert 1 in ranks, ranks
        c = s.client(timeout=30)
        st = c.completions.create(model=s.model, prompt="Long story:", max_tokens=2000, temperature=0, stream=True,
                                  extra_body={"ignore_eos": True})
        next(iter(st))
        os.kill(ranks[1], signal.SIGKILL)
        t0 = time.time()
        with pytest.raises(Exception):
            for _ in st:
                pass
        rc = s.proc.wait(timeout=10)
        assert rc != 0
        assert time.time() - t0 < 10
        time.sleep(0.5)
        log = "".join(s.log)
        assert re.search(r"rank|process|exited|signal", log, re.I), log[-2000:]
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
        for pid in rank_pids(-1).values():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
