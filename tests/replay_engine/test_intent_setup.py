"""A run's intents set up column-wise: the canonical order, the blank linked trade ids and the
hash do not depend on how the text columns are held (object, Arrow, chunked, sliced)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from replay.engine import INTENT_ORDER, intents_hash, normalize_intents

TEXT = ("intent_id", "user_id", "symbol", "side", "timeframe", "order_type", "source")


def raw(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "intent_id": [f"i{i:03d}" for i in rng.permutation(n)], "user_id": "u",
        "symbol": rng.choice(["AAPL", "MSFT", "BRK.B", "Zé"], n),
        "side": rng.choice(["long", "short"], n), "timeframe": rng.choice(["1d", "1h"], n),
        "proposed_entry": rng.random(n) + 100, "proposed_stop": rng.random(n) + 90,
        "proposed_target": np.where(rng.random(n) < 0.2, np.nan, rng.random(n) + 110),
        "proposed_size": 10.0, "holding_horizon": 10, "order_type": "limit",
        # repeated times, so that the intent id decides within a (symbol, timeframe, as_of)
        "as_of": pd.to_datetime(rng.choice(["2010-01-04 21:00", "2010-01-05 21:00"], n)
                                ).tz_localize("UTC"),
        "source": "generator:test",
        "linked_trade_id": [[None, "", np.nan, "T1", "T2"][i % 5] for i in range(n)]})


def as_arrow(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text columns as chunked Arrow strings, one chunk a slice."""
    out = frame.copy()
    for column in TEXT:
        values = [str(v) for v in frame[column]]
        padded = pa.array(["pad", *values[:7]]).slice(1)
        out[column] = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array(
            [padded, pa.array(values[7:])])), index=frame.index)
    return out


def test_the_canonical_order_is_a_stable_sort_by_series_time_and_id() -> None:
    given = raw()
    frame = normalize_intents(given)
    expected = given.sort_values(INTENT_ORDER, kind="stable")["intent_id"].tolist()
    assert frame["intent_id"].tolist() == expected
    assert frame.index.tolist() == list(range(len(given)))


def test_blank_linked_trade_ids_are_none_whatever_the_index() -> None:
    given = raw().set_axis(range(100, 160))
    frame = normalize_intents(given).set_index("intent_id")
    expected = {i: None if v is None or v == "" or v != v else v
                for i, v in zip(given["intent_id"], given["linked_trade_id"], strict=True)}
    assert frame["linked_trade_id"].to_dict() == expected
    assert {type(v) for v in frame["linked_trade_id"]} == {type(None), str}


def test_the_hash_does_not_depend_on_how_text_is_held() -> None:
    given = raw()
    by_objects = given.copy()
    for column in TEXT:
        by_objects[column] = by_objects[column].astype(object)
    digest = intents_hash(normalize_intents(by_objects))
    assert intents_hash(normalize_intents(given)) == digest
    assert intents_hash(normalize_intents(as_arrow(given))) == digest
    frame = normalize_intents(given)
    assert intents_hash(frame.iloc[5:40]) == intents_hash(frame.iloc[5:40].reset_index(
        drop=True).astype({c: object for c in TEXT}))
    assert intents_hash(frame.iloc[5:40]) != intents_hash(frame.iloc[5:41])
