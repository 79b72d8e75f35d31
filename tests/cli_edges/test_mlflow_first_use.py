"""Processes that create a new MLflow store at the same moment all succeed (first-time table
creation is serialized by a lock file next to the store)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from experiments.tracking import EXPERIMENTS, ensure_store

#: Processes racing to create one new store.
RACERS = 2

#: Each racer imports MLflow, says it is ready, then waits for the start file and creates the
#: store (the interesting part starts at the same moment in every process).
RACER = """
import sys, time
from pathlib import Path
import mlflow  # noqa: F401  (imported before the start: the race is the creation itself)
from experiments.tracking import ensure_store
print("ready", flush=True)
start = Path(sys.argv[2])
while not start.exists():
    time.sleep(0.001)
store = ensure_store(sys.argv[1])
print(sorted(store.experiment_ids), flush=True)
"""


def test_processes_creating_one_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    start = tmp_path / "start"
    racers = [subprocess.Popen([sys.executable, "-c", RACER, uri, str(start)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(RACERS)]
    try:
        for racer in racers:
            assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
        start.touch()
        outcomes = [racer.communicate(timeout=180) for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()
    failed = [err[-600:] for racer, (_, err) in zip(racers, outcomes, strict=True)
              if racer.returncode != 0]
    assert not failed, failed
    for out, _ in outcomes:
        assert out.strip() == str(sorted(EXPERIMENTS))
    # the store they made is whole: it opens, and holds each experiment once
    started = time.monotonic()
    store = ensure_store(uri)
    assert sorted(store.experiment_ids) == sorted(EXPERIMENTS)
    assert len(set(store.experiment_ids.values())) == len(EXPERIMENTS)
    assert time.monotonic() - started < 30
