"""Session structure over columns equals a plain per-window pandas reading: on stock hours
(uneven sessions, missing opening bars, early closes) and synthetic FX hours (sessions over
midnight, weekends), as windows of one shared frame (overlapping, as the batch builder slices
them) and as separate frames concatenated (as ``from_packs`` joins them)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from buddy.data.sessions import (
    NAT,
    WEEK_NS,
    SessionRuns,
    disordered,
    same_offset_mean,
    session_codes,
    session_totals,
    window_sessions,
)
from buddy.data.synth import synth_universe


def stock_hours(days: int = 45, seed: int = 2) -> pd.DataFrame:
    """Seven hourly bars a day from 9:30 New York, four every 17th day, the first missing
    every 11th day; volume by hour with noise, a few NaN."""
    rng = np.random.default_rng(seed)
    opens, sessions = [], []
    for i, day in enumerate(pd.bdate_range("2016-02-01", periods=days)):
        first = pd.Timestamp(day).tz_localize("America/New_York") + pd.Timedelta("9h30min")
        for hour in range(7 if i % 17 else 4):
            if not (i % 11 == 5 and hour == 0):
                opens.append((first + pd.Timedelta(hours=hour)).tz_convert("UTC"))
                sessions.append(day)
    ts = pd.DatetimeIndex(opens).as_unit("ns")
    volume = rng.integers(1, 10, len(ts)).astype(float) * 1e5
    volume[rng.random(len(ts)) < 0.03] = np.nan
    return pd.DataFrame({"ts": ts, "ts_close": ts + pd.Timedelta(hours=1),
                         "session": pd.DatetimeIndex(sessions), "volume": volume})


def fx_hours() -> pd.DataFrame:
    bars = synth_universe(1, years=0.1, timeframe="1h", seed=5).bars.tail(500)
    return bars[["ts", "ts_close", "session", "volume"]].reset_index(drop=True)


def ns(values: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(values).tz_convert("UTC").as_unit("ns").asi8


# ------------------------------------------------------------------ the oracle
def oracle(window: pd.DataFrame, lookback: int, k: int) -> dict[str, Any]:
    """Read one window's sessions with pandas groupby, the plain way."""
    groups = window.groupby("session", sort=True).agg(opened=("ts", "min"),
                                                      closed=("ts_close", "max"))
    out: dict[str, Any] = {"count": len(groups)}
    totals = window.groupby("session", sort=True)["volume"].sum().tail(k)
    out["totals"] = totals.tolist()
    first = window.groupby("session")["ts"].transform("min")
    offset = window["ts"] - first
    same = window[(offset == offset.iloc[-1])
                  & (window["session"] != window["session"].iloc[-1])].tail(lookback)
    out["same"] = len(same)
    out["mean"] = float(same["volume"].mean()) if len(same) else np.nan
    if len(groups) < 2:
        return out
    lengths = (groups["closed"] - groups["opened"]).iloc[:-1]
    opened = ns(groups["opened"])[-1]
    closes = opened + int(np.rint(np.median(lengths.dt.total_seconds().to_numpy() * 1e9)))
    out["opened"], out["closes"] = opened, closes
    later = ns(groups["opened"]) + WEEK_NS
    later = later[later >= closes]
    out["next_open"] = int(later.min()) if len(later) else NAT
    return out


def windows_of(frame: pd.DataFrame, rng: np.random.Generator, n: int
               ) -> tuple[np.ndarray, np.ndarray]:
    stop = rng.integers(2, len(frame) + 1, n)
    start = np.maximum(0, stop - rng.integers(1, 200, n))
    return start, stop


def check(data: pd.DataFrame, start: np.ndarray, stop: np.ndarray, lookback: int = 20,
          k: int = 6) -> None:
    ts, close = ns(data["ts"]), ns(data["ts_close"])
    session = session_codes(data["session"])
    assert not disordered(ts, close, session, start, stop).any()
    runs = SessionRuns.of(ts, session)
    got = window_sessions(ts, close, runs, start, stop)
    volume = data["volume"].to_numpy(np.float64)
    mean, same = same_offset_mean(volume, ts, runs, start, stop, lookback)
    totals, valid = session_totals(volume, runs, start, stop, k)
    for i in range(len(start)):
        want = oracle(data.iloc[start[i]:stop[i]], lookback, k)
        label = f"window {start[i]}:{stop[i]}"
        assert got.count[i] == want["count"], label
        assert same[i] == want["same"], label
        assert mean[i] == pytest.approx(want["mean"], nan_ok=True), label
        assert totals[i][valid[i]].tolist() == pytest.approx(want["totals"]), label
        if want["count"] >= 2:
            assert (got.opened[i], got.closes[i], got.next_open[i]) == (
                want["opened"], want["closes"], want["next_open"]), label


@pytest.mark.parametrize("make", [stock_hours, fx_hours])
def test_windows_of_one_shared_frame(make) -> None:  # type: ignore[no-untyped-def]
    frame = make()
    start, stop = windows_of(frame, np.random.default_rng(1), 40)
    check(frame, start, stop)


def test_separate_frames_concatenated() -> None:
    rng = np.random.default_rng(4)
    parts = []
    for make in (stock_hours, fx_hours, stock_hours):
        frame = make()
        s, e = windows_of(frame, rng, 8)
        parts += [frame.iloc[a:b] for a, b in zip(s, e, strict=True)]
    lengths = np.array([len(p) for p in parts])
    stop = np.cumsum(lengths)
    data = pd.concat(parts, ignore_index=True)
    data["session"] = pd.DatetimeIndex(data["session"]).tz_localize(None)
    check(data, stop - lengths, stop, lookback=3, k=2)


def test_the_estimated_close_follows_a_missing_first_bar_and_an_early_close() -> None:
    frame = stock_hours()
    ts, close, session = ns(frame["ts"]), ns(frame["ts_close"]), session_codes(frame["session"])
    runs = SessionRuns.of(ts, session)
    # three sessions: seven full hours, six (first missing: starts 10:30), then the last
    starts = runs.first
    got = window_sessions(ts, close, runs, np.array([starts[4]]), np.array([starts[6] + 2]))
    assert got.count[0] == 3
    assert got.opened[0] == ts[starts[6]]
    hour = 3_600_000_000_000
    assert got.closes[0] - got.opened[0] == 6.5 * hour  # the median of 7 h and 6 h


def test_windows_out_of_order_or_missing_a_session_are_found() -> None:
    frame = stock_hours()
    ts, close, session = ns(frame["ts"]), ns(frame["ts_close"]), session_codes(frame["session"])
    start, stop = np.array([0, 10, 40]), np.array([30, 60, 41])
    assert not disordered(ts, close, session, start, stop).any()
    reverse = ts[::-1].copy()
    assert disordered(reverse, close[::-1].copy(), session[::-1].copy(), start, stop)[:2].all()
    session[20] = -1
    assert disordered(ts, close, session, start, stop).tolist() == [True, True, False]
