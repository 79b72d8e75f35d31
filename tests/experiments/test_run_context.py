"""Runs are opened while the work happens, carry MLflow's context tags, and experiments open
in MLflow 3's classic (ML) view."""

from __future__ import annotations

import math
import time

import pytest

from experiments.tracking import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    EXPERIMENTS,
    PARENT_TAG,
    PROMOTIONS_EXPERIMENT,
    REPLAYS_EXPERIMENT,
    ensure_store,
    log_run,
    log_values,
    tracked_run,
)


def test_every_experiment_is_tagged_as_an_ml_experiment_also_in_an_older_store(
        tracking_store: str) -> None:
    store = ensure_store()
    for name in EXPERIMENTS:
        tags = store.client.get_experiment(store.experiment_id(name)).tags
        assert tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    # a store made before the tag existed gets it on the next open
    replays = store.experiment_id(REPLAYS_EXPERIMENT)
    store.client.delete_experiment_tag(replays, EXPERIMENT_KIND_TAG)
    assert EXPERIMENT_KIND_TAG not in store.client.get_experiment(replays).tags
    ensure_store()
    assert store.client.get_experiment(replays).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def test_a_tracked_run_spans_its_work_and_names_user_source_and_commit(
        tracking_store: str) -> None:
    store = ensure_store()
    with tracked_run(store, PROMOTIONS_EXPERIMENT, run_name="outer",
                     description="why this run") as outer:
        assert store.client.get_run(outer).info.status == "RUNNING"  # visible while working
        time.sleep(0.3)
        with tracked_run(store, REPLAYS_EXPERIMENT, run_name="inner") as inner:
            pass
    run = store.client.get_run(outer)
    assert run.info.status == "FINISHED"
    assert run.info.end_time - run.info.start_time >= 300  # ms: the block's duration
    tags = run.data.tags
    assert tags["mlflow.user"] and tags["mlflow.source.name"] and tags["mlflow.source.type"]
    assert len(tags["mlflow.source.git.commit"]) == 40
    assert tags["mlflow.note.content"] == "why this run"
    assert PARENT_TAG not in tags
    assert store.client.get_run(inner).data.tags[PARENT_TAG] == outer
    assert log_run(store, REPLAYS_EXPERIMENT) and PARENT_TAG not in store.client.get_run(
        log_run(store, REPLAYS_EXPERIMENT)).data.tags  # nothing open any more


def test_a_run_whose_work_fails_is_failed_and_the_error_raised(tracking_store: str) -> None:
    store = ensure_store()
    with pytest.raises(ZeroDivisionError), tracked_run(store, REPLAYS_EXPERIMENT) as run_id:
        _ = 1 / 0
    assert store.client.get_run(run_id).info.status == "FAILED"


def test_metrics_without_a_value_are_not_logged_but_named(tracking_store: str) -> None:
    store = ensure_store()
    with tracked_run(store, REPLAYS_EXPERIMENT) as run_id:
        missing = log_values(store, run_id, metrics={"auc": 0.61, "flag__X__mean_r": math.nan,
                                                     "flag__Y__n": 0, "ratio": math.inf})
    assert sorted(missing) == ["flag__X__mean_r", "ratio"]
    assert store.client.get_run(run_id).data.metrics == {"auc": 0.61, "flag__Y__n": 0.0}
