"""`make bench`: speed goals as ratios against baselines measured in the same run.

Each benchmark times the workbench path and a baseline doing the irreducible part of the same
work, on the same data, in this process, and prints the ratio with the goal. Times are the
median of several repeats.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click
import duckdb
import pandas as pd

from benchmarks.levels import levels_suite
from benchmarks.one_form import one_form_suite
from benchmarks.portfolio import portfolio_suite
from benchmarks.regime import regime_suite
from benchmarks.replay import replay_suite
from benchmarks.startup import startup_suite
from benchmarks.suites import SUITES as CORE_SUITES
from benchmarks.trades import trades_suite
from benchmarks.trades_review import trades_review_suite
from benchmarks.widgets import widgets_suite

SUITES = {**CORE_SUITES, "regime": regime_suite, "levels": levels_suite,
          "widgets": widgets_suite, "replay": replay_suite, "trades_review": trades_review_suite,
          "trades": trades_suite, "one_form": one_form_suite, "startup": startup_suite,
          "portfolio": portfolio_suite}
SUITES["interactive"] = __import__("benchmarks.interactive", fromlist=["_"]).interactive_suite
SUITES["service"] = __import__("benchmarks.service", fromlist=["_"]).service_suite
SUITES["assistant"] = __import__("benchmarks.assistant", fromlist=["_"]).assistant_suite


def median_time(fn: Callable[[], object], *, repeat: int = 7, number: int = 1) -> float:
    """Return the median seconds of ``number`` calls of ``fn`` over ``repeat`` rounds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--only", "only", multiple=True, metavar="SUITE",
              type=click.Choice(list(SUITES)),
              help="Run only this suite: " + ", ".join(SUITES)
              + " (repeat the option, or give several names after it).")
@click.option("--strict", is_flag=True, help="Exit 1 when a goal is missed.")
@click.argument("more", nargs=-1, type=click.Choice(list(SUITES)), metavar="[SUITE]...")
def main(only: tuple[str, ...], strict: bool, more: tuple[str, ...]) -> None:
    """Run the benchmark suites (all, or the named ones) and print each ratio with its goal."""
    # `--only replay startup` (the form the README and the notes use) leaves the second
    # name as an argument: it is one more suite to run
    chosen = {*only, *more}
    missed = 0
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name, suite in SUITES.items():
            if chosen and name not in chosen:
                continue
            for line in suite(workdir, median_time):
                print(line.text, flush=True)
                missed += not line.met
    print(f"duckdb {duckdb.__version__}, pandas {pd.__version__}, python "
          f"{sys.version.split()[0]}")
    if missed and strict:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
