"""What ``make demo`` shows: a revenge nudge on one of the demo trader's own logged intents,
decided within the revenge window after one of its losses, with its own figures."""

from __future__ import annotations

import pandas as pd

from buddy.behavior.showcase import show_revenge_nudge
from buddy.store import Store
from buddy.store.behavior import read_user_intents


def test_the_demo_shows_a_revenge_nudge_right_after_a_loss(demo_store: Store) -> None:
    printed: list[str] = []
    example = show_revenge_nudge(demo_store, "demo", echo=printed.append)
    assert example is not None and example.issue.code == "REVENGE_TRADING"
    intents = read_user_intents(demo_store, "demo")
    assert example.intent_id in set(intents["intent_id"])  # a logged intent, not a made-up one
    facts = {f.name: f.value for f in example.issue.evidence}
    assert 0 < facts["hours_since_loss"] <= 72 and facts["loss_amount"] > 0
    assert facts["size_ratio"] >= 1.5
    text = printed[0]
    assert "A larger trade soon after a loss" in text and str(facts["loss_symbol"]) in text
    assert example.as_of == pd.Timestamp(intents.set_index("intent_id").loc[
        example.intent_id, "as_of"])
