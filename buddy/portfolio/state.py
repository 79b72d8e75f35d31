"""What is known of a user's portfolio as of t: ``PortfolioState`` and ``portfolio_state``.

Everything is read point-in-time: fills executed by t (or the latest statement by t), the
last daily bar closed by t for the marks, returns from bars with ``ts_close <= t`` on the
split basis in force at t, and the equity known at t. The rules are the user's current rules
version, as the ``account`` piece gives them (rules versions are stamped with wall-clock time,
not market time: ``buddy/users/provider.py``); the state says which version.

Equity as of t: the latest ``account_equity_history`` row with as_of <= t (a statement's
equity, a simulated account's), else the account snapshot when it was written by t
(``buddy.store.accounts.equity_as_of``), else unknown (None): every "% of equity" figure is
then NaN and reported as not checked, never guessed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from buddy.data.splits import split_factor_as_of
from buddy.portfolio.positions import (
    BASE_COLUMNS,
    DAILY,
    MARK_COLUMNS,
    FillInputs,
    mark_positions,
    read_positions_as_of,
)
from buddy.portfolio.risk import log_returns
from buddy.store.accounts import equity_as_of
from buddy.store.bars import bars_closed_by, instrument_row, symbol_actions
from buddy.store.portfolio import equity_history
from buddy.users.model import RiskRules

if TYPE_CHECKING:
    from buddy.store import Store

#: Columns of ``PortfolioState.positions``, one row per held symbol (qty != 0), by symbol:
#: symbol; qty (signed units on t's split basis); avg_price, mark, stop (instrument currency
#: per unit, t's basis; stop NaN when unknown); open_ts; stop_source (intent | user |
#: statement | none | stop_wrong_side); trade_id (None from a statement); mark_ts (the daily
#: bar's close time); market_value, unrealized_pnl, open_risk (instrument currency; open risk
#: NaN when the stop or mark is unknown); weight_pct, open_risk_pct (% of equity, weight
#: signed; NaN when the equity is unknown); sector, asset_class, benchmark, currency
#: (tickers; None when not given); multiplier (contract multiplier).
POSITION_COLUMNS: tuple[str, ...] = BASE_COLUMNS + MARK_COLUMNS

ReturnFrequency = Literal["daily", "weekly"]


@dataclass(frozen=True, slots=True)
class ReturnsWindow:
    """A stated window of log returns: ``frequency`` (daily: one per session of the
    instrument's daily bars; weekly: Friday to Friday closes, complete weeks only) over the
    ``years`` before t (periods ending in (t - years, t])."""

    frequency: ReturnFrequency = "daily"
    years: float = 1.0

    def __post_init__(self) -> None:
        if self.frequency not in ("daily", "weekly"):
            raise ValueError(f"frequency: must be 'daily' or 'weekly' (got {self.frequency!r})")
        if not (isinstance(self.years, int | float) and 0 < self.years <= 20):
            raise ValueError(f"years: must be in (0, 20] (got {self.years!r})")

    def describe(self) -> str:
        """Return the window in words, e.g. '1 year of daily log returns'."""
        years = f"{self.years:g} year" + ("" if self.years == 1 else "s")
        return f"{years} of {self.frequency} log returns"


#: The window of volatility, contributions, VaR and clusters: one year of daily returns.
DAILY_1Y = ReturnsWindow("daily", 1.0)
#: The default window of betas: two years of weekly returns.
WEEKLY_2Y = ReturnsWindow("weekly", 2.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioState:
    """What is known as of ``as_of`` of ``user_id``'s portfolio.

    ``equity`` and ``base_currency`` (None when unknown) with ``equity_source`` saying where
    the value came from; ``positions`` (POSITION_COLUMNS; empty when flat); ``source`` of the
    positions ("fills" or "statement", with ``statement_as_of``); ``rules`` and
    ``rules_version`` (heat limit ``rules.max_open_heat_pct`` etc.); ``window``: the stated
    returns window ``returns`` uses by default; ``extra_symbols``: symbols beyond the held
    ones that ``returns`` includes by default (e.g. an intent's).
    """

    user_id: str
    as_of: pd.Timestamp
    equity: float | None
    base_currency: str | None
    equity_source: str
    positions: pd.DataFrame
    source: str
    statement_as_of: pd.Timestamp | None
    rules: RiskRules
    rules_version: int
    window: ReturnsWindow = DAILY_1Y
    extra_symbols: tuple[str, ...] = ()
    store: Store = field(repr=False, compare=False)
    _closes: dict[str, pd.Series] = field(default_factory=dict, repr=False, compare=False)
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------ positions
    @property
    def symbols(self) -> tuple[str, ...]:
        """Return the held symbols, sorted."""
        return tuple(self.positions["symbol"].astype(str))

    def position_in(self, symbol: str) -> float:
        """Return the signed quantity held in ``symbol`` (units on t's split basis; 0.0 when
        flat): the missing scanner's ExposureHook."""
        rows = self.positions["symbol"].to_numpy(object) == symbol
        return float(self.positions["qty"].to_numpy(np.float64)[rows].sum()) if rows.any() \
            else 0.0

    def weights(self, symbols: Sequence[str] | None = None) -> np.ndarray:
        """Return the signed weight of each of ``symbols`` (held ones when None) as a fraction
        of equity (0 where not held; NaN where held but the weight is unknown)."""
        chosen = self.symbols if symbols is None else tuple(symbols)
        held = dict(zip(self.positions["symbol"].astype(str),
                        self.positions["weight_pct"].to_numpy(np.float64) / 100.0, strict=True))
        return np.array([held.get(s, 0.0) for s in chosen], dtype=np.float64)

    @property
    def heat_pct(self) -> float:
        """Return the open risk to the stops of the positions whose risk is known, % of equity
        (0.0 when flat; else NaN when the equity is unknown). ``unknown_risk_symbols`` names the
        positions left out."""
        risk = self.positions["open_risk_pct"].to_numpy(np.float64)
        if not len(risk):
            return 0.0  # flat: no open risk, whatever the equity
        return math.nan if self.equity is None else float(np.nansum(risk))

    @property
    def unknown_risk_symbols(self) -> tuple[str, ...]:
        """Return the held symbols whose open risk is unknown (no stop, no mark, or no weight
        in the account's currency)."""
        risk = self.positions["open_risk_pct"].to_numpy(np.float64)
        return tuple(self.positions["symbol"].astype(str).to_numpy(object)[np.isnan(risk)])

    # ------------------------------------------------------------ returns
    def daily_closes(self, symbol: str) -> pd.Series:
        """Return ``symbol``'s daily closes on t's split basis, indexed by session date
        (bars with ts_close <= t; empty when none)."""
        if symbol not in self._closes:
            self._closes[symbol] = _daily_closes(self.store, symbol, self.as_of,
                                                 self._memo)[0]
        return self._closes[symbol]

    def returns(self, symbols: Iterable[str] = (), *, window: ReturnsWindow | None = None
                ) -> pd.DataFrame:
        """Return aligned log returns of the held symbols, then ``extra_symbols``, then
        ``symbols`` (each once, in that order) over ``window`` (the state's when None).

        Rows are period ends (session dates; week-ending Fridays for weekly), oldest first,
        within (t - years, t]; a symbol's return is computed on its own bars (a holiday of
        one market does not break another's return) and is NaN on a period it did not trade.
        Columns without any bar are all NaN.
        """
        chosen = window or self.window
        ordered = list(dict.fromkeys((*self.symbols, *self.extra_symbols, *symbols)))
        start = (pd.Timestamp(self.as_of).tz_convert("UTC").tz_localize(None).normalize()
                 - pd.Timedelta(days=365.25 * chosen.years)).as_unit("ns").value
        periods: list[np.ndarray] = []
        values: list[np.ndarray] = []
        unit = None
        for s in ordered:
            if chosen.frequency == "daily":
                ends, r, unit_of = _daily_returns(self.store, s, self.as_of, self._memo)
            else:
                closes = weekly_closes(self.daily_closes(s), self.as_of)
                index = pd.DatetimeIndex(closes.index)
                ends, unit_of = index.as_unit("ns").asi8[1:], index.unit
                r = (log_returns(closes.to_numpy())[:, 0] if len(closes) > 1
                     else np.array([], dtype=np.float64))
            keep = ends > start
            periods.append(ends[keep])
            values.append(r[keep])
            unit = unit or (unit_of if len(ends) else None)
        # aligned by period end over numpy (a frame from a dict of series aligns through
        # pandas indexes: most of the cost of a piece when asked at thousands of times)
        rows = np.unique(np.concatenate(periods)) if periods else np.array([], np.int64)
        table = np.full((len(rows), len(ordered)), np.nan)
        for j, (ends, r) in enumerate(zip(periods, values, strict=True)):
            table[np.searchsorted(rows, ends), j] = r
        index = pd.DatetimeIndex(rows.astype("datetime64[ns]"), name="session")
        return pd.DataFrame(table, index=index.as_unit(unit or "us"), columns=ordered)


def weekly_closes(closes: pd.Series, as_of: pd.Timestamp) -> pd.Series:
    """Return the last close of each complete week (Saturday to Friday), indexed by the
    week's Friday. The week holding t counts only when t's date is past its Friday or its
    Friday session is the last one closed."""
    if closes.empty:
        return closes
    days = pd.DatetimeIndex(closes.index).as_unit("ns").asi8 // 86_400_000_000_000
    week = (days - 2) // 7  # 1970-01-03 was a Saturday: weeks Saturday..Friday
    last = np.flatnonzero(np.r_[week[1:] != week[:-1], True])
    friday = week[last] * 7 + 8
    today = pd.Timestamp(as_of).tz_convert("UTC").tz_localize(None).normalize().value \
        // 86_400_000_000_000
    complete = (friday < today) | (friday == days[-1])
    index = pd.DatetimeIndex((friday[complete] * 86_400_000_000_000).astype("datetime64[ns]"),
                             name="session")
    return pd.Series(closes.to_numpy(np.float64)[last[complete]], index=index)


def _daily_returns(store: Store, symbol: str, t: pd.Timestamp, memo: dict[Any, Any]
                   ) -> tuple[np.ndarray, np.ndarray, str]:
    """Return ``symbol``'s daily log returns from the bars closed by t on t's split basis:
    their session dates (ns), the returns, and the sessions' datetime unit. ``memo`` keeps
    each series' returns on each basis (a return needs only its two closes, so the prefix
    by t of the whole series' returns is the returns of the closes by t)."""
    key = _closes_key(store, symbol, t, memo)
    closes_ns, sessions, closes = memo[key]
    found = memo.get(("returns", *key[1:]))
    if found is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.log(closes[1:] / closes[:-1])
        bad = np.flatnonzero(~(closes > 0) & ~np.isnan(closes))
        found = memo[("returns", *key[1:])] = (
            sessions.as_unit("ns").asi8, r, sessions.unit,
            int(bad[0]) if len(bad) else len(closes))
    days, r, unit, first_bad = found
    n = int(np.searchsorted(closes_ns, t.value, side="right"))
    if n > first_bad:
        log_returns(closes[:n])  # raises naming the close that is not > 0
    return days[1:n], r[:max(n - 1, 0)], unit


def _closes_key(store: Store, symbol: str, t: pd.Timestamp, memo: dict[Any, Any]
                ) -> tuple[Any, ...]:
    """Return the memo key of ``symbol``'s daily closes on t's split basis, reading and
    adjusting the whole series once per basis."""
    if ("actions", symbol) not in memo:
        actions = symbol_actions(store, symbol)
        ex = np.sort(pd.DatetimeIndex(pd.to_datetime(actions["ex_date"])).as_unit("ns").asi8)
        memo[("actions", symbol)] = (actions, ex)
    actions, ex = memo[("actions", symbol)]
    day = t.tz_convert("UTC").tz_localize(None).normalize().as_unit("ns").value
    key = ("closes", symbol, int(np.searchsorted(ex, day, side="right")))
    if key not in memo:
        # the whole series on t's basis: the basis depends only on the splits in force, and
        # the bars after t are cut below, so later times with the same splits share it
        bars = bars_closed_by(store, symbol, DAILY, pd.Timestamp.max.tz_localize("UTC"))
        divisor = np.ones(len(bars)) if actions.empty or bars.empty else split_factor_as_of(
            bars["session"], actions, t)
        memo[key] = (pd.DatetimeIndex(pd.to_datetime(bars["ts_close"], utc=True))
                     .as_unit("ns").asi8,
                     pd.DatetimeIndex(pd.to_datetime(bars["session"]), name="session"),
                     bars["close"].to_numpy(np.float64) / divisor)
    return key


def _daily_closes(store: Store, symbol: str, t: pd.Timestamp, memo: dict[Any, Any]
                  ) -> tuple[pd.Series, pd.Timestamp | None]:
    """Return ``symbol``'s daily closes on t's split basis by session date (bars closed by t)
    and the last one's ts_close (None when none). ``memo`` keeps each series on each basis,
    so many times t cost one read and adjustment per basis."""
    closes_ns, sessions, closes = memo[_closes_key(store, symbol, t, memo)]
    n = int(np.searchsorted(closes_ns, t.value, side="right"))
    series = pd.Series(closes[:n], index=sessions[:n], dtype="float64")
    return series, (pd.Timestamp(int(closes_ns[n - 1]), tz="UTC") if n else None)


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _equity(store: Store, user_id: str, t: pd.Timestamp, memo: dict[Any, Any]
            ) -> tuple[float | None, str | None, str]:
    if "equity_history" not in memo:
        history = equity_history(store, user_id)
        times = pd.DatetimeIndex(pd.to_datetime(history["as_of"], utc=True))
        memo["equity_history"] = (times.as_unit("ns").asi8, [
            (float(e), str(c), f"equity history at {at.isoformat()} ({source})")
            for at, e, c, source in zip(times, history["equity"], history["base_currency"],
                                        history["source"], strict=True)])
    times_ns, rows = memo["equity_history"]
    n = int(np.searchsorted(times_ns, t.value, side="right"))
    if n:
        return rows[n - 1]
    account = equity_as_of(store, [user_id], [t])
    value = float(account["equity"].iloc[0])
    if math.isfinite(value):
        return value, str(account["base_currency"].iloc[0]), "account snapshot"
    return None, None, (f"unknown: no equity history by {t.isoformat()} and no account "
                        "snapshot written by then")


def portfolio_state_with_reason(store: Store, user_id: str, as_of: Any, *,
                                extra_symbols: Sequence[str] = (),
                                inputs: FillInputs | None = None, before: bool = False
                                ) -> tuple[PortfolioState | None, str | None]:
    """Return (the user's PortfolioState as of ``as_of``, None), or (None, why not) when the
    user has no positions source by then (no fills and no statement: "not checked").
    ``inputs``: the user's fill history read once (``FillInputs.read``) when many times are
    asked for. ``before``: hold the fills strictly before ``as_of``, marked at ``as_of`` (the
    book a decision at ``as_of`` is made against; a statement is read as of ``as_of``)."""
    from buddy.users.store import get_user

    t = _utc(as_of)
    read = read_positions_as_of(store, user_id, t, inputs=inputs, before=before)
    if read.frame is None or read.source is None:
        return None, read.reason
    memo: dict[Any, Any] = inputs.memo if inputs is not None else {}
    if "user" not in memo:
        memo["user"] = get_user(store, user_id)
    user = memo["user"]
    equity, currency, equity_source = _equity(store, user_id, t, memo)
    rules = RiskRules() if user is None else user.rules
    version = 0 if user is None else user.rules_version
    frame = read.frame[read.frame["qty"].to_numpy(np.float64) != 0]

    def last_close(symbol: str) -> tuple[float, pd.Timestamp] | None:
        closes_ns, _, closes = memo[_closes_key(store, symbol, t, memo)]
        n = int(np.searchsorted(closes_ns, t.value, side="right"))
        return None if not n else (float(closes[n - 1]),
                                   pd.Timestamp(int(closes_ns[n - 1]), tz="UTC"))

    def instrument(symbol: str) -> dict[str, Any] | None:
        if ("instrument", symbol) not in memo:
            memo[("instrument", symbol)] = instrument_row(store, symbol)
        found: dict[str, Any] | None = memo[("instrument", symbol)]
        return found

    positions = mark_positions(store, frame, t, equity, currency, last_close=last_close,
                               instrument=instrument)
    if list(positions.columns) != list(POSITION_COLUMNS):
        positions = positions[list(POSITION_COLUMNS)]
    return PortfolioState(
        user_id=user_id, as_of=t, equity=equity, base_currency=currency,
        equity_source=equity_source, positions=positions,
        source=read.source, statement_as_of=read.statement_as_of, rules=rules,
        rules_version=version, extra_symbols=tuple(dict.fromkeys(extra_symbols)),
        store=store, _memo=memo), None


def portfolio_state(store: Store, user_id: str, as_of: Any, *,
                    extra_symbols: Sequence[str] = ()) -> PortfolioState | None:
    """Return what is known as of ``as_of`` (UTC) of ``user_id``'s portfolio, or None when
    the user has no positions source by then (``portfolio_state_with_reason`` gives why).
    ``extra_symbols``: symbols ``returns()`` includes beside the held ones (e.g. an
    intent's)."""
    state, _ = portfolio_state_with_reason(store, user_id, as_of, extra_symbols=extra_symbols)
    return state
