"""The processes of the shared-file run, each a user of one database file:

- ``python``: a notebook's loop, ``Buddy.evaluate(log=True)`` on one Buddy, idea after idea;
- ``features``: a data update loop, one new IBM daily bar loaded then the features job
  for IBM daily (``run_features_job``: reads the series, writes its new feature row).

Run as ``python -m tests.sharing.roles ROLE DB OUT STOP``: the role repeats until the file
STOP exists and writes one JSON line per step to OUT (what it did, how long it took, the
error a user would have seen). Errors are recorded, not raised: the test counts them.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from buddy.api import Buddy
from buddy.config import default_scoring_config
from buddy.jobs.features import run_features_job
from buddy.store import Store
from tests.sharing.conftest import PAUSE_S, idea


class TimedStore(Store):
    """A Store that records how long each evaluation's log took (the wait for the file
    included) in ``log_seconds``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.log_seconds: list[float] = []
        super().__init__(*args, **kwargs)

    def log_or_queue(self, intent_row: Mapping[str, Any], evaluation_row: Mapping[str, Any],
                     item_rows: Sequence[Mapping[str, Any]], **kwargs: Any
                     ) -> tuple[str, str]:
        started = time.perf_counter()
        try:
            return super().log_or_queue(intent_row, evaluation_row, item_rows, **kwargs)
        finally:
            self.log_seconds.append(time.perf_counter() - started)


def _error(exc: BaseException) -> dict[str, Any]:
    return {"error": type(exc).__name__, "message": str(exc)[:500],
            "trace": traceback.format_exc()[-1500:]}


def _pause(stop: Path) -> None:
    """Wait ``PAUSE_S`` between two steps, or less when ``stop`` appears meanwhile (the run
    is over: no user starts a step after it, so nothing is lost by not sleeping on)."""
    until = time.monotonic() + PAUSE_S
    while not stop.exists() and time.monotonic() < until:
        time.sleep(0.1)


def python_loop(db: Path, out: Path, stop: Path) -> None:
    """Evaluate and log idea after idea through one Buddy until ``stop`` exists."""
    store = TimedStore(db)
    buddy = Buddy(store, default_scoring_config())
    k = 0
    with out.open("a") as sink:
        while not stop.exists():
            started = time.perf_counter()
            try:
                report = buddy.evaluate(**idea("python-loop", k), log=True)
                line: dict[str, Any] = {"eval_id": report.eval_id,
                                        "state": report.logging.state,
                                        "log_s": store.log_seconds[-1]}
            except Exception as exc:  # a user would have seen it: record it
                line = _error(exc)
            line["seconds"] = time.perf_counter() - started
            sink.write(json.dumps(line) + "\n")
            sink.flush()
            k += 1
            _pause(stop)


def _next_bar(last: pd.Series) -> pd.DataFrame:
    """Return the daily bar after ``last`` (the next weekday, prices nudged)."""
    step = pd.Timedelta(days=3 if pd.Timestamp(last["session"]).weekday() == 4 else 1)
    row = last.to_dict()
    for key in ("ts", "ts_close", "session"):
        row[key] = pd.Timestamp(row[key]) + step
    for key in ("open", "high", "low", "close", "adj_close"):
        row[key] = float(row[key]) * 1.001
    return pd.DataFrame([row])


def features_loop(db: Path, out: Path, stop: Path) -> None:
    """Load one new IBM daily bar and run the features job, again and again until
    ``stop`` exists."""
    store = Store(db)
    with out.open("a") as sink:
        while not stop.exists():
            started = time.perf_counter()
            try:
                last = store.bars("IBM", "1d").iloc[-1]
                store.write_market_data(bars=_next_bar(last))
                # the job's read, compute and write for the series that changed (every
                # series each pass would only burn CPU the rest of the suite needs)
                result = run_features_job(store, symbols=["IBM"], timeframes=["1d"],
                                          progress=False)
                line: dict[str, Any] = {"rows_written": result.rows_written}
            except Exception as exc:
                line = _error(exc)
            line["seconds"] = time.perf_counter() - started
            sink.write(json.dumps(line) + "\n")
            sink.flush()
            _pause(stop)


ROLES = {"python": python_loop, "features": features_loop}

if __name__ == "__main__":
    role, db_arg, out_arg, stop_arg = sys.argv[1:5]
    ROLES[role](Path(db_arg), Path(out_arg), Path(stop_arg))
