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
from typing import TYPE_CHECKING, Any

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
from buddy.trades.linking import DEFAULT_LINK_RULE
from buddy.trades.service import build_trade_rows
from buddy.validation import symbol_errors

if TYPE_CHECKING:
    from buddy.store import Store

#: The bars a position is marked to and its returns are read from.
DAILY = "1d"
#: "No as-of": the last representable time, to the microsecond a datetime carries.
_END_OF_TIME = pd.Timestamp.max.replace(nanosecond=0).tz_localize("UTC")

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
    return pd.DataFrame({c: pd.Series(dtype=object if c in ("symbol", "stop_source",
                                                             "trade_id") else "float64")
                         for c in BASE_COLUMNS}).astype({"open_ts": "datetime64[ns, UTC]"})


@dataclass(frozen=True, slots=True, kw_only=True)
class FillInputs:
    """A user's whole fill history and linking inputs, read once (a job reads them once for
    many times t; ``positions_from_fills`` cuts them at each t)."""

    user_id: str
    fills: pd.DataFrame
    intents: pd.DataFrame
    user_stops: pd.DataFrame  # trade_id, stop, given_at, symbol
    multipliers: dict[str, float]
    # results already computed for an earlier t with the same inputs in force (a job asks
    # for thousands of times t; positions change only with a fill, an intent, a stop or a
    # split): keyed by what is known at t
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


def open_segments(fills: pd.DataFrame, window: pd.Timedelta) -> pd.DataFrame:
    """Return the fills (time-ordered per symbol) that the still-open trades need: per symbol
    not flat after its last fill, the fills from the last flat point at or before (the open
    trade's first fill - ``window``), so that grouping and intent linking (an intent belongs
    to the earliest trade within its window) give the open trades exactly what a regroup of
    every fill gives. Flat symbols are left out."""
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


def positions_from_fills(store: Store, user_id: str, as_of: Any, *,
                         inputs: FillInputs | None = None) -> pd.DataFrame:
    """Return the user's open positions as of ``as_of`` (BASE_COLUMNS) from the fills executed
    by then, grouped by ``buddy.trades.service.build_trade_rows`` (the trade history's code),
    linked to the intents logged by then, with the stops given by hand by then.

    ``inputs``: the user's history read once (``FillInputs.read``), cut here at ``as_of``.
    Only the fills the open trades need are grouped (``open_segments``)."""
    t = _utc(as_of)
    if inputs is not None:
        key = ("positions", *inputs.known_at(t, store))
        if key not in inputs.memo:
            inputs.memo[key] = _positions_from_fills(store, t, inputs)
        return inputs.memo[key].copy()
    return _positions_from_fills(store, t, FillInputs.read(store, user_id, t))


def _positions_from_fills(store: Store, t: pd.Timestamp, source: FillInputs) -> pd.DataFrame:
    times = pd.to_datetime(source.fills["ts"], utc=True)
    fills = source.fills[times <= t]
    if fills.empty:
        return _empty_base()
    # an intent links to a trade only if logged by the trade's first fill: the intents
    # logged after the last fill by t change nothing (so the memo key need not count them)
    last_fill = times[times <= t].max()
    fills = open_segments(fills, pd.Timedelta(DEFAULT_LINK_RULE.window)).copy()
    if fills.empty:
        return _empty_base()
    for symbol, rows in fills.groupby("symbol", sort=False).groups.items():
        divisor = basis_divisor(store, str(symbol), fills.loc[rows, "ts"], t)
        fills.loc[rows, "price"] = fills.loc[rows, "price"].to_numpy(np.float64) / divisor
        fills.loc[rows, "qty"] = fills.loc[rows, "qty"].to_numpy(np.float64) * divisor
    symbols = set(fills["symbol"].astype(str))
    intents = source.intents
    if len(intents):
        intents = intents[(pd.to_datetime(intents["as_of"], utc=True) <= last_fill).to_numpy()
                          & intents["symbol"].isin(symbols).to_numpy()].copy()
        for symbol, rows in intents.groupby("symbol", sort=False).groups.items():
            divisor = basis_divisor(store, str(symbol), intents.loc[rows, "as_of"], t)
            for column in ("proposed_entry", "proposed_stop", "proposed_target"):
                intents.loc[rows, column] = (intents.loc[rows, column].to_numpy(np.float64)
                                             / divisor)
    link_inputs = {"intents": intents.reset_index(drop=True),
                   "user_stops": _stops_on_basis(store, source.user_stops, t),
                   "multipliers": source.multipliers, "tags": {}}
    trades, _, _ = build_trade_rows(fills, link_inputs, now=t)
    open_trades = trades[trades["status"] == "open"]
    if open_trades.empty:
        return _empty_base()
    stop = open_trades["initial_stop"].astype("float64")
    return pd.DataFrame({
        "symbol": open_trades["symbol"].astype(str).to_numpy(object),
        "qty": open_trades["open_position"].to_numpy(np.float64),
        "avg_price": open_trades["open_cost_basis"].to_numpy(np.float64),
        "open_ts": pd.DatetimeIndex(pd.to_datetime(open_trades["open_ts"], utc=True)),
        "stop": stop.to_numpy(np.float64),
        "stop_source": open_trades["r_source"].astype(str).to_numpy(object),
        "trade_id": open_trades["trade_id"].astype(str).to_numpy(object),
    }).sort_values("symbol").reset_index(drop=True)


def _stops_on_basis(store: Store, given: pd.DataFrame, t: pd.Timestamp) -> dict[str, float]:
    out: dict[str, float] = {}
    times = pd.to_datetime(given["given_at"], utc=True) if len(given) else given
    for i, (trade_id, stop, _, symbol) in enumerate(given.itertuples(index=False)):
        if times.iloc[i] > t:
            continue
        divisor = 1.0 if not isinstance(symbol, str) else float(
            basis_divisor(store, symbol, [times.iloc[i]], t)[0])
        out[str(trade_id)] = float(stop) / divisor
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
                         inputs: FillInputs | None = None) -> PositionsRead:
    """Return the user's positions as of ``as_of`` from their source (fills, else the latest
    statement), or no frame and the reason when the user has neither by then (``inputs``:
    the user's fill history read once, see ``positions_from_fills``)."""
    t = _utc(as_of)
    has_fills = (bool((pd.to_datetime(inputs.fills["ts"], utc=True) <= t).any())
                 if inputs is not None else count_fills(store, user_id, t.to_pydatetime()) > 0)
    if has_fills:
        return PositionsRead(frame=positions_from_fills(store, user_id, t, inputs=inputs),
                             source="fills")
    frame, stated = positions_from_statement(store, user_id, t)
    if stated is not None:
        return PositionsRead(frame=frame, source="statement", statement_as_of=stated)
    return PositionsRead(frame=None, source=None, reason=(
        f"user {user_id} has no broker fills and no positions statement as of "
        f"{t.isoformat()}: import fills (`buddy trades import`) or a statement "
        f"(`buddy positions import FILE --user {user_id}`)"))


def mark_positions(store: Store, positions: pd.DataFrame, as_of: Any, equity: float | None,
                   base_currency: str | None, *,
                   last_close: Callable[[str], tuple[float, pd.Timestamp] | None] | None = None
                   ) -> pd.DataFrame:
    """Return ``positions`` with MARK_COLUMNS: the close of the last daily bar closed by
    ``as_of`` on its basis (NaN when none), market value and unrealized P&L (instrument
    currency), weight and open risk % of equity (signed weight; NaN when the equity is unknown
    or the instrument's currency is not the account's), and the instrument's sector, asset
    class, benchmark, currency and multiplier. ``last_close(symbol)``: (close on t's basis,
    its ts_close) of the last daily bar closed by t, or None (default: read here)."""
    t = _utc(as_of)
    last_close = last_close or partial(_last_daily_close, store, t)
    out = positions.copy().reset_index(drop=True)
    n = len(out)
    mark = np.full(n, np.nan)
    mark_ts = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
    info: dict[str, list[Any]] = {k: [None] * n for k in
                                  ("sector", "asset_class", "benchmark", "currency")}
    multiplier = np.ones(n)
    for i, symbol in enumerate(out["symbol"].astype(str)):
        instrument = instrument_row(store, symbol)
        if instrument is not None:
            for key in info:
                value = instrument.get(key)
                info[key][i] = None if value is None or (isinstance(value, float)
                                                         and math.isnan(value)) else str(value)
            multiplier[i] = float(instrument.get("contract_multiplier") or 1.0)
        found = last_close(symbol)
        if found is not None:
            mark[i], mark_ts.iloc[i] = found
    qty = out["qty"].to_numpy(np.float64)
    stop = out["stop"].to_numpy(np.float64)
    value = qty * mark * multiplier
    same_currency = np.array([c is not None and c == base_currency for c in info["currency"]],
                             dtype=bool)
    scale = (np.where(same_currency, 100.0 / equity, np.nan)
             if equity is not None and equity > 0 else np.full(n, np.nan))
    risk = np.maximum((mark - stop) * np.sign(qty), 0.0) * np.abs(qty) * multiplier
    out["mark"] = mark
    out["mark_ts"] = mark_ts.to_numpy()
    out["market_value"] = value
    out["weight_pct"] = value * scale
    out["unrealized_pnl"] = (mark - out["avg_price"].to_numpy(np.float64)) * qty * multiplier
    out["open_risk"] = risk  # NaN where the stop or the mark is unknown
    out["open_risk_pct"] = risk * scale
    for key, values in info.items():
        out[key] = np.asarray(values, dtype=object)
    out["multiplier"] = multiplier
    return out


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

