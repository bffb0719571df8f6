#!/usr/bin/env python3
"""cli.membw_small: `parallama membw ... --json` exits 0 and reports a positive median.

usage: check_membw.py <parallama> [membw arguments...]
"""
import json
import subprocess
import sys


def main() -> int:
    cmd = [sys.argv[1], "membw", *sys.argv[2:]]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sys.stdout.write(p.stdout)
    sys.stdout.flush()
    sys.stderr.write(p.stderr)
    sys.stderr.flush()
    if p.returncode != 0:
        print(f"check_membw: FAIL: {' '.join(cmd)} exited {p.returncode}")
        return 1
    try:
        out = json.loads(p.stdout)
    except json.JSONDecodeError as e:
        print(f"check_membw: FAIL: stdout is not one JSON document: {e}")
        return 1
    median = out.get("median_gb_s") if isinstance(out, dict) else None
    if not isinstance(median, (int, float)) or isinstance(median, bool) or not median > 0:
        print(f"check_membw: FAIL: median_gb_s is {median!r}, want a number > 0")
        return 1
    print(f"check_membw: OK: median_gb_s = {median:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
