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


def test_the_served_production_model_returns_the_full_report_named_by_version_and_alias(
        sample_store: Store, tracking_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Score through MLflow's own scoring server app (what ``mlflow models serve`` runs)."""
    import mlflow
    from mlflow.pyfunc import scoring_server
    from starlette.testclient import TestClient

    store = Store(sample_store.path, migrate=False)
    config = default_scoring_config()
    experiments = ensure_store()
    version = register_config(config, experiments=experiments)
    promote(version, experiments=experiments)
    client = experiments.client
    assert "predicts no prices" in client.get_registered_model("buddy-scoring").description
    assert config.hash in client.get_model_version("buddy-scoring", str(version)).description

    monkeypatch.setenv("BUDDY_DB", str(store.path))
    monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "false")  # init sets it
    model = mlflow.pyfunc.load_model("models:/buddy-scoring@production")
    signature = model.metadata.signature
    assert {"symbol", "as_of", "proposed_entry"} <= set(signature.inputs.input_names())
    assert {"report", "config_alias", "verdict"} <= set(signature.outputs.input_names())

    buddy = Buddy(store, config)
    # the sample idea with the most ranked issues, so the issues' content is compared
    idea = max((place_idea(buddy, i) for i in SAMPLE_IDEAS[:4]),
               key=lambda i: len(buddy.evaluate(**i, log=False).ranked_issues))
    expected = buddy.evaluate(**idea, log=False).to_dict()
    assert expected["issues"]
    row = buddy.make_intent(**idea).as_dict()  # JSON-ready: as_of as an ISO string
    with TestClient(scoring_server.init(model)) as http:
        answer = http.post("/invocations", json={"dataframe_records": [row]})
    assert answer.status_code == 200, answer.text
    (scored,) = answer.json()["predictions"]
    assert (scored["config_name"], scored["config_version"], scored["config_alias"]) == (
        "buddy-scoring", str(version), "production")
    report = json.loads(scored["report"])
    assert report["config"] == {"name": "buddy-scoring", "version": str(version),
                                "alias": "production", "hash": config.hash}
    assert report["issues"] == json.loads(json.dumps(expected["issues"], default=str))
    def by_module(items: list[dict]) -> list[dict]:
        return sorted(items, key=lambda item: (item["module"], item["code"]))

    assert by_module(report["not_checked"]) == by_module(expected["not_checked"])
    assert scored["verdict"] == report["verdict"] == expected["verdict"]
    assert scored["n_issues"] == report["n_issues"] == len(expected["issues"])
    assert scored["overall_score"] == pytest.approx(expected["overall_score"])
    for issue in report["issues"]:
        assert issue["evidence"] and issue["recommendation"]["text"]
