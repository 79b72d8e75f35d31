"""Fills to round-trip trades: hand cases, and the columnar form against the plain loop."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buddy.trades.grouping import FillsError, group_fills
from tests.trades.oracle import group_fills_loop


def fills(*rows: tuple, user: str = "u1", symbol: str = "AAPL") -> pd.DataFrame:
    """Build fills from (minute, side, qty, price[, commission]) tuples."""
    out = []
    for n, row in enumerate(rows):
        minute, side, qty, price, *rest = row
        out.append({"user_id": user, "symbol": symbol,
                    "ts": pd.Timestamp("2012-06-01T14:30Z") + pd.Timedelta(minutes=minute),
                    "side": side, "qty": qty, "price": price,
                    "commission": rest[0] if rest else 0.0, "fees": 0.0,
                    "exec_id": f"{user}-{symbol}-{n}", "venue": "XNAS"})
    return pd.DataFrame(out)


def test_a_reversal_is_split_at_zero_into_a_close_and_an_open() -> None:
    grouped = group_fills(fills((0, "buy", 100, 10.0, 1.0), (5, "sell", 150, 11.0, 3.0),
                                (9, "buy", 50, 10.5)))
    trades, parts = grouped.trades, grouped.trade_fills
    assert trades["side"].tolist() == ["long", "short"]
    assert trades["status"].tolist() == ["closed", "closed"]
    assert parts["exec_id"].tolist() == ["u1-AAPL-0", "u1-AAPL-1", "u1-AAPL-1", "u1-AAPL-2"]
    assert parts["fill_type"].tolist() == ["open", "close", "open", "close"]
    assert parts["qty"].tolist() == [100, 100, 50, 50]
    assert parts["fill_id"].tolist()[1:3] == ["u1:u1-AAPL-1:close", "u1:u1-AAPL-1:open"]
    # the 3.0 commission of the crossing fill is shared 100:50 between its parts
    assert parts["fees"].tolist() == pytest.approx([1.0, 2.0, 1.0, 0.0])
    assert trades["gross_pnl"].tolist() == pytest.approx([100.0, 25.0])
    assert trades["pnl"].tolist() == pytest.approx([97.0, 24.0])
    assert trades["close_ts"].iloc[0] == trades["open_ts"].iloc[1]


def test_scale_in_and_partial_exits_stay_in_one_trade() -> None:
    grouped = group_fills(fills((0, "buy", 100, 10.0), (1, "buy", 100, 12.0),
                                (2, "sell", 50, 13.0), (3, "sell", 150, 14.0)))
    (trade,) = grouped.trades.to_dict("records")
    assert grouped.trade_fills["fill_type"].tolist() == ["open", "add", "reduce", "close"]
    assert trade["qty"] == 200 and trade["max_position"] == 200
    assert trade["avg_entry"] == pytest.approx(11.0)
    assert trade["avg_exit"] == pytest.approx((50 * 13 + 150 * 14) / 200)
    assert trade["gross_pnl"] == pytest.approx(50 * 13 + 150 * 14 - 2200)
    assert trade["n_fills"] == 4 and trade["status"] == "closed"


@pytest.mark.parametrize(("method", "realized", "basis"), [
    ("fifo", 100 * (30 - 10), 20.0),
    ("lifo", 100 * (30 - 20), 10.0),
    ("average", 100 * (30 - 15), 15.0),
])
def test_matching_methods_differ_on_partial_exits_and_open_basis(
        method: str, realized: float, basis: float) -> None:
    grouped = group_fills(fills((0, "buy", 100, 10.0), (1, "buy", 100, 20.0),
                                (2, "sell", 100, 30.0)), method=method)  # type: ignore[arg-type]
    (trade,) = grouped.trades.to_dict("records")
    assert trade["status"] == "open" and trade["open_position"] == 100
    assert trade["gross_pnl"] == pytest.approx(realized)
    assert trade["open_cost_basis"] == pytest.approx(basis)
    assert trade["match_method"] == method


def test_a_short_trade_and_a_second_symbol_are_their_own_trades() -> None:
    frame = pd.concat([fills((0, "sell", 10, 50.0), (4, "buy", 10, 45.0)),
                       fills((1, "buy", 2, 100.0), symbol="MSFT")], ignore_index=True)
    trades = group_fills(frame, multipliers={"AAPL": 100.0}).trades
    assert trades[["symbol", "side", "status"]].values.tolist() == [
        ["AAPL", "short", "closed"], ["MSFT", "long", "open"]]
    assert trades["gross_pnl"].tolist() == pytest.approx([10 * 5 * 100.0, 0.0])


def test_trade_ids_are_stable_and_depend_on_the_first_fill() -> None:
    frame = fills((0, "buy", 1, 10.0), (1, "sell", 1, 11.0), (2, "buy", 1, 10.0))
    first = group_fills(frame).trades["trade_id"].tolist()
    again = group_fills(frame.iloc[::-1]).trades["trade_id"].tolist()
    assert first == again and len(set(first)) == 2


def test_bad_fills_are_refused_naming_field_rule_and_rows() -> None:
    frame = fills((0, "buy", 1, 10.0), (1, "hold", 1, 11.0), (2, "buy", -3, 10.0))
    with pytest.raises(FillsError) as info:
        group_fills(frame)
    assert info.value.fields == ("side", "qty")
    assert "rows 1" in str(info.value) and "rows 2" in str(info.value)
    with pytest.raises(FillsError, match="method"):
        group_fills(frame, method="hifo")  # type: ignore[arg-type]


_fill = st.tuples(st.integers(0, 30), st.sampled_from(["buy", "sell"]),
                  st.sampled_from([1, 2, 3, 5, 0.5, 0.25, 10]),
                  st.floats(1.0, 200.0).map(lambda p: round(p, 2)),
                  st.sampled_from([0.0, 1.0, 0.35]), st.sampled_from(["A", "B"]),
                  st.sampled_from(["u1", "u2"]))


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(_fill, min_size=1, max_size=40),
       method=st.sampled_from(["fifo", "lifo", "average"]))
def test_columnar_grouping_equals_the_plain_loop(rows: list[tuple], method: str) -> None:
    frame = pd.DataFrame([{"user_id": u, "symbol": s,
                           "ts": pd.Timestamp("2020-01-01T00:00Z") + pd.Timedelta(minutes=m),
                           "side": side, "qty": q, "price": p, "commission": c, "fees": 0.0,
                           "exec_id": f"e{n}"} for n, (m, side, q, p, c, s, u) in enumerate(rows)])
    grouped = group_fills(frame, method=method)  # type: ignore[arg-type]
    trades, parts = group_fills_loop(frame, method)
    got = grouped.trades.to_dict("records")
    assert len(got) == len(trades)
    for ours, ref in zip(got, trades, strict=True):
        assert (ours["user_id"], ours["symbol"], ours["side"]) == (
            ref["user_id"], ref["symbol"], ref["side"])
        assert ours["open_ts"] == ref["open_ts"]
        assert (pd.isna(ours["close_ts"]) and ref["close_ts"] is None) or (
            ours["close_ts"] == ref["close_ts"])
        assert ours["qty"] == pytest.approx(ref["entry_units"] / 1e8)
        assert ours["avg_entry"] == pytest.approx(ref["entry_value"] * 1e8 / ref["entry_units"])
        if ref["exit_units"]:
            assert ours["avg_exit"] == pytest.approx(ref["exit_value"] * 1e8 / ref["exit_units"])
        else:
            assert math.isnan(ours["avg_exit"])
        assert ours["gross_pnl"] == pytest.approx(ref["gross"], abs=1e-9)
        assert ours["fees"] == pytest.approx(ref["fees"], abs=1e-12)
        assert ours["n_fills"] == ref["n"]
        assert ours["max_position"] == pytest.approx(ref["max"] / 1e8)
        assert ours["open_position"] == pytest.approx(ref["open_units"] / 1e8)
        if ref["open_basis"] is None:
            assert math.isnan(ours["open_cost_basis"])
        else:
            assert ours["open_cost_basis"] == pytest.approx(ref["open_basis"])
    ours_parts = grouped.trade_fills
    assert ours_parts["exec_id"].tolist() == [p["exec_id"] for p in parts]
    assert ours_parts["fill_type"].tolist() == [p["fill_type"] for p in parts]
    assert np.allclose(ours_parts["qty"], [p["qty"] for p in parts])
    assert np.allclose(ours_parts["realized_pnl"], [p["realized_pnl"] for p in parts],
                       atol=1e-9)
    assert np.allclose(ours_parts["position_after"], [p["position_after"] for p in parts])
    assert ours_parts["fill_id"].is_unique
