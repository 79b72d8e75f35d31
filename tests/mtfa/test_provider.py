"""The mtfa piece from real bars: closed bars only, hand-checked, explicit when missing, and
point-in-time (full data at t equals data truncated at t)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from buddy.context.builder import ContextPackBuilder
from buddy.context.pack import ContextPack
from buddy.events.provider import schedule_provider
from buddy.mtfa.compute import FX_STACK, STOCK_STACK
from buddy.mtfa.provider import mtfa_provider, read_mtfa
from buddy.store import Store
from buddy.timeframes import Timeframe
from tests.evaluators.test_point_in_time_cases import PIT_POINTS

#: The shared as-of points plus mid-week and mid-day ones, where a higher-timeframe bar is
#: still forming at as_of.
MTFA_PIT_POINTS = [*PIT_POINTS, ("IBM", "1d", "2012-06-06T21:00Z"),
                   ("EURUSD", "4h", "2017-11-01T10:00Z")]


_PIT_PACKS: dict[tuple[str, str, str, str], tuple[datetime, ContextPack, ContextPack]] = {}


def _t(text: str) -> datetime:
    return pd.Timestamp(text).to_pydatetime()


def pit_packs(sample_store: Store, truncated_store: Callable[[str, datetime], Store],
              symbol: str, tf: str, as_of: str) -> tuple[datetime, ContextPack, ContextPack]:
    """Return as_of and the packs (mtfa and schedule provided) built from the full store and
    from the store truncated at as_of; built once per session (packs are immutable)."""
    key = (str(sample_store.path), symbol, tf, as_of)
    if key not in _PIT_PACKS:
        t = _t(as_of)
        providers = {"mtfa": mtfa_provider, "schedule": schedule_provider}
        full = ContextPackBuilder(sample_store, providers=providers).build(
            "u1", symbol, Timeframe(tf), t)
        cut = ContextPackBuilder(truncated_store(symbol, t), providers=providers).build(
            "u1", symbol, Timeframe(tf), t)
        _PIT_PACKS[key] = (t, full, cut)
    return _PIT_PACKS[key]


# ---------------------------------------------------------------------- hand computation
def _ema(values: np.ndarray, n: int) -> float:
    value = float(values[:n].mean())
    for x in values[n:]:
        value += 2.0 / (n + 1) * (x - value)
    return value


def _wilder(values: np.ndarray, n: int) -> float:
    value = float(values[:n].mean())
    for x in values[n:]:
        value = (value * (n - 1) + x) / n
    return value


def _true_range(h: np.ndarray, l: np.ndarray, c: np.ndarray) -> np.ndarray:  # noqa: E741
    return np.maximum(h[1:] - l[1:], np.maximum(abs(h[1:] - c[:-1]), abs(l[1:] - c[:-1])))


def _adx(h: np.ndarray, l: np.ndarray, c: np.ndarray, n: int = 14) -> float:  # noqa: E741
    up, down = h[1:] - h[:-1], l[:-1] - l[1:]
    plus_dm = np.where((up > down) & (up > 0), up, 0.0)
    minus_dm = np.where((down > up) & (down > 0), down, 0.0)
    tr = _true_range(h, l, c)
    s_tr, s_p, s_m = tr[:n].sum(), plus_dm[:n].sum(), minus_dm[:n].sum()
    dx = []
    for i in range(n, len(tr) + 1):
        if i > n:
            s_tr += tr[i - 1] - s_tr / n
            s_p += plus_dm[i - 1] - s_p / n
            s_m += minus_dm[i - 1] - s_m / n
        plus_di, minus_di = 100 * s_p / s_tr, 100 * s_m / s_tr
        dx.append(100 * abs(plus_di - minus_di) / (plus_di + minus_di))
    return _wilder(np.asarray(dx), n)


def test_mid_week_uses_last_weeks_closed_bar_checked_by_hand(sample_store: Store) -> None:
    as_of = _t("2012-06-06T21:00Z")  # a Wednesday: this week's 1w bar is still forming
    snap, reason = read_mtfa(sample_store, "IBM", STOCK_STACK, as_of)
    assert reason is None and snap is not None
    weekly = snap.stack[0]
    assert weekly.timeframe == "1w"
    assert weekly.bar_ts == _t("2012-05-29T13:30Z")  # the week that closed on Friday 1 June
    forming = sample_store.bars("IBM", "1w").set_index("ts").loc[pd.Timestamp(
        "2012-06-04T13:30Z")]
    assert forming["ts_close"] > pd.Timestamp(as_of)  # exists in the store, never read

    bars = sample_store.bars("IBM", "1w", as_of=as_of)
    assert bars["ts"].iloc[-1] == pd.Timestamp(weekly.bar_ts)
    h, l, c = (bars[k].to_numpy(dtype=float) for k in ("high", "low", "close"))  # noqa: E741
    ema_20, ema_50 = _ema(c, 20), _ema(c, 50)
    atr = _wilder(_true_range(h, l, c), 14)
    adx = _adx(h, l, c)
    assert weekly.close_vs_ema50_atr == pytest.approx((c[-1] - ema_50) / atr, rel=1e-6)
    assert weekly.strength == pytest.approx(adx, rel=1e-6)
    expected = ("up" if ema_20 > ema_50 and (c[-1] - ema_50) / atr >= 0.25 and adx >= 15
                else "down" if ema_20 < ema_50 and (c[-1] - ema_50) / atr <= -0.25
                and adx >= 15 else "range")
    assert weekly.direction == expected == "up"
    daily = snap.stack[1]
    assert daily.bar_ts == _t("2012-06-06T13:30Z")  # Wednesday's session closed at 20:00Z


def test_the_close_of_a_bar_is_the_first_moment_it_is_used(sample_store: Store) -> None:
    week_close = pd.Timestamp("2012-06-08T20:00Z")
    before, _ = read_mtfa(sample_store, "IBM", STOCK_STACK,
                          (week_close - pd.Timedelta(seconds=1)).to_pydatetime())
    at, _ = read_mtfa(sample_store, "IBM", STOCK_STACK, week_close.to_pydatetime())
    assert before is not None and at is not None
    assert before.stack[0].bar_ts == _t("2012-05-29T13:30Z")
    assert at.stack[0].bar_ts == _t("2012-06-04T13:30Z")


def test_fx_stack_uses_the_last_closed_day_and_four_hours(sample_store: Store) -> None:
    snap, reason = read_mtfa(sample_store, "EURUSD", FX_STACK, _t("2017-06-15T14:00Z"))
    assert reason is None and snap is not None
    assert [(t.timeframe, t.bar_ts) for t in snap.stack] == [
        ("1d", _t("2017-06-13T21:00Z")),  # today's FX session closes at 21:00Z
        ("4h", _t("2017-06-15T09:00Z")),
        ("1h", _t("2017-06-15T13:00Z")),  # closed exactly at as_of
    ]
    assert snap.conflicts == tuple(
        f"{hi.timeframe} trend {hi.direction} vs {lo.timeframe} trend {lo.direction}"
        for i, hi in enumerate(snap.stack) for lo in snap.stack[i + 1:]
        if {hi.direction, lo.direction} == {"up", "down"})


@pytest.mark.parametrize(("symbol", "stack", "as_of", "fragments"), [
    ("GOOG", STOCK_STACK, "2004-10-01T21:00Z",
     ["1w: ema_20, ema_50, atr_14, adx_14 undefined", "1d: ema_50 undefined"]),
    ("AAPL", STOCK_STACK, "2014-06-16T21:00Z", ["1w: the last closed bar closed", "(stale)"]),
    ("IBM", STOCK_STACK, "1999-06-15T21:00Z", ["1w: no bar closed", "1d: no bar closed"]),
    ("IBM", FX_STACK, "2012-06-06T21:00Z", ["4h: no bar closed", "1h: no bar closed"]),
])
def test_missing_timeframes_are_named(sample_store: Store, symbol: str, stack: tuple,
                                      as_of: str, fragments: list[str]) -> None:
    snap, reason = read_mtfa(sample_store, symbol, stack, _t(as_of))
    assert snap is None
    assert reason.startswith(f"MTFA stack {'/'.join(map(str, stack))} of {symbol}")
    for fragment in fragments:
        assert fragment in reason


def test_bars_without_features_are_reported(sample_store: Store, tmp_path) -> None:
    store = Store(tmp_path / "no_features.duckdb")
    store.write_market_data(
        tickers=sample_store.query("SELECT * FROM tickers WHERE symbol = 'IBM'"),
        bars=sample_store.query("SELECT * FROM bars WHERE symbol = 'IBM'"))
    snap, reason = read_mtfa(store, "IBM", STOCK_STACK, _t("2012-06-06T21:00Z"))
    assert snap is None
    assert "1w: no feature row for the last closed bar (2012-05-29" in reason
    assert "buddy jobs features --symbols IBM --timeframes 1d" in reason


@pytest.mark.parametrize(("symbol", "tf", "as_of"), MTFA_PIT_POINTS)
def test_mtfa_at_t_equals_mtfa_from_data_truncated_at_t(
        sample_store: Store, truncated_store: Callable[[str, datetime], Store],
        symbol: str, tf: str, as_of: str) -> None:
    t, full, cut = pit_packs(sample_store, truncated_store, symbol, tf, as_of)
    assert full.missing.get("mtfa") == cut.missing.get("mtfa")
    if full.mtfa is None:
        assert cut.mtfa is None
        return
    assert [(s.timeframe, s.bar_ts, s.direction) for s in full.mtfa.stack] == [
        (s.timeframe, s.bar_ts, s.direction) for s in cut.mtfa.stack]
    for a, b in zip(full.mtfa.stack, cut.mtfa.stack, strict=True):
        assert a.strength == pytest.approx(b.strength, rel=1e-9)
        assert a.close_vs_ema50_atr == pytest.approx(b.close_vs_ema50_atr, rel=1e-9, abs=1e-12)
        assert a.bar_ts <= t
    assert full.mtfa.alignment_score == pytest.approx(cut.mtfa.alignment_score, abs=1e-12)
    assert full.mtfa.conflicts == cut.mtfa.conflicts
