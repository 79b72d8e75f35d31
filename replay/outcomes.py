"""Outcome labelling: what happened after each intent, from the bars after its entry.

The rules, stated once:

- The walk starts at the first bar that closes after ``as_of`` (``ts_close > as_of``); the
  entry is filled at ``proposed_entry`` at ``as_of``. It lasts at most ``holding_horizon``
  bars.
- Stop: a long is stopped when a bar's low is at or below the stop (a short: high at or
  above). It fills at the stop, or at the bar's open when the bar opens through the stop (a
  gap fills at the open, not at the stop).
- Target: a long reaches the target when a bar's high is at or above it (a short: low at or
  below). It fills at the target, even when the bar opens beyond it (no price improvement is
  assumed).
- Both in one bar: ``BOTH_TOUCHED_RULE``, the stop first (conservative).
- Time stop: neither within ``holding_horizon`` bars: exit at the horizon bar's close.
- Open: the data ends before any of these: exit_reason 'open', realized R at the last close
  (R 0 at the entry when no bar follows it), ``exit_ts`` NaT. This is the flag: an open row
  is not a finished trade.
- Excursions: MAE/MFE are the worst and best prices the trade saw from the entry to the exit,
  as distances from the entry (price, >= 0) and in R (MAE <= 0, MFE >= 0). Bars before the
  exit bar count whole. On a stop's bar only the way from the open to the fill counts (the
  stop came first); on a target's bar the whole low counts (conservative) but the high only
  up to the target; a time stop's bar counts whole.
- R: a multiple of the initial risk |entry - stop|, signed by direction.
- Splits: bars are as traded and the intent's prices are on the basis in force at
  ``as_of`` (``buddy.data.splits``' convention: a split is in force from its ex_date, as_of
  compared by its UTC date). Each later bar is put on that basis: multiplied by the ratios of
  the splits with ``as_of``'s date < ex_date <= the bar's session. A 2:1 split the day after
  an entry at 88 shows the next bar's 44 as 88, not as a 50% fall through the stop. (A
  weekly bar whose week holds an ex_date mixes both bases in its high and low: as traded it
  cannot be put on one basis, and it is scaled by its session, the week's last.)

``label_outcomes`` is vectorised over the intents of one (symbol, timeframe): a [intents x
horizon] window of bar positions is read at once and the first stop and target touches are
found with argmax. ``label_outcome_scalar`` is the same rules written as a plain loop over one
intent's bars; the tests prove the two agree on thousands of intents over real data.
``label_with_trades`` replaces the simulated outcome by the real result where an intent is
linked to a closed trade.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from buddy.data.splits import split_factor_as_of
from replay.model import BOTH_TOUCHED_RULE, INTENT_COLUMNS, OUTCOME_COLUMNS

__all__ = [
    "BOTH_TOUCHED_RULE",
    "WINDOW_CELLS",
    "label_outcome_scalar",
    "label_outcomes",
    "label_with_trades",
]

#: Upper bound of intents x bars read at once (memory: about 10 float64 arrays of this size).
WINDOW_CELLS = 500_000

_NAT = np.iinfo(np.int64).min


def label_outcomes(intents: pd.DataFrame,
                   bars_by_key: Mapping[tuple[str, str], pd.DataFrame],
                   corporate_actions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return the simulated outcome of every intent as ``OUTCOME_COLUMNS``, in input order.

    ``intents``: ``INTENT_COLUMNS`` rows. ``bars_by_key``: bars as traded (the store's
    columns, at least ts_close, session, open, high, low, close) per (symbol, timeframe), up to
    whatever the data holds after the intents. ``corporate_actions``: the splits (any symbols);
    None when there are none. Pure: reads nothing else.
    """
    _check_intents(intents)
    n = len(intents)
    columns: dict[str, np.ndarray] = {
        "exit_reason": np.empty(n, dtype=object), "exit_ts": np.full(n, _NAT),
        "exit_price": np.full(n, np.nan), "realized_r": np.full(n, np.nan),
        "mae_r": np.full(n, np.nan), "mfe_r": np.full(n, np.nan),
        "mae_price": np.full(n, np.nan), "mfe_price": np.full(n, np.nan),
        "bars_held": np.zeros(n, dtype=np.int64)}
    splits = _splits(corporate_actions)
    groups = intents.groupby(["symbol", "timeframe"], sort=False).indices
    for (symbol, timeframe), positions in groups.items():
        key = (str(symbol), str(timeframe))
        if key not in bars_by_key:
            raise KeyError(f"bars_by_key: no bars for {key} ({len(positions)} intents)")
        symbol_splits = splits[splits["symbol"] == key[0]] if len(splits) else splits
        result = _label_group(intents.iloc[positions], bars_by_key[key], symbol_splits)
        for name, values in result.items():
            columns[name][positions] = values
    return _outcome_frame(intents["intent_id"].to_numpy(), intents["as_of"], columns)


def _check_intents(intents: pd.DataFrame) -> None:
    missing = [c for c in INTENT_COLUMNS if c not in intents.columns]
    if missing:
        raise ValueError(f"intents: missing columns {missing}")
    sign = np.where(intents["side"].to_numpy() == "long", 1.0, -1.0)
    entry = intents["proposed_entry"].to_numpy(dtype=np.float64)
    stop = intents["proposed_stop"].to_numpy(dtype=np.float64)
    horizon = intents["holding_horizon"].to_numpy()
    bad = ~(sign * (entry - stop) > 0) | ~np.isin(intents["side"].to_numpy(), ["long", "short"])
    bad |= ~(pd.to_numeric(pd.Series(horizon), errors="coerce").to_numpy() >= 1)
    if bad.any():
        ids = intents["intent_id"].to_numpy()[bad][:5].tolist()
        raise ValueError(f"intents: {int(bad.sum())} rows need a side of long/short, a stop on "
                         f"the losing side of the entry and a horizon >= 1 bar (e.g. {ids})")


def _splits(corporate_actions: pd.DataFrame | None) -> pd.DataFrame:
    if corporate_actions is None or corporate_actions.empty:
        return pd.DataFrame({"symbol": pd.Series(dtype="str"),
                             "ex_date": pd.Series(dtype="datetime64[s]"),
                             "action": pd.Series(dtype="str"),
                             "ratio": pd.Series(dtype="float64")})
    return corporate_actions[corporate_actions["action"] == "split"]


def _label_group(intents: pd.DataFrame, bars: pd.DataFrame, splits: pd.DataFrame
                 ) -> dict[str, np.ndarray]:
    """Label the intents of one (symbol, timeframe) against that series' bars."""
    if not bars["ts_close"].is_monotonic_increasing:
        bars = bars.sort_values("ts_close", kind="stable")
    ts_close = pd.DatetimeIndex(bars["ts_close"]).as_unit("ns").asi8
    as_of = pd.DatetimeIndex(intents["as_of"]).tz_convert("UTC")
    prices = {c: bars[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close")}
    entry_scale = np.ones(len(intents))
    if len(splits):
        last_ex = splits["ex_date"].max()
        bar_divisor = split_factor_as_of(bars["session"], splits, last_ex)
        prices = {c: v / bar_divisor for c, v in prices.items()}
        entry_scale = split_factor_as_of(as_of, splits, last_ex)
    start = np.searchsorted(ts_close, as_of.as_unit("ns").asi8, side="right")
    horizon = intents["holding_horizon"].to_numpy().astype(np.int64)
    span = np.minimum(horizon, len(ts_close) - start)
    direction = np.where(intents["side"].to_numpy() == "long", 1.0, -1.0)
    order = np.argsort(span, kind="stable")
    result = {name: np.empty(len(intents), dtype=dtype) for name, dtype in (
        ("exit_reason", object), ("exit_ts", np.int64), ("exit_price", np.float64),
        ("realized_r", np.float64), ("mae_r", np.float64), ("mfe_r", np.float64),
        ("mae_price", np.float64), ("mfe_price", np.float64), ("bars_held", np.int64))}
    for chunk in _chunks(span[order]):
        rows = order[chunk]
        walked = _walk(prices, ts_close, start[rows], span[rows], horizon[rows],
                       direction[rows], entry_scale[rows],
                       intents["proposed_entry"].to_numpy(dtype=np.float64)[rows],
                       intents["proposed_stop"].to_numpy(dtype=np.float64)[rows],
                       intents["proposed_target"].to_numpy(dtype=np.float64)[rows])
        for name, values in walked.items():
            result[name][rows] = values
    return result


def _chunks(sorted_span: np.ndarray) -> list[slice]:
    """Split positions (sorted by span) into slices of at most WINDOW_CELLS window cells."""
    chunks, first = [], 0
    for last in range(1, len(sorted_span) + 1):
        if (last - first) * max(int(sorted_span[last - 1]), 1) > WINDOW_CELLS and last - 1 > first:
            chunks.append(slice(first, last - 1))
            first = last - 1
    if first < len(sorted_span):
        chunks.append(slice(first, len(sorted_span)))
    return chunks


def _walk(prices: Mapping[str, np.ndarray], ts_close: np.ndarray, start: np.ndarray,
          span: np.ndarray, horizon: np.ndarray, direction: np.ndarray, scale: np.ndarray,
          entry: np.ndarray, stop: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Walk a [intents x bars] window. Prices are mirrored for shorts (x = direction x price)
    so one set of long-side comparisons serves both sides."""
    n_intents = len(start)
    width = int(span.max()) if n_intents else 0
    offsets = np.arange(max(width, 1))
    if width == 0:
        index = np.zeros((n_intents, 1), dtype=np.int64)
        valid = np.zeros((n_intents, 1), dtype=bool)
        lo_x = hi_x = open_x = close_x = np.zeros((n_intents, 1))
    else:
        index = np.minimum(start[:, None] + offsets, len(ts_close) - 1)
        valid = offsets < span[:, None]
        factor = (scale * direction)[:, None]
        is_long = (direction > 0)[:, None]
        low, high = prices["low"][index] * factor, prices["high"][index] * factor
        lo_x, hi_x = np.where(is_long, low, high), np.where(is_long, high, low)
        open_x, close_x = prices["open"][index] * factor, prices["close"][index] * factor
    entry_x, stop_x, target_x = entry * direction, stop * direction, target * direction
    stop_touch = valid & (lo_x <= stop_x[:, None])
    target_touch = valid & (hi_x >= target_x[:, None])
    k_stop = np.where(stop_touch.any(axis=1), stop_touch.argmax(axis=1), width + 1)
    k_target = np.where(target_touch.any(axis=1), target_touch.argmax(axis=1), width + 1)
    is_stop = k_stop <= np.minimum(k_target, width)  # BOTH_TOUCHED_RULE: stop first on a tie
    is_target = ~is_stop & (k_target <= width)
    is_time = ~is_stop & ~is_target & (span >= horizon)
    is_open = ~is_stop & ~is_target & ~is_time
    k_exit = np.where(is_stop, k_stop, np.where(is_target, k_target, span - 1))
    whole_bars = np.where(is_stop | is_target, k_exit, span)
    whole = valid & (offsets < whole_bars[:, None])
    rows, k = np.arange(n_intents), np.maximum(k_exit, 0)
    open_k, low_k, close_k = open_x[rows, k], lo_x[rows, k], close_x[rows, k]
    stop_fill = np.minimum(open_k, stop_x)
    worst = np.minimum(entry_x, np.where(whole, lo_x, np.inf).min(axis=1))
    best = np.maximum(entry_x, np.where(whole, hi_x, -np.inf).max(axis=1))
    worst = np.where(is_stop, np.minimum(worst, stop_fill),
                     np.where(is_target, np.minimum(worst, low_k), worst))
    best = np.where(is_stop, np.maximum(best, open_k),
                    np.where(is_target, np.maximum(best, target_x), best))
    exit_x = np.where(is_stop, stop_fill, np.where(
        is_target, target_x, np.where(span > 0, close_k, entry_x)))
    risk = np.abs(entry - stop)
    mae_price, mfe_price = entry_x - worst, best - entry_x
    return {
        "exit_reason": np.select([is_stop, is_target, is_time], ["stop", "target", "time"],
                                 "open").astype(object),
        "exit_ts": np.where(is_open, _NAT, ts_close[index[rows, k]] if width else _NAT),
        "exit_price": exit_x * direction,
        "realized_r": (exit_x - entry_x) / risk,
        "mae_r": -mae_price / risk, "mfe_r": mfe_price / risk,
        "mae_price": mae_price, "mfe_price": mfe_price,
        "bars_held": np.where(is_open, span, k_exit + 1).astype(np.int64),
    }


def _outcome_frame(intent_ids: np.ndarray, as_of: pd.Series,
                   columns: Mapping[str, np.ndarray]) -> pd.DataFrame:
    exit_ts = pd.DatetimeIndex(pd.to_datetime(np.asarray(columns["exit_ts"], dtype="int64"),
                                              unit="ns", utc=True)).as_unit("us")
    frame = pd.DataFrame({
        "intent_id": pd.array(intent_ids, dtype="str"),
        "exit_reason": pd.array(columns["exit_reason"], dtype="str"),
        "entry_ts": pd.DatetimeIndex(as_of).tz_convert("UTC").as_unit("us"),
        "exit_ts": exit_ts,
        **{c: np.asarray(columns[c], dtype=np.float64) for c in (
            "exit_price", "realized_r", "mae_r", "mfe_r", "mae_price", "mfe_price")},
        "bars_held": pd.array(columns["bars_held"], dtype="Int64"),
    })
    frame["win"] = frame["realized_r"].to_numpy() > 0
    frame["outcome_source"] = "simulated"
    return frame


def label_outcome_scalar(intent_row: Mapping[str, Any], bars: pd.DataFrame,
                         corporate_actions: pd.DataFrame | None = None) -> dict[str, Any]:
    """Return one intent's outcome (``OUTCOME_COLUMNS`` as a dict): the reference loop.

    The same rules as ``label_outcomes``, written bar by bar for one intent and its series'
    bars, so the vectorised path has something plain to be checked against.
    """
    long = intent_row["side"] == "long"
    entry = float(intent_row["proposed_entry"])
    stop = float(intent_row["proposed_stop"])
    target = float(intent_row["proposed_target"])
    has_target = not math.isnan(target)
    horizon = int(intent_row["holding_horizon"])
    as_of = pd.Timestamp(intent_row["as_of"]).tz_convert("UTC")
    as_of_date = np.datetime64(as_of.tz_localize(None).normalize(), "D")
    splits = []
    if corporate_actions is not None:
        actions = zip(*(corporate_actions[c].tolist() for c in ("symbol", "action", "ex_date",
                                                                "ratio")), strict=True)
        for symbol, action, ex_date, ratio in actions:
            if symbol == intent_row["symbol"] and action == "split":
                splits.append((np.datetime64(pd.Timestamp(ex_date), "D"), float(ratio)))
    risk = abs(entry - stop)
    worst_move = best_move = 0.0  # adverse and favourable distances from the entry, >= 0
    held = 0
    last_close = entry
    reason, exit_price, exit_bar = "open", entry, -1
    if not bars["ts_close"].is_monotonic_increasing:
        bars = bars.sort_values("ts_close", kind="stable")
    first = int(bars["ts_close"].searchsorted(as_of, side="right"))
    after = slice(first, min(len(bars), first + horizon))
    opens, highs, lows, closes = (bars[c].to_numpy(dtype=np.float64)[after].tolist()
                                  for c in ("open", "high", "low", "close"))
    sessions = bars["session"].to_numpy()[after].astype("datetime64[D]")
    for j in range(len(opens)):
        bar_open, high, low, close = opens[j], highs[j], lows[j], closes[j]
        for ex_date, ratio in splits:
            if as_of_date < ex_date <= sessions[j]:
                bar_open, high, low, close = (bar_open * ratio, high * ratio, low * ratio,
                                              close * ratio)
        held += 1
        if long:
            if low <= stop:
                fill = min(bar_open, stop)
                worst_move = max(worst_move, entry - fill)
                best_move = max(best_move, bar_open - entry)
                reason, exit_price, exit_bar = "stop", fill, j
                break
            if has_target and high >= target:
                worst_move = max(worst_move, entry - low)
                best_move = max(best_move, target - entry)
                reason, exit_price, exit_bar = "target", target, j
                break
            worst_move = max(worst_move, entry - low)
            best_move = max(best_move, high - entry)
        else:
            if high >= stop:
                fill = max(bar_open, stop)
                worst_move = max(worst_move, fill - entry)
                best_move = max(best_move, entry - bar_open)
                reason, exit_price, exit_bar = "stop", fill, j
                break
            if has_target and low <= target:
                worst_move = max(worst_move, high - entry)
                best_move = max(best_move, entry - target)
                reason, exit_price, exit_bar = "target", target, j
                break
            worst_move = max(worst_move, high - entry)
            best_move = max(best_move, entry - low)
        last_close = close
        if held == horizon:
            reason, exit_price, exit_bar = "time", close, j
            break
    if reason == "open":
        exit_price, exit_ts = last_close, pd.NaT
    else:
        exit_ts = bars["ts_close"].iloc[first + exit_bar]
    realized_r = (exit_price - entry) / risk if long else (entry - exit_price) / risk
    return {
        "intent_id": intent_row["intent_id"], "exit_reason": reason,
        "entry_ts": pd.Timestamp(as_of), "exit_ts": pd.Timestamp(exit_ts),
        "exit_price": exit_price, "realized_r": realized_r,
        "mae_r": -worst_move / risk, "mfe_r": best_move / risk,
        "mae_price": worst_move, "mfe_price": best_move, "bars_held": held,
        "win": realized_r > 0, "outcome_source": "simulated",
    }


def label_with_trades(outcomes: pd.DataFrame, trades: pd.DataFrame,
                      intents: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return ``outcomes`` with each intent linked to a closed real trade given that trade's
    actual result: exit_reason and outcome_source 'trade', exit_ts = close_ts, exit_price =
    avg_exit, realized_r = pnl_r.

    Links come from ``trades.linked_intent_id`` and, when ``intents`` is given, from its
    ``linked_trade_id`` (which wins). With ``intents`` a missing pnl_r is computed from the
    fills and the intent's stop. MAE/MFE and bars held are unknown from a trade record (NaN /
    NA). Trades still open, or without an R, leave the simulated outcome in place.
    """
    result = outcomes.copy()
    if trades.empty or result.empty:
        return result
    trades = trades.sort_values(["open_ts", "trade_id"], kind="stable")
    linked = trades[trades["linked_intent_id"].notna()].drop_duplicates("linked_intent_id")
    trade_of = pd.Series(linked["trade_id"].to_numpy(), index=linked["linked_intent_id"]
                         ).reindex(result["intent_id"])
    if intents is not None:
        named = intents.set_index("intent_id")["linked_trade_id"].reindex(result["intent_id"])
        trade_of = named.where(named.notna(), trade_of)
    chosen = trades.drop_duplicates("trade_id").set_index("trade_id").reindex(
        trade_of.to_numpy())
    realized_r = chosen["pnl_r"].to_numpy(dtype=np.float64)
    if intents is not None:
        rows = intents.set_index("intent_id").reindex(result["intent_id"])
        sign = np.where(rows["side"].to_numpy() == "long", 1.0, -1.0)
        risk = np.abs(rows["proposed_entry"].to_numpy(dtype=np.float64)
                      - rows["proposed_stop"].to_numpy(dtype=np.float64))
        from_fills = sign * (chosen["avg_exit"].to_numpy(dtype=np.float64)
                             - chosen["avg_entry"].to_numpy(dtype=np.float64)) / risk
        realized_r = np.where(np.isnan(realized_r), from_fills, realized_r)
    close_ts = pd.DatetimeIndex(pd.to_datetime(chosen["close_ts"], utc=True))
    use = (~np.isnan(realized_r) & ~np.asarray(close_ts.isna())
           & ~np.isnan(chosen["avg_exit"].to_numpy(dtype=np.float64)))
    if not use.any():
        return result
    result.loc[use, "exit_reason"] = "trade"
    result.loc[use, "exit_ts"] = close_ts[use].as_unit("us")
    result.loc[use, "exit_price"] = chosen["avg_exit"].to_numpy(dtype=np.float64)[use]
    result.loc[use, "realized_r"] = realized_r[use]
    for column in ("mae_r", "mfe_r", "mae_price", "mfe_price"):
        result.loc[use, column] = np.nan
    result["bars_held"] = result["bars_held"].astype("Int64")
    result.loc[use, "bars_held"] = pd.NA
    result.loc[use, "win"] = realized_r[use] > 0
    result.loc[use, "outcome_source"] = "trade"
    return result[list(OUTCOME_COLUMNS)]
