"""TP x PP across two emulated hosts (scripts/emulate_hosts.sh: network
namespaces over a bridge, real TCP between hosts, shared memory inside one).

Expectations come from the single-rank run and from the contract, not from
the multi-host run itself:
  * `generate` with tp=2 x pp=2, TP inside hosts (--map-by slot) and TP across
    hosts (--map-by node), gives the single-rank greedy tokens, prints each
    rank's host as asked, and its traffic crosses the emulated link;
  * `serve` across the hosts answers the official OpenAI client exactly as a
    single-rank server does;
  * faults: a rank killed on the second host, every process of the second host
    killed, a rank stopped (SIGSTOP), the link cut. `generate` and `serve` end
    non-zero within 10 s naming the rank or the host; the server's in-flight
    stream ends with an error event; afterwards no process of the job is left
    and every namespace is gone.
Needs root and network namespaces: where they cannot be made the tests fail
saying so (they do not skip). Every wait is bounded.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EMU = os.path.join(ROOT, "scripts", "emulate_hosts.sh")
PROBE = os.path.join(HERE, "openai_probe.py")
BIN = os.environ.get("PARALLAMA_BINARY", os.path.join(ROOT, "build", "release", "parallama"))
PREFIX = "plt"
H1, H2 = PREFIX + "h1", PREFIX + "h2"
PROMPT = "The capital of France is"
N_TOKENS = 24
FAULT_LIMIT_S = 10
COMM_TIMEOUT = "2"


# ----------------------------------------------------------------- helpers

def emu(*args, check=True, timeout=60):
    r = subprocess.run([EMU, *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("emulate_hosts.sh %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr))
    return r


def namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [l.split()[0] for l in out.splitlines() if l.startswith(PREFIX)]


def ns_pids(ns):
    r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()] if r.returncode == 0 else []


def rx_bytes(ns):
    out = subprocess.run(["ip", "-n", ns, "-s", "link", "show", "eth0"], capture_output=True, text=True).stdout
    lines = out.splitlines()
    for i, l in enumerate(lines):
        if l.strip().startswith("RX:"):
            return int(lines[i + 1].split()[0])
    raise AssertionError("no RX counters for %s: %s" % (ns, out))


def rank_pids(ns):
    """{world rank: pid} of the ranks running in namespace ns."""
    out = {}
    for pid in ns_pids(ns):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except OSError:
            continue
        if b"OMPI_COMM_WORLD_RANK" in env:
            out[int(env[b"OMPI_COMM_WORLD_RANK"])] = pid
    return out


@pytest.fixture
def hosts():
    """Two fresh emulated hosts; afterwards every process in them is gone and
    the namespaces are removed (the test fails otherwise)."""
    if os.geteuid() != 0:
        pytest.fail("multihost tests need root to create network namespaces (run .ci/run or the tests as root)")
    emu("down", "--prefix", PREFIX, check=False)
    r = emu("up", "2", "--prefix", PREFIX, check=False)
    if r.returncode != 0:
        pytest.fail("cannot create emulated hosts (network namespaces) on this machine: " + r.stderr.strip())
    yield
    deadline = time.time() + 5  # Open MPI's daemons notice a lost job within seconds
    while any(ns_pids(ns) for ns in (H1, H2)) and time.time() < deadline:
        time.sleep(0.1)
    left = {ns: ns_pids(ns) for ns in (H1, H2)}
    emu("down", "--prefix", PREFIX, check=False)
    assert not namespaces(), "namespaces left: %r" % namespaces()
    assert not any(left.values()), "processes still running in the emulated hosts after the test: %r" % left


class Proc:
    """A command run as host 1 (mpirun's host), its output read on threads."""

    def __init__(self, *cmd, host_cmd="run"):
        args = [EMU, "run", "--prefix", PREFIX, "--"] if host_cmd == "run" else [EMU, "exec", H1, "--"]
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        self.p = subprocess.Popen(args + list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.out, self.err = [], []
        self.lines = []
        self.threads = [threading.Thread(target=self._read, args=(self.p.stdout, self.out), daemon=True),
                        threading.Thread(target=self._read, args=(self.p.stderr, self.err), daemon=True)]
        for t in self.threads:
            t.start()

    def _read(self, stream, into):
        for chunk in iter(lambda: stream.read1(4096), b""):
            into.append(chunk)

    def stdout(self):
        return b"".join(self.out).decode(errors="replace")

    def stderr(self):
        return b"".join(self.err).decode(errors="replace")

    def wait_for(self, pred, seconds, what):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if pred():
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("%s: not within %d s (exit %r); stderr:\n%s" % (what, seconds, self.p.poll(),
                                                                          self.stderr()[-3000:]))

    def wait(self, seconds):
        try:
            return self.p.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None
        finally:
            for t in self.threads:
                t.join(1)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)


def single_rank_tokens():
    r = subprocess.run([BIN, "generate", "-t", "1", "-n", str(N_TOKENS), "-p", PROMPT, "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["tokens"]


def rank_hosts(stderr):
    """{rank: host} from the start-up table."""
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^(\d+)\s+(\S+)\s+\d+\s+\d+\s", stderr, re.M)}


# ----------------------------------------------------------------- correctness

@pytest.mark.parametrize("map_by,want_hosts", [("slot", [H1, H1, H2, H2]), ("node", [H1, H2, H1, H2])])
def test_generate_across_hosts_gives_the_single_rank_tokens(hosts, map_by, want_hosts):
    want = single_rank_tokens()
    before = rx_bytes(H2)
    p = Proc(BIN, "generate", "--tp", "2", "--pp", "2", "-t", "1", "-n", str(N_TOKENS), "-p", PROMPT, "--json",
             "--hosts", f"{H1}:2,{H2}:2", "--map-by", map_by)
    rc = p.wait(120)
    assert rc == 0, "exit %r:\n%s" % (rc, p.stderr()[-3000:])
    got = json.loads(p.stdout())["tokens"]
    assert got == want, "tp2 x pp2 over 2 hosts (--map-by %s): %r, single rank: %r" % (map_by, got, want)
    hosts_of = rank_hosts(p.stderr())
    assert [hosts_of.get(r) for r in range(4)] == want_hosts, p.stderr()
    crossed = rx_bytes(H2) - before
    # At least the weights' worth of nothing: the activations of every step
    # (24 steps x 576 floats for PP, or per-layer all-reduces for TP) must pass.
    assert crossed > 24 * 576 * 4, "only %d bytes reached %s: the ranks did not talk over the link" % (crossed, H2)
    print("\n--map-by %s: tokens equal the single rank's; %d bytes reached %s" % (map_by, crossed, H2))


def probe(url, *extra, timeout=120):
    r = subprocess.run([EMU, "exec", H1, "--", sys.executable, PROBE, url, "smol", *extra], capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def start_server(*layout, port):
    p = Proc(BIN, "serve", "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "smol", "-t", "1",
             "--no-log-requests", "--comm-timeout", COMM_TIMEOUT, *layout)
    p.wait_for(lambda: "ready: http" in p.stderr(), 120, "server ready")
    return p


def stop_server(p):
    if p.p.poll() is None:
        p.p.send_signal(signal.SIGTERM)
    rc = p.wait(30)
    p.kill()
    return rc


def test_serve_across_hosts_answers_like_a_single_rank(hosts):
    one = start_server(port=18301)
    try:
        want = probe("http://127.0.0.1:18301/v1")
    finally:
        assert stop_server(one) == 0
    many = start_server("--tp", "2", "--pp", "2", "--hosts", f"{H1}:2,{H2}:2", port=18302)
    try:
        assert set(rank_hosts(many.stderr()).values()) == {H1, H2}, many.stderr()
        got = probe("http://127.0.0.1:18302/v1")
    finally:
        rc = stop_server(many)
    assert got == want, "across hosts: %r\nsingle rank: %r" % (got, want)
    assert rc == 0, "the multi-host server did not stop cleanly: %r\n%s" % (rc, many.stderr()[-2000:])
    assert want["stream"] == want["completion"] and want["stream_usage"] == want["completion_usage"]


# ----------------------------------------------------------------- faults

def inject(fault):
    """Applies the fault to host 2; returns what a message must name."""
    ranks = rank_pids(H2)
    assert sorted(ranks) == [2, 3], "ranks on %s: %r" % (H2, ranks)
    if fault == "kill_rank":
        os.kill(ranks[3], signal.SIGKILL)
        return r"rank 3|%s" % H2
    if fault == "kill_host":
        for pid in ns_pids(H2):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return H2
    if fault == "stop_rank":
        os.kill(ranks[3], signal.SIGSTOP)
        return r"rank 3|%s" % H2
    if fault == "cut_link":
        emu("cut", H2)
        return r"rank [23]|%s" % H2
    raise ValueError(fault)


FAULTS = ["kill_rank", "kill_host", "stop_rank", "cut_link"]


def inject_and_wait(fault, proc, what):
    """Applies the fault and waits for proc to end: (what a message must name,
    exit status, seconds it took, when the fault came); a hang fails."""
    names = inject(fault)
    t0 = time.time()
    rc = proc.wait(FAULT_LIMIT_S)
    assert rc is not None, "HANG: %s still runs %d s after %s:\n%s" % (what, FAULT_LIMIT_S, fault,
                                                                      proc.stderr()[-3000:])
    return names, rc, time.time() - t0, t0


@pytest.mark.parametrize("fault", FAULTS)
def test_generate_fault_ends_the_job(hosts, fault):
    p = Proc(BIN, "generate", "--tp", "2", "--pp", "2", "-t", "1", "-n", "100000", "-c", "200000", "--ignore-eos",
             "-p", "Once upon a time", "--hosts", f"{H1}:2,{H2}:2", "--comm-timeout", COMM_TIMEOUT)
    try:
        p.wait_for(lambda: len(p.stdout()) > 100, 120, "generated text")
        names, rc, elapsed, _ = inject_and_wait(fault, p, "generate")
        assert rc != 0, "exit status 0 after " + fault
        assert re.search(names, p.stderr()), "no message names %s:\n%s" % (names, p.stderr()[-3000:])
        print("\ngenerate, %s: exit %d after %.1f s" % (fault, rc, elapsed))
    finally:
        p.kill()
        if fault == "cut_link":
            emu("mend", H2, check=False)


@pytest.mark.parametrize("fault", FAULTS)
def test_serve_fault_fails_open_requests_and_ends_the_server(hosts, fault):
    s = start_server("--tp", "2", "--pp", "2", "--hosts", f"{H1}:2,{H2}:2", port=18303)
    client = subprocess.Popen([EMU, "exec", H1, "--", sys.executable, PROBE, "http://127.0.0.1:18303/v1", "smol",
                               "--stream-until-end"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = client.stdout.readline()
        assert first.strip() == "FIRST", "no first chunk: %r %s" % (first, client.stderr.read()[-2000:])
        names, rc, elapsed, t0 = inject_and_wait(fault, s, "the server")
        out, err = client.communicate(timeout=FAULT_LIMIT_S)
        summary = json.loads(out.strip().splitlines()[-1])
        assert rc != 0, "exit status 0 after " + fault
        assert summary["errors"], "the open stream ended without an error event: %r" % summary
        assert not summary["done"], "an error stream must not end with [DONE]: %r" % summary
        msg = summary["errors"][0]["message"]
        assert re.search(names, msg), "the error event does not name %s: %r" % (names, msg)
        assert summary["t_error"] - t0 < FAULT_LIMIT_S, summary
        print("\nserve, %s: error event after %.1f s (%s); exit %d after %.1f s"
              % (fault, summary["t_error"] - t0, msg[:160], rc, elapsed))
    finally:
        client.kill()
        s.kill()
        if fault == "cut_link":
            emu("mend", H2, check=False)


# ----------------------------------------------------------------- bench sweep

def test_bench_sweep_across_emulated_hosts(tmp_path):
    """bench sweep makes its own hosts (prefix sw), serves tp2 x pp2 with TP
    across them over a 1 Gbit/s link, benchmarks it from inside the first
    host, and leaves no host behind."""
    out = str(tmp_path / "sweep")
    n, out_len = 6, 8
    try:
        r = subprocess.run([BIN, "bench", "sweep", "--layouts", "tp=2,pp=2,threads=1,hosts=2,map=node,link=1gbit",
                            "--rates", "2", "--num-prompts", str(n), "--random-input-len", "32",
                            "--random-output-len", str(out_len), "--ignore-eos", "--port", "18304", "--out", out,
                            "--no-plot"], capture_output=True, text=True, timeout=240)
    finally:
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        emu("down", "--prefix", "sw", check=False)  # a sweep killed by the timeout cannot remove its hosts
    assert r.returncode == 0, "sweep failed (%d):\n%s" % (r.returncode, r.stderr[-3000:])
    lay = json.load(open(out + ".json"))["layouts"][0]
    run = lay["runs"][0]
    assert run["completed"] == n and run["failed"] == 0 and run["total_output_tokens"] == n * out_len, run
    assert lay["server_exit"] == 0, lay
    log = open(lay["log"]).read()
    assert [rank_hosts(log).get(k) for k in range(4)] == ["swh1", "swh2", "swh1", "swh2"], log[-2000:]
    assert not re.search(r"^sw(h\d+|br)\b", left, re.M), "the sweep left namespaces: " + left
    print("\nbench sweep across 2 emulated hosts: %d requests, p90 E2EL %.0f ms" % (n, run["p90_e2el_ms"]))
