"""Replays as MLflow runs, and the gate and pipeline with a real replay on the sample data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from buddy.store import Store
from experiments.gate import GateConfig, HoldoutWindow, ReplayHoldoutScorer
from experiments.pipeline import run_pipeline
from experiments.registry import STEP_SENTENCES, STEPS, alias_version, promote, register_config
from experiments.tracking import PARENT_TAG, REPLAYS_EXPERIMENT, ensure_store
from replay.executors import SerialExecutor
from tests.experiments.helpers import heavier_risk_config

#: Nine ma_cross intents on two symbols; market data only, so replays take seconds.
TINY = HoldoutWindow(intent_source="generator:ma_cross", symbols=("AAPL", "MSFT"),
                     start="2012-01-01", end="2012-12-31", providers="none")
TINY_GATE = GateConfig(window=TINY, min_n=5)


def test_a_replay_is_logged_with_params_calibration_metrics_and_artifacts(
        replay_store: Store, tracking_store: str) -> None:
    import mlflow

    from buddy.config import default_scoring_config

    config = default_scoring_config()
    scorer = ReplayHoldoutScorer(replay_store, executor=SerialExecutor(), n_boot=50)
    metrics = scorer(config, TINY).metrics
    assert metrics["n"] >= 5 and {"auc", "spearman", "decile_spread_r"} <= set(metrics)
    replay_run, mlflow_run = scorer.runs[config.hash]
    run = ensure_store().client.get_run(mlflow_run)
    params = run.data.params
    assert params["replay_run_id"] == replay_run and params["config_hash"] == config.hash
    assert params["intent_source"] == "generator:ma_cross"
    assert params["data_start"].startswith("2012-") and params["data_end"].startswith("2012-")
    assert int(params["n_intents"]) >= metrics["n"]
    assert run.data.metrics["n"] == metrics["n"]
    assert run.data.metrics["auc"] == pytest.approx(metrics["auc"])
    assert run.data.tags["buddy.replay_run_id"] == replay_run
    assert run.info.experiment_id == ensure_store().experiment_id(REPLAYS_EXPERIMENT)
    results = pd.read_parquet(mlflow.artifacts.download_artifacts(
        run_id=mlflow_run, artifact_path="results.parquet"))
    assert len(results) == int(params["n_intents"])
    assert {"overall_score", "realized_r", "win"} <= set(results.columns)
    names = {a.path for a in ensure_store().client.list_artifacts(mlflow_run)}
    assert {"results.parquet", "issues.parquet", "scoring_config.json", "plots"} <= names
    plots = {a.path for a in ensure_store().client.list_artifacts(mlflow_run, "plots")}
    assert "plots/deciles.png" in plots
    # no NaN in the UI: metrics without a value are named in an artifact instead
    empty = {k for k, v in metrics.items() if isinstance(v, float) and math.isnan(v)}
    assert not any(math.isnan(v) for v in run.data.metrics.values())
    assert set(json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=mlflow_run, artifact_path="metrics_not_computed.json")).read_text())) == empty
    assert run.data.tags["buddy.n_metrics_not_computed"] == str(len(empty))
    # the run was open while the replay ran: duration, source and commit in the UI
    assert run.info.status == "FINISHED" and run.info.end_time > run.info.start_time
    assert len(run.data.tags["mlflow.source.git.commit"]) == 40
    assert run.data.tags["mlflow.note.content"].startswith("Holdout replay of ")


def test_the_pipeline_logs_replays_and_promotes_and_the_gate_then_compares_real_replays(
        replay_store: Store, tracking_store: str) -> None:
    lines: list[str] = []
    result = run_pipeline(replay_store.path, gate=TINY_GATE, serial=True, echo=lines.append)
    assert result.promotion.moved and result.promotion.comparison.outcome == "first"
    assert result.production.version == str(result.version)
    assert lines[-1] == (f"buddy evaluate will use buddy-scoring@{result.version} "
                         f"#{result.production.hash}")
    # sentences, in the order the work happened
    assert [line for line in lines if line in STEP_SENTENCES.values()] == [
        STEP_SENTENCES[step] for step in STEPS]
    assert lines[-2] == result.promotion.sentence()
    assert "is now production" in lines[-2] and result.promotion.run_id in lines[-2]
    assert result.promotion.comparison.challenger_metrics["n"] >= 5
    (_, replay_mlflow_run), = result.replay_runs.values()
    client = ensure_store().client
    assert client.get_run(replay_mlflow_run).data.tags[PARENT_TAG] == result.promotion.run_id
    promotion_run = client.get_run(result.promotion.run_id)
    assert promotion_run.info.start_time <= client.get_run(replay_mlflow_run).info.start_time
    assert promotion_run.data.tags["buddy.outcome"] == "first"

    experiments = ensure_store()
    challenger = register_config(heavier_risk_config(), experiments=experiments)
    scorer = ReplayHoldoutScorer(replay_store, executor=SerialExecutor(), n_boot=50)
    second = promote(challenger, gate=TINY_GATE, scorer=scorer, experiments=experiments)
    comparison = second.comparison
    assert comparison.outcome in ("passed", "refused")
    assert {c.metric for c in comparison.checks} == {"auc", "spearman", "decile_spread_r"}
    assert comparison.challenger_metrics["n"] == comparison.production_metrics["n"]
    assert len(scorer.runs) == 2  # both configs replayed on the same window and logged
    expected = str(challenger) if second.moved else str(result.version)
    assert alias_version("buddy-scoring", "production") == expected
