"""The intents hash is column-wise: equal frames hash equal whatever their index, and a change
to any one value of any column, or to the row order, changes it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from replay.engine import INTENT_COLUMNS, intents_hash, normalize_intents


def frame(n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return normalize_intents(pd.DataFrame({
        "intent_id": [f"i{i:03d}" for i in range(n)], "user_id": "u",
        "symbol": rng.choice(["AAPL", "MSFT"], n), "side": rng.choice(["long", "short"], n),
        "timeframe": "1d", "proposed_entry": rng.random(n) + 100,
        "proposed_stop": rng.random(n) + 90,
        "proposed_target": np.where(rng.random(n) < 0.2, np.nan, rng.random(n) + 110),
        "proposed_size": 10.0, "holding_horizon": 10, "order_type": "limit",
        "as_of": pd.date_range("2010-01-04 21:00", periods=n, freq="D", tz="UTC"),
        "source": "generator:test",
        "linked_trade_id": [None if i % 3 else f"T{i}" for i in range(n)]}))


CHANGES = {
    "intent_id": "x999", "user_id": "v", "symbol": "IBM", "side": "other",
    "timeframe": "1h", "proposed_entry": 100.0000000001, "proposed_stop": np.nan,
    "proposed_target": 1.0, "proposed_size": 11.0, "holding_horizon": 11,
    "order_type": "market", "as_of": pd.Timestamp("2010-01-04 21:00:00.000001", tz="UTC"),
    "source": "database", "linked_trade_id": "T-new",
}


def test_equal_frames_hash_equal_whatever_their_index() -> None:
    f = frame()
    assert intents_hash(f) == intents_hash(f.copy().set_axis(range(7, 7 + len(f))))
    assert len(intents_hash(f)) == 64


@pytest.mark.parametrize("column", INTENT_COLUMNS)
def test_one_changed_value_changes_the_hash(column: str) -> None:
    f = frame()
    g = f.copy()
    g.loc[4, column] = CHANGES[column]
    assert intents_hash(g) != intents_hash(f)


def test_row_order_and_a_missing_value_count() -> None:
    f = frame()
    swapped = f.iloc[[1, 0, *range(2, len(f))]].reset_index(drop=True)
    assert intents_hash(swapped) != intents_hash(f)
    g = f.copy()
    g.loc[1, "linked_trade_id"] = None if g.loc[1, "linked_trade_id"] else "T1"
    assert intents_hash(g) != intents_hash(f)
