#!/usr/bin/env python3
"""cli.membw_small: `parallama membw ... --json` exits 0 and reports a positive median.

usage: check_membw.py <parallama> [membw arguments...]
"""
import sys

from cli_json import run_json


def main() -> int:
    out = run_json([sys.argv[1], "membw", *sys.argv[2:]], "check_membw")
    if out is None:
        return 1
    median = out.get("median_gb_s") if isinstance(out, dict) else None
    if not isinstance(median, (int, float)) or isinstance(median, bool) or not median > 0:
        print(f"check_membw: FAIL: median_gb_s is {median!r}, want a number > 0")
        return 1
    print(f"check_membw: OK: median_gb_s = {median:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
