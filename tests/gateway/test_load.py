"""A short run of ``scripts/bench/load.py``: a real gateway process under signed load stays error-free
and does not grow its memory (the full-size run and its numbers are in BENCHMARKS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "load.py"


@pytest.mark.slow
def test_signed_load_has_no_errors_and_bounded_memory() -> None:
    command = [sys.executable, str(_SCRIPT), "--duration-s", "5", "--concurrency", "64", "--warmup-s", "2"]
    command += ["--variants", "signed"]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=180, check=False)
    assert done.stdout.strip(), done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    signed = summary["signed"]
    assert signed["requests"] > 0
    assert signed["errors"] == 0, signed["error_kinds"]
    assert signed["max_rss_growth"] <= 0.10, signed
    assert done.returncode == 0 and summary["ok"]
