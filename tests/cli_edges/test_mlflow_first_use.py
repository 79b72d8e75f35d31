"""Processes that create a new MLflow store at the same moment all succeed (first-time table
creation is serialized by a lock file next to the store)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from experiments.tracking import EXPERIMENTS

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
print(sorted(store.experiment_ids.items()), flush=True)
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
    # every racer saw one store holding each experiment once, under the same ids
    seen = {out.strip() for out, _ in outcomes}
    assert len(seen) == 1, seen
    ids = dict(ast.literal_eval(seen.pop()))
    assert sorted(ids) == sorted(EXPERIMENTS)
    assert len(set(ids.values())) == len(EXPERIMENTS)
