"""Positions as of t: from the user's fills (regrouped by the trade history's own code) or,
for a trader with only statements, the latest imported positions statement; marked to the
last closed daily bar, on the price basis in force at t.

Sources, in order: a user with broker fills executed by t is read from them (flat is a known
answer: no open trade); otherwise the latest ``positions_statements`` row set with as_of <= t;
otherwise there is no positions source (``PositionsRead.reason`` says so).

Prices on the as-of basis: a fill, an intent's stop, a stop given by hand and a statement are
put on the basis of t by the splits with ex-date in (their time, t] (``buddy.data.splits``);
quantities are multiplied by the same divisor, so value and P&L are unchanged.

Open risk is the loss from the mark to the stop (account currency, never negative: a stop
beyond the mark in the position's favour locks in a gain); a position without a known stop
has an unknown open risk (NaN), never 0.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from buddy.data.splits import split_factor_as_of, split_factor_of_times
from buddy.errors import FieldError, FieldErrors
from buddy.store.bars import bars_closed_by, instrument_row, symbol_actions
from buddy.store.portfolio import (
    count_fills,
    fills_until,
    latest_statement,
    replace_statements,
    user_stops_given_by,
)
from buddy.store.trades import read_link_inputs
from buddy.trades.grouping import group_fills
from buddy.trades.linking import DEFAULT_LINK_RULE, link_intents, risk_columns
from buddy.validation import symbol_errors

if TYPE_CHECKING:
    from buddy.store import Store

#: The bars a position is marked to and its returns are read from.
DAILY = "1d"
#: "No as-of": the last representable time, to the microsecond a datetime carries.
_END_OF_TIME = pd.Timestamp.max.replace(nanosecond=0).tz_localize("UTC")
#: The finest step of a stored time (DuckDB keeps microseconds): "just before t" is t - _TICK.
_TICK = pd.Timedelta(microseconds=1)

#: Columns of a positions frame before marking (``PositionsRead.frame``).
BASE_COLUMNS: tuple[str, ...] = (
    "symbol", "qty", "avg_price", "open_ts", "stop", "stop_source", "trade_id")

#: Columns ``mark_positions`` adds.
MARK_COLUMNS: tuple[str, ...] = (
    "mark", "mark_ts", "market_value", "weight_pct", "unrealized_pnl", "open_risk",
    "open_risk_pct", "sector", "asset_class", "benchmark", "currency", "multiplier")

#: Columns of a statement file (``buddy positions import``); stop and equity may be absent.
STATEMENT_REQUIRED: tuple[str, ...] = ("symbol", "qty", "avg_price", "as_of")
STATEMENT_OPTIONAL: tuple[str, ...] = ("stop", "equity")


class PositionsImportError(FieldErrors):
    """A positions statement broke a rule; nothing was written."""

    what = "positions statement"


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionsRead:
    """The user's positions as of t (BASE_COLUMNS, prices on t's basis) and where they came
    from: ``source`` is "fills" or "statement", None with ``reason`` when there is none."""

    frame: pd.DataFrame | None
    source: str | None
    statement_as_of: pd.Timestamp | None = None
    reason: str | None = None


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def basis_divisor(store: Store, symbol: str, times: Any, as_of: Any) -> np.ndarray:
    """Return, per time (UTC), the divisor that puts a price of ``symbol`` quoted then on the
    basis in force at ``as_of`` (1.0 where no split lies in between, or the symbol is
    unknown)."""
    stamps = pd.to_datetime(pd.Series(times), utc=True)
    instrument = instrument_row(store, symbol)
    actions = symbol_actions(store, symbol)
    if instrument is None or actions.empty or not len(stamps):
        return np.ones(len(stamps), dtype=np.float64)
    return split_factor_of_times(stamps, str(instrument["timezone"]), actions, as_of)


def _empty_base() -> pd.DataFrame:
    return _EMPTY_BASE.copy()


_EMPTY_BASE = pd.DataFrame({c: pd.Series(dtype=object if c in ("symbol", "stop_source",
                                                                "trade_id") else "float64")
                            for c in BASE_COLUMNS}).astype({"open_ts": "datetime64[ns, UTC]"})


@dataclass(frozen=True, slots=True, kw_only=True)
class FillInputs:
    """A user's whole fill history and linking inputs, read once (a job reads them once for
    many times t; ``positions_from_fills`` slices them at each t)."""

    user_id: str
    fills: pd.DataFrame
    intents: pd.DataFrame
    user_stops: pd.DataFrame  # trade_id, stop, given_at, symbol
    multipliers: dict[str, float]
    # what is shared by every t (the ledger per split basis, sorted times, the user, daily
    # closes per basis): a job or a replay asks for thousands of times t
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def known_at(self, t: pd.Timestamp, store: Store) -> tuple[int, int, int]:
        """Return what is in force at ``t``: the numbers of fills, stops given and splits of
        the user's symbols (ex-date by t's UTC date) (a memo key). Intents need no count:
        only those logged by the last fill can be linked (``positions_from_fills``)."""
        if "times" not in self.memo:
            def ns(values: Any) -> np.ndarray:
                return np.sort(pd.DatetimeIndex(pd.to_datetime(values, utc=True))
                               .as_unit("ns").asi8)
            symbols = sorted(set(self.fills["symbol"].astype(str)))
            ex_dates = [symbol_actions(store, s)["ex_date"] for s in symbols]
            dates = pd.concat(ex_dates) if ex_dates else pd.Series(dtype="datetime64[ns]")
            self.memo["times"] = (
                ns(self.fills["ts"]), ns(self.user_stops["given_at"])
                if len(self.user_stops) else np.array([], np.int64),
                np.sort(pd.DatetimeIndex(pd.to_datetime(dates)).as_unit("ns").asi8))
        fills, stops, splits = self.memo["times"]
        day = t.tz_convert("UTC").tz_localize(None).normalize().as_unit("ns").value
        return (int(np.searchsorted(fills, t.value, side="right")),
                int(np.searchsorted(stops, t.value, side="right")),
                int(np.searchsorted(splits, day, side="right")))

    def fills_by(self, t: pd.Timestamp, store: Store, *, before: bool = False) -> int:
        """Return how many of the fills were executed at or before ``t`` (``before``:
        strictly before)."""
        self.known_at(t, store)
        times = self.memo["times"][0]
        return int(np.searchsorted(times, t.value, side="left" if before else "right"))

    def ledger(self, store: Store, t: pd.Timestamp, *, before: bool = False
               ) -> PositionLedger:
        """Return a grouping of the fills that answers for ``t`` (``before``: just before t)
        on the split basis in force at t: the whole history, grouped once per basis (the
        splits of the user's symbols with ex-date by t's UTC date), from the second time t
        asked for on; for the first, only the fills its open trades need
        (``open_segments``): an interactive evaluation asks for one t, and grouping the
        whole history would cost it more than the regroup it replaces."""
        key = ("ledger", self.known_at(t, store)[2])
        found: PositionLedger | None = self.memo.get(key)
        if found is not None:
            return found
        asked = self.memo.setdefault("times_asked", set())
        asked.add(t.value)
        if len(asked) == 1:
            cut = ("ledger_at", t.value, before)
            if cut not in self.memo:
                self.memo[cut] = PositionLedger.build(store, self, t, open_at=t,
                                                      before=before)
            ledger: PositionLedger = self.memo[cut]
            return ledger
        ledger = self.memo[key] = PositionLedger.build(store, self, t)
        return ledger

    @classmethod
    def read(cls, store: Store, user_id: str, as_of: Any | None = None) -> FillInputs:
        """Return the user's fills, intents and stops (those by ``as_of`` when given)."""
        t = _utc(as_of if as_of is not None else _END_OF_TIME)
        fills = fills_until(store, user_id, t.to_pydatetime())
        symbols = sorted(fills["symbol"].astype(str).unique())
        link = read_link_inputs(store, user_id, symbols) if symbols else {
            "intents": pd.DataFrame(), "multipliers": {}}
        return cls(user_id=user_id, fills=fills, intents=link["intents"],
                   user_stops=user_stops_given_by(store, user_id, t.to_pydatetime()),
                   multipliers=link["multipliers"])


def positions_from_fills(store: Store, user_id: str, as_of: Any, *,
                         inputs: FillInputs | None = None, before: bool = False
                         ) -> pd.DataFrame:
    """Return the user's open positions as of ``as_of`` (BASE_COLUMNS) from the fills executed
    by then (``before``: strictly before ``as_of``), grouped by the trade history's code
    (``buddy.trades.grouping``, ``buddy.trades.linking``), linked to the intents logged by
    then, with the stops given by hand by then, on the split basis of ``as_of``.

    ``inputs``: the user's history read once (``FillInputs.read``): its fills are grouped
    once per split basis (``PositionLedger``) and each time is a slice of that."""
    t = _utc(as_of)
    source = inputs if inputs is not None else FillInputs.read(store, user_id, t)
    return source.ledger(store, t, before=before).positions(t, before=before)


def open_segments(fills: pd.DataFrame, window: pd.Timedelta) -> pd.DataFrame:
    """Return the fills (time-ordered per symbol, quantities on one split basis) that the
    still-open trades need: per symbol not flat after its last fill, the fills from the last
    flat point at or before (the open trade's first fill - ``window``), so that grouping and
    intent linking (an intent belongs to the earliest trade within its window) give the open
    trades exactly what a regroup of every fill gives. Flat symbols are left out."""
    if fills.empty:
        return fills
    sign = np.where(fills["side"].to_numpy(object) == "buy", 1, -1)
    units = np.rint(fills["qty"].to_numpy(np.float64) * 1e8).astype(np.int64) * sign
    keep = np.zeros(len(fills), dtype=bool)
    ts = pd.to_datetime(fills["ts"], utc=True).to_numpy()
    for rows in fills.groupby("symbol", sort=False).indices.values():
        position = np.cumsum(units[rows])
        if position[-1] == 0:
            continue
        flat = np.flatnonzero(position == 0)
        first_open = rows[flat[-1] + 1] if len(flat) else rows[0]
        horizon = ts[first_open] - window.to_timedelta64()
        early = flat[ts[rows[flat]] <= horizon] if len(flat) else flat
        start = early[-1] + 1 if len(early) else 0
        keep[rows[start:]] = True
    return fills[keep]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class PositionLedger:
    """A user's fills grouped once into trades (FIFO, flat to flat, linked to intents) on the
    split basis in force at every t with the same splits, and, after each fill part, what a
    regroup of the fills up to that part says of its trade.

    Arrays are per part (a ``trade_fills`` row: a fill that crosses zero is two), in
    (symbol, time, arrival) order, ``bounds`` the first part of each of ``symbols`` then the
    end: ``ts`` (ns UTC); ``qty`` the trade's signed position after the part (units);
    ``avg_price`` the cost per unit of what is then open (FIFO; NaN when flat); ``open_ts``
    (ns UTC) and ``trade_id`` of the trade; ``stop`` and ``stop_source`` (P, 2): the
    trade's initial stop and its source as ``buddy.trades.linking.risk_columns`` gives them
    for the entries up to the part, without (column 0) and with (column 1) the stop the
    trader gave by hand, which counts from ``user_stop_from`` (ns UTC; never when no stop
    was given).

    Why a slice equals a regroup at t: positions are cumulative sums from flat, so the
    trades up to t and their running figures do not depend on later fills; an intent links
    only to a trade it was logged by the first fill of, and to the earliest such trade, so
    later intents and trades change no link of a trade open at t; and a split basis depends
    only on the splits in force, the key the ledger is kept under.
    """

    symbols: tuple[str, ...]
    bounds: np.ndarray
    ts: np.ndarray
    qty: np.ndarray
    avg_price: np.ndarray
    open_ts: np.ndarray
    trade_id: np.ndarray
    stop: np.ndarray
    stop_source: np.ndarray
    user_stop_from: np.ndarray

    @classmethod
    def build(cls, store: Store, inputs: FillInputs, t: pd.Timestamp, *,
              open_at: pd.Timestamp | None = None, before: bool = False) -> PositionLedger:
        """Group ``inputs``' fills on the split basis in force at ``t`` (every price and
        quantity on it, so the ledger serves every time with the same splits in force).
        ``open_at``: group only the fills by then (``before``: strictly before) that its
        open trades need (``open_segments``): a ledger that answers for that time alone."""
        fills = inputs.fills
        if open_at is not None:
            times = pd.to_datetime(fills["ts"], utc=True)
            fills = fills[((times < open_at) if before else (times <= open_at)).to_numpy()]
        if fills.empty:
            return cls._empty()
        fills = fills.copy()
        for symbol, rows in fills.groupby("symbol", sort=False).groups.items():
            divisor = basis_divisor(store, str(symbol), fills.loc[rows, "ts"], t)
            fills.loc[rows, "price"] = fills.loc[rows, "price"].to_numpy(np.float64) / divisor
            fills.loc[rows, "qty"] = fills.loc[rows, "qty"].to_numpy(np.float64) * divisor
        if open_at is not None:  # on t's basis: a split inside a trade keeps it flat at zero
            fills = open_segments(fills, pd.Timedelta(DEFAULT_LINK_RULE.window))
            if fills.empty:
                return cls._empty()
        intents = inputs.intents
        if len(intents):
            wanted = intents["symbol"].isin(set(fills["symbol"].astype(str))).to_numpy()
            if open_at is not None:  # a later intent links to no trade open by then
                wanted = wanted & (pd.to_datetime(intents["as_of"], utc=True)
                                   <= open_at).to_numpy()
            intents = intents[wanted].reset_index(drop=True)
            for symbol, rows in intents.groupby("symbol", sort=False).groups.items():
                divisor = basis_divisor(store, str(symbol), intents.loc[rows, "as_of"], t)
                for column in ("proposed_entry", "proposed_stop", "proposed_target"):
                    intents.loc[rows, column] = (
                        intents.loc[rows, column].to_numpy(np.float64) / divisor)
        grouped = group_fills(fills, method="fifo", multipliers=inputs.multipliers)
        trades = grouped.trades
        parts = grouped.trade_fills
        trade_id = parts["trade_id"].to_numpy(object)
        trade_no = pd.Index(trades["trade_id"]).get_indexer(trade_id)
        of_trade = trades.iloc[trade_no].reset_index(drop=True)
        qty = parts["qty"].to_numpy(np.float64)
        value = qty * parts["price"].to_numpy(np.float64)
        entry = parts["fill_type"].isin(["open", "add"]).to_numpy()
        direction = np.where(of_trade["side"].to_numpy(object) == "long", 1.0, -1.0)
        multiplier = of_trade["multiplier"].to_numpy(np.float64)
        # the entry cost an exit part was matched against, from its realised P&L
        matched = np.where(entry, 0.0, value - parts["realized_pnl"].to_numpy(np.float64)
                           / (direction * multiplier))

        def running(values: np.ndarray) -> np.ndarray:
            return pd.Series(values).groupby(trade_no).cumsum().to_numpy(np.float64)

        entry_cost = running(np.where(entry, value, 0.0))
        entered = running(np.where(entry, qty, 0.0))
        after = parts["position_after"].to_numpy(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            avg_price = np.where(after != 0, (entry_cost - running(matched)) / np.abs(after),
                                 np.nan)
        state = pd.DataFrame({
            "trade_id": trade_id, "side": of_trade["side"].to_numpy(object),
            "avg_entry": entry_cost / entered, "qty": entered, "multiplier": multiplier,
            "pnl": np.nan, "status": "open",
            "first_fill_price": of_trade["first_fill_price"].to_numpy(np.float64)})
        links = link_intents(trades, intents, DEFAULT_LINK_RULE).iloc[trade_no]
        given = _user_stops_on_basis(store, inputs.user_stops, t)
        plain = risk_columns(state, links.reset_index(drop=True), intents, {})
        with_user = risk_columns(state, links.reset_index(drop=True), intents,
                                 {k: v[0] for k, v in given.items()})
        never = np.iinfo(np.int64).max
        symbol = of_trade["symbol"].astype(str).to_numpy(object)
        symbols, first = np.unique(symbol, return_index=True)
        return cls(
            symbols=tuple(str(s) for s in symbols),
            bounds=np.r_[first, len(symbol)].astype(np.int64),
            ts=_ns(parts["ts"]), qty=after, avg_price=avg_price,
            open_ts=_ns(of_trade["open_ts"]), trade_id=trade_id,
            stop=np.column_stack([plain["initial_stop"].to_numpy(np.float64),
                                  with_user["initial_stop"].to_numpy(np.float64)]),
            stop_source=np.column_stack([plain["r_source"].astype(str).to_numpy(object),
                                         with_user["r_source"].astype(str).to_numpy(object)]),
            user_stop_from=np.array([given[k][1] if k in given else never
                                     for k in trade_id], dtype=np.int64))

    @classmethod
    def _empty(cls) -> PositionLedger:
        none = np.array([], dtype=np.float64)
        return cls(symbols=(), bounds=np.zeros(1, np.int64), ts=none.astype(np.int64),
                   qty=none, avg_price=none, open_ts=none.astype(np.int64),
                   trade_id=none.astype(object), stop=none.reshape(0, 2),
                   stop_source=none.astype(object).reshape(0, 2),
                   user_stop_from=none.astype(np.int64))

    def open_parts(self, t: pd.Timestamp, *, before: bool = False) -> np.ndarray:
        """Return, per symbol with a trade open at ``t`` (after the fills at or before t;
        ``before``: strictly before t), the index of the trade's last part by then."""
        side: Literal["left", "right"] = "left" if before else "right"
        found = []
        for k in range(len(self.symbols)):
            lo, hi = int(self.bounds[k]), int(self.bounds[k + 1])
            i = lo + int(np.searchsorted(self.ts[lo:hi], t.value, side=side)) - 1
            if i >= lo and self.qty[i] != 0:
                found.append(i)
        return np.array(found, dtype=np.int64)

    def positions(self, t: pd.Timestamp, *, before: bool = False) -> pd.DataFrame:
        """Return the open positions at ``t`` (BASE_COLUMNS, by symbol) on the ledger's
        basis: the fills at or before t (``before``: strictly before), the stops given by
        hand by then."""
        rows = self.open_parts(t, before=before)
        if not len(rows):
            return _empty_base()
        given = self.user_stop_from[rows]
        column = (given < t.value if before else given <= t.value).astype(np.int64)
        return pd.DataFrame({
            "symbol": np.asarray(self.symbols, dtype=object)[
                np.searchsorted(self.bounds, rows, side="right") - 1],
            "qty": self.qty[rows],
            "avg_price": self.avg_price[rows],
            "open_ts": pd.DatetimeIndex(self.open_ts[rows], tz="UTC"),
            "stop": self.stop[rows, column],
            "stop_source": self.stop_source[rows, column],
            "trade_id": self.trade_id[rows],
        })


def _ns(values: Any) -> np.ndarray:
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns").asi8


def _user_stops_on_basis(store: Store, given: pd.DataFrame, t: pd.Timestamp
                         ) -> dict[str, tuple[float, int]]:
    """Return trade_id -> (the stop given by hand on t's split basis, when it was given in
    ns UTC)."""
    out: dict[str, tuple[float, int]] = {}
    if not len(given):
        return out
    times = pd.DatetimeIndex(pd.to_datetime(given["given_at"], utc=True))
    for i, (trade_id, stop, _, symbol) in enumerate(given.itertuples(index=False)):
        divisor = 1.0 if not isinstance(symbol, str) else float(
            basis_divisor(store, symbol, [times[i]], t)[0])
        out[str(trade_id)] = (float(stop) / divisor, int(times[i].as_unit("ns").value))
    return out


def positions_from_statement(store: Store, user_id: str, as_of: Any
                             ) -> tuple[pd.DataFrame, pd.Timestamp | None]:
    """Return the positions of the user's latest statement with as_of <= ``as_of``
    (BASE_COLUMNS, on the basis of ``as_of``) and that statement's time (None when none)."""
    t = _utc(as_of)
    rows = latest_statement(store, user_id, t.to_pydatetime())
    if rows.empty:
        return _empty_base(), None
    stated = _utc(rows["as_of"].iloc[0])
    divisor = np.concatenate([basis_divisor(store, str(s), [stated], t)
                              for s in rows["symbol"]])
    stop = rows["stop"].astype("float64").to_numpy()
    return pd.DataFrame({
        "symbol": rows["symbol"].astype(str).to_numpy(object),
        "qty": rows["qty"].to_numpy(np.float64) * divisor,
        "avg_price": rows["avg_price"].to_numpy(np.float64) / divisor,
        "open_ts": pd.DatetimeIndex([pd.NaT] * len(rows), tz="UTC"),
        "stop": stop / divisor,
        "stop_source": np.where(np.isnan(stop), "none", "statement").astype(object),
        "trade_id": np.full(len(rows), None, dtype=object),
    }), stated


def read_positions_as_of(store: Store, user_id: str, as_of: Any, *,
                         inputs: FillInputs | None = None, before: bool = False
                         ) -> PositionsRead:
    """Return the user's positions as of ``as_of`` from their source (fills, else the latest
    statement), or no frame and the reason when the user has neither by then (``inputs``:
    the user's fill history read once, see ``positions_from_fills``).

    ``before``: the book just before ``as_of`` (the fills strictly before it, on its split
    basis); when the user's first fill is at ``as_of``, the latest statement before it, else
    flat."""
    t = _utc(as_of)
    if inputs is not None:
        at = inputs.fills_by(t, store)
        earlier = inputs.fills_by(t, store, before=True) if before else at
    else:
        at = count_fills(store, user_id, t.to_pydatetime())
        earlier = (count_fills(store, user_id, (t - _TICK).to_pydatetime())
                   if before and at else at)
    if earlier:
        return PositionsRead(frame=positions_from_fills(store, user_id, t, inputs=inputs,
                                                        before=before), source="fills")
    if at:  # ``before`` and the first fill is at t
        frame, stated = positions_from_statement(store, user_id, t - _TICK)
        if stated is not None:
            return PositionsRead(frame=frame, source="statement", statement_as_of=stated)
        return PositionsRead(frame=_empty_base(), source="fills")
    frame, stated = positions_from_statement(store, user_id, t)
    if stated is not None:
        return PositionsRead(frame=frame, source="statement", statement_as_of=stated)
    return PositionsRead(frame=None, source=None, reason=(
        f"user {user_id} has no broker fills and no positions statement as of "
        f"{t.isoformat()}: import fills (`buddy trades import`) or a statement "
        f"(`buddy positions import FILE --user {user_id}`)"))


def mark_positions(store: Store, positions: pd.DataFrame, as_of: Any, equity: float | None,
                   base_currency: str | None, *,
                   last_close: Callable[[str], tuple[float, pd.Timestamp] | None] | None = None,
                   instrument: Callable[[str], dict[str, Any] | None] | None = None
                   ) -> pd.DataFrame:
    """Return ``positions`` with MARK_COLUMNS: the close of the last daily bar closed by
    ``as_of`` on its basis (NaN when none), market value and unrealized P&L (instrument
    currency), weight and open risk % of equity (signed weight; NaN when the equity is unknown
    or the instrument's currency is not the account's), and the instrument's sector, asset
    class, benchmark, currency and multiplier. ``last_close(symbol)``: (close on t's basis,
    its ts_close) of the last daily bar closed by t, or None (default: read here);
    ``instrument(symbol)``: its tickers row (default: ``instrument_row``)."""
    t = _utc(as_of)
    last_close = last_close or partial(_last_daily_close, store, t)
    instrument_of = instrument or partial(instrument_row, store)
    out = positions.reset_index(drop=True)
    n = len(out)
    mark = np.full(n, np.nan)
    mark_ns = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)  # NaT where no bar
    info: dict[str, list[Any]] = {k: [None] * n for k in
                                  ("sector", "asset_class", "benchmark", "currency")}
    multiplier = np.ones(n)
    for i, symbol in enumerate(out["symbol"].astype(str)):
        row = instrument_of(symbol)
        if row is not None:
            for key in info:
                value = row.get(key)
                info[key][i] = None if value is None or (isinstance(value, float)
                                                         and math.isnan(value)) else str(value)
            multiplier[i] = float(row.get("contract_multiplier") or 1.0)
        found = last_close(symbol)
        if found is not None:
            mark[i], mark_ns[i] = found[0], found[1].as_unit("ns").value
    qty = out["qty"].to_numpy(np.float64)
    stop = out["stop"].to_numpy(np.float64)
    value = qty * mark * multiplier
    same_currency = np.array([c is not None and c == base_currency for c in info["currency"]],
                             dtype=bool)
    scale = (np.where(same_currency, 100.0 / equity, np.nan)
             if equity is not None and equity > 0 else np.full(n, np.nan))
    risk = np.maximum((mark - stop) * np.sign(qty), 0.0) * np.abs(qty) * multiplier
    # one frame of the new columns beside the old: a column set at a time costs ~0.3 ms
    # each, and this runs once per time t of a replay or a job
    marked = pd.DataFrame({
        "mark": mark,
        "mark_ts": pd.DatetimeIndex(mark_ns, tz="UTC"),
        "market_value": value,
        "weight_pct": value * scale,
        "unrealized_pnl": (mark - out["avg_price"].to_numpy(np.float64)) * qty * multiplier,
        "open_risk": risk,  # NaN where the stop or the mark is unknown
        "open_risk_pct": risk * scale,
        **{key: np.asarray(values, dtype=object) for key, values in info.items()},
        "multiplier": multiplier})
    stale = [c for c in MARK_COLUMNS if c in out.columns]
    return pd.concat([out.drop(columns=stale) if stale else out, marked], axis=1)


def _last_daily_close(store: Store, t: pd.Timestamp, symbol: str
                      ) -> tuple[float, pd.Timestamp] | None:
    bars = bars_closed_by(store, symbol, DAILY, t)
    if bars.empty:
        return None
    last = bars.iloc[-1]
    actions = symbol_actions(store, symbol)
    divisor = 1.0 if actions.empty else float(
        split_factor_as_of(pd.Series([last["session"]]), actions, t)[0])
    return float(last["close"]) / divisor, _utc(last["ts_close"])


# ---------------------------------------------------------------------------- import
@dataclass(frozen=True, slots=True, kw_only=True)
class StatementImport:
    """What ``import_positions`` wrote."""

    user_id: str
    path: str
    statements: int
    rows: int
    equity_rows: int
    current: bool  # the user's current positions table was replaced by the latest statement

    def __str__(self) -> str:
        return (f"{self.user_id}: {self.rows} positions in {self.statements} statement(s) from "
                f"{self.path}" + (f", {self.equity_rows} equity value(s)" if self.equity_rows
                                  else "") +
                ("; current positions replaced" if self.current else ""))


def _number(value: str, field: str, row: int, errors: list[FieldError], *,
            positive: bool = False, nonzero: bool = False, optional: bool = False
            ) -> float:
    text = (value or "").strip()
    name = f"row {row}: {field}"
    if not text:
        if not optional:
            errors.append(FieldError(name, "is required", value))
        return math.nan
    try:
        number = float(text)
    except ValueError:
        errors.append(FieldError(name, "must be a number", value))
        return math.nan
    if not math.isfinite(number):
        errors.append(FieldError(name, "must be finite", value))
    elif positive and number <= 0:
        errors.append(FieldError(name, "must be > 0", value))
    elif nonzero and number == 0:
        errors.append(FieldError(name, "must not be 0 (a closed position is left out)", value))
    return number


def parse_statement(path: str | os.PathLike[str], user_id: str, known_symbols: set[str]
                    ) -> pd.DataFrame:
    """Return a statement file's rows (symbol, qty, avg_price, stop, equity, as_of UTC),
    validated whole; raise PositionsImportError listing every broken rule."""
    errors: list[FieldError] = []
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in STATEMENT_REQUIRED if c not in header]
        unknown = [c for c in header if c not in STATEMENT_REQUIRED + STATEMENT_OPTIONAL]
        if missing:
            errors.append(FieldError("columns", "must include " + ", ".join(STATEMENT_REQUIRED),
                                     header))
        if unknown:
            errors.append(FieldError("columns", "unknown column(s); allowed: " + ", ".join(
                STATEMENT_REQUIRED + STATEMENT_OPTIONAL), unknown))
        if errors:
            raise PositionsImportError(errors)
        raw = [{k.strip(): (v or "") for k, v in r.items() if k is not None} for r in reader]
    if not raw:
        raise PositionsImportError([FieldError("rows", "the file holds no positions", str(path))])
    records = []
    for row_no, r in enumerate(raw, start=1):
        symbol_problems = symbol_errors(r["symbol"], field=f"row {row_no}: symbol")
        errors.extend(symbol_problems)
        symbol = r["symbol"].strip().upper()
        if not symbol_problems and symbol not in known_symbols:
            errors.append(FieldError(f"row {row_no}: symbol", "is not a known instrument "
                                     "(load it into tickers first)", r["symbol"]))
        qty = _number(r["qty"], "qty", row_no, errors, nonzero=True)
        price = _number(r["avg_price"], "avg_price", row_no, errors, positive=True)
        stop = _number(r.get("stop", ""), "stop", row_no, errors, positive=True, optional=True)
        equity = _number(r.get("equity", ""), "equity", row_no, errors, positive=True,
                         optional=True)
        try:
            stamp = pd.Timestamp(r["as_of"].strip())
            if stamp.tzinfo is None:
                errors.append(FieldError(f"row {row_no}: as_of", "must carry a UTC offset "
                                         "(e.g. 2024-05-31T20:00:00Z)", r["as_of"]))
            else:
                stamp = stamp.tz_convert("UTC")
        except (ValueError, TypeError):
            errors.append(FieldError(f"row {row_no}: as_of", "must be an ISO time with an "
                                     "offset", r["as_of"]))
            stamp = pd.NaT
        records.append({"user_id": user_id, "symbol": symbol, "qty": qty, "avg_price": price,
                        "stop": stop, "equity": equity, "as_of": stamp, "row": row_no})
    frame = pd.DataFrame(records)
    if not errors:
        duplicated = frame.duplicated(["as_of", "symbol"], keep="first")
        errors.extend(FieldError(f"row {r}: symbol", "appears twice in one statement (as_of)",
                                 s) for r, s in zip(frame.loc[duplicated, "row"],
                                                    frame.loc[duplicated, "symbol"], strict=True))
        for stamp, group in frame.groupby("as_of"):
            values = group["equity"].dropna().unique()
            if len(values) > 1:
                errors.append(FieldError(f"rows {', '.join(map(str, group['row']))}: equity",
                                         f"one equity per statement (as_of {stamp})",
                                         list(values)))
    if errors:
        raise PositionsImportError(errors)
    return frame.drop(columns="row")


def import_positions(store: Store, path: str | os.PathLike[str], *, user_id: str
                     ) -> StatementImport:
    """Import a positions statement CSV (symbol, qty signed, avg_price, as_of with offset;
    optional stop and equity) for ``user_id``: validated whole, then written in ONE
    transaction per file, replacing any statement of the same user and as_of (importing a
    file twice writes the same rows). The latest statement becomes the user's current
    ``positions`` when the user has no broker fills."""
    from buddy.users.store import get_user

    tickers = store.tickers()
    frame = parse_statement(path, user_id, set(tickers["symbol"].astype(str)))
    now = pd.Timestamp.now(tz="UTC")  # the edge: when the import ran
    rows = frame.assign(source_file=str(path), imported_at=now)
    user = get_user(store, user_id)
    currency = user.account.base_currency if user is not None else "USD"
    equity = (frame.dropna(subset=["equity"]).drop_duplicates("as_of")[["as_of", "equity"]]
              .assign(user_id=user_id, base_currency=currency,
                      source=f"statement {Path(path).name}", recorded_at=now))
    latest = frame[frame["as_of"] == frame["as_of"].max()]
    current = None
    if not count_fills(store, user_id):
        current = pd.DataFrame({
            "user_id": user_id, "symbol": latest["symbol"], "qty": latest["qty"],
            "avg_price": latest["avg_price"], "open_ts": latest["as_of"],
            "unrealized_pnl": np.nan,  # needs a mark: the snapshot computes it as of t
            "risk_est_optional": ((latest["avg_price"] - latest["stop"]).abs()
                                  * latest["qty"].abs()),
            "updated_at": now})
    written = replace_statements(store, user_id, rows, equity, current)
    return StatementImport(user_id=user_id, path=str(path),
                           statements=int(frame["as_of"].nunique()), rows=written,
                           equity_rows=len(equity), current=current is not None)

