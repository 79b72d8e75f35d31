"""A notebook, the CLI, a replay and the features job on one file at the same time (issue
#16 §1): for RUN_SECONDS, replays of 1,239 intents run one after another, paced (``buddy replay
run``), a CLI loop runs ``buddy evaluate`` processes, a Python loop evaluates through one
``Buddy``, and a data loop loads a bar and runs the features job. No lock error may reach
any of them, and every evaluation made must be logged exactly once (directly, or queued
and moved in by a later write).

Run with ``-s`` to see the run's figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from buddy.store import Store
from buddy.store.pending import read_entries
from tests.sharing.conftest import (
    PAUSE_S,
    REPLAY_PAUSE_S,
    REPLAY_USER,
    REPO,
    idea,
    read_lines,
    run_cli,
)

#: How long the four users share the file, seconds (the issue asks for two minutes).
RUN_SECONDS = 120.0
#: The longest a logged evaluation may wait for the file before its log is queued, seconds
#: (buddy.store.core.LOG_WAIT_S plus the slack of a loaded machine).
MAX_LOG_WAIT_S = 6.0
#: Intents of each replay: AAPL and MSFT daily 2004-2007, the random generator, in one
#: spawned worker (the lock holder of the issue was a replay worker).
REPLAY_ARGS = ["replay", "run", "--source", "random", "--symbols", "AAPL,MSFT",
               "--timeframe", "1d", "--start", "2004-01-01", "--end", "2007-12-31",
               "--param", "entry_probability=0.6", "--providers", "account",
               "--user", REPLAY_USER, "--no-progress", "--workers", "1"]


def _replays(db: Path, until: float, found: list[dict[str, Any]]) -> None:
    """Run replays one after another, ``REPLAY_PAUSE_S`` apart (a new name each: a new run),
    until ``until``."""
    k = 0
    while time.monotonic() < until or not found:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "buddy.cli", "--db", str(db),
                               *REPLAY_ARGS, "--name", f"sharing-{k}"], cwd=REPO,
                              capture_output=True, text=True, timeout=900, check=False)
        words = done.stdout.split()
        intents = int(words[words.index("done:") + 1]) if "done:" in words else 0
        found.append({"returncode": done.returncode, "intents": intents,
                      "stderr": done.stderr[-1500:], "seconds": time.perf_counter() - started})
        if done.returncode:
            return
        k += 1
        # a researcher reruns a replay after looking at it, not back to back: paced, the
        # replays still overlap every other user's reads and writes
        time.sleep(max(0.0, min(REPLAY_PAUSE_S, until - time.monotonic())))


def _cli_loop(db: Path, stop: threading.Event, found: list[dict[str, Any]]) -> None:
    """Run ``buddy evaluate --json`` processes one after another until ``stop``."""
    k = 0
    while not stop.is_set():
        started = time.perf_counter()
        done = run_cli(db, idea("cli-loop", k))
        line: dict[str, Any] = {"returncode": done.returncode, "stderr": done.stderr[-1500:],
                                "seconds": time.perf_counter() - started}
        if done.returncode == 0:
            line["eval_id"] = json.loads(done.stdout)["eval_id"]
            line["queued"] = "Log queued" in done.stderr
        found.append(line)
        k += 1
        stop.wait(PAUSE_S)


@pytest.mark.xdist_group("sharing")
def test_a_replay_the_cli_a_notebook_and_the_features_job_share_one_file(
        shared_db: Path, tmp_path: Path) -> None:
    stop_file = tmp_path / "stop"
    outputs = {role: tmp_path / f"{role}.jsonl" for role in ("python", "features")}
    roles = [subprocess.Popen([sys.executable, "-m", "tests.sharing.roles", role,
                               str(shared_db), str(out), str(stop_file)], cwd=REPO,
                              stderr=subprocess.PIPE, text=True)
             for role, out in outputs.items()]
    replays: list[dict[str, Any]] = []
    cli: list[dict[str, Any]] = []
    stop_cli = threading.Event()
    cli_thread = threading.Thread(target=_cli_loop, args=(shared_db, stop_cli, cli))
    started = time.monotonic()
    cli_thread.start()
    try:
        _replays(shared_db, started + RUN_SECONDS, replays)
    finally:
        stop_file.touch()
        stop_cli.set()
        cli_thread.join(timeout=600)
        stderr = [p.communicate(timeout=600)[1] for p in roles]
    shared_s = time.monotonic() - started
    python = read_lines(outputs["python"])
    features = read_lines(outputs["features"])
    queued_at_end = len(list(read_entries(shared_db)))
    store = Store(shared_db)  # a later command: moves what is still queued in

    errors = ([r for r in replays if r["returncode"]] + [c for c in cli if c["returncode"]]
              + [p for p in python if "error" in p] + [f for f in features if "error" in f])
    made = [c["eval_id"] for c in cli if "eval_id" in c] + [
        p["eval_id"] for p in python if "eval_id" in p]
    logged = store.query(
        "SELECT eval_id, count(*) AS n FROM trade_evaluations WHERE user_id IN "
        "('cli-loop', 'python-loop') GROUP BY eval_id")
    n_queued = sum(bool(c.get("queued")) for c in cli) + sum(
        p.get("state") == "queued" for p in python)
    log_waits = [p["log_s"] for p in python if "log_s" in p]
    print(f"\nshared file for {shared_s:.0f} s: {len(replays)} replays "
          f"({sum(r['intents'] for r in replays)} intents, longest "
          f"{max(r['seconds'] for r in replays):.0f} s), {len(features)} load+features "
          f"passes; evaluations made {len(made)} (CLI {len(cli)}, Python {len(python)}), "
          f"logged {len(logged)} ({int(logged['n'].sum()) if len(logged) else 0} rows), "
          f"queued {n_queued} (still queued at the end: {queued_at_end}); "
          f"max log wait {max(log_waits, default=0):.2f} s; longest Python evaluation "
          f"{max((p['seconds'] for p in python), default=0):.1f} s, longest CLI process "
          f"{max((c['seconds'] for c in cli), default=0):.1f} s; errors {len(errors)}")
    assert not errors, errors[:3]
    assert all(p.returncode == 0 for p in roles), stderr
    assert max(r["intents"] for r in replays) >= 1000
    assert cli and python and features, "every user must have worked during the run"
    assert sorted(logged["eval_id"]) == sorted(made)  # none lost, none extra
    assert (logged["n"] == 1).all()  # none twice
    assert max(log_waits) <= MAX_LOG_WAIT_S
    assert not list(read_entries(shared_db))
