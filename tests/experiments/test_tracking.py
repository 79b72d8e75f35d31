"""The experiment store: location, creation on first use, lock retries, concurrent writers."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from experiments import tracking
from experiments.tracking import (
    EXPERIMENTS,
    REPLAYS_EXPERIMENT,
    ensure_store,
    log_run,
    retry_locked,
    sqlite_path,
    store_exists,
    tracking_uri,
)
from tests.experiments.helpers import log_runs_worker

REPO = Path(__file__).resolve().parents[2]


def test_default_store_is_sqlite_under_the_repository_mlruns(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri() == f"sqlite:///{REPO / 'mlruns' / 'mlflow.db'}"
    assert tracking.artifact_root() == REPO / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000"
    assert sqlite_path() is None and tracking.artifact_root() is None and store_exists()


def test_store_is_created_on_first_use_with_artifacts_beside_the_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        new_tracking_store: Callable[[Path], str]) -> None:
    missing = f"sqlite:///{tmp_path / 'absent' / 'mlflow.db'}"
    assert not store_exists(missing)
    uri = new_tracking_store(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    store = ensure_store()
    assert store.uri == uri and set(store.experiment_ids) == set(EXPERIMENTS)
    for name in EXPERIMENTS:
        location = store.client.get_experiment(store.experiment_id(name)).artifact_location
        assert location == (tmp_path / "mlruns" / name).as_uri()
    assert ensure_store().experiment_ids == store.experiment_ids  # idempotent
    run = log_run(store, REPLAYS_EXPERIMENT, params={"a": 1}, metrics={"m": 0.5},
                  texts={"x.txt": "hello"})
    assert (tmp_path / "mlruns" / REPLAYS_EXPERIMENT / run / "artifacts" / "x.txt").is_file()
    finished = store.client.get_run(run)
    assert finished.info.status == "FINISHED"
    assert finished.data.params == {"a": "1"} and finished.data.metrics == {"m": 0.5}


def test_retry_locked_retries_only_the_lock_error() -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "written"

    assert retry_locked(flaky, backoff_s=0.001) == "written" and len(attempts) == 3

    def broken() -> None:
        attempts.append(1)
        raise sqlite3.OperationalError("no such table: runs")

    attempts.clear()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        retry_locked(broken, backoff_s=0.001)
    assert len(attempts) == 1

    def always_locked() -> None:
        attempts.append(1)
        raise sqlite3.OperationalError("database is locked")

    attempts.clear()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        retry_locked(always_locked, attempts=3, backoff_s=0.001)
    assert len(attempts) == 3


def test_two_processes_logging_at_once_lose_no_run_and_leave_the_store_sound(
        tracking_store: str) -> None:
    n_runs = 6
    store = ensure_store(tracking_store)  # one process creates the experiments up front
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        futures = [pool.submit(log_runs_worker, tracking_store, w, n_runs) for w in (1, 2)]
        logged = [run for f in futures for run in f.result(timeout=300)]
    assert len(set(logged)) == 2 * n_runs
    runs = store.client.search_runs([store.experiment_id(REPLAYS_EXPERIMENT)],
                                    "tags.`buddy.test` = 'concurrency'", max_results=100)
    assert sorted(r.info.run_id for r in runs) == sorted(logged)
    assert {r.info.run_name for r in runs} == {f"w{w}-r{i}" for w in (1, 2)
                                               for i in range(n_runs)}
    for run in runs:
        assert run.info.status == "FINISHED"
        worker, index = int(run.data.params["worker"]), int(run.data.params["index"])
        assert run.data.metrics["auc"] == pytest.approx(0.5 + worker / 10 + index / 100)
    db = sqlite_path(tracking_store)
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    reopened = ensure_store(tracking_store)
    assert reopened.experiment_ids == store.experiment_ids


def test_importing_buddy_and_experiments_does_not_import_mlflow(tmp_path: Path) -> None:
    code = ("import sys, buddy, experiments, experiments.registry, experiments.cli\n"
            "from experiments.registry import load_production_config\n"
            "assert load_production_config() is None\n"
            "assert 'mlflow' not in sys.modules, 'mlflow imported'\n")
    env = {"PATH": "/usr/bin:/bin", "MLFLOW_TRACKING_URI":
           f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "none").exists()  # a read never creates the store
