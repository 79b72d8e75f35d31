"""The strategy tables' store functions on an empty store: round trips, versions, one
transaction, and bad input refused by name with nothing written."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from buddy.store import Store
from buddy.store.strategy import (
    ENTRY_FACTS_COLUMNS,
    entry_facts_key,
    read_entry_facts,
    read_playbooks,
    read_profile,
    replace_playbooks,
    write_entry_facts,
    write_profile,
)

T0 = pd.Timestamp("2020-01-06T15:00:00Z")


def _facts(n: int = 3, user: str = "u1") -> pd.DataFrame:
    rows = []
    for i in range(n):
        rows.append({
            "user_id": user, "trade_id": f"{user}-t{i}", "intent_id": None if i else "i0",
            "facts_version": "1.0.0", "trade_built_at": T0, "computed_at": T0,
            "side_sign": 1.0 if i % 2 == 0 else -1.0, "stop_atr": 1.5, "reward_risk": 2.0,
            "close_ema20_atr": 0.1 * i, "bb_z": np.nan, "high20_atr": -0.5, "trend_atr": 1.0,
            "rsi_14": 55.0, "symbol": "AAPL", "timeframe": "1d",
            "side": "long" if i % 2 == 0 else "short", "hour_local": 16, "weekday": i,
            "regime": None if i == 1 else "up", "alignment": np.nan, "level_ahead_atr": 0.7,
            "open_ts": T0 + pd.Timedelta(days=i), "close_ts": (
                pd.NaT if i == n - 1 else T0 + pd.Timedelta(days=i + 1)),
            "pnl": np.nan if i == n - 1 else 100.0 * (1 - 2 * (i % 2)),
            "pnl_r": np.nan if i == n - 1 else 1.0 - 2 * (i % 2),
            "win": None if i == n - 1 else i % 2 == 0,
            "holding_hours": np.nan if i == n - 1 else 24.0,
            "size_pct_equity": np.nan, "risk_pct_equity": 1.0})
    return pd.DataFrame(rows)


def test_entry_facts_round_trip_typed_and_point_in_time(empty_store: Store) -> None:
    assert write_entry_facts(empty_store, _facts(), remove_missing_trades=False) == 3
    facts = read_entry_facts(empty_store, "u1")
    assert list(facts.columns) == list(ENTRY_FACTS_COLUMNS)
    assert facts["trade_id"].tolist() == ["u1-t0", "u1-t1", "u1-t2"]
    assert facts["regime"].tolist() == ["up", None, "up"]
    assert facts["intent_id"].tolist() == ["i0", None, None]
    assert facts["win"].tolist()[:2] == [True, False] and pd.isna(facts["win"].iloc[2])
    assert str(facts["hour_local"].dtype) == "Int32" and np.isnan(facts["bb_z"]).all()
    assert str(facts["open_ts"].dt.tz) == "UTC"
    closed_by = (T0 + pd.Timedelta(days=1)).to_pydatetime()
    assert read_entry_facts(empty_store, "u1", closed_by=closed_by)["trade_id"].tolist() == [
        "u1-t0"]
    assert entry_facts_key(empty_store, "u1", closed_by)[0] == 1
    assert entry_facts_key(empty_store, "u1", None)[0] == 3
    # rewriting a trade replaces its row
    again = _facts().iloc[[0]].assign(stop_atr=3.0)
    write_entry_facts(empty_store, again, remove_missing_trades=False)
    assert read_entry_facts(empty_store, "u1")["stop_atr"].tolist() == [3.0, 1.5, 1.5]


def test_write_entry_facts_removes_rows_of_trades_gone(empty_store: Store) -> None:
    write_entry_facts(empty_store, _facts(), remove_missing_trades=False)
    with empty_store.transaction() as con:
        con.execute("INSERT INTO trades (trade_id, user_id, symbol, side, open_ts, avg_entry, "
                    "qty) VALUES ('u1-t0', 'u1', 'AAPL', 'long', ?, 10.0, 5)",
                    [T0.to_pydatetime()])
    write_entry_facts(empty_store, _facts().iloc[[0]])
    assert read_entry_facts(empty_store, "u1")["trade_id"].tolist() == ["u1-t0"]


BAD_FACTS = [
    (lambda f: f.drop(columns=["bb_z"]), r"missing columns \['bb_z'\]"),
    (lambda f: f.assign(extra=1), r"unknown columns \['extra'\]"),
    (lambda f: f.assign(side=["long", "flat", "long"]), "side: must be 'long' or 'short'"),
    (lambda f: f.assign(trade_id=["a", "a", "b"]), "trade_id: must be unique"),
    (lambda f: f.assign(user_id=[None, "u1", "u1"]), "user_id: must not be missing"),
    (lambda f: f.assign(stop_atr=["x", 1.0, 1.0]), r"stop_atr: must be a number"),
    (lambda f: f.assign(weekday=[0.5, 1, 2]), r"weekday: must be a whole number"),
    (lambda f: f.assign(open_ts=pd.NaT), "open_ts: must not be missing"),
]


def test_bad_entry_facts_are_refused_by_name_and_nothing_is_written(empty_store: Store
                                                                    ) -> None:
    for change, message in BAD_FACTS:
        with pytest.raises(ValueError, match=message):
            write_entry_facts(empty_store, change(_facts()), remove_missing_trades=False)
        assert read_entry_facts(empty_store, "u1").empty


def test_profiles_are_versioned_and_read_back(empty_store: Store) -> None:
    when = datetime.fromisoformat("2021-03-01T00:00:00+00:00")
    assert read_profile(empty_store, "u1") is None
    assert write_profile(empty_store, "u1", {"n": 40, "median_stop_atr": 1.5},
                         {"win_rate": 0.5}, when) == 1
    assert write_profile(empty_store, "u1", '{"n": 41}', None, when) == 2
    assert write_profile(empty_store, "u2", {"n": 3}, None, when) == 1
    stored = read_profile(empty_store, "u1")
    assert stored is not None
    assert stored["version"] == 2 and stored["profile"] == {"n": 41}
    assert stored["baseline_stats"] is None and stored["computed_at"] == pd.Timestamp(when)
    with pytest.raises(ValueError, match="profile_json: must be JSON-serialisable without NaN"):
        write_profile(empty_store, "u1", {"x": float("nan")}, None, when)
    with pytest.raises(ValueError, match="computed_at: must be timezone-aware"):
        write_profile(empty_store, "u1", {"x": 1}, None, datetime(2021, 3, 1))
    with pytest.raises(ValueError, match="profile_json: must be JSON text"):
        write_profile(empty_store, "u1", "{not json", None, when)
    assert read_profile(empty_store, "u1")["version"] == 2  # type: ignore[index]


def _playbooks(user: str = "u1", ids: tuple[str, ...] = ("pb1", "pb2")
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    books = pd.DataFrame({
        "playbook_id": list(ids), "user_id": user,
        "name": [f"playbook {i}" for i in range(len(ids))],
        "centroid_vector": [[1.0, -0.5, 2.0] for _ in ids],
        "dispersion_metrics_json": [{"mean_distance": 0.4} for _ in ids],
        "stats_json": ['{"n": 12, "win_rate": 0.5}' for _ in ids],
        "created_at": T0, "updated_at": T0})
    members = pd.DataFrame({
        "user_id": user, "playbook_id": [ids[0], ids[0], ids[-1]],
        "trade_id": ["t1", "t2", "t3"], "distance_to_centroid": [0.1, 0.2, np.nan],
        "created_at": T0})
    return books, members


def test_playbooks_are_replaced_whole_in_one_transaction(empty_store: Store) -> None:
    books, members = _playbooks()
    assert replace_playbooks(empty_store, "u1", books, members) == 2
    # the same ids again: members deleted and re-inserted in the same transaction
    assert replace_playbooks(empty_store, "u1", books, members) == 2
    replace_playbooks(empty_store, "u2", *_playbooks("u2", ("pb9",)))
    read_books, read_members = read_playbooks(empty_store, "u1")
    assert read_books["playbook_id"].tolist() == ["pb1", "pb2"]
    assert read_books["centroid_vector"].iloc[0] == [1.0, -0.5, 2.0]
    assert read_books["dispersion_metrics_json"].iloc[0] == {"mean_distance": 0.4}
    assert read_books["stats_json"].iloc[1] == {"n": 12, "win_rate": 0.5}
    assert read_members["trade_id"].tolist() == ["t1", "t2", "t3"]
    # a member of an unknown playbook: refused, the stored playbooks unchanged
    bad = members.assign(playbook_id=["pb1", "pb1", "nope"])
    with pytest.raises(ValueError, match=r"playbook_members.playbook_id: must be one of"):
        replace_playbooks(empty_store, "u1", books.iloc[[0]], bad)
    with pytest.raises(ValueError, match=r"playbooks\.user_id: must all be 'u1'"):
        replace_playbooks(empty_store, "u1", books.assign(user_id="u2"), members)
    with pytest.raises(ValueError, match=r"playbooks: missing columns \['name'\]"):
        replace_playbooks(empty_store, "u1", books.drop(columns=["name"]), members)
    assert len(read_playbooks(empty_store, "u1")[0]) == 2
    # fewer playbooks: the rest go, the other user's stay
    replace_playbooks(empty_store, "u1", books.iloc[[0]], members.iloc[:2])
    assert read_playbooks(empty_store, "u1")[0]["playbook_id"].tolist() == ["pb1"]
    assert len(read_playbooks(empty_store, "u1")[1]) == 2
    assert read_playbooks(empty_store, "u2")[0]["playbook_id"].tolist() == ["pb9"]
    replace_playbooks(empty_store, "u1", books.iloc[:0], members.iloc[:0])
    assert read_playbooks(empty_store, "u1")[0].empty
