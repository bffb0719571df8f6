"""Shared by the CLI checker scripts: run a command, echo its output, and
return its stdout parsed as one JSON document (None after saying why)."""
import json
import subprocess
import sys


def run_json(cmd, label):
    print(f"{label}: running " + " ".join(repr(c) if " " in c else c for c in cmd))
    sys.stdout.flush()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sys.stdout.write(p.stdout)
    sys.stdout.flush()
    sys.stderr.write(p.stderr)
    sys.stderr.flush()
    if p.returncode != 0:
        print(f"{label}: FAIL: exited {p.returncode}")
        return None
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        print(f"{label}: FAIL: stdout is not one JSON document: {e}")
        return None
