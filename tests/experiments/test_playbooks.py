"""Per-user playbook models: the artifact format, and the shared registry and gate path."""

from __future__ import annotations

import pandas as pd
import pytest

from experiments.playbooks import (
    PLAYBOOK_GATE,
    PlaybookModel,
    load_playbooks,
    playbook_model_name,
    promote_playbooks,
    register_playbooks,
    rollback_playbooks,
)
from experiments.tracking import ensure_store
from tests.experiments.helpers import TableScorer


def playbooks(user: str = "alice", radius: float = 2.0) -> PlaybookModel:
    return PlaybookModel(user_id=user, features=("stop_distance_atr", "rr"),
                         center=(1.5, 2.0), scale=(0.5, 1.0),
                         centroids=((-1.0, 0.0), (1.0, 1.0)),
                         labels=("tight pullback", "wide breakout"), max_distance=radius,
                         params={"algorithm": "kmeans", "n_setups": 120, "seed": 0})


def test_the_artifact_round_trips_and_assigns_setups_to_playbooks() -> None:
    model = playbooks()
    again = PlaybookModel.from_json(model.to_json())
    assert again == model and again.hash == model.hash
    setups = pd.DataFrame({"stop_distance_atr": [1.0, 2.0, 9.0, None],
                           "rr": [2.0, 3.0, 2.0, 2.0]})
    assigned = model.assign(setups)
    assert assigned["playbook"].tolist() == ["tight pullback", "wide breakout", None, None]
    assert assigned["distance"].iloc[0] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="labels and centroids"):
        PlaybookModel(**{**model.as_dict(), "labels": ("one",), "features": ("a", "b")})
    assert playbook_model_name("bob smith/1") == "buddy-playbooks-bob_smith_1"


def test_playbook_versions_promote_through_the_gate_and_roll_back(tracking_store: str) -> None:
    import mlflow

    experiments = ensure_store()
    first, second = playbooks(radius=2.0), playbooks(radius=1.0)
    assert register_playbooks(first, experiments=experiments) == 1
    assert register_playbooks(second, experiments=experiments) == 2
    assert load_playbooks("alice") is None
    assert promote_playbooks("alice", 1, experiments=experiments).moved
    assert load_playbooks("alice") == first

    model = mlflow.pyfunc.load_model("models:/buddy-playbooks-alice@production")
    out = model.predict(pd.DataFrame({"stop_distance_atr": [1.0], "rr": [2.0]}))
    assert out["playbook"].tolist() == ["tight pullback"]

    scorer = TableScorer({first.hash: {"coverage": 0.80, "n": 60.0},
                          second.hash: {"coverage": 0.55, "n": 60.0}})
    refused = promote_playbooks("alice", 2, scorer=scorer, experiments=experiments)
    assert not refused.moved and "coverage" in refused.comparison.reason
    assert [window for _, window in scorer.calls] == [PLAYBOOK_GATE.window] * 2
    forced = promote_playbooks("alice", 2, force=True, reason="user asked",
                               experiments=experiments)
    assert forced.moved and load_playbooks("alice") == second
    rollback_playbooks("alice", experiments=experiments)
    assert load_playbooks("alice") == first
    assert load_playbooks("alice", alias="previous") == second
