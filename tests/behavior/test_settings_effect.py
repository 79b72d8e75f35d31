"""The trader's controls change what fires: a sensitivity change moves the detectors'
thresholds (high flags at least what medium flags, low at most), an opt-out removes its
detector's nudges and nothing else, 'off' removes every nudge. On the demo trader's own
logged intents around the injected size-ups after losses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from buddy.batch.builder import build_batch_context
from buddy.behavior.provider import BehaviorProvider
from buddy.behavior.settings import set_nudge_settings
from buddy.context.providers import ProviderRegistry
from buddy.evaluators.behavior_nudges import BehaviorNudgesEvaluator
from buddy.store import Store
from buddy.store.behavior import read_user_intents
from buddy.store.demo_truth import demo_behavior_truth
from buddy.users.store import set_user

USER = "demo"


@pytest.fixture(scope="module")
def intents(demo_store: Store) -> pd.DataFrame:
    """Return the demo trader's intents within three days before an injected size-up after
    a loss (the revenge cases and their neighbours)."""
    every = read_user_intents(demo_store, USER)
    truth = demo_behavior_truth(demo_store, USER)
    sized = pd.to_datetime(truth.loc[truth["kind"] == "size_up_after_loss", "ts"], utc=True)
    near = np.zeros(len(every), dtype=bool)
    for t in sized:
        near |= ((every["as_of"] >= t - timedelta(days=3)) & (every["as_of"] <= t)).to_numpy()
    return every[near].reset_index(drop=True)


def fired(store: Store, frame: pd.DataFrame) -> dict[str, set[str]]:
    """Return code -> the intents it fired on (every hit shown: no caps)."""
    ctx = build_batch_context(store, frame,
                              providers=ProviderRegistry({"behavior": BehaviorProvider()}))
    issues = BehaviorNudgesEvaluator({"apply_user_limits": False, "max_per_report": 7}
                                     ).evaluate_batch(ctx).issues
    ids = frame["intent_id"].to_numpy(object)
    return {str(code): set(ids[group["row"].to_numpy(np.int64)])
            for code, group in issues.groupby("code")}


def test_sensitivity_and_opt_out_change_what_fires(demo_store_copy: Callable[[], Store],
                                                   intents: pd.DataFrame) -> None:
    store = demo_store_copy()
    medium = fired(store, intents)
    assert medium.get("REVENGE_TRADING")
    set_nudge_settings(store, USER, sensitivity={"revenge": "high"})
    high = fired(store, intents)
    set_nudge_settings(store, USER, sensitivity={"revenge": "low"})
    low = fired(store, intents)
    revenge = [x.get("REVENGE_TRADING", set()) for x in (low, medium, high)]
    assert revenge[0] <= revenge[1] <= revenge[2] and revenge[0] != revenge[2]
    # only the detector whose level changed moved
    for result in (low, high):
        assert {c: v for c, v in result.items() if c != "REVENGE_TRADING"} == {
            c: v for c, v in medium.items() if c != "REVENGE_TRADING"}
    set_nudge_settings(store, USER, default=["revenge"], opt_out=["revenge"])
    out = fired(store, intents)
    assert "REVENGE_TRADING" not in out
    assert out.get("STOP_DRIFT") == medium.get("STOP_DRIFT")  # the others unchanged
    set_nudge_settings(store, USER, opt_in=["revenge"])
    assert fired(store, intents) == medium
    set_user(store, USER, nudge_sensitivity="off")
    assert set(fired(store, intents)) == set()  # no detector runs: nothing, not "not checked"
