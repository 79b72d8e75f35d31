"""Entry facts of the demo trader's trades (first checks; more below as they land)."""

from __future__ import annotations

import pandas as pd

from buddy.strategy.facts import CONTEXT_FACTS, EMBEDDING_FEATURES


def test_every_demo_trade_has_its_facts(demo_facts: pd.DataFrame) -> None:
    assert len(demo_facts) == 881
    assert set(EMBEDDING_FEATURES + CONTEXT_FACTS) <= set(demo_facts.columns)
    planned = demo_facts["intent_id"].notna()
    assert demo_facts.loc[planned, list(EMBEDDING_FEATURES)].notna().all().all()
    assert demo_facts.loc[~planned, "stop_atr"].isna().all()
