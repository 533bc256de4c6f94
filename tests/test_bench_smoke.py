"""Every benchmark script still runs (at a tiny size, on data the test makes): a schema or API
change that leaves one behind fails here, not on the day someone needs its figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(script: str, *args: str) -> str:
    finished = subprocess.run([sys.executable, str(BENCH / script), *args],
                              capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return finished.stdout


def test_digest_bench_runs(tmp_path):
    output = run_bench("digest.py", "--articles", "3000", "--dir", str(tmp_path / "wh"))
    assert "digest, best of three after that:" in output
