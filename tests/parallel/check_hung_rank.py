#!/usr/bin/env python3
"""A rank that stops (SIGSTOP: alive, silent) during `parallama generate` ends
the whole job through the communication watchdog: non-zero status within
--comm-timeout plus a few seconds, a message naming the stopped rank, and no
process of the job left.
    check_hung_rank.py PARALLAMA --tp T --pp P --victim V
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time

TIMEOUT = 2.0  # --comm-timeout given to the job
# A rank waiting for the next plan allows for the largest step the stages
# before it may run (3 x pp x a generous prior per token until a large step has
# been timed): about 12 s for the default model at pp=2.
LIMIT = 30


def rank_pids(tag):
    """{world rank: pid} of the processes whose environment holds tag."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except OSError:
            continue
        if env.get(b"PARALLAMA_HUNG_TAG") == tag.encode() and b"OMPI_COMM_WORLD_RANK" in env:
            out[int(env[b"OMPI_COMM_WORLD_RANK"])] = int(pid)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--pp", type=int, default=1)
    ap.add_argument("--victim", type=int, required=True)
    a = ap.parse_args()
    tag = "hung-%d-%d" % (os.getpid(), time.monotonic_ns())
    env = dict(os.environ, PARALLAMA_HUNG_TAG=tag)
    cmd = [a.binary, "generate", "--tp", str(a.tp), "--pp", str(a.pp), "-t", "1", "-n", "100000", "-c", "200000",
           "--ignore-eos", "-p", "Once upon a time", "--comm-timeout", str(TIMEOUT)]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = [], []
    got_text = threading.Event()

    def read(stream, into, ev=None):
        for chunk in iter(lambda: stream.read1(4096), b""):
            into.append(chunk)
            if ev is not None and len(b"".join(into)) > 200:
                ev.set()

    threads = [threading.Thread(target=read, args=(p.stdout, out, got_text), daemon=True),
               threading.Thread(target=read, args=(p.stderr, err), daemon=True)]
    for t in threads:
        t.start()
    fail = []
    try:
        if not got_text.wait(120):
            fail.append("no generated text within 120 s")
            return fail
        ranks = rank_pids(tag)
        if sorted(ranks) != list(range(a.tp * a.pp)):
            fail.append("ranks found: %r" % ranks)
            return fail
        victim = ranks[a.victim]
        os.kill(victim, signal.SIGSTOP)
        t0 = time.time()
        try:
            rc = p.wait(timeout=LIMIT)
        except subprocess.TimeoutExpired:
            fail.append("HANG: still running %.0f s after rank %d was stopped" % (LIMIT, a.victim))
            return fail
        elapsed = time.time() - t0
        for t in threads:
            t.join(2)
        text = b"".join(err).decode(errors="replace")
        if rc == 0:
            fail.append("exit status 0")
        pat = r"rank \d+: error: communication timeout: .*world rank %d \(host [^,]+, process %d stopped\)" % (
            a.victim, victim)
        if not re.search(pat, text):
            fail.append("no message names the stopped rank %d (pid %d)" % (a.victim, victim))
        deadline = time.time() + 5
        while rank_pids(tag) and time.time() < deadline:
            time.sleep(0.1)
        if rank_pids(tag):
            fail.append("processes left: %r" % rank_pids(tag))
        lines = [l for l in text.splitlines() if "error" in l]
        print("tp=%d pp=%d, rank %d stopped: exit %d after %.2f s; %s" % (a.tp, a.pp, a.victim, rc, elapsed,
                                                                        lines[:2]))
        if fail:
            print(text[-3000:])
        return fail
    finally:
        for pid in rank_pids(tag).values():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if p.poll() is None:
            p.kill()


if __name__ == "__main__":
    problems = main()
    for f in problems:
        print("FAIL:", f)
    sys.exit(1 if problems else 0)
