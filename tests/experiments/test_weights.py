"""Weight search: the fits on a known structure, candidates as runs, and the notebook."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import papermill as pm
import pytest

from buddy.config import ModuleSpec, ScoringConfig
from buddy.store import Store
from experiments.registry import alias_version
from experiments.replay_tracking import log_replay
from experiments.tracking import WEIGHT_SEARCH_EXPERIMENT, ensure_store
from experiments.weights import (
    grid_weights,
    logistic_weights,
    propose_weights,
    resolve_run_id,
    search_weights,
)

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "30_weight_search.ipynb"
BASE = ScoringConfig(modules=(ModuleSpec(name="signal", weight=1.0),
                              ModuleSpec(name="noise", weight=1.0),
                              ModuleSpec(name="flat", weight=2.0)))


def synthetic_results(n: int = 400, seed: int = 3) -> pd.DataFrame:
    """Return a results frame where the 'signal' module's score drives wins and 'noise'
    and the constant 'flat' do not."""
    rng = np.random.default_rng(seed)
    signal = rng.uniform(0, 100, n)
    noise = rng.uniform(0, 100, n)
    win = rng.uniform(0, 1, n) < 1 / (1 + np.exp(-(signal - 50) / 10))
    realized = np.where(win, rng.uniform(0.2, 2.0, n), -1.0)
    frame = pd.DataFrame({"intent_id": [f"i{k}" for k in range(n)],
                          "as_of": pd.date_range("2010-01-01", periods=n, freq="D", tz="UTC"),
                          "score__signal": signal, "score__noise": noise,
                          "score__flat": np.full(n, 70.0), "realized_r": realized, "win": win,
                          "exit_reason": np.where(win, "target", "stop")})
    frame.loc[::25, "score__noise"] = np.nan  # a skipped module leaves a gap
    frame["overall_score"] = (frame["score__signal"] + frame["score__noise"].fillna(50)
                              + 2 * frame["score__flat"]) / 4
    return frame


def test_the_logistic_fit_weights_the_predictive_module_and_keeps_the_budget() -> None:
    weights = logistic_weights(synthetic_results(), {"signal": 1.0, "noise": 1.0,
                                                     "flat": 2.0}, C=1.0)
    assert weights["signal"] > 5 * weights["noise"]
    assert weights["flat"] == 2.0  # constant: the fit says nothing about it
    assert weights["signal"] + weights["noise"] == pytest.approx(2.0, abs=0.01)
    with pytest.raises(ValueError, match="wins and losses"):
        logistic_weights(synthetic_results().assign(win=True), {"signal": 1.0})


def test_candidates_rank_by_in_sample_auc_after_the_baseline() -> None:
    results = synthetic_results()
    logistic = propose_weights(results, BASE, method="logistic", n_boot=20)
    assert logistic[0].method == "baseline" and logistic[0].config == BASE
    assert all(c.method == "logistic" for c in logistic[1:]) and len(logistic) >= 2
    assert logistic[1].metrics["auc"] > logistic[0].metrics["auc"]
    assert len({c.config.hash for c in logistic}) == len(logistic)
    grid = propose_weights(results, BASE, method="grid", factors=(0.0, 2.0), n_boot=20)
    assert {(c.setting["module"], c.setting["factor"]) for c in grid[1:]} == {
        (m, f) for m in ("signal", "noise", "flat") for f in (0.0, 2.0)}
    aucs = [c.metrics["auc"] for c in grid[1:]]
    assert aucs == sorted(aucs, reverse=True)
    assert grid[1].metrics["auc"] > grid[0].metrics["auc"]
    assert grid[-1].setting == {"module": "signal", "factor": 0.0}  # dropping the signal
    assert grid_weights({"a": 0.0}, (0.0, 2.0)) == []  # nothing positive, nothing new


def test_search_weights_logs_each_candidate_and_registers_without_promoting(
        replay_store: Store, research_run: str, tracking_store: str) -> None:
    replay_run = research_run
    assert resolve_run_id(replay_store, "") == replay_run
    candidates = search_weights(replay_store, replay_run, method="grid", top=1,
                                register=True, n_boot=20)
    assert [c.method for c in candidates] == ["baseline", "grid"]
    experiments = ensure_store()
    runs = experiments.client.search_runs(
        [experiments.experiment_id(WEIGHT_SEARCH_EXPERIMENT)])
    assert sorted(r.info.run_id for r in runs) == sorted(c.run_id for c in candidates)
    for run in runs:
        assert run.data.params["source_replay_run_id"] == replay_run
        assert run.data.params["fit_start"].startswith("2011-07")
        assert "in_sample_auc" in run.data.metrics
    assert candidates[0].version is None and candidates[1].version == 1
    tags = experiments.client.get_model_version("buddy-scoring", "1").tags
    assert tags["buddy.fit_run_id"] == replay_run  # the window the gate keeps apart
    assert tags["buddy.fit_start"] == candidates[1].fit.start.isoformat()
    assert tags["buddy.fit_end"] == candidates[1].fit.end.isoformat()
    assert alias_version("buddy-scoring", "production") is None  # the gate decides


def test_the_weight_search_notebook_runs_and_a_replay_logs_it(
        replay_store: Store, research_run: str, tracking_store: str, tmp_path: Path) -> None:
    import mlflow

    out = tmp_path / "30_weight_search.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out),
                        parameters={"db_path": str(replay_store.path), "run_id": "",
                                    "method": "grid", "top": 2},
                        cwd=str(NOTEBOOK.parent), kernel_name="python3", progress_bar=False)
    text = json.dumps(json.loads(out.read_text())["cells"])
    assert "candidate(s) besides the baseline" in text
    assert "promotion skipped" in text
    experiments = ensure_store()
    assert len(experiments.client.search_runs(
        [experiments.experiment_id(WEIGHT_SEARCH_EXPERIMENT)])) == 3
    replay_run = resolve_run_id(replay_store, "")
    assert replay_run == research_run
    assert f"replay run {research_run}" in text
    logged = log_replay(replay_store, replay_run, notebooks=[out], plots=False, n_boot=20)
    path = mlflow.artifacts.download_artifacts(run_id=logged,
                                               artifact_path="notebooks/30_weight_search.ipynb")
    assert json.loads(Path(path).read_text())["cells"]
