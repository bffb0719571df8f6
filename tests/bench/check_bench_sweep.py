#!/usr/bin/env python3
"""`parallama bench sweep` end to end on this host: two layouts (one rank with
2 threads, TP=2 over MPI) at two rates, a handful of requests each. Every run
completes every request, the tokens add up to what was asked (ignore_eos, so
output = max_tokens), each server stops cleanly (exit 0, port free again),
and the JSON, Markdown table and PNG are written. Then the errors: a layout
that cannot split over its hosts is refused before anything starts, and a
layout the model cannot take (tp=7 heads) is reported as that layout's
error, with the command ending non-zero and no server left.

    check_bench_sweep.py PARALLAMA
"""
import json
import os
import socket
import subprocess
import sys
import tempfile

N, IN, OUT = 8, 32, 8


def port_free(port):
    """Nothing listens on the port (connections left in TIME_WAIT do not count)."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sweep(binary, out, layouts, rates, port, timeout=240):
    return subprocess.run([binary, "bench", "sweep", "--layouts", layouts, "--rates", rates, "--num-prompts", str(N),
                           "--random-input-len", str(IN), "--random-output-len", str(OUT), "--ignore-eos",
                           "--port", str(port), "--out", out, "--server-args", "-c 1024"],
                          capture_output=True, text=True, timeout=timeout)


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "s")
        port = free_port()
        r = sweep(binary, out, "tp=1,threads=2; tp=2,threads=1,name=two ranks", "4,inf", port)
        assert r.returncode == 0, "sweep failed (%d):\n%s" % (r.returncode, r.stderr[-3000:])
        res = json.load(open(out + ".json"))
        assert [l["label"] for l in res["layouts"]] == ["tp=1,pp=1,threads=2", "two ranks"], res["layouts"]
        for lay in res["layouts"]:
            assert "error" not in lay, lay
            assert lay["server_exit"] == 0, "server of %s exited %r" % (lay["label"], lay["server_exit"])
            assert [run["request_rate"] for run in lay["runs"]] == [4, "inf"], lay["runs"]
            for run in lay["runs"]:
                assert run["completed"] == N and run["failed"] == 0, run
                assert run["total_input_tokens"] == N * IN, run
                assert run["total_output_tokens"] == N * OUT, run
                assert run["p90_e2el_ms"] >= run["median_ttft_ms"] > 0, run
            assert lay["runs"][1]["keeps_up"] is None  # "inf" has no rate to keep up with
        md = open(out + ".md").read()
        assert md.count("| two ranks |") == 2 and md.count("| tp=1,pp=1,threads=2 |") == 2, md
        assert r.stdout == md
        with open(out + ".png", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", "no PNG written: %s" % r.stderr[-1000:]
        assert port_free(port), "a server still listens on %d" % port

        bad = sweep(binary, out + "b", "tp=3,hosts=2", "1", port, timeout=30)
        assert bad.returncode != 0 and "do not split evenly" in bad.stderr, bad.stderr
        assert not os.path.exists(out + "b.json")

        port = free_port()
        bad = sweep(binary, out + "c", "pp=31", "1", port, timeout=120)
        assert bad.returncode != 0, bad.stderr
        res = json.load(open(out + "c.json"))
        assert "did not become healthy" in res["layouts"][0]["error"], res
        assert "exceeds the 30 layers" in res["layouts"][0]["error"], res  # the server's own reason
        assert res["layouts"][0]["server_exit"] not in (0, -1), res  # the server itself failed
        assert port_free(port)
    print("bench sweep: 2 layouts x 2 rates complete, tables and plot written; bad layouts reported")
    return 0


if __name__ == "__main__":
    sys.exit(main())
