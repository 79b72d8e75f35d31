"""``python -m benchmarks`` runs each suite in a process of its own (``--here``, one suite):
a process given more than one suite to run in itself refuses, naming the rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_suite_process_runs_exactly_one_suite() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--here", "--only", "regime",
                           "replay"], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 2, done.stderr
    assert "--here runs one suite (got 2)" in done.stderr
