"""The one-form evaluators against the two-form code they replaced, measured in the same run.

The baseline is the code of ``BASELINE_COMMIT`` (the last commit whose modules had a scalar
``evaluate`` and a separate ``evaluate_batch``), extracted with ``git archive`` into the work
directory. The same probe (``benchmarks/one_form_probe.py``) runs in a subprocess once against
that tree and once against this one, each on its own store built from the bundled sample data,
and prints JSON; this suite prints the ratios:

- interactive: warm ``Buddy.evaluate_intent`` (pack cached) p50, against the module bodies on
  the same pack (the one form's ``evaluate_batch`` on the prebuilt row, or the old scalar
  ``evaluate``); goal p50 <= 10 ms and <= 1.5x the bodies;
- cold (pack built from stored snapshots on every call): p50 against the baseline's;
- batch: each module's column form on 100,000 rows against the baseline's ``evaluate_batch``
  on the same rows.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

from benchmarks.suites import Line, Timer

BASELINE_COMMIT = "6dce227"
ROOT = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).resolve().parent / "one_form_probe.py"
BATCH_ROWS = int(os.environ.get("BUDDY_BENCH_ONE_FORM_ROWS", "100000"))


def one_form_suite(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Yield the interactive and batch figures of the one form against the baseline code."""
    baseline = workdir / "baseline"
    _extract(BASELINE_COMMIT, baseline)
    old = _probe(baseline, workdir / "old.duckdb")
    new = _probe(ROOT, workdir / "new.duckdb")
    warm, bodies = new["warm_p50"], new["bodies_p50"]
    yield Line(f"{'warm evaluate p50 (one form)':<58} {warm * 1e3:9.3f} ms  goal <= 10 ms  "
               f"{'OK' if warm <= 0.010 else 'MISSED'}", warm <= 0.010)
    yield Line(f"{'warm evaluate vs module bodies (one form)':<58} ours {warm * 1e3:9.3f} ms  "
               f"bodies {bodies * 1e3:9.3f} ms  ratio {warm / bodies:6.2f}x  goal <= 1.5x  "
               f"{'OK' if warm / bodies <= 1.5 else 'MISSED'}", warm / bodies <= 1.5)
    yield Line(f"{'  (for reference) warm evaluate p50, two-form baseline':<58} "
               f"{old['warm_p50'] * 1e3:9.3f} ms  bodies {old['bodies_p50'] * 1e3:9.3f} ms",
               True)
    cold, cold_base = new["cold_p50"], old["cold_p50"]
    met = cold <= cold_base * 1.05  # within the noise of two processes on one machine
    yield Line(f"{'cold evaluate p50 vs the two-form scalar path':<58} ours {cold * 1e3:9.3f} "
               f"ms  baseline {cold_base * 1e3:9.3f} ms  ratio {cold / cold_base:6.2f}x  "
               f"goal <= 1.0x (5% noise)  {'OK' if met else 'MISSED'}", met)
    for name, seconds in new["batch"].items():
        base = old["batch"].get(name)
        if base is None:
            continue
        met = seconds <= base * 1.05
        label = f"{name} on {new['rows']:,} rows vs its old batch form"
        yield Line(f"{label:<58} ours "
                   f"{seconds * 1e3:9.1f} ms  baseline {base * 1e3:9.1f} ms  ratio "
                   f"{seconds / base:6.2f}x  goal <= 1.0x (5% noise)  "
                   f"{'OK' if met else 'MISSED'}", met)


def _extract(commit: str, into: Path) -> None:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "buddy",
                              "replay", "experiments"],
                             check=True, capture_output=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def _probe(tree: Path, db: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "BUDDY_BENCH_ROWS": str(BATCH_ROWS)}
    out = subprocess.run([sys.executable, str(PROBE), str(db)], cwd=tree, env=env,
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if Path(result["buddy_file"]).resolve().parent.parent != tree.resolve():
        raise RuntimeError(f"the probe imported {result['buddy_file']}, not the tree {tree}")
    return result
