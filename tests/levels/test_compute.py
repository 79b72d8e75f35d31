"""compute_key_levels: each level equals an independent calculation, the vectorised frame
equals the naive per-bar loop bit for bit, swings wait for their confirmation, and a row at t
computed on data truncated at t equals the row computed on the full history."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from buddy.levels.compute import (
    ROLLING_RANGE_BARS,
    SWING_BARS,
    LevelAnchor,
    compute_key_levels,
    compute_key_levels_naive,
    levels_table,
    same_levels,
)

RTOL = 1e-9  # levels are stored to 10 significant digits


def column(frame: pd.DataFrame, name: str) -> list:
    """Return a nested key_levels column as Python values (None where null)."""
    return levels_table(frame)[name].to_pylist()


def independent_prior_day(bars: pd.DataFrame, intraday: bool) -> pd.DataFrame:
    """High, low and close of the day before the session in force once each bar has closed
    (no splits in the range): daily and weekly, the bar itself; intraday, the bar's own
    session when the bar closes at its FX session's close (17:00 New York), else the
    previous session."""
    if not intraday:
        return pd.DataFrame({"high": bars["high"], "low": bars["low"],
                             "close": bars["close"]}).reset_index(drop=True)
    days = bars.groupby("session", sort=True).agg(high=("high", "max"), low=("low", "min"),
                                                  close=("close", "last"))
    previous = days.shift(1).loc[bars["session"].to_numpy()].reset_index(drop=True)
    own = days.loc[bars["session"].to_numpy()].reset_index(drop=True)
    local_close = pd.DatetimeIndex(bars["ts_close"]).tz_convert("America/New_York")
    ends = (local_close.hour == 17) & (local_close.minute == 0)
    return own.where(pd.Series(ends), previous)


def independent_pivots(h: float, low: float, c: float) -> dict[str, dict[str, float]]:
    p = (h + low + c) / 3
    r = h - low
    return {
        "classic": {"P": p, "R1": 2 * p - low, "S1": 2 * p - h, "R2": p + r, "S2": p - r,
                    "R3": h + 2 * (p - low), "S3": low - 2 * (h - p)},
        "fibonacci": {"P": p, "R1": p + 0.382 * r, "R2": p + 0.618 * r, "R3": p + r,
                      "S1": p - 0.382 * r, "S2": p - 0.618 * r, "S3": p - r},
        "camarilla": {f"R{i}": c + r * 1.1 / d for i, d in zip(range(1, 5), (12, 6, 4, 2),
                                                                 strict=True)}
        | {f"S{i}": c - r * 1.1 / d for i, d in zip(range(1, 5), (12, 6, 4, 2), strict=True)},
    }


@pytest.mark.parametrize(("symbol", "tf"), [("IBM", "1d"), ("IBM", "1w"), ("EURUSD", "1h"),
                                            ("EURUSD", "4h"), ("SP500", "1d")])
def test_prior_day_and_pivots_equal_an_independent_calculation(sample_series, symbol: str,
                                                               tf: str) -> None:
    bars, actions = sample_series(symbol, tf)
    intraday = tf in ("1h", "4h")
    frame = compute_key_levels(bars, actions=actions,
                               calendar="FX24x5" if intraday else "XNYS")
    expected = independent_prior_day(bars, intraday=intraday)
    for name in ("high", "low", "close"):
        np.testing.assert_allclose(frame[f"prior_day_{name}"], expected[name], rtol=RTOL)
    first = bars["session"] == bars["session"].iloc[0]
    assert frame["prior_day_high"].isna().sum() == (first.sum() - 1 if intraday else 0)
    pivots = column(frame, "pivots_json")
    checked = 0
    for i in range(0, len(frame), 7):
        row = expected.iloc[i]
        if math.isnan(row["high"]):
            assert pivots[i] is None
            continue
        want = independent_pivots(row["high"], row["low"], row["close"])
        for method, levels in want.items():
            assert set(pivots[i][method]) == set(levels)
            for name, value in levels.items():
                assert pivots[i][method][name] == pytest.approx(value, rel=RTOL), (method, name)
        checked += 1
    assert checked > 20


def test_intraday_prior_day_follows_the_fx_session_not_the_utc_date(sample_series) -> None:
    bars, actions = sample_series("EURUSD", "1h")
    frame = compute_key_levels(bars, actions=actions, calendar="FX24x5").set_index("ts")
    # The 2017-06-14 session runs 2017-06-13 21:00Z to 2017-06-14 21:00Z (17:00 New York).
    # Its last bar (20:00Z) closes it: from then on the session in force is 2017-06-15,
    # whose prior day is 2017-06-14; through the 2017-06-15 session it stays so.
    day = bars[(bars["ts"] >= "2017-06-13T21:00Z") & (bars["ts"] < "2017-06-14T21:00Z")]
    for ts in ("2017-06-14T20:00Z", "2017-06-14T21:00Z", "2017-06-15T03:00Z",
               "2017-06-15T19:00Z"):
        row = frame.loc[pd.Timestamp(ts)]
        assert row["prior_day_high"] == day["high"].max()
        assert row["prior_day_low"] == day["low"].min()
        assert row["prior_day_close"] == day["close"].iloc[-1]
    # While the 2017-06-14 session is still trading (19:00Z bar), its prior day is 06-13.
    before = bars[(bars["ts"] >= "2017-06-12T21:00Z") & (bars["ts"] < "2017-06-13T21:00Z")]
    row = frame.loc[pd.Timestamp("2017-06-14T19:00Z")]
    assert row["prior_day_high"] == before["high"].max()
    assert row["prior_day_close"] == before["close"].iloc[-1]
    # Without a calendar no bar is known to end its session: the forming session's levels.
    plain = compute_key_levels(bars, actions=actions).set_index("ts")
    assert plain.loc[pd.Timestamp("2017-06-14T20:00Z"), "prior_day_high"] == before["high"].max()


def test_daily_prior_day_is_the_last_closed_bar_aapl_2012_06_01(sample_series) -> None:
    # The case: once the 2012-06-01 bar has closed, the session in force is
    # 2012-06-04, whose prior day is 2012-06-01 (high 572.65), not 2012-05-31 (581.50).
    bars, actions = sample_series("AAPL", "1d")
    frame = compute_key_levels(bars, actions=actions).set_index("ts")
    bar = bars.set_index("ts").loc[pd.Timestamp("2012-06-01T13:30Z")]
    row = frame.loc[pd.Timestamp("2012-06-01T13:30Z")]
    assert bar["high"] == 572.65
    assert (row["prior_day_high"], row["prior_day_low"], row["prior_day_close"]) == (
        bar["high"], bar["low"], bar["close"])


def test_levels_sit_on_each_bars_own_basis_across_the_aapl_split(sample_series) -> None:
    bars, actions = sample_series("AAPL", "1d")
    frame = compute_key_levels(bars, actions=actions).set_index("ts")
    by_day = bars.set_index(bars["session"].dt.strftime("%Y-%m-%d"))
    before = frame.loc[pd.Timestamp("2005-02-25T14:30Z")]
    on_ex_date = frame.loc[pd.Timestamp("2005-02-28T14:30Z")]
    assert before["prior_day_high"] == by_day.loc["2005-02-25", "high"]
    assert on_ex_date["prior_day_high"] == by_day.loc["2005-02-28", "high"]
    # the ex-date row's pivots are on the post-split basis: from 2005-02-28's own bar
    pivot = (by_day.loc["2005-02-28", ["high", "low", "close"]].sum()) / 3
    assert on_ex_date["pivots_json"]["classic"]["P"] == pytest.approx(pivot, rel=RTOL)
    window = bars[bars["ts"] <= "2005-02-28T14:30Z"].tail(ROLLING_RANGE_BARS)
    halved = np.where(window["session"] < "2005-02-28", window["high"] / 2, window["high"])
    assert on_ex_date["rolling_range_high"] == pytest.approx(halved.max(), rel=RTOL)
    assert before["rolling_range_high"] == bars[bars["ts"] <= "2005-02-25T14:30Z"].tail(
        ROLLING_RANGE_BARS)["high"].max()
    # Every anchored VWAP and S/R level of the ex-date row is on the post-split basis.
    for entry in on_ex_date["anchored_vwap_levels_json"]:
        assert 35 < entry["vwap"] < 50, entry
    for level in on_ex_date["support_resistance_json"]:
        assert level["price"] < 50, level


NAIVE_SLICES = [  # the naive loop is quadratic: slices of 80-200 bars
    ("AAPL", "1d", "2004-12-01", "2005-05-01", "2005-01-12T21:00Z"),  # the 2005 split
    ("EURUSD", "1h", "2017-02-24", "2017-03-07", "2017-03-06T08:00Z"),  # weekends, a month
    ("EURUSD", "4h", "2017-11-15", "2017-12-31", None),
    ("MSFT", "1w", "2001-01-01", "2004-03-01", "2003-02-18T00:00Z"),  # the 2003 split
    ("NASDAQ", "1d", "2015-03-01", "2015-07-01", None),  # a zero-volume day
]


@pytest.mark.parametrize(("symbol", "tf", "start", "end", "anchor"), NAIVE_SLICES)
def test_vectorised_equals_the_naive_loop_bit_for_bit(sample_series, symbol: str, tf: str,
                                                      start: str, end: str,
                                                      anchor: str | None) -> None:
    bars, actions = sample_series(symbol, tf)
    part = bars[(bars["ts"] >= pd.Timestamp(start, tz="UTC"))
                & (bars["ts"] < pd.Timestamp(end, tz="UTC"))].reset_index(drop=True)
    anchors = [LevelAnchor("event", pd.Timestamp(anchor).to_pydatetime())] if anchor else []
    calendar = "FX24x5" if symbol == "EURUSD" else "XNYS"
    fast = compute_key_levels(part, anchors, actions=actions, calendar=calendar)
    slow = compute_key_levels_naive(part, anchors, actions=actions, calendar=calendar)
    assert len(fast) == len(part) > 80
    assert same_levels(fast, slow)
    # not vacuous: swings, clusters and the user anchor all show up
    assert any(lv for lv in column(fast, "support_resistance_json"))
    names = {e["anchor"] for row in column(fast, "anchored_vwap_levels_json") for e in row}
    assert {"swing_high", "swing_low", "month"} <= names
    if anchor:
        assert "user:event" in names


def zigzag(points: list[float], leg: int = 10, start: str = "2020-01-06",
           half_range: float = 0.5) -> pd.DataFrame:
    """Daily bars whose mid price walks linearly through ``points``, high and low
    ``half_range`` around it."""
    path = [points[0]]
    for a, b in itertools.pairwise(points):
        path += list(np.linspace(a, b, leg + 1)[1:])
    mid = np.asarray(path)
    sessions = pd.bdate_range(start, periods=len(mid))
    ts = sessions.tz_localize("UTC") + pd.Timedelta(hours=14, minutes=30)
    return pd.DataFrame({"symbol": "ZIG", "timeframe": "1d", "ts": ts,
                         "ts_close": ts + pd.Timedelta(hours=6, minutes=30),
                         "session": sessions, "open": mid, "high": mid + half_range,
                         "low": mid - half_range, "close": mid, "volume": 1000.0,
                         "adj_close": np.nan})


def test_a_swing_appears_only_once_confirmed(sample_series) -> None:
    bars = zigzag([100, 100, 110, 100, 100])  # one peak at bar 20
    frame = compute_key_levels(bars)
    peak = int(bars["high"].idxmax())
    anchors = [{e["anchor"]: e["anchor_ts"] for e in row}
               for row in column(frame, "anchored_vwap_levels_json")]
    for t in range(len(bars)):
        seen = anchors[t].get("swing_high")
        if t < peak + SWING_BARS:
            assert seen is None or pd.Timestamp(seen) != bars["ts"].iloc[peak], t
        else:
            assert pd.Timestamp(seen) == bars["ts"].iloc[peak], t
    # On real data: no row anchors at, or lists a touch from, a swing younger than the lag.
    real, actions = sample_series("AAPL", "1d")
    frame = compute_key_levels(real, actions=actions)
    position = {ts: i for i, ts in enumerate(real["ts"])}
    for t, (vwaps, levels) in enumerate(zip(column(frame, "anchored_vwap_levels_json"),
                                            column(frame, "support_resistance_json"),
                                            strict=True)):
        for entry in vwaps:
            if entry["anchor"].startswith("swing"):
                assert position[pd.Timestamp(entry["anchor_ts"])] <= t - SWING_BARS
        for level in levels:
            assert position[pd.Timestamp(level["last_touch"])] <= t - SWING_BARS


def test_support_and_resistance_count_touches_of_clustered_swings() -> None:
    # Highs 1 above and lows 1 below the mid price, which moves at most about 1 a bar, so the
    # true range is 2, ATR 2 and the cluster tolerance (0.5 ATR) 1. Swing highs at 111,
    # 111.4, 110.8 (one cluster) and a lone 116; swing lows at 99 and 99.3 (one cluster) and
    # lone ones at 103, 105 and 107.
    bars = zigzag([105, 100, 110, 100.3, 110.4, 104, 115, 106, 109.8, 108, 108],
                  half_range=1.0)
    frame = compute_key_levels(bars)
    last = column(frame, "support_resistance_json")[-1]
    assert [(round(lv["price"], 4), lv["touches"], lv["kind"]) for lv in last] == [
        (round((99 + 99.3) / 2, 4), 2, "support"),
        (round((111 + 111.4 + 110.8) / 3, 4), 3, "resistance")]
    third_peak = 80  # bar of the 109.8 peak (eight legs of ten bars)
    assert bars["high"].iloc[third_peak] == pytest.approx(110.8)
    before = column(frame, "support_resistance_json")[third_peak + SWING_BARS - 1]
    after = column(frame, "support_resistance_json")[third_peak + SWING_BARS]
    assert [lv["touches"] for lv in before if lv["kind"] == "resistance"] == [2]
    assert [lv["touches"] for lv in after if lv["kind"] == "resistance"] == [3]
    assert pd.Timestamp(last[1]["last_touch"]) == bars["ts"].iloc[third_peak]


def test_anchored_vwap_and_bands_equal_an_independent_calculation() -> None:
    rng = np.random.default_rng(3)
    bars = zigzag([100, 104, 98, 103], leg=9, start="2021-01-25")  # crosses into February
    bars["volume"] = rng.integers(100, 1000, len(bars)).astype(float)
    bars["high"] += rng.random(len(bars))
    anchor_at = bars["ts_close"].iloc[4] + pd.Timedelta(hours=1)  # after bar 4 closed: bar 5
    frame = compute_key_levels(bars, [LevelAnchor("news", anchor_at.to_pydatetime())])
    typical = (bars["high"] + bars["low"] + bars["close"]) / 3
    rows = column(frame, "anchored_vwap_levels_json")
    first_feb = int(np.flatnonzero(bars["session"] >= "2021-02-01")[0])
    last_feb = int(np.flatnonzero(bars["session"] < "2021-03-01")[-1])
    for t in (first_feb + 4, first_feb + 6, last_feb):
        entries = {e["anchor"]: e for e in rows[t]}
        for anchor, start in (("user:news", 5), ("month", first_feb)):
            w, tp = bars["volume"].iloc[start:t + 1], typical.iloc[start:t + 1]
            vwap = (w * tp).sum() / w.sum()
            sd = math.sqrt((w * (tp - vwap) ** 2).sum() / w.sum())
            got = entries[anchor]
            assert pd.Timestamp(got["anchor_ts"]) == bars["ts"].iloc[start]
            assert got["vwap"] == pytest.approx(vwap, rel=RTOL)
            for key, k in (("upper_1", 1), ("lower_1", -1), ("upper_2", 2), ("lower_2", -2)):
                assert got[key] == pytest.approx(vwap + k * sd, rel=RTOL, abs=1e-9)
    # an anchor spans AVWAP_MIN_BARS bars before it is a level: none on February's first
    # four bars, nor before the user's anchor has five bars (bars 5 to 9)
    assert all("user:news" not in {e["anchor"] for e in row} for row in rows[:9])
    assert "user:news" in {e["anchor"] for e in rows[9]}
    assert [("month" in {e["anchor"] for e in rows[first_feb + k]}) for k in range(6)] == [
        False, False, False, False, True, True]


POINTS_PER_SERIES = 10
PIT_SERIES = [("AAPL", "1d"), ("MSFT", "1d"), ("EURUSD", "1h"), ("SP500", "1w"),
              ("GOOG", "1d")]


@pytest.mark.parametrize(("symbol", "tf"), PIT_SERIES)
def test_rows_at_t_equal_rows_computed_on_data_truncated_at_t(sample_series, symbol: str,
                                                              tf: str) -> None:
    bars, actions = sample_series(symbol, tf)
    anchors = [LevelAnchor("mid", bars["ts"].iloc[len(bars) // 3].to_pydatetime())]
    calendar = "FX24x5" if symbol == "EURUSD" else "XNYS"
    full = levels_table(compute_key_levels(bars, anchors, actions=actions, calendar=calendar))
    rng = np.random.default_rng(len(bars))
    cuts = sorted(set(rng.integers(30, len(bars), POINTS_PER_SERIES).tolist()))
    if len(actions):  # both sides of every split
        for ex_date in pd.to_datetime(actions["ex_date"]):
            at = int(np.searchsorted(bars["session"], ex_date))
            cuts += [at - 1, at, at + 1]
    for k in cuts:
        t = bars["ts_close"].iloc[k]
        known = actions[pd.to_datetime(actions["ex_date"]) <= t.tz_localize(None)]
        cut = compute_key_levels(bars[bars["ts_close"] <= t], anchors, actions=known,
                                 calendar=calendar)
        assert levels_table(cut).equals(full.slice(0, k + 1)), (symbol, tf, t)


def test_short_and_empty_series() -> None:
    bars = zigzag([100, 101], leg=3)
    frame = compute_key_levels(bars)
    assert len(frame) == 4
    np.testing.assert_allclose(frame["prior_day_high"], bars["high"], rtol=RTOL)
    assert column(frame, "support_resistance_json") == [[], [], [], []]
    assert frame["rolling_range_high"].isna().all()
    empty = compute_key_levels(bars.iloc[0:0])
    assert empty.empty and list(empty.columns) == list(frame.columns)
