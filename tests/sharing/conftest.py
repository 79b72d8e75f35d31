"""Fixtures of the sharing tests: a private copy of the sample data with the replay user's
account, and helpers that run a role of ``tests.sharing.roles`` or ``buddy`` in a process of
its own (DuckDB's file lock is per process: sharing is only tested across processes)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from buddy.store import Store
from buddy.users.store import set_user

REPO = Path(__file__).resolve().parents[2]
#: The replay user (the generated intents' user); its account lets risk_reward run.
REPLAY_USER = "replay"
#: The pause of each user between steps, seconds: people evaluate an idea every few
#: seconds, not back to back, and the rest of the test suite (the other xdist worker) keeps
#: its core: at 3 s the run's users and replays took ~1.4 cores for its two minutes.
PAUSE_S = 5.0
#: The pause between two replays, seconds: a researcher looks at a run before the next. A
#: replay of ~1,200 intents is mostly start-up (two interpreters, ~2.7 CPU s in ~6 s); each
#: one still overlaps the users' evaluations, logs and loads, several times per replay.
REPLAY_PAUSE_S = 10.0


def idea(user: str, k: int = 0) -> dict[str, Any]:
    """Return the ``k``-th trade idea of ``user``: AAPL daily on one of 20 sessions of May and
    June 2012 (a new as_of is a new ContextPack: the evaluation reads the file)."""
    day = ["2012-05-14", "2012-05-15", "2012-05-16", "2012-05-17", "2012-05-18",
           "2012-05-21", "2012-05-22", "2012-05-23", "2012-05-24", "2012-05-25",
           "2012-05-29", "2012-05-30", "2012-05-31", "2012-06-01", "2012-06-04",
           "2012-06-05", "2012-06-06", "2012-06-07", "2012-06-08", "2012-06-11"][k % 20]
    return dict(user=user, symbol="AAPL", side="long", timeframe="1d", entry=560.99,
                stop=540.0, target=600.0, size=10, as_of=day)


def cli_args(db: Path, values: dict[str, Any]) -> list[str]:
    """Return the ``buddy evaluate --json`` command line of an idea."""
    return [sys.executable, "-m", "buddy.cli", "--db", str(db), "evaluate", "--json",
            "--user", values["user"], "--symbol", values["symbol"], "--side", values["side"],
            "--timeframe", values["timeframe"], "--entry", str(values["entry"]),
            "--stop", str(values["stop"]), "--target", str(values["target"]),
            "--size", str(values["size"]), "--as-of", values["as_of"]]


def run_cli(db: Path, values: dict[str, Any], timeout: float = 300
            ) -> subprocess.CompletedProcess[str]:
    """Run ``buddy evaluate --json`` on ``db`` in a fresh process and return what it did."""
    return subprocess.run(cli_args(db, values), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False)


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Return the JSON lines a role wrote (none when it wrote no file)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def shared_db(sample_store: Store, tmp_path: Path) -> Path:
    """Return a private copy of the sample data with the replay user's account."""
    path = tmp_path / "shared" / "buddy.duckdb"
    path.parent.mkdir()
    shutil.copy(sample_store.path, path)
    set_user(Store(path), REPLAY_USER, equity=100_000.0, base_currency="USD")
    return path
