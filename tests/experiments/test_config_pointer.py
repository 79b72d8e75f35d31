"""The production pointer: `buddy evaluate` after a promotion resolves its config without
importing mlflow, and a pointer is used only while the MLflow store is unchanged since the
registry was read: a promotion, a rollback or an alias moved by anyone else is seen."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from buddy.config import default_scoring_config
from buddy.config_sources import file_stamp, read_config_pointer, write_config_pointer
from buddy.store import Store
from experiments.config_source import (
    SCORING_MODEL,
    pointed_production_config,
    pointer_path,
    registry_config_source,
)
from experiments.registry import PRODUCTION, promote, register_config, rollback
from experiments.tracking import ensure_store, sqlite_path
from tests.experiments.helpers import EVALUATE, REPO, SMALL_GATE, heavier_risk_config

HEAVIER = heavier_risk_config()
DEFAULT = default_scoring_config()
# Runs the command line in a fresh process and reports, after the report, whether mlflow
# was imported.
_EVALUATE_SCRIPT = ("import sys\nfrom buddy.cli import main\nsys.argv = ['buddy', *sys.argv[1:]]\n"
                    "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc\n"
                    "print('MLFLOW', 'mlflow' in sys.modules)")


def _evaluate_fresh(db: Path, uri: str) -> tuple[dict, bool]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env.pop("BUDDY_SCORING_MODEL", None)
    done = subprocess.run([sys.executable, "-c", _EVALUATE_SCRIPT, "--db", str(db), *EVALUATE],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    *report, last = done.stdout.strip().splitlines()
    return json.loads("\n".join(report)), last == "MLFLOW True"


def _production() -> tuple[str, str]:
    config = registry_config_source(PRODUCTION)
    assert config is not None
    return config.version, config.hash


def test_evaluate_after_a_promotion_does_not_import_mlflow(
        sample_store: Store, tracking_store: str, tmp_path: Path) -> None:
    db = tmp_path / "buddy.duckdb"
    shutil.copy(sample_store.path, db)
    experiments = ensure_store()
    version = register_config(HEAVIER, experiments=experiments)
    promote(version, gate=SMALL_GATE, experiments=experiments)

    pointer = read_config_pointer(pointer_path())  # type: ignore[arg-type]
    assert pointer is not None and pointer.version == str(version)
    assert pointer.config_hash == HEAVIER.hash
    assert pointer.store_stamp == file_stamp(sqlite_path())  # type: ignore[arg-type]
    report, imported_mlflow = _evaluate_fresh(db, tracking_store)
    assert report["config_hash"] == HEAVIER.hash
    assert (report["config"]["name"], report["config"]["version"]) == (SCORING_MODEL,
                                                                       str(version))
    assert not imported_mlflow


def test_every_change_of_the_store_is_seen_and_a_stale_pointer_never_used(
        tracking_store: str) -> None:
    experiments = ensure_store()
    client = experiments.client
    v1 = register_config(HEAVIER, experiments=experiments)
    v2 = register_config(DEFAULT, experiments=experiments)
    promote(v1, gate=SMALL_GATE, experiments=experiments)
    assert pointed_production_config()[0]
    assert _production() == (str(v1), HEAVIER.hash)

    promote(v2, gate=SMALL_GATE, force=True, experiments=experiments)
    assert pointed_production_config()[0]
    assert _production() == (str(v2), DEFAULT.hash)

    rollback(experiments=experiments)
    assert _production() == (str(v1), HEAVIER.hash)

    # an alias moved by someone else (another tool, the MLflow UI): no pointer written, but
    # the store changed, so the pointer (still v1) is not used
    client.set_registered_model_alias(SCORING_MODEL, PRODUCTION, str(v2))
    assert pointed_production_config() == (False, None)
    assert _production() == (str(v2), DEFAULT.hash)
    assert pointed_production_config()[0]  # re-read and re-stamped

    # the alias removed: the pointer records "no production version" (the packaged default)
    client.delete_registered_model_alias(SCORING_MODEL, PRODUCTION)
    assert registry_config_source(PRODUCTION) is None
    assert pointed_production_config() == (True, None)


def test_a_pointer_that_disagrees_with_the_registry_is_not_used(tracking_store: str) -> None:
    experiments = ensure_store()
    v1 = register_config(HEAVIER, experiments=experiments)
    promote(v1, gate=SMALL_GATE, experiments=experiments)
    path = pointer_path()
    assert path is not None
    good = read_config_pointer(path)
    assert good is not None and pointed_production_config()[0]
    forged_config = dataclasses.replace(DEFAULT, name=SCORING_MODEL, version="9")

    # a pointer claiming another version, with an old stamp
    write_config_pointer(path, dataclasses.replace(
        good, version="9", config_hash=DEFAULT.hash, config_json=forged_config.to_json(),
        store_stamp="-|-|-"))
    assert pointed_production_config() == (False, None)
    assert _production() == (str(v1), HEAVIER.hash)

    # the current stamp, but a config that does not hash as the pointer says
    write_config_pointer(path, dataclasses.replace(
        good, config_json=forged_config.to_json(), store_stamp=file_stamp(
            sqlite_path())))  # type: ignore[arg-type]
    assert pointed_production_config() == (False, None)
    assert _production() == (str(v1), HEAVIER.hash)

    # a pointer written for another store (a copied mlruns folder)
    write_config_pointer(path, dataclasses.replace(good, store="/elsewhere/mlflow.db"))
    assert pointed_production_config() == (False, None)

    # an unreadable pointer
    path.write_text("{not json")
    assert pointed_production_config() == (False, None)
    assert _production() == (str(v1), HEAVIER.hash)
    assert pointed_production_config()[0]
