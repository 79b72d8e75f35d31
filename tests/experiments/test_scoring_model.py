"""The registered config as a pyfunc model: predict equals Buddy.evaluate, reports name it."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from buddy.api import Buddy
from buddy.config import default_scoring_config
from buddy.demo import SAMPLE_IDEAS, place_idea
from buddy.store import Store
from experiments.registry import load_production_config, promote, register_config
from experiments.tracking import ensure_store


def test_predict_on_intents_equals_buddy_evaluate_and_reports_name_the_version(
        sample_store: Store, tracking_store: str) -> None:
    import mlflow

    store = Store(sample_store.path, migrate=False)
    config = default_scoring_config()
    experiments = ensure_store()
    version = register_config(config, experiments=experiments)
    promote(version, experiments=experiments)

    buddy = Buddy(store, config)
    ideas = [place_idea(buddy, idea) for idea in SAMPLE_IDEAS[:3]]
    intents = [buddy.make_intent(**idea) for idea in ideas]
    frame = pd.DataFrame([i.as_row() for i in intents])
    invalid = {**intents[0].as_row(), "intent_id": "bad", "symbol": "NOPE"}
    frame = pd.concat([frame, pd.DataFrame([invalid])], ignore_index=True)

    model = mlflow.pyfunc.load_model("models:/buddy-scoring@production",
                                     model_config={"db_path": str(store.path)})
    scores = model.predict(frame)

    expected = [buddy.evaluate(**idea, log=False).overall_score for idea in ideas]
    assert scores["intent_id"].tolist()[:3] == [i.intent_id for i in intents]
    for got, want in zip(scores["overall_score"].iloc[:3], expected, strict=True):
        assert (math.isnan(got) and want is None) or got == pytest.approx(want)
    assert any(s is not None for s in expected)
    assert set(scores["config_hash"]) == {config.hash}
    assert math.isnan(scores["overall_score"].iloc[3])
    assert "NOPE" in scores["error"].iloc[3]
    assert scores["error"].iloc[:3].isna().all()
    assert store.query("SELECT count(*) AS n FROM trade_evaluations")["n"].iloc[0] == 0

    production = load_production_config()
    report = Buddy(store, production).evaluate(**ideas[0], log=False)
    assert (report.config_name, report.config_version, report.config_hash) == (
        "buddy-scoring", str(version), config.hash)
    assert f"config buddy-scoring@{version} (production) #{config.hash}" in str(report)
    logged = json.loads(report.evaluation_row()["modules_run_json"])["config"]
    assert logged == {"name": "buddy-scoring", "version": str(version), "alias": "production",
                      "hash": config.hash}
    assert report.to_dict()["config"] == logged
