"""The registry reaches buddy as a config source (entry point), never by import: the buddy
command line evaluates with the production config of a real MLflow store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from buddy.config import default_scoring_config
from buddy.config_sources import (
    ENTRY_POINT_GROUP,
    config_sources,
    production_config,
    resolve_scoring_config,
)
from buddy.errors import ConfigError
from buddy.store import Store
from experiments.config_source import registry_config_source
from experiments.registry import promote, register_config
from experiments.tracking import ensure_store
from tests.experiments.helpers import EVALUATE, REPO, SMALL_GATE, heavier_risk_config

HEAVIER = heavier_risk_config()


def _buddy_cli(db: Path, uri: str) -> dict:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env.pop("BUDDY_SCORING_MODEL", None)
    done = subprocess.run([sys.executable, "-m", "buddy.cli", "--db", str(db), *EVALUATE],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_the_registry_is_an_installed_config_source() -> None:
    assert config_sources() == {"mlflow-registry": registry_config_source}, (
        f"run `make venv`: the {ENTRY_POINT_GROUP} entry point is not installed")


def test_the_cli_evaluates_with_the_production_config_of_the_registry(
        sample_store: Store, tracking_store: str, tmp_path: Path) -> None:
    db = tmp_path / "buddy.duckdb"
    shutil.copy(sample_store.path, db)
    assert HEAVIER.hash != default_scoring_config().hash
    before = _buddy_cli(db, tracking_store)  # a store without a production version
    assert before["config_hash"] == default_scoring_config().hash

    experiments = ensure_store()
    version = register_config(HEAVIER, experiments=experiments)
    promote(version, gate=SMALL_GATE, experiments=experiments)
    assert production_config().hash == HEAVIER.hash  # in this process, through the source

    report = _buddy_cli(db, tracking_store)
    assert report["config_hash"] == HEAVIER.hash
    assert (report["config"]["name"], report["config"]["version"]) == ("buddy-scoring",
                                                                       str(version))


def test_references_resolve_through_sources_in_name_order() -> None:
    calls: list[str] = []

    def empty(ref: str) -> None:
        calls.append(f"empty:{ref}")

    def heavier(ref: str):
        calls.append(f"heavier:{ref}")
        return HEAVIER if ref == "models:/x@y" else None

    sources = {"a-empty": empty, "b-heavier": heavier}
    assert resolve_scoring_config("models:/x@y", sources=sources) is HEAVIER
    assert resolve_scoring_config("production", sources=sources) == default_scoring_config()
    assert resolve_scoring_config("packaged", sources=sources) == default_scoring_config()
    assert calls == ["empty:models:/x@y", "heavier:models:/x@y", "empty:production",
                     "heavier:production"]
    with pytest.raises(ConfigError) as caught:
        resolve_scoring_config("models:/nobody@knows", sources={"a-empty": empty})
    (error,) = caught.value.errors
    assert (error.field, error.value) == ("config", "models:/nobody@knows")
    assert "a-empty" in error.rule and ENTRY_POINT_GROUP in error.rule
