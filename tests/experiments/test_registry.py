"""The registry on a real SQLite store: loading by alias, the gate, forced, rollback, crashes.

Two versions are registered once per module (v1: the packaged default, v2: risk/reward
weighted double); every test works on its own copy of that database, so aliases start
unset in each.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from buddy.config import default_scoring_config
from experiments.cli import experiments as experiments_cli
from experiments.gate import DEFAULT_GATE
from experiments.registry import (
    PREVIOUS,
    PRODUCTION,
    RegistryError,
    alias_version,
    list_versions,
    load_production_config,
    load_scoring_config,
    promote,
    register_config,
    rollback,
)
from experiments.tracking import PROMOTIONS_EXPERIMENT, ExperimentStore, ensure_store
from tests.experiments.helpers import TableScorer, heavier_risk_config

MODEL = "buddy-scoring"
DEFAULT = default_scoring_config()
HEAVIER = heavier_risk_config()
GOOD = {"auc": 0.62, "spearman": 0.21, "decile_spread_r": 0.55, "n": 300.0, "n_wins": 50.0}
WORSE = {"auc": 0.55, "spearman": 0.21, "decile_spread_r": 0.55, "n": 300.0, "n_wins": 50.0}
NO_WORSE = {"auc": 0.615, "spearman": 0.20, "decile_spread_r": 0.60, "n": 300.0,
            "n_wins": 50.0}


@pytest.fixture(scope="module")
def registered_db(tmp_path_factory: pytest.TempPathFactory, new_tracking_store) -> Path:
    """Return a database holding buddy-scoring v1 (default) and v2 (heavier risk), no alias."""
    folder = tmp_path_factory.mktemp("registry")
    uri = new_tracking_store(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        store = ensure_store()
        assert register_config(DEFAULT, experiments=store) == 1
        assert register_config(HEAVIER, experiments=store) == 2
    return folder / "mlruns" / "mlflow.db"


@pytest.fixture
def store(registered_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[ExperimentStore]:
    """Return this test's own copy of the registered database, opened."""
    db = tmp_path / "mlruns" / "mlflow.db"
    db.parent.mkdir(parents=True)
    shutil.copy(registered_db, db)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.delenv("BUDDY_SCORING_MODEL", raising=False)
    yield ensure_store()


def aliases(store: ExperimentStore) -> tuple[str | None, str | None]:
    return (alias_version(MODEL, PRODUCTION, client=store.client),
            alias_version(MODEL, PREVIOUS, client=store.client))


def promotion_runs(store: ExperimentStore) -> list:
    return store.client.search_runs([store.experiment_id(PROMOTIONS_EXPERIMENT)],
                                    order_by=["attributes.start_time ASC"])


def test_a_logged_config_loads_back_by_alias_with_the_same_hash(
        store: ExperimentStore) -> None:
    import mlflow

    assert load_production_config() is None  # registered, not yet promoted
    promote(1, experiments=store)
    production = load_production_config()
    assert production is not None and production.hash == DEFAULT.hash
    assert (production.name, production.version, production.alias) == (MODEL, "1", PRODUCTION)
    assert load_scoring_config(f"models:/{MODEL}@{PRODUCTION}") == production
    by_number = load_scoring_config(f"models:/{MODEL}/2")
    assert by_number.hash == HEAVIER.hash and by_number.alias == ""
    version = store.client.get_model_version(MODEL, "1")
    run = store.client.get_run(version.run_id)
    assert run.data.params["config_hash"] == DEFAULT.hash
    assert run.data.params["module.risk_reward.weight"] == "3.0"
    assert json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=version.run_id, artifact_path="scoring_config.json")).read_text())[
        "hash"] == DEFAULT.hash
    model_dir = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1"))
    assert (model_dir / "artifacts" / "scoring_config.json").is_file()
    assert not list(model_dir.rglob("*.pkl"))  # logged from code, not pickled
    assert "trading-buddy==" in (model_dir / "requirements.txt").read_text()
    listed = list_versions(MODEL)
    assert listed["version"].tolist() == [1, 2]
    assert listed["aliases"].tolist() == [PRODUCTION, ""]
    assert listed["config_hash"].tolist() == [DEFAULT.hash, HEAVIER.hash]


def test_the_first_promotion_passes_by_definition_and_is_recorded(
        store: ExperimentStore) -> None:
    scorer = TableScorer({DEFAULT.hash: GOOD})
    result = promote(1, scorer=scorer, experiments=store)
    assert result.moved and result.comparison.outcome == "first"
    assert aliases(store) == ("1", None)
    assert [h for h, _ in scorer.calls] == [DEFAULT.hash]  # replayed, for the record
    (run,) = promotion_runs(store)
    assert run.info.run_id == result.run_id
    assert run.data.tags["buddy.outcome"] == "first"
    assert run.data.params["production_version"] == ""
    assert run.data.metrics["gate_passed"] == 1.0


def test_the_gate_refuses_a_worse_challenger_and_records_the_comparison(
        store: ExperimentStore) -> None:
    import mlflow

    promote(1, experiments=store)
    scorer = TableScorer({DEFAULT.hash: GOOD, HEAVIER.hash: WORSE})
    result = promote(2, scorer=scorer, experiments=store)
    assert not result.moved and result.comparison.outcome == "refused"
    assert aliases(store) == ("1", None)
    assert load_production_config().version == "1"
    assert scorer.calls == [(HEAVIER.hash, DEFAULT_GATE.window),
                            (DEFAULT.hash, DEFAULT_GATE.window)]
    run = promotion_runs(store)[-1]
    assert run.info.run_id == result.run_id
    assert run.data.tags["buddy.outcome"] == "refused"
    assert run.data.params["challenger_version"] == "2"
    assert run.data.params["production_version"] == "1"
    assert run.data.metrics["delta__auc"] == pytest.approx(-0.07)
    recorded = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="comparison.json")).read_text())
    assert recorded["outcome"] == "refused"
    assert [c["metric"] for c in recorded["checks"] if not c["passed"]] == ["auc"]


def test_the_gate_accepts_a_no_worse_challenger_and_previous_keeps_the_old_one(
        store: ExperimentStore) -> None:
    promote(1, experiments=store)
    result = promote(2, scorer=TableScorer({DEFAULT.hash: GOOD, HEAVIER.hash: NO_WORSE}),
                     experiments=store)
    assert result.moved and result.comparison.outcome == "passed"
    assert aliases(store) == ("2", "1")
    production = load_production_config()
    assert (production.version, production.hash) == ("2", HEAVIER.hash)
    assert promotion_runs(store)[-1].data.tags["buddy.outcome"] == "passed"


def test_a_forced_promotion_skips_the_gate_and_is_recorded_as_forced(
        store: ExperimentStore) -> None:
    promote(1, experiments=store)
    with pytest.raises(RegistryError, match="scorer"):
        promote(2, experiments=store)  # the gate cannot decide without a replay
    result = promote(2, force=True, reason="hotfix for a broken module", experiments=store)
    assert result.moved and result.comparison.forced
    assert aliases(store) == ("2", "1")
    run = promotion_runs(store)[-1]
    assert run.data.tags["buddy.forced"] == "true"
    assert run.data.params["outcome"] == "forced"
    assert run.data.params["reason"] == "hotfix for a broken module"
    assert run.data.metrics["forced"] == 1.0


def test_rollback_restores_the_previous_version_in_one_call(store: ExperimentStore) -> None:
    promote(1, experiments=store)
    with pytest.raises(RegistryError, match="no 'previous'"):
        rollback(experiments=store)
    promote(2, force=True, experiments=store)
    result = rollback(reason="v2 misbehaves", experiments=store)
    assert (result.production_before, result.production_after) == ("2", "1")
    assert aliases(store) == ("1", "2")
    assert load_production_config().hash == DEFAULT.hash
    run = promotion_runs(store)[-1]
    assert run.data.tags["buddy.action"] == "rollback"
    assert run.data.params["target_version"] == "1"
    rollback(experiments=store)  # a second rollback undoes the first
    assert aliases(store) == ("2", "1")


def test_a_comparison_that_cannot_be_recorded_moves_no_alias(store: ExperimentStore) -> None:
    promote(1, experiments=store)
    runs_before = len(promotion_runs(store))
    # another operator deletes the promotions experiment while the replays run
    store.client.delete_experiment(store.experiment_id(PROMOTIONS_EXPERIMENT))
    with pytest.raises(Exception, match="active"):
        promote(2, scorer=TableScorer({DEFAULT.hash: GOOD, HEAVIER.hash: NO_WORSE}),
                experiments=store)
    assert aliases(store) == ("1", None)
    assert load_production_config().hash == DEFAULT.hash  # still loads: a valid version
    store.client.restore_experiment(store.experiment_id(PROMOTIONS_EXPERIMENT))
    assert len(promotion_runs(store)) == runs_before


def test_a_promotion_interrupted_between_alias_moves_leaves_production_valid(
        store: ExperimentStore) -> None:
    promote(1, experiments=store)
    scorer = TableScorer({DEFAULT.hash: GOOD, HEAVIER.hash: NO_WORSE})

    def crash_after(step: str) -> None:
        if step == "previous_moved":
            raise KeyboardInterrupt("killed between the two alias writes")

    with pytest.raises(KeyboardInterrupt):
        promote(2, scorer=scorer, on_step=crash_after, experiments=store)
    assert aliases(store) == ("1", "1")
    assert load_production_config().hash == DEFAULT.hash
    promote(2, scorer=scorer, experiments=store)  # running it again completes it
    assert aliases(store) == ("2", "1")


def test_unknown_versions_and_uris_are_refused(store: ExperimentStore) -> None:
    with pytest.raises(RegistryError, match="no version 9"):
        promote(9, force=True, experiments=store)
    with pytest.raises(RegistryError, match="models:/"):
        load_scoring_config("buddy-scoring@production")
    with pytest.raises(RegistryError, match="no version with alias"):
        load_scoring_config(f"models:/{MODEL}@{PRODUCTION}")
    assert aliases(store) == (None, None)


def test_consumers_load_production_unless_told_otherwise(
        store: ExperimentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    promote(1, experiments=store)
    monkeypatch.setenv("BUDDY_SCORING_MODEL", "packaged")
    assert load_production_config() is None
    monkeypatch.setenv("BUDDY_SCORING_MODEL", f"models:/{MODEL}/2")
    assert load_production_config().hash == HEAVIER.hash


def test_the_cli_logs_promotes_lists_shows_and_rolls_back(store: ExperimentStore,
                                                          tmp_path: Path) -> None:
    runner = CliRunner()
    config_file = tmp_path / "heavier.json"
    config_file.write_text(HEAVIER.to_json())
    logged = runner.invoke(experiments_cli, ["log-config", "--file", str(config_file)])
    assert logged.exit_code == 0, logged.output
    assert f"registered {MODEL} v3 #{HEAVIER.hash}" in logged.stdout.splitlines()
    first = runner.invoke(experiments_cli, ["promote", "--version", "1", "--force"])
    assert first.exit_code == 0, first.output
    assert runner.invoke(experiments_cli, ["show"]).stdout.strip() == (
        f"{MODEL}@1 #{DEFAULT.hash}")
    second = runner.invoke(experiments_cli, ["promote", "--version", "2", "--force",
                                             "--reason", "cli test"])
    assert second.exit_code == 0 and aliases(store) == ("2", "1")
    listed = runner.invoke(experiments_cli, ["list"]).output
    assert HEAVIER.hash in listed and PREVIOUS in listed
    back = runner.invoke(experiments_cli, ["rollback", "--model", MODEL])
    assert back.exit_code == 0 and aliases(store) == ("1", "2")
    missing = runner.invoke(experiments_cli, ["promote", "--version", "7", "--force"])
    assert missing.exit_code == 2 and "no version 7" in missing.output
