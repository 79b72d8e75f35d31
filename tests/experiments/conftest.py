"""Real MLflow stores on SQLite in temporary folders, and a writable copy of the sample data.

Creating MLflow's tables takes seconds (its migrations), so they are created once per session
in a template database; each store is a copy of that file in its own folder, whose
experiments (created by ``ensure_store`` on first use) keep their artifacts in that folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from buddy.store import Store


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a SQLite file holding MLflow's tables and nothing else."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(scope="session")
def new_tracking_store(mlflow_template: Path) -> Callable[[Path], str]:
    """Return a factory: copy the template into ``<folder>/mlruns/`` and return its URI."""

    def make(folder: Path) -> str:
        target = folder / "mlruns" / "mlflow.db"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(mlflow_template, target)
        return f"sqlite:///{target}"

    return make


@pytest.fixture
def tracking_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   new_tracking_store: Callable[[Path], str]) -> str:
    """Point MLFLOW_TRACKING_URI at a fresh store in tmp_path; return its URI."""
    uri = new_tracking_store(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("BUDDY_SCORING_MODEL", raising=False)
    return uri


@pytest.fixture(scope="module")
def replay_store(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Return a writable copy of the sample store (replays write their tables into it)."""
    path = tmp_path_factory.mktemp("replay-store") / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    return Store(path)



#: The research replay the weight search fits on: a year of daily ma_cross ideas, market data
#: only (it ends before the holdouts the tests promote on begin).
FIT_WINDOW = {"intent_source": "generator:ma_cross", "symbols": ("AAPL", "GOOG", "IBM", "MSFT"),
              "start": "2011-07-01", "end": "2012-06-30"}


@pytest.fixture(scope="module")
def research_run(replay_store: Store) -> str:
    """Return the id of a finished research replay in ``replay_store`` (FIT_WINDOW)."""
    from buddy.config import default_scoring_config
    from replay.engine import run_replay
    from replay.executors import SerialExecutor
    from replay.reports import load_intents

    intents, _ = load_intents(replay_store, FIT_WINDOW["intent_source"],
                              symbols=FIT_WINDOW["symbols"], start=FIT_WINDOW["start"],
                              end=FIT_WINDOW["end"])
    run = run_replay(replay_store, intents, config=default_scoring_config(), name="fit",
                     executor=SerialExecutor(), progress=False, mode="batch")
    return run.run_id
