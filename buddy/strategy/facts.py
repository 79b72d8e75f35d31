"""Entry facts: what was known when a trade (or a new idea) was entered, column-wise.

One rule, ``entry_facts(ctx)``, over any BatchContext: a new intent's row and a past trade's
row go through it the same way. A trade becomes an intent row first (``trades_as_intents``:
entry = avg_entry, stop = initial_stop, target = the linked intent's proposed_target,
timeframe = the linked intent's, as_of = open_ts) and then through ``build_batch_context``,
so its facts read only bars closed by its entry.

Embedding features (``EMBEDDING_FEATURES``; ATR = ATR(14) of the last bar closed by the entry,
prices on that moment's split basis):

- ``side_sign``: +1 long, -1 short;
- ``stop_atr``: |entry - stop| / ATR (NaN without a stop);
- ``reward_risk``: |target - entry| / |entry - stop| (NaN without a target or a stop);
- ``close_ema20_atr``: (last close - EMA20) / ATR;
- ``bb_z``: (last close - SMA20) / stdev20, stdev20 = (upper band - middle band) / 2 of the
  20-bar, 2-sd Bollinger band (population sd, as TA-Lib computes it);
- ``high20_atr``: (last close - highest high of the 20 bars BEFORE the last) / ATR (NaN with
  fewer than 21 bars);
- ``trend_atr``: (EMA20 - EMA50) / ATR;
- ``rsi_14``: RSI(14), 0-100.

Context facts (``CONTEXT_FACTS``):

- ``symbol``, ``timeframe``, ``side``;
- ``hour_local``, ``weekday``: the entry's hour (0-23) and weekday (0 Monday .. 6 Sunday) in
  the exchange's time zone;
- ``regime``: the regime piece's trend label (up / down / range) of the last closed bar. It
  is a rule label (``buddy.regime.rules``: ADX(14) >= 20 and the EMA20 slope over 5 bars at
  least 0.05 ATR a bar), so it is computed here from the row's feature window with the same
  rule and defaults, not through the regime provider: that provider fits a walk-forward HMM
  per as_of when no snapshot is stored (75 s for the demo's 881 trades). None while the
  inputs warm up. ``tests/strategy/test_facts.py`` checks it equals the piece's label;
- ``alignment``: the MTFA alignment score (-1 all down .. +1 all up) times ``side_sign``
  (positive: with the higher timeframes); None when the mtfa piece is missing;
- ``level_ahead_atr``: the distance from the entry to the nearest consolidated level of
  strength >= ``DEFAULT_MIN_STRENGTH`` in the trade's way (above a long, below a short, the
  entry included), in ATR; None when the levels piece is missing or no such level exists.

A missing input leaves its fact NaN / None ("not checked"): nothing is imputed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from buddy.batch.context import BatchContext
from buddy.levels.columns import level_pieces
from buddy.levels.consolidate import (
    DEFAULT_MERGE_ATR,
    DEFAULT_MIN_STRENGTH,
    DEFAULT_PIVOT_METHOD,
    level_table,
)
from buddy.levels.nearest import nearest_level
from buddy.regime.rules import RegimeRulesConfig

__all__ = [
    "CONTEXT_FACTS",
    "EMBEDDING_FEATURES",
    "FACTS_VERSION",
    "OUTCOME_COLUMNS",
    "entry_facts",
    "outcome_columns",
    "trades_as_intents",
]

#: Bumped when a fact's definition changes: stored facts of another version are recomputed.
FACTS_VERSION = "1.0.0"

EMBEDDING_FEATURES: tuple[str, ...] = (
    "side_sign", "stop_atr", "reward_risk", "close_ema20_atr", "bb_z", "high20_atr",
    "trend_atr", "rsi_14")
CONTEXT_FACTS: tuple[str, ...] = (
    "symbol", "timeframe", "side", "hour_local", "weekday", "regime", "alignment",
    "level_ahead_atr")
OUTCOME_COLUMNS: tuple[str, ...] = (
    "trade_id", "open_ts", "close_ts", "pnl", "pnl_r", "win", "holding_hours",
    "size_pct_equity", "risk_pct_equity")

_HIGH_BARS = 20  # the breakout look-back: highest high of the 20 bars before the last


def _latest(ctx: BatchContext, column: str) -> np.ndarray:
    if column not in ctx.latest.columns:
        return np.full(ctx.n, np.nan)
    return ctx.latest[column].to_numpy(np.float64, copy=True)


def _regime_labels(ctx: BatchContext, atr: np.ndarray) -> np.ndarray:
    """Return the rule trend label per row (None while its inputs warm up)."""
    rules = RegimeRulesConfig()
    lag = rules.ema_slope_bars
    n = ctx.n
    if n == 0:
        return np.empty(0, dtype=object)
    ema = ctx.features.tail("ema_20", lag + 1) if "ema_20" in ctx.features.data else (
        np.full((n, lag + 1), np.nan))
    adx = _latest(ctx, "adx_14")
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (ema[:, -1] - ema[:, 0]) / (lag * atr)
    slope[~np.isfinite(slope)] = np.nan
    trending = adx >= rules.adx_trend_min
    trend = np.where(trending & (slope >= rules.ema_slope_min_atr), "up",
                     np.where(trending & (slope <= -rules.ema_slope_min_atr), "down", "range"))
    known = np.isfinite(adx) & np.isfinite(slope) & ctx.market["has_latest"].to_numpy(bool)
    out = np.full(n, None, dtype=object)
    out[known] = trend[known]
    return out


def _alignment(ctx: BatchContext, sign: np.ndarray) -> np.ndarray:
    pieces = ctx.pieces.get("mtfa")
    out = np.full(ctx.n, np.nan)
    if pieces is None:
        return out
    for i, piece in enumerate(pieces):
        score = getattr(piece, "alignment_score", None)
        if score is not None and np.isfinite(score):
            out[i] = float(score) * sign[i]
    return out


def _level_ahead(ctx: BatchContext, entry: np.ndarray, sign: np.ndarray, atr: np.ndarray
                 ) -> np.ndarray:
    out = np.full(ctx.n, np.nan)
    if "levels" not in ctx.pieces or ctx.n == 0:
        return out
    code, snapshots = level_pieces(ctx)
    table = level_table(snapshots, code, atr, pivot_method=DEFAULT_PIVOT_METHOD,
                        merge_atr=DEFAULT_MERGE_ATR, min_strength=DEFAULT_MIN_STRENGTH)
    if not table.price.shape[1]:
        return out
    rows = np.flatnonzero(np.isfinite(atr) & (atr > 0) & np.isfinite(entry))
    if not len(rows):
        return out
    price, rank = table.price[table.code[rows]], table.rank[table.code[rows]]
    column = nearest_level(price, rank, entry[rows], sign[rows], side="ahead")
    found = column >= 0
    level = price[np.arange(len(rows)), np.maximum(column, 0)]
    out[rows[found]] = np.abs(level[found] - entry[rows][found]) / atr[rows][found]
    return out


def entry_facts(ctx: BatchContext) -> pd.DataFrame:
    """Return EMBEDDING_FEATURES + CONTEXT_FACTS per row of ``ctx`` (index 0..n-1; ratios
    in ATR(14) of the last bar closed by each row's as_of, NaN / None where an input is
    missing)."""
    intents = ctx.intents
    n = ctx.n
    sign = intents["sign"].to_numpy(np.float64)
    entry = intents["proposed_entry"].to_numpy(np.float64)
    stop_distance = intents["stop_distance"].to_numpy(np.float64)
    atr = _latest(ctx, "atr_14")
    atr[~(atr > 0)] = np.nan
    close = ctx.market["last_close"].to_numpy(np.float64)
    ema20, ema50 = _latest(ctx, "ema_20"), _latest(ctx, "ema_50")
    middle, upper = _latest(ctx, "bb_middle_20_2"), _latest(ctx, "bb_upper_20_2")
    if n and "high" in ctx.bars.data:
        highs = ctx.bars.tail("high", _HIGH_BARS + 1)[:, :_HIGH_BARS]
        # a window shorter than 21 bars has NaN padding: no 20-bar high then
        high20 = np.where(np.isnan(highs).any(axis=1), np.nan, np.nanmax(
            np.where(np.isnan(highs), -np.inf, highs), axis=1))
    else:
        high20 = np.full(n, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        stdev20 = (upper - middle) / 2.0
        stdev20[~(stdev20 > 0)] = np.nan
        stop_distance = np.where(stop_distance > 0, stop_distance, np.nan)
        features = {
            "side_sign": sign,
            "stop_atr": stop_distance / atr,
            "reward_risk": intents["reward_distance"].to_numpy(np.float64) / stop_distance,
            "close_ema20_atr": (close - ema20) / atr,
            "bb_z": (close - middle) / stdev20,
            "high20_atr": (close - high20) / atr,
            "trend_atr": (ema20 - ema50) / atr,
            "rsi_14": _latest(ctx, "rsi_14"),
        }
    out = pd.DataFrame({k: np.where(np.isfinite(v), v, np.nan) for k, v in features.items()})
    when = pd.to_datetime(intents["as_of"], utc=True)
    hours = np.full(n, -1, dtype=np.int64)
    weekdays = np.full(n, -1, dtype=np.int64)
    zones = ctx.instrument["timezone"].to_numpy(object) if n else np.empty(0, object)
    for zone in pd.unique(zones):
        rows = np.flatnonzero(zones == zone)
        local = pd.DatetimeIndex(when.iloc[rows]).tz_convert(str(zone))
        hours[rows], weekdays[rows] = local.hour, local.day_of_week
    # object columns: pandas would infer a string dtype and turn None into NaN
    out["symbol"] = pd.Series(intents["symbol"].to_numpy(object), dtype=object)
    out["timeframe"] = pd.Series([str(v) for v in intents["timeframe"]], dtype=object)
    out["side"] = pd.Series(intents["side"].to_numpy(object), dtype=object)
    out["hour_local"] = pd.array(hours, dtype="Int32")
    out["weekday"] = pd.array(weekdays, dtype="Int32")
    out["regime"] = pd.Series(_regime_labels(ctx, atr), dtype=object)
    out["alignment"] = _alignment(ctx, sign)
    out["level_ahead_atr"] = _level_ahead(ctx, entry, sign, atr)
    return out[list(EMBEDDING_FEATURES + CONTEXT_FACTS)]


def trades_as_intents(trades: pd.DataFrame, finest_timeframe: Mapping[str, str]
                      ) -> pd.DataFrame:
    """Return the intent rows (the batch builder's intent columns) of ``trades`` (trades rows
    with ``intent_timeframe`` and ``intent_target`` of the linked intent): entry avg_entry,
    stop initial_stop, target the intent's proposed_target, timeframe the intent's (else the
    symbol's finest stored timeframe from ``finest_timeframe``; None when it has no bars),
    as_of open_ts; ``intent_id`` is the trade_id."""
    timeframe = trades["intent_timeframe"].astype(object).where(
        trades["intent_timeframe"].notna(), trades["symbol"].map(finest_timeframe))
    return pd.DataFrame({
        "intent_id": trades["trade_id"].astype(str).to_numpy(),
        "user_id": trades["user_id"].astype(str).to_numpy(),
        "symbol": trades["symbol"].astype(str).to_numpy(),
        "side": trades["side"].astype(str).to_numpy(),
        "timeframe": timeframe.astype(object).where(timeframe.notna(), None).to_numpy(),
        "as_of": pd.to_datetime(trades["open_ts"], utc=True).to_numpy(),
        "proposed_entry": trades["avg_entry"].to_numpy(np.float64),
        "proposed_stop": pd.to_numeric(trades["initial_stop"]).to_numpy(np.float64),
        "proposed_target": pd.to_numeric(trades["intent_target"]).to_numpy(np.float64),
        "proposed_size": trades["qty"].to_numpy(np.float64),
        "holding_horizon": np.nan,
        "order_type": "market",
    }).assign(as_of=lambda f: pd.to_datetime(f["as_of"], utc=True))


def outcome_columns(trades: pd.DataFrame, equity: np.ndarray) -> pd.DataFrame:
    """Return OUTCOME_COLUMNS of ``trades`` (trades rows; ``equity`` the account equity as of
    each entry, NaN when unknown): win = pnl > 0 (None while open), holding_hours, entry
    notional and initial risk as percent of that equity (NaN when unknown)."""
    open_ts = pd.to_datetime(trades["open_ts"], utc=True)
    close_ts = pd.to_datetime(trades["close_ts"], utc=True)
    closed = close_ts.notna().to_numpy()
    pnl = pd.to_numeric(trades["pnl"]).to_numpy(np.float64)
    win = pd.array([bool(p > 0) if c and np.isfinite(p) else None
                    for p, c in zip(pnl, closed, strict=True)], dtype="boolean")
    hours = ((close_ts - open_ts).dt.total_seconds() / 3600.0).to_numpy(np.float64)
    multiplier = pd.to_numeric(trades["multiplier"]).fillna(1.0).to_numpy(np.float64)
    notional = np.abs(trades["avg_entry"].to_numpy(np.float64)) * trades["qty"].to_numpy(
        np.float64) * multiplier
    risk = pd.to_numeric(trades["initial_risk"]).to_numpy(np.float64)
    equity = np.asarray(equity, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        known = equity > 0
        size_pct = np.where(known, 100.0 * notional / equity, np.nan)
        risk_pct = np.where(known, 100.0 * risk / equity, np.nan)
    return pd.DataFrame({
        "trade_id": trades["trade_id"].astype(str).to_numpy(),
        "open_ts": open_ts.to_numpy(), "close_ts": close_ts.to_numpy(),
        "pnl": np.where(closed, pnl, np.nan),
        "pnl_r": np.where(closed, pd.to_numeric(trades["pnl_r"]).to_numpy(np.float64),
                          np.nan),
        "win": win, "holding_hours": np.where(closed, hours, np.nan),
        "size_pct_equity": size_pct, "risk_pct_equity": risk_pct,
    }).assign(open_ts=lambda f: pd.to_datetime(f["open_ts"], utc=True),
              close_ts=lambda f: pd.to_datetime(f["close_ts"], utc=True))
