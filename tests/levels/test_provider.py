"""The levels provider: the stored row of the last closed bar (or the same values computed on
demand), on the as-of price basis, with the requesting user's anchors only."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from buddy.context.builder import ContextPackBuilder
from buddy.context.pieces import KeyLevelsSnapshot
from buddy.data.splits import adjust_bars
from buddy.levels.anchors import delete_level_anchor, level_anchors, save_level_anchor
from buddy.levels.provider import key_levels_at, levels_provider
from buddy.store import Store
from buddy.timeframes import Timeframe

RTOL = 1e-9

#: As-of points on the real data: both sides of AAPL's 2005-02-28 and 2000-06-21 2:1 splits
#: (2005-02-28T15:00Z is on the ex-date before its close: the last closed bar is pre-split and
#: must be rescaled), weekly bars, FX hours (a Monday open, a month end, the thin Christmas
#: session), 4h and daily FX, and MSFT's 2003 split.
PIT_POINTS = [
    ("AAPL", "1d", "2005-02-25T21:00Z"),
    ("AAPL", "1d", "2005-02-28T15:00Z"),
    ("AAPL", "1d", "2005-03-01T21:00Z"),
    ("AAPL", "1d", "2000-06-21T20:00Z"),
    ("AAPL", "1w", "2008-10-10T21:00Z"),
    ("MSFT", "1d", "2003-02-18T21:00Z"),
    ("EURUSD", "1h", "2017-06-15T14:00Z"),
    ("EURUSD", "1h", "2017-03-06T00:00Z"),
    ("EURUSD", "1h", "2017-12-25T15:00Z"),
    ("EURUSD", "4h", "2017-11-03T02:00Z"),
    ("EURUSD", "1d", "2017-09-01T23:00Z"),
]


def stored_rows(store: Store, symbol: str, tf: str) -> int:
    return int(store.query("SELECT count(*) FROM key_levels WHERE symbol = ? AND "
                           "timeframe = ?", [symbol, tf]).iloc[0, 0])


@pytest.mark.parametrize(("symbol", "tf", "as_of"), PIT_POINTS)
def test_snapshot_from_stored_rows_equals_snapshot_from_data_truncated_at_t(
        levels_store: Store, truncated_store, symbol: str, tf: str, as_of: str) -> None:
    t = pd.Timestamp(as_of).to_pydatetime()
    cut_store = truncated_store(symbol, t)
    assert stored_rows(levels_store, symbol, tf) > 0  # full: the job's row
    assert stored_rows(cut_store, symbol, tf) == 0  # truncated: computed on demand
    full = key_levels_at(levels_store, symbol, tf, t)
    cut = key_levels_at(cut_store, symbol, tf, t)
    assert isinstance(full, KeyLevelsSnapshot)
    assert full == cut
    last = levels_store.bars(symbol, tf, as_of=t).iloc[-1]
    assert full.ts == last["ts"]
    assert full.prior_day_high is not None and full.pivots["classic"]
    assert {v.anchor for v in full.anchored_vwaps} >= {"swing_high", "swing_low"}


def test_levels_are_rescaled_to_the_as_of_basis_around_the_aapl_split(
        levels_store: Store) -> None:
    # On the ex-date before the close, the last closed bar (Friday) is pre-split; the pack's
    # bars are halved, and so must be every level.
    t = pd.Timestamp("2005-02-28T15:00Z").to_pydatetime()
    builder = ContextPackBuilder(levels_store, providers={"levels": levels_provider})
    pack = builder.build("u1", "AAPL", Timeframe.D1, t)
    snap = pack.levels
    assert isinstance(snap, KeyLevelsSnapshot) and pack.market is not None
    bars = pack.market.bars
    assert bars["ts"].iloc[-1] == pd.Timestamp("2005-02-25T14:30Z")
    assert pack.market.splits_applied[-1][1] == 2.0
    # the last closed bar (Friday's) is the prior day of the session in force (Monday's)
    assert snap.prior_day_high == pytest.approx(bars["high"].iloc[-1], rel=RTOL)
    assert snap.prior_day_low == pytest.approx(bars["low"].iloc[-1], rel=RTOL)
    assert snap.prior_day_close == pytest.approx(bars["close"].iloc[-1], rel=RTOL)
    assert snap.rolling_range_high == pytest.approx(bars["high"].tail(20).max(), rel=RTOL)
    assert snap.rolling_range_low == pytest.approx(bars["low"].tail(20).min(), rel=RTOL)
    # exactly the stored (as-traded, pre-split) row divided by the split factor
    row = levels_store.query("SELECT * FROM key_levels WHERE symbol = 'AAPL' AND "
                             "timeframe = '1d' AND ts = ?", [bars["ts"].iloc[-1]]).iloc[0]
    assert snap.prior_day_high == row["prior_day_high"] / 2.0
    assert snap.rolling_range_low == row["rolling_range_low"] / 2.0
    same_bar_before = key_levels_at(levels_store, "AAPL", "1d",
                                    pd.Timestamp("2005-02-25T21:00Z").to_pydatetime())
    assert same_bar_before is not None and same_bar_before.ts == snap.ts
    assert snap.pivots["classic"]["R1"] == same_bar_before.pivots["classic"]["R1"] / 2.0
    for after, before in zip(snap.anchored_vwaps, same_bar_before.anchored_vwaps, strict=True):
        assert after.vwap == before.vwap / 2.0 and after.upper_2 == before.upper_2 / 2.0
    for after, before in zip(snap.support_resistance, same_bar_before.support_resistance,
                             strict=True):
        assert after.price == before.price / 2.0 and after.touches == before.touches


def test_prior_day_is_the_last_closed_bar_aapl_2012_06_01(levels_store: Store) -> None:
    # `buddy context levels AAPL --tf 1d --as-of 2012-06-01`: the end of that exchange day,
    # after the 06-01 bar closed. Prior day, pivots and rolling range all include 06-01.
    from buddy.api import resolve_as_of

    t = resolve_as_of("2012-06-01", "America/New_York")
    snap = key_levels_at(levels_store, "AAPL", "1d", t)
    bar = levels_store.query("SELECT * FROM bars WHERE symbol = 'AAPL' AND timeframe = '1d' "
                             "AND session = DATE '2012-06-01'").iloc[0]
    assert snap is not None and snap.ts == bar["ts"]
    assert snap.prior_day_high == bar["high"] == 572.65
    assert (snap.prior_day_low, snap.prior_day_close) == (bar["low"], bar["close"])
    pivot = (bar["high"] + bar["low"] + bar["close"]) / 3
    assert snap.pivots["classic"]["P"] == pytest.approx(pivot, rel=RTOL)
    assert snap.rolling_range_low <= bar["low"]
    # the month VWAP of June's first bar spans one bar: not a level
    assert "month" not in {v.anchor for v in snap.anchored_vwaps}
    # the same snapshot from a store truncated at t (computed on demand)
    assert stored_rows(levels_store, "AAPL", "1d") > 0


@pytest.mark.parametrize(("as_of", "session"), [
    ("2017-06-14T20:30Z", "2017-06-13"),  # 06-14 session still trading: its prior day
    ("2017-06-14T21:00Z", "2017-06-14"),  # its last bar closed the session: 06-15 in force
    ("2017-06-14T22:30Z", "2017-06-14"),  # inside the 06-15 session
    ("2017-06-15T20:59Z", "2017-06-14"),
])
def test_intraday_prior_day_is_the_session_in_force_at_as_of(levels_store: Store, as_of: str,
                                                             session: str) -> None:
    snap = key_levels_at(levels_store, "EURUSD", "1h", pd.Timestamp(as_of).to_pydatetime())
    bars = levels_store.query("SELECT * FROM bars WHERE symbol = 'EURUSD' AND timeframe = "
                              "'1h' AND session = CAST(? AS DATE) ORDER BY ts", [session])
    assert snap is not None and len(bars) > 10
    assert snap.prior_day_high == bars["high"].max()
    assert snap.prior_day_low == bars["low"].min()
    assert snap.prior_day_close == bars["close"].iloc[-1]


@pytest.fixture
def aapl_store(sample_store: Store, tmp_path) -> Store:
    """A private store with AAPL's daily bars, no key_levels rows yet."""
    store = Store(tmp_path / "aapl.duckdb")
    store.write_market_data(
        tickers=sample_store.query("SELECT * FROM tickers WHERE symbol = 'AAPL'"),
        bars=sample_store.query("SELECT * FROM bars WHERE symbol = 'AAPL' AND "
                                "timeframe = '1d'"),
        corporate_actions=sample_store.corporate_actions("AAPL"))
    return store


def test_user_anchors_are_the_users_own_and_equal_on_demand_and_stored(aapl_store: Store
                                                                       ) -> None:
    from buddy.jobs.levels import run_levels_job

    save_level_anchor(aapl_store, "alice", "aapl", "earnings", "2005-01-12T21:00Z")
    save_level_anchor(aapl_store, "alice", "AAPL", "launch", "2005-03-10T14:00Z")
    assert [a.name for a in level_anchors(aapl_store, "alice", "AAPL")] == ["earnings",
                                                                           "launch"]
    points = [pd.Timestamp(p).to_pydatetime() for p in
              ("2005-02-25T21:00Z", "2005-02-28T15:00Z", "2005-03-16T21:00Z")]
    on_demand = [key_levels_at(aapl_store, "AAPL", "1d", t, user_id="alice") for t in points]
    run_levels_job(aapl_store, workers=1, progress=False)
    stored = [key_levels_at(aapl_store, "AAPL", "1d", t, user_id="alice") for t in points]
    assert on_demand == stored
    # the launch anchor (03-10) spans five bars on 03-16: a level from then on
    names = [[v.anchor for v in s.anchored_vwaps if v.anchor.startswith("user:")]
             for s in stored]
    assert names == [["user:earnings"], ["user:earnings"], ["user:earnings", "user:launch"]]
    bob = key_levels_at(aapl_store, "AAPL", "1d", points[-1], user_id="bob")
    assert not [v for v in bob.anchored_vwaps if v.anchor.startswith("user:")]
    assert aapl_store.query(
        "SELECT count(*) FROM key_levels WHERE list_bool_or(list_transform("
        "anchored_vwap_levels_json, lambda v: v.anchor LIKE 'user:%'))").iloc[0, 0] == 0
    # the anchored VWAP on the as-of basis, from the pack's (split-adjusted) bars
    t = points[1]
    vwap = next(v for v in stored[1].anchored_vwaps if v.anchor == "user:earnings")
    bars = aapl_store.bars("AAPL", "1d", as_of=t)
    bars = adjust_bars(bars, aapl_store.corporate_actions("AAPL"), t)
    window = bars[bars["ts_close"] > pd.Timestamp("2005-01-12T21:00Z")]
    typical = (window["high"] + window["low"] + window["close"]) / 3
    expected = (typical * window["volume"]).sum() / window["volume"].sum()
    assert vwap.vwap == pytest.approx(expected, rel=RTOL)
    assert vwap.anchor_ts == window["ts"].iloc[0]
    sd = math.sqrt((window["volume"] * (typical - expected) ** 2).sum()
                   / window["volume"].sum())
    assert vwap.upper_1 == pytest.approx(expected + sd, rel=RTOL)
    assert delete_level_anchor(aapl_store, "alice", "AAPL", "launch")
    assert not delete_level_anchor(aapl_store, "alice", "AAPL", "launch")


def test_a_stale_version_is_ignored_and_recomputed(aapl_store: Store) -> None:
    from buddy.jobs.levels import run_levels_job

    t = pd.Timestamp("2010-05-06T21:00Z").to_pydatetime()
    run_levels_job(aapl_store, workers=1, progress=False)
    good = key_levels_at(aapl_store, "AAPL", "1d", t)
    with aapl_store.transaction() as con:
        con.execute("UPDATE key_levels SET version = '0.0.1', prior_day_high = -1")
    assert key_levels_at(aapl_store, "AAPL", "1d", t) == good


def test_provider_reports_why_a_snapshot_is_missing(levels_store: Store) -> None:
    builder = ContextPackBuilder(levels_store, providers={"levels": levels_provider})
    early = builder.build("u1", "IBM", Timeframe.D1, pd.Timestamp("1999-01-04T21:00Z"))
    assert early.levels is None and "no 1d bars of IBM" in early.missing["levels"]
    later = builder.build("u1", "IBM", Timeframe.D1, pd.Timestamp("2010-01-05T21:00Z"))
    assert isinstance(later.levels, KeyLevelsSnapshot) and "levels" not in later.missing
    assert later.levels.ts == later.market.bars["ts"].iloc[-1]


def test_anchor_names_and_times_are_validated(aapl_store: Store) -> None:
    from buddy.errors import FieldErrors

    with pytest.raises(FieldErrors) as err:
        save_level_anchor(aapl_store, "alice", "AAPL", "Bad Name!", "2005-01-12")
    assert set(err.value.fields) == {"name", "anchor_ts"}

