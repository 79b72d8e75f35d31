"""Fills to round-trip trades: flat to flat per user and symbol, over columns.

A trade opens when the position leaves zero and closes when it returns to zero; scale-ins
and partial exits stay in the trade. A fill that crosses zero (IBKR ``C;O``, MT5 ``inout``)
is split at zero into a closing part, which ends the trade, and an opening part, which
starts the next one: two ``trade_fills`` rows with the same exec_id.

Quantities are counted in integer steps of 1e-8 units (``QTY_STEP``), so positions sum
exactly and "back to zero" is an integer test, never a float tolerance.

Realised P&L of each exit part depends on which entry units it is matched against:
``fifo`` (the default: the oldest units first), ``lifo`` (the newest first) or ``average``
(the average cost of the units held). A closed trade's total is the same under all three;
partial exits and the cost basis of what is still open differ. The method is stored on
every trade row.

Fills of a user and symbol are taken in time order; fills with the same timestamp keep the
order they came in (sort them by the broker's sequence first when that matters).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from buddy.errors import FieldError, FieldErrors

#: trade_fills.fill_type values, by code.
FILL_TYPES: tuple[str, ...] = ("open", "add", "reduce", "close")

MatchMethod = Literal["fifo", "lifo", "average"]
MATCH_METHODS: tuple[str, ...] = ("fifo", "lifo", "average")

#: Quantities are handled in integer multiples of this many units (one satoshi).
QTY_STEP = 1e-8
_SCALE = 10**8

#: Columns group_fills reads; others are ignored. commission, fees, venue may be absent.
REQUIRED_COLUMNS: tuple[str, ...] = ("user_id", "symbol", "ts", "side", "qty", "price",
                                     "exec_id")

TRADE_COLUMNS: tuple[str, ...] = (
    "trade_id", "user_id", "symbol", "side", "open_ts", "close_ts", "status", "avg_entry",
    "avg_exit", "qty", "max_position", "open_position", "open_cost_basis", "gross_pnl",
    "fees", "pnl", "n_fills", "match_method", "multiplier", "first_fill_price",
    "first_fill_id")
TRADE_FILL_COLUMNS: tuple[str, ...] = (
    "fill_id", "trade_id", "user_id", "exec_id", "ts", "side", "price", "qty", "fill_type",
    "venue_optional", "fees", "realized_pnl", "position_after")


class FillsError(FieldErrors):
    """Fills broke a rule grouping needs; nothing was grouped."""

    what = "fills"


@dataclass(frozen=True, slots=True)
class GroupedTrades:
    """Round-trip trades (TRADE_COLUMNS) and every fill part in them (TRADE_FILL_COLUMNS)."""

    trades: pd.DataFrame
    trade_fills: pd.DataFrame
    method: str


def trade_id_for(user_id: str, symbol: str, first_fill_id: str) -> str:
    """Return the stable id of the trade a fill part opens (same inputs, same id)."""
    digest = hashlib.sha1(f"{user_id}\x1f{symbol}\x1f{first_fill_id}".encode()).hexdigest()
    return f"T{digest[:20]}"


def group_fills(fills: pd.DataFrame, *, method: MatchMethod = "fifo",
                multipliers: Mapping[str, float] | None = None) -> GroupedTrades:
    """Group fills into flat-to-flat trades per (user_id, symbol), matching exits by ``method``.

    ``multipliers`` maps symbol to contract multiplier (1 when absent): P&L is price
    difference x units x multiplier - commissions - fees, in the fills' currency.
    """
    if method not in MATCH_METHODS:
        raise FillsError([FieldError("method", f"must be one of {', '.join(MATCH_METHODS)}",
                                     method)])
    _validate(fills)
    if fills.empty:
        return GroupedTrades(_empty(TRADE_COLUMNS), _empty(TRADE_FILL_COLUMNS), method)

    # ---- order: per (user, symbol), by time, ties in arrival order
    user_codes, users = pd.factorize(fills["user_id"].astype(str), sort=True)
    symbol_codes, symbols = pd.factorize(fills["symbol"].astype(str), sort=True)
    key_codes = user_codes.astype(np.int64) * len(symbols) + symbol_codes
    # naive UTC datetime64: a tz-aware column would be converted element by element
    ts = pd.to_datetime(fills["ts"], utc=True).dt.tz_localize(None).to_numpy()
    order = np.lexsort((np.arange(len(fills)), ts, key_codes))
    user_sorted = user_codes[order]
    symbol_sorted = symbol_codes[order]
    group = key_codes[order]
    ts = ts[order]
    buys = pc.equal(_strings(fills["side"]), "buy").to_numpy(zero_copy_only=False)[order]
    price = fills["price"].to_numpy(dtype=np.float64)[order]
    cost = np.zeros(len(fills))
    for name in ("commission", "fees"):
        if name in fills:
            cost += np.abs(fills[name].fillna(0.0).to_numpy(dtype=np.float64)[order])

    # ---- exact positions in integer quantity steps
    units = np.rint(fills["qty"].to_numpy(dtype=np.float64)[order] * _SCALE).astype(np.int64)
    signed = np.where(buys, units, -units)
    cum = np.cumsum(signed)
    first_of_group = np.r_[True, group[1:] != group[:-1]]
    base = (cum - signed)[first_of_group]
    pos_after = cum - base[np.cumsum(first_of_group) - 1]
    pos_before = pos_after - signed
    crosses = (pos_before != 0) & (pos_after != 0) & (np.sign(pos_before) != np.sign(pos_after))

    # ---- parts: a crossing fill becomes a closing part then an opening part
    reps = 1 + crosses.astype(np.int64)
    src = np.repeat(np.arange(len(signed)), reps)
    part = np.arange(len(src)) - np.repeat(np.cumsum(reps) - reps, reps)
    split = crosses[src]
    closing_half = split & (part == 0)
    leg_dq = np.where(split, np.where(part == 0, -pos_before[src], pos_after[src]), signed[src])
    leg_after = np.where(closing_half, 0, pos_after[src])
    leg_before = leg_after - leg_dq
    leg_units = np.abs(leg_dq)
    starts = leg_before == 0
    trade_no = np.cumsum(starts) - 1
    start_idx = np.flatnonzero(starts)
    is_entry = np.abs(leg_after) > np.abs(leg_before)
    fill_type_code = np.select([leg_before == 0, leg_after == 0, is_entry], [0, 3, 1], 2)
    leg_qty = leg_units / _SCALE
    leg_price = price[src]
    leg_fees = cost[src] * leg_units / np.abs(signed[src])
    entry_cost = np.where(is_entry, leg_qty * leg_price, 0.0)
    matched = _MATCHERS[method](trade_no, start_idx, is_entry, leg_units, leg_price,
                                leg_after, leg_before)
    direction = np.sign(leg_dq[start_idx])[trade_no]  # +1 long, -1 short
    mult_by_symbol = {} if multipliers is None else dict(multipliers)
    symbol_multiplier = np.array([float(mult_by_symbol.get(s, 1.0)) for s in symbols])
    multiplier = symbol_multiplier[symbol_sorted[src]]
    exit_value = np.where(is_entry, 0.0, leg_qty * leg_price)
    realized = np.where(is_entry, 0.0, direction * (exit_value - matched)) * multiplier

    fill_id = _fill_ids(_strings(fills["user_id"]).take(pa.array(order[src])),
                        _strings(fills["exec_id"]).take(pa.array(order[src])),
                        np.select([closing_half, split], [1, 2], 0))
    # ---- per trade (parts of a trade are contiguous)
    def total(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, start_idx)

    last_idx = np.r_[start_idx[1:], len(src)] - 1
    entry_units = total(np.where(is_entry, leg_units, 0))
    exit_units = total(np.where(is_entry, 0, leg_units))
    entry_qty = entry_units / _SCALE
    exit_qty = exit_units / _SCALE
    with np.errstate(invalid="ignore", divide="ignore"):
        avg_entry = total(entry_cost) / entry_qty
        avg_exit = np.where(exit_units > 0, total(exit_value) / exit_qty, np.nan)
        open_units = leg_after[last_idx]
        open_basis = np.where(open_units != 0,
                              (total(entry_cost) - total(np.where(is_entry, 0.0, matched)))
                              / (np.abs(open_units) / _SCALE), np.nan)
    closed = open_units == 0
    fees = total(leg_fees)
    gross = total(realized)
    first_ids = fill_id.take(pa.array(start_idx)).to_pylist()
    trade_user = np.asarray(users, dtype=object)[user_sorted[src][start_idx]]
    trade_symbol = np.asarray(symbols, dtype=object)[symbol_sorted[src][start_idx]]
    trade_ids = np.array([trade_id_for(u, s, f) for u, s, f in
                          zip(trade_user, trade_symbol, first_ids, strict=True)], dtype=object)
    close_ts = np.where(closed, ts[src][last_idx], np.datetime64("NaT"))
    trades = pd.DataFrame({
        "trade_id": trade_ids,
        "user_id": trade_user,
        "symbol": trade_symbol,
        "side": np.where(direction[start_idx] > 0, "long", "short"),
        "open_ts": pd.to_datetime(ts[src][start_idx], utc=True),
        "close_ts": pd.to_datetime(close_ts, utc=True),
        "status": np.where(closed, "closed", "open"),
        "avg_entry": avg_entry,
        "avg_exit": avg_exit,
        "qty": entry_qty,
        "max_position": np.maximum.reduceat(np.abs(leg_after), start_idx) / _SCALE,
        "open_position": open_units / _SCALE,
        "open_cost_basis": open_basis,
        "gross_pnl": gross,
        "fees": fees,
        "pnl": gross - fees,
        "n_fills": np.diff(np.r_[start_idx, len(src)]),
        "match_method": method,
        "multiplier": multiplier[start_idx],
        "first_fill_price": leg_price[start_idx],
        "first_fill_id": first_ids,
    })
    rows = pa.array(order[src])  # each part's row in the input frame
    trade_fills = pa.table({
        "fill_id": fill_id,
        "trade_id": pa.array(trade_ids, pa.string()).take(pa.array(trade_no)),
        "user_id": _strings(fills["user_id"]).take(rows),
        "exec_id": _strings(fills["exec_id"]).take(rows),
        "ts": pa.array(ts[src]).cast(pa.timestamp("us", tz="UTC")),
        "side": _strings(fills["side"]).take(rows),
        "price": leg_price,
        "qty": leg_qty,
        "fill_type": pc.cast(pa.DictionaryArray.from_arrays(
            pa.array(fill_type_code, pa.int8()), pa.array(FILL_TYPES)), pa.string()),
        "venue_optional": (_strings(fills["venue"]).take(rows) if "venue" in fills
                           else pa.nulls(len(src), pa.string())),
        "fees": leg_fees,
        "realized_pnl": realized,
        "position_after": leg_after / _SCALE,
    }).to_pandas()
    return GroupedTrades(trades, trade_fills, method)


# --------------------------------------------------------------------------- matching
# Each matcher returns, per part, the entry cost (price x units) its exit units are matched
# against (0 for entry parts). Arguments are per part, in trade order.
def _fifo(trade_no: np.ndarray, start_idx: np.ndarray, is_entry: np.ndarray,
          units: np.ndarray, price: np.ndarray, after: np.ndarray, before: np.ndarray
          ) -> np.ndarray:
    # Position never crosses zero inside a trade, so the first X exited units are the first X
    # entered units in time order, all entered before the exit: cost(X) is a piecewise-linear
    # function of cumulative entered units, read with one searchsorted for every exit.
    entered = np.where(is_entry, units, 0)
    exited = np.where(is_entry, 0, units)
    entered_cum = np.cumsum(entered)  # global, exact integers
    trade_base = (entered_cum - entered)[start_idx][trade_no]
    exited_in_trade = _group_cumsum(exited, start_idx, trade_no)
    cost = np.where(is_entry, units / _SCALE * price, 0.0)
    cost_in_trade = pd.Series(cost).groupby(trade_no).cumsum().to_numpy()

    entry_pos = np.flatnonzero(is_entry)
    entry_end = entered_cum[entry_pos]
    entry_cost_end = cost_in_trade[entry_pos]

    def cost_of_first(x_in_trade: np.ndarray) -> np.ndarray:
        x = trade_base + x_in_trade
        k = np.clip(np.searchsorted(entry_end, x, side="left"), 0, len(entry_pos) - 1)
        inside = (entry_end[k] - x) / _SCALE  # units of entry k not yet reached
        value = entry_cost_end[k] - inside * price[entry_pos[k]]
        return np.where(x_in_trade == 0, 0.0, value)

    hi = cost_of_first(exited_in_trade)
    lo = cost_of_first(exited_in_trade - exited)
    return np.where(is_entry, 0.0, hi - lo)


def _average(trade_no: np.ndarray, start_idx: np.ndarray, is_entry: np.ndarray,
             units: np.ndarray, price: np.ndarray, after: np.ndarray, before: np.ndarray
             ) -> np.ndarray:
    # Cost basis B of the units held: an entry adds price x units, an exit keeps the held
    # fraction (B *= |after| / |before|). The affine recurrence B_k = a_k B_(k-1) + b_k is
    # solved with a running product M: B_k = M_k * sum_(i<=k) b_i / M_i, per trade.
    closing = after == 0
    keep = np.where(is_entry | closing, 1.0, np.abs(after) / np.abs(before).clip(min=1))
    added = np.where(is_entry, units / _SCALE * price, 0.0)
    running = pd.Series(keep).groupby(trade_no).cumprod().to_numpy()
    with np.errstate(over="raise", divide="raise"):
        scaled = pd.Series(added / running).groupby(trade_no).cumsum().to_numpy()
    basis_after = running * scaled
    basis_before = basis_after / keep - added  # undo this part
    if not np.isfinite(basis_before).all():
        raise FillsError([FieldError("qty", "average-cost basis out of range (a trade "
                                     "reduced too many times)", "use fifo")])
    matched = np.where(closing, basis_before, basis_before * (1.0 - keep))
    return np.where(is_entry, 0.0, matched)


def _lifo(trade_no: np.ndarray, start_idx: np.ndarray, is_entry: np.ndarray,
          units: np.ndarray, price: np.ndarray, after: np.ndarray, before: np.ndarray
          ) -> np.ndarray:
    # The newest units first: a stack per trade. Which entry an exit reaches depends on every
    # add and exit before it, so this one runs part by part (about 1 us a part).
    matched = np.zeros(len(units))
    stack: list[list[float]] = []
    for i, (entry, n, p, t_start) in enumerate(zip(is_entry.tolist(), units.tolist(),
                                                    price.tolist(), (before == 0).tolist(),
                                                    strict=True)):
        if t_start:
            stack = []
        if entry:
            stack.append([n, p])
            continue
        need, value = n, 0.0
        while need:
            lot = stack[-1]
            take = min(need, lot[0])
            value += take / _SCALE * lot[1]
            lot[0] -= take
            need -= take
            if not lot[0]:
                stack.pop()
        matched[i] = value
    return matched


_MATCHERS = {"fifo": _fifo, "lifo": _lifo, "average": _average}


# --------------------------------------------------------------------------- helpers
def _group_cumsum(values: np.ndarray, start_idx: np.ndarray, group_no: np.ndarray
                  ) -> np.ndarray:
    cum = np.cumsum(values)
    return cum - (cum - values)[start_idx][group_no]


def _strings(column: pd.Series) -> pa.Array:
    array = pa.array(column, from_pandas=True)
    return array if pa.types.is_string(array.type) else array.cast(pa.string())


def _fill_ids(user: pa.Array, exec_id: pa.Array, suffix_code: np.ndarray) -> pa.Array:
    suffix = pc.cast(pa.DictionaryArray.from_arrays(pa.array(suffix_code, pa.int8()),
                                                    pa.array(["", ":close", ":open"])),
                     pa.string())
    return pc.binary_join_element_wise(pc.binary_join_element_wise(user, exec_id, ":"),
                                       suffix, "")


def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _validate(fills: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in fills.columns]
    if missing:
        raise FillsError([FieldError(c, "required column missing", None) for c in missing])
    errors: list[FieldError] = []

    def rows(mask: np.ndarray, name: str, rule: str) -> None:
        bad = np.flatnonzero(mask)
        if len(bad):
            shown = ", ".join(str(i) for i in bad[:5]) + (" ..." if len(bad) > 5 else "")
            errors.append(FieldError(name, f"{rule} (rows {shown}; {len(bad)} rows)",
                                     fills[name].iloc[bad[0]]))

    qty = pd.to_numeric(fills["qty"], errors="coerce").to_numpy(np.float64)
    price = pd.to_numeric(fills["price"], errors="coerce").to_numpy(np.float64)
    rows(~fills["side"].isin(["buy", "sell"]).to_numpy(), "side", "must be buy or sell")
    rows(~(np.isfinite(qty) & (np.rint(np.nan_to_num(qty) * _SCALE) >= 1)), "qty",
         f"must be a number >= {QTY_STEP:g} units")
    rows(~np.isfinite(price), "price", "must be a finite number")
    rows(fills["ts"].isna().to_numpy(), "ts", "must be a timestamp")
    rows(fills["exec_id"].isna().to_numpy(), "exec_id", "must be present")
    if not fills["exec_id"].is_unique:  # cheap test first: duplicates across users are legal
        rows(fills.duplicated(["user_id", "exec_id"]).to_numpy(), "exec_id",
             "must be unique per user")
    if errors:
        raise FillsError(errors)
