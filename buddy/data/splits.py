"""Stock splits: find them in a source's adjusted close, and apply them point-in-time.

Bars are stored as traded. A reader that wants prices on one basis divides each bar's prices by
the product of the ratios of the splits that took effect after the bar and on or before
``as_of`` (and multiplies volume by it). Splits after ``as_of`` are never applied, so nothing
about a future split reaches the past.
"""

from __future__ import annotations

from datetime import date, datetime
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from buddy.data.calendars import to_session_index
from buddy.data.frames import CORPORATE_ACTIONS_COLUMNS

__all__ = [
    "SPLIT_MAX_DENOMINATOR",
    "SPLIT_MIN_FACTOR_JUMP",
    "SPLIT_RATIO_TOLERANCE",
    "adjust_bars",
    "detect_splits",
    "empty_corporate_actions",
    "split_factor_as_of",
]

# A day-over-day move of the adjustment factor (adj_close / close) at least this large, up or
# down, is a split candidate. Dividends move it by about 1%; MSFT's 2004 special dividend moved
# it by 11%, which must not read as a 10:9 split. The smallest common split, 5:4, is 1.25.
SPLIT_MIN_FACTOR_JUMP = 1.2
# Splits are simple fractions (2:1, 3:2, 7:1, 1:10).
SPLIT_MAX_DENOMINATOR = 10
# The factor jump must be within this relative distance of the snapped fraction (a dividend on
# the same day moves it a little).
SPLIT_RATIO_TOLERANCE = 0.02

_PRICE_COLUMNS = ("open", "high", "low", "close")


def empty_corporate_actions() -> pd.DataFrame:
    """Return an empty corporate-actions frame with the canonical columns and dtypes."""
    return pd.DataFrame({
        "symbol": pd.Series(dtype="str"),
        "ex_date": pd.Series(dtype="datetime64[s]"),
        "action": pd.Series(dtype="str"),
        "ratio": pd.Series(dtype="float64"),
        "source": pd.Series(dtype="str"),
    })[list(CORPORATE_ACTIONS_COLUMNS)]


def detect_splits(symbol: str, bars_with_adj_close: pd.DataFrame, *,
                  source: str = "adj_close/close factor jump") -> pd.DataFrame:
    """Return the splits of ``symbol`` found in its bars' adjusted close.

    The factor ``f = adj_close / close`` embeds every later split and dividend. On a split's
    ex-date ``f`` jumps by the split ratio (new shares per old share). A jump of at least
    ``SPLIT_MIN_FACTOR_JUMP`` is snapped to a simple fraction (denominator at most
    ``SPLIT_MAX_DENOMINATOR``) and accepted only if the snapped ratio is within
    ``SPLIT_RATIO_TOLERANCE`` of the jump and the raw close moved nearer to 1/ratio than to no
    move at all. ``ex_date`` is the session of the first bar on the new basis.
    """
    bars = bars_with_adj_close
    if "symbol" in bars.columns:
        bars = bars[bars["symbol"] == symbol]
    bars = bars.sort_values("ts", kind="stable")
    close = bars["close"].to_numpy(dtype=np.float64)
    adj_close = bars["adj_close"].to_numpy(dtype=np.float64)
    usable = np.isfinite(close) & np.isfinite(adj_close) & (close > 0) & (adj_close > 0)
    close, adj_close = close[usable], adj_close[usable]
    sessions = to_session_index(bars["session"])[usable]
    if len(close) < 2:
        return empty_corporate_actions()
    log_factor = np.log(adj_close / close)
    factor_jump = np.diff(log_factor)
    raw_move = np.diff(np.log(close))
    candidates = np.flatnonzero(np.abs(factor_jump) >= np.log(SPLIT_MIN_FACTOR_JUMP))
    ex_dates: list[pd.Timestamp] = []
    ratios: list[float] = []
    for i in candidates:
        jump = float(np.exp(factor_jump[i]))
        ratio = float(Fraction(jump).limit_denominator(SPLIT_MAX_DENOMINATOR))
        if ratio <= 0 or ratio == 1.0 or abs(jump / ratio - 1.0) > SPLIT_RATIO_TOLERANCE:
            continue
        if abs(raw_move[i] + np.log(ratio)) >= abs(np.log(ratio)) / 2:
            continue
        ex_dates.append(sessions[i + 1])
        ratios.append(ratio)
    if not ratios:
        return empty_corporate_actions()
    return pd.DataFrame({
        "symbol": pd.Series([symbol] * len(ratios), dtype="str"),
        "ex_date": to_session_index(ex_dates),
        "action": pd.Series(["split"] * len(ratios), dtype="str"),
        "ratio": np.asarray(ratios, dtype=np.float64),
        "source": pd.Series([source] * len(ratios), dtype="str"),
    })[list(CORPORATE_ACTIONS_COLUMNS)]


def _as_of_date(as_of: date | datetime | str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(as_of)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.normalize()


def split_factor_as_of(ts_sessions: Any, actions: pd.DataFrame,
                       as_of: date | datetime | str | pd.Timestamp) -> np.ndarray:
    """Return, per bar session, the divisor that puts its as-traded price on the ``as_of`` basis.

    The divisor is the product of the ratios of the splits in ``actions`` (one symbol's) with
    ``session < ex_date <= as_of``. A timezone-aware ``as_of`` is compared by its UTC date, so
    on an ex-date every bar before it is already on the new basis. Returns float64, 1.0 where
    no split applies.
    """
    sessions = to_session_index(ts_sessions)
    splits = actions[actions["action"] == "split"] if "action" in actions.columns else actions
    if "symbol" in splits.columns and splits["symbol"].nunique() > 1:
        raise ValueError("actions: must hold one symbol's splits "
                         f"(got {sorted(splits['symbol'].unique())})")
    ex_dates = to_session_index(splits["ex_date"])
    in_force = np.asarray(ex_dates <= _as_of_date(as_of))
    ex_dates = ex_dates[in_force]
    ratios = splits["ratio"].to_numpy(dtype=np.float64)[in_force]
    order = np.argsort(ex_dates.asi8, kind="stable")
    ex_sorted = ex_dates.asi8[order]
    suffix = np.append(np.cumprod(ratios[order][::-1])[::-1], 1.0)
    return suffix[np.searchsorted(ex_sorted, sessions.asi8, side="right")]


def split_factor_of_times(ts: Any, timezone: str, actions: pd.DataFrame,
                          as_of: date | datetime | str | pd.Timestamp) -> np.ndarray:
    """Return ``split_factor_as_of`` for rows stamped with their bar's open ``ts`` (UTC), the
    session being that moment's date in the exchange's ``timezone`` (feature rows, which
    carry no session of their own)."""
    sessions = pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).tz_convert(timezone)
    return split_factor_as_of(sessions.tz_localize(None).normalize(), actions, as_of)


def adjust_bars(bars: pd.DataFrame, actions: pd.DataFrame,
                as_of: date | datetime | str | pd.Timestamp) -> pd.DataFrame:
    """Return a copy of ``bars`` on the price basis in force at ``as_of``.

    Open, high, low and close are divided by ``split_factor_as_of`` and volume multiplied by it,
    per symbol. ``adj_close`` is the source's own series and is left as it is.
    """
    adjusted = bars.copy()
    if actions.empty:
        return adjusted
    divisor = np.ones(len(bars), dtype=np.float64)
    symbols = bars["symbol"].to_numpy()
    for symbol, symbol_actions in actions.groupby("symbol", sort=False):
        rows = np.flatnonzero(symbols == symbol)
        if len(rows):
            divisor[rows] = split_factor_as_of(bars["session"].iloc[rows], symbol_actions, as_of)
    for column in _PRICE_COLUMNS:
        adjusted[column] = bars[column].to_numpy(dtype=np.float64) / divisor
    adjusted["volume"] = bars["volume"].to_numpy(dtype=np.float64) * divisor
    return adjusted
