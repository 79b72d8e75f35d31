"""Resample bars to a coarser timeframe along the trading calendar's sessions.

Buckets follow sessions, not the clock:

- intraday targets (e.g. '4h'): buckets start at the session open and step by the target
  length; the last bucket of a session is cut at the session close (an FX session, 17:00 to
  17:00 New York, holds six 4h buckets; an XNYS session of 6.5 hours holds a 4h and a 2.5h one);
- '1d': one bar per session, from its open to its close;
- '1w': one bar per ISO week of sessions, from the open of the week's first session to the
  close of its last; ``session`` is the week's last session.

``ts``/``ts_close`` of a resampled bar are the bucket's scheduled bounds from the calendar.
Prices aggregate as first open, max high, min low, last close, summed volume, last adj_close.

A forming bar is never presented as closed: a symbol's final bucket is kept only if the
symbol's bars reach the bucket's scheduled close, and its first bucket only if its bars start at
the bucket's scheduled open. Other buckets are kept even if bars inside them are missing (that
is a data gap, which ``validate_bars`` reports); buckets with no bars are not created.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from buddy.data.calendars import TradingCalendar, to_session_index, to_utc_index
from buddy.data.frames import BARS_COLUMNS
from buddy.timeframes import Timeframe

__all__ = ["resample_bars"]


def _source_timeframe(bars: pd.DataFrame) -> Timeframe:
    labels = bars["timeframe"].astype("str").unique()
    if len(labels) != 1:
        raise ValueError(f"timeframe: bars must hold one timeframe (got {sorted(labels)})")
    return Timeframe.parse(labels[0])


def _check_target(source: Timeframe, target: Timeframe) -> None:
    if target.nominal <= source.nominal:
        raise ValueError(f"target_timeframe: must be coarser than the bars' {source.value!r} "
                         f"(got {target.value!r})")
    if target.is_intraday and target.nominal.value % source.nominal.value:
        raise ValueError(f"target_timeframe: must be a whole multiple of {source.value!r} "
                         f"(got {target.value!r})")


def _iso_week(sessions: pd.DatetimeIndex) -> np.ndarray:
    iso = sessions.isocalendar()
    return iso["year"].to_numpy(dtype=np.int64) * 100 + iso["week"].to_numpy(dtype=np.int64)


def _buckets(ts: pd.DatetimeIndex, session: pd.DatetimeIndex, target: Timeframe,
             calendar: TradingCalendar) -> tuple[np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """Return each bar's bucket open and close (ns since epoch, UTC) and bucket session."""
    if target is Timeframe.W1:
        grid = calendar.sessions(session.min() - pd.Timedelta(days=7),
                                 session.max() + pd.Timedelta(days=7))
        schedule = calendar.session_open_close(grid)
        weeks = pd.DataFrame({
            "week": _iso_week(grid),
            "open": pd.DatetimeIndex(schedule["open"]).as_unit("ns").asi8,
            "close": pd.DatetimeIndex(schedule["close"]).as_unit("ns").asi8,
            "session": grid,
        }).groupby("week", sort=True).agg(open=("open", "min"), close=("close", "max"),
                                          session=("session", "max"))
        pos = np.searchsorted(weeks.index.to_numpy(), _iso_week(session))
        return (weeks["open"].to_numpy()[pos], weeks["close"].to_numpy()[pos],
                pd.DatetimeIndex(weeks["session"].to_numpy()[pos]))
    schedule = calendar.session_open_close(session)
    session_open = pd.DatetimeIndex(schedule["open"]).as_unit("ns").asi8
    session_close = pd.DatetimeIndex(schedule["close"]).as_unit("ns").asi8
    if target is Timeframe.D1:
        return session_open, session_close, session
    step = target.nominal.value
    start = session_open + (ts.as_unit("ns").asi8 - session_open) // step * step
    return start, np.minimum(start + step, session_close), session


def resample_bars(bars: pd.DataFrame, target_timeframe: Timeframe | str,
                  calendar: TradingCalendar) -> pd.DataFrame:
    """Return ``bars`` (one timeframe, validated) resampled to ``target_timeframe``.

    Incomplete first and final buckets of each symbol are dropped (see the module docstring);
    output is sorted by symbol and ``ts``.
    """
    target = Timeframe.parse(target_timeframe)
    if bars.empty:
        return bars[list(BARS_COLUMNS)].iloc[:0].assign(timeframe=target.value)
    _check_target(_source_timeframe(bars), target)
    ordered = bars.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)
    ts = to_utc_index(ordered["ts"])
    ts_close = to_utc_index(ordered["ts_close"])
    session = to_session_index(ordered["session"])
    if session.isna().any():
        raise ValueError("session: every bar needs a session; validate the bars first")
    bucket_open, bucket_close, bucket_session = _buckets(ts, session, target, calendar)
    symbol_code, symbol_names = pd.factorize(ordered["symbol"])
    starts_new = np.ones(len(ordered), dtype=bool)
    starts_new[1:] = ((symbol_code[1:] != symbol_code[:-1])
                      | (bucket_open[1:] != bucket_open[:-1]))
    first = np.flatnonzero(starts_new)
    last = np.append(first[1:] - 1, len(ordered) - 1)

    ts_i8, close_i8 = ts.as_unit("ns").asi8, ts_close.as_unit("ns").asi8
    symbol_first_ts = np.full(len(symbol_names), np.iinfo(np.int64).max)
    symbol_last_close = np.full(len(symbol_names), np.iinfo(np.int64).min)
    np.minimum.at(symbol_first_ts, symbol_code, ts_i8)
    np.maximum.at(symbol_last_close, symbol_code, close_i8)
    owner = symbol_code[first]
    complete = ((bucket_open[first] >= symbol_first_ts[owner])
                & (bucket_close[first] <= symbol_last_close[owner]))

    def column(name: str) -> np.ndarray:
        return ordered[name].to_numpy(dtype=np.float64)

    resampled = pd.DataFrame({
        "symbol": pd.Series(np.asarray(symbol_names)[owner], dtype="str"),
        "timeframe": pd.Series([target.value] * len(first), dtype="str"),
        "ts": pd.to_datetime(bucket_open[first], unit="ns", utc=True).as_unit("us"),
        "ts_close": pd.to_datetime(bucket_close[first], unit="ns", utc=True).as_unit("us"),
        "session": bucket_session[first].as_unit("s"),
        "open": column("open")[first],
        "high": np.maximum.reduceat(column("high"), first),
        "low": np.minimum.reduceat(column("low"), first),
        "close": column("close")[last],
        "volume": np.add.reduceat(column("volume"), first),
        "adj_close": (column("adj_close")[last] if "adj_close" in ordered.columns
                      else np.full(len(first), np.nan)),
    })
    return resampled[complete].reset_index(drop=True)[list(BARS_COLUMNS)]
