"""The production playbooks of a user with history come from a pointer while the MLflow store
is unchanged: a fresh process answers without importing mlflow, and any write to the store
makes it read the registry again (a stale pointer is never used)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from buddy.strategy.playbooks import PlaybookFit
from tests.experiments.test_playbooks import fit_of, trader

REPO = Path(__file__).resolve().parents[2]
# Prints the production fit's key (or None) and whether mlflow was imported.
_SCRIPT = ("import sys\nfrom buddy.strategy.sources import production_playbooks\n"
           "fit = production_playbooks('alice')\n"
           "print(None if fit is None else fit.key, 'mlflow' in sys.modules)")


def _fresh(uri: str) -> tuple[str, bool]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    done = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    key, imported = done.stdout.split()
    return key, imported == "True"


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("BUDDY_SCORING_MODEL", raising=False)
    return uri


def test_a_promoted_fit_is_served_from_the_pointer_until_the_store_changes(
        tracking_uri: str) -> None:
    from mlflow import MlflowClient

    from experiments.playbook_source import playbook_pointer_path, production_playbooks
    from experiments.playbooks import promote_playbooks, register_playbooks
    from experiments.tracking import ensure_store

    fit: PlaybookFit = fit_of(trader())
    experiments = ensure_store()
    assert production_playbooks("alice") is None  # read from the registry: none yet
    promote_playbooks("alice", register_playbooks(fit, experiments=experiments), force=True,
                      reason="test", experiments=experiments)
    served = production_playbooks("alice")  # the store changed: the registry is read
    assert served is not None and served.key == fit.key
    pointer = json.loads(playbook_pointer_path("alice").read_text())  # type: ignore[union-attr]
    assert pointer["version"] == "1" and pointer["fit"]["key"] == fit.key
    assert _fresh(tracking_uri) == (fit.key, False)  # nothing changed: no mlflow
    # any write to the store (here a tag) retires the pointer
    MlflowClient(tracking_uri=tracking_uri).set_registered_model_tag(
        "buddy-playbooks-alice", "note", "changed")
    assert _fresh(tracking_uri) == (fit.key, True)
    assert _fresh(tracking_uri) == (fit.key, False)


def test_a_pointer_for_another_store_or_a_broken_one_is_not_used(tracking_uri: str) -> None:
    from experiments.playbook_source import _pointed, playbook_pointer_path, production_playbooks
    from experiments.tracking import ensure_store, sqlite_path

    ensure_store()
    assert production_playbooks("alice") is None  # writes the pointer: no version
    path, db = playbook_pointer_path("alice"), sqlite_path()
    assert path is not None and db is not None
    assert json.loads(path.read_text())["version"] is None
    assert _pointed(path, db, tracking_uri, "buddy-playbooks-alice") == (True, None)
    assert _pointed(path, db, tracking_uri, "buddy-playbooks-bob") == (False, None)
    pointer = json.loads(path.read_text())
    path.write_text(json.dumps({**pointer, "store": "/elsewhere/mlflow.db"}))
    assert _pointed(path, db, tracking_uri, "buddy-playbooks-alice") == (False, None)
    path.write_text("{not json")
    assert _pointed(path, db, tracking_uri, "buddy-playbooks-alice") == (False, None)
    assert production_playbooks("alice") is None  # read again and rewritten
    assert _pointed(path, db, tracking_uri, "buddy-playbooks-alice") == (True, None)
