"""Full-size gateway fuzzing: the tests in tests/gateway/fuzz at ``--examples`` cases each.

Runs pytest on the fuzz tests with ``AXONGATE_FUZZ_EXAMPLES`` set, then prints how many requests
were sent per test and which statuses came back. Passing means: no 5xx, no unhandled server
error, every signed answer verified, no altered request served, no slot leaked by a dropped stream.

    .venv/bin/python scripts/bench/fuzz.py --examples 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=2000, help="hypothesis examples per fuzz test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        report_path = Path(scratch) / "fuzz.json"
        env = {**os.environ, "AXONGATE_FUZZ_EXAMPLES": str(args.examples), "AXONGATE_FUZZ_REPORT": str(report_path)}
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/gateway/fuzz", "-q", "-p", "no:cacheprovider"],
            cwd=_REPO,
            env=env,
            check=False,
        )
        elapsed_s = time.monotonic() - started
        report = json.loads(report_path.read_text()) if report_path.exists() else {"cases": 0, "tests": {}}
    print(f"\n{report['cases']} requests in {elapsed_s:.0f}s ({args.examples} examples per test)")
    for test, statuses in report["tests"].items():
        total = sum(statuses.values())
        print(f"  {test:22} {total:6d}  statuses {statuses}")
    fivexx = sum(n for statuses in report["tests"].values() for status, n in statuses.items() if int(status) >= 500)
    print(f"5xx answers: {fivexx}; pytest exit code {done.returncode}")
    return 0 if done.returncode == 0 and fivexx == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
