"""`make bench`: speed goals as ratios against baselines measured in the same run.

Each benchmark times the workbench path and a baseline doing the irreducible part of the same
work, on the same data, in one process, and prints the ratio with the goal. Times are the
median of several repeats. Each suite runs in a process of its own, as a user's command or a
fresh kernel would: nothing an earlier suite left behind (a fork server started with its own
modules, cached tables, a grown heap) changes a later suite's figures.
"""

from __future__ import annotations

import statistics
import subprocess
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


#: The exit code of a suite's process that ran and missed a goal (a crash exits otherwise).
MISSED_EXIT = 3


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--only", "only", multiple=True, metavar="SUITE",
              type=click.Choice(list(SUITES)),
              help="Run only this suite: " + ", ".join(SUITES)
              + " (repeat the option, or give several names after it).")
@click.option("--strict", is_flag=True, help="Exit 1 when a goal is missed.")
@click.option("--here", is_flag=True, hidden=True,
              help=f"Run the one suite named in this process (exit {MISSED_EXIT} when it "
                   "misses a goal): what each suite's own process runs.")
@click.argument("more", nargs=-1, type=click.Choice(list(SUITES)), metavar="[SUITE]...")
def main(only: tuple[str, ...], strict: bool, here: bool, more: tuple[str, ...]) -> None:
    """Run the benchmark suites (all, or the named ones) and print each ratio with its goal."""
    # `--only replay startup` (the form the README and the notes use) leaves the second
    # name as an argument: it is one more suite to run
    chosen = {*only, *more}
    if here:
        if len(chosen) != 1:
            raise click.UsageError(f"--here runs one suite (got {len(chosen)})")
        (name,) = chosen
        raise SystemExit(MISSED_EXIT if run_suite(name) else 0)
    missed = []
    for name in SUITES:
        if chosen and name not in chosen:
            continue
        done = subprocess.run([sys.executable, "-m", "benchmarks", "--here", "--only", name],
                              check=False)
        if done.returncode == MISSED_EXIT:
            missed.append(name)
        elif done.returncode:
            raise SystemExit(f"benchmark suite {name!r} failed (exit code {done.returncode})")
    print(f"duckdb {duckdb.__version__}, pandas {pd.__version__}, python "
          f"{sys.version.split()[0]}")
    if missed and strict:
        raise SystemExit(1)


def run_suite(name: str) -> int:
    """Run the suite ``name`` in this process, print its lines as they come and return how
    many goals it missed."""
    missed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for line in SUITES[name](Path(tmp), median_time):
            print(line.text, flush=True)
            missed += not line.met
    return missed


if __name__ == "__main__":
    main()
