"""`make bench`: speed goals as ratios against baselines measured in the same run.

Each benchmark times the workbench path and a baseline doing the irreducible part of the same
work, on the same data, in this process, and prints the ratio with the goal. Times are the
median of several repeats.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd

from benchmarks.levels import levels_suite
from benchmarks.one_form import one_form_suite
from benchmarks.regime import regime_suite
from benchmarks.replay import replay_suite
from benchmarks.startup import startup_suite
from benchmarks.suites import SUITES as CORE_SUITES
from benchmarks.trades import trades_suite
from benchmarks.trades_review import trades_review_suite
from benchmarks.widgets import widgets_suite

SUITES = {**CORE_SUITES, "regime": regime_suite, "levels": levels_suite,
          "widgets": widgets_suite, "replay": replay_suite, "trades_review": trades_review_suite,
          "trades": trades_suite, "one_form": one_form_suite, "startup": startup_suite}
SUITES["interactive"] = __import__("benchmarks.interactive", fromlist=["_"]).interactive_suite


def median_time(fn: Callable[[], object], *, repeat: int = 7, number: int = 1) -> float:
    """Return the median seconds of ``number`` calls of ``fn`` over ``repeat`` rounds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark suites; return 1 when a goal is missed and --strict is given."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--only", nargs="*", help="suite names to run")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    missed = 0
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name, suite in SUITES.items():
            if args.only and name not in args.only:
                continue
            for line in suite(workdir, median_time):
                print(line.text, flush=True)
                missed += not line.met
    print(f"duckdb {duckdb.__version__}, pandas {pd.__version__}, python "
          f"{sys.version.split()[0]}")
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    raise SystemExit(main())
