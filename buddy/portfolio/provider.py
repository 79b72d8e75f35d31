"""The ContextPack's ``portfolio`` piece: the book an idea is judged against, as of t.

``PortfolioProvider`` (the instance ``portfolio_provider``, registered in
``buddy.api.default_providers``) implements ``buddy.context.providers.PieceProvider``. For a
request (user, symbol, as_of t) it

1. builds the user's ``PortfolioState`` as of t (``buddy.portfolio.state``: equity, rules,
   marks and returns read point-in-time); a user with no fills and no positions statement by
   t gets no piece, and the reason ("not checked", never "no exposure");
2. takes the positions held just BEFORE t (fills with ts < t), marked at t: the book the
   decision at t is made against. A logged intent's own fill carries the intent's time (the
   demo trader's do), and an idea is not stacked on itself;
3. reads the daily log returns of the held symbols, the idea's symbol and each one's
   benchmark over the state's stated window (one year of daily returns), aligned by session.

Everything an evaluator needs is in the piece as plain arrays (``PortfolioPiece``): the
evaluator computes without I/O. Pieces are cached per process by (store file, context stamp,
user, t, symbol): every fills, statement, rules or market-data write touches the stamp, so a
cached piece is never stale; the state is shared by every symbol at the same (user, t). The
user's fills are read and grouped into trades once per store state (``FillInputs.ledger``,
once per split basis) and the book at each t is a slice of that grouping, so a replay or a
batch of many intents, each at its own t, pays for one grouping, not one per t.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from buddy.context.providers import BatchPieceRequest, BatchPieces, PieceRequest, failure_reason
from buddy.errors import BuddyError

if TYPE_CHECKING:
    from buddy.portfolio.positions import FillInputs
    from buddy.portfolio.state import PortfolioState
    from buddy.store import Store
    from buddy.users.model import RiskRules

__all__ = ["CACHE_SIZE", "PortfolioPiece", "PortfolioProvider", "portfolio_provider"]

#: Distinct (store state, user, t, symbol) pieces kept per process.
CACHE_SIZE = 256


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class PortfolioPiece:
    """The ``portfolio`` piece of one (user, t, symbol): the book held just before t and
    the returns to judge an idea in ``symbol`` against it.

    Columns (``symbols``, M of them): the held symbols, then ``symbol`` when it is not held.
    ``weights`` (M,): signed market value / equity (fractions; 0 where not held, NaN where
    held but not valued in the account's currency); ``open_risk`` (M,): risk to each
    position's stop / equity (fractions; NaN where the stop is unknown, 0 where not held);
    ``returns`` (T, M): daily log returns over ``window`` (words), oldest first, NaN on a
    session without a bar; ``benchmark_returns`` (T, M): each column's benchmark's (an
    all-NaN column where ``has_benchmark`` is False). ``equity`` and ``currency``: the
    account's as of t (None when unknown); ``rules``: the user's risk rules; ``state``: the
    PortfolioState as of t whose positions are the book held just before t.
    """

    user_id: str
    as_of: pd.Timestamp
    symbol: str
    equity: float | None
    currency: str | None
    rules: RiskRules
    symbols: tuple[str, ...]
    weights: np.ndarray
    open_risk: np.ndarray
    has_benchmark: np.ndarray
    returns: np.ndarray
    benchmark_returns: np.ndarray
    window: str
    state: PortfolioState

    @property
    def cand_index(self) -> int:
        """Return the column of the idea's symbol."""
        return self.symbols.index(self.symbol)

    @property
    def held(self) -> tuple[str, ...]:
        """Return the symbols held just before t."""
        return tuple(s for s, w in zip(self.symbols, self.weights, strict=True) if w != 0)

    def position_in(self, symbol: str) -> float:
        """Return the signed quantity held in ``symbol`` just before t (units; 0.0 when
        flat): the missing scanner's exposure hook."""
        rows = self.state.positions["symbol"].to_numpy(object) == symbol
        if not rows.any():
            return 0.0
        return float(self.state.positions["qty"].to_numpy(np.float64)[rows].sum())

    def __repr__(self) -> str:
        return (f"PortfolioPiece(user_id={self.user_id!r}, as_of={self.as_of.isoformat()}, "
                f"symbol={self.symbol!r}, held={self.held!r})")


class PortfolioProvider:
    """The ``portfolio`` piece's provider (see the module docstring)."""

    def __init__(self, *, cache_size: int = CACHE_SIZE) -> None:
        self.cache_size = cache_size
        self._states: OrderedDict[tuple[Any, ...], tuple[Any, str | None]] = OrderedDict()
        self._pieces: OrderedDict[tuple[Any, ...], PortfolioPiece] = OrderedDict()
        self._sourced: dict[tuple[str, int], frozenset[str]] = {}
        self._inputs: dict[tuple[str, int, str], FillInputs] = {}

    def __repr__(self) -> str:
        return f"PortfolioProvider(cache_size={self.cache_size})"

    def __eq__(self, other: object) -> bool:
        """Providers with the same settings give the same pieces (caches aside)."""
        return isinstance(other, PortfolioProvider) and other.cache_size == self.cache_size

    __hash__ = None  # type: ignore[assignment]  # mutable caches: compared, never hashed

    def __getstate__(self) -> dict[str, Any]:
        """Ship the settings, not the caches (a replay worker builds its own)."""
        return {"cache_size": self.cache_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def clear(self) -> None:
        """Drop every cached state and piece."""
        self._states.clear()
        self._pieces.clear()
        self._sourced.clear()
        self._inputs.clear()

    def __call__(self, request: PieceRequest) -> tuple[PortfolioPiece | None, str | None]:
        """Return the portfolio piece of ``request`` (its user, symbol and as_of), or None
        and why it is missing."""
        return self.piece_at(request.store, request.user_id, request.as_of,
                             request.instrument.symbol, request.instrument.benchmark)

    def batch(self, request: BatchPieceRequest) -> BatchPieces:
        """Return (pieces, reasons) per row, equal to the scalar answers: one state per
        distinct (user, as_of), one piece per distinct (user, as_of, symbol)."""
        n = len(request)
        pieces = np.full(n, None, dtype=object)
        reasons = np.full(n, None, dtype=object)
        users = request.intents["user_id"].astype(str).to_numpy(object)
        symbols = request.intents["symbol"].astype(str).to_numpy(object)
        as_of = pd.to_datetime(request.intents["as_of"], utc=True).dt.as_unit("ns")
        benchmark = request.instrument["benchmark"].to_numpy(object)
        keys = pd.DataFrame({"user": users, "symbol": symbols,
                             "t": as_of.astype("int64").to_numpy()})
        codes, uniques = pd.factorize(pd.MultiIndex.from_frame(keys))
        for k, (user, symbol, t) in enumerate(uniques):
            rows = np.flatnonzero(codes == k)
            bench = benchmark[rows[0]]
            try:
                piece, reason = self.piece_at(request.store, str(user),
                                              pd.Timestamp(t, tz="UTC").to_pydatetime(),
                                              str(symbol), None if pd.isna(bench) else bench)
            except BuddyError:
                raise  # a deliberate refusal is not a data gap
            except Exception as exc:  # one broken book must not take the batch down
                piece, reason = None, failure_reason("portfolio", exc)
            pieces[rows] = piece
            reasons[rows] = None if piece is not None else reason
        return pieces, reasons

    def piece_at(self, store: Store, user_id: str, as_of: datetime, symbol: str,
                 benchmark: str | None) -> tuple[PortfolioPiece | None, str | None]:
        """Return the piece of ``user_id`` as of ``as_of`` for an idea in ``symbol`` (whose
        benchmark is ``benchmark``), or None and why."""
        t = pd.Timestamp(as_of).tz_convert("UTC")
        base = (str(store.path), store.context_stamp(), user_id, t.value)
        key = (*base, symbol, benchmark)
        found = self._pieces.get(key)
        if found is not None:
            self._pieces.move_to_end(key)
            return found, None
        if user_id not in self.sourced(store):
            return None, no_source_reason(user_id)
        state, reason = self._state(store, user_id, t, base)
        if state is None:
            return None, reason
        piece = build_piece(state, symbol, benchmark)
        self._pieces[key] = piece
        if len(self._pieces) > self.cache_size:
            self._pieces.popitem(last=False)
        return piece, None

    def sourced(self, store: Store) -> frozenset[str]:
        """Return the users with fills or a positions statement, read once per store state
        (a user without either then costs a stamp read per pack, not a query)."""
        from buddy.store.portfolio import users_with_positions_sources

        key = (str(store.path), store.context_stamp())
        found = self._sourced.get(key)
        if found is None:
            if len(self._sourced) >= self.cache_size:
                self._sourced.clear()
            found = self._sourced[key] = frozenset(users_with_positions_sources(store))
        return found

    def fill_inputs(self, store: Store, user_id: str) -> FillInputs:
        """Return the user's fill history, read once per store state (positions at each t
        are cut from it, and memoised by what is known at t)."""
        from buddy.portfolio.positions import FillInputs

        key = (str(store.path), store.context_stamp(), user_id)
        found = self._inputs.get(key)
        if found is None:
            if len(self._inputs) >= self.cache_size:
                self._inputs.clear()
            found = self._inputs[key] = FillInputs.read(store, user_id)
        return found

    def _state(self, store: Store, user_id: str, t: pd.Timestamp, key: tuple[Any, ...]
               ) -> tuple[PortfolioState | None, str | None]:
        found = self._states.get(key)
        if found is None:
            found = book_before(store, user_id, t, inputs=self.fill_inputs(store, user_id))
            self._states[key] = found
            if len(self._states) > self.cache_size:
                self._states.popitem(last=False)
        else:
            self._states.move_to_end(key)
        return found


def book_before(store: Store, user_id: str, t: pd.Timestamp, *,
                inputs: FillInputs | None = None) -> tuple[PortfolioState | None, str | None]:
    """Return the user's PortfolioState as of ``t`` holding the positions of the fills
    BEFORE t (marked at t, on t's split basis), or None and why there is no positions source
    by t (``inputs``: the user's fill history read once; a statement has no fills at t to
    leave out and is read as of t)."""
    from buddy.portfolio.state import portfolio_state_with_reason

    return portfolio_state_with_reason(store, user_id, t, inputs=inputs, before=True)


def no_source_reason(user_id: str) -> str:
    """Return the missing reason of a user with neither fills nor a positions statement."""
    return (f"user {user_id} has no broker fills and no positions statement: import fills "
            f"(`buddy trades import`) or a statement (`buddy positions import FILE --user "
            f"{user_id}`)")


def build_piece(state: PortfolioState, symbol: str, benchmark: str | None) -> PortfolioPiece:
    """Return the piece of ``state``'s book for an idea in ``symbol`` (benchmark
    ``benchmark``): weights, open risks and aligned returns (I/O: the state reads bars)."""
    positions = state.positions
    held = tuple(positions["symbol"].astype(str))
    columns = held if symbol in held else (*held, symbol)
    weight = dict(zip(held, positions["weight_pct"].to_numpy(np.float64) / 100.0, strict=True))
    risk = dict(zip(held, positions["open_risk_pct"].to_numpy(np.float64) / 100.0,
                    strict=True))
    bench_of = dict(zip(held, positions["benchmark"].to_numpy(object), strict=True))
    bench_of.setdefault(symbol, benchmark)
    benches = [None if b is None or pd.isna(b) else str(b) for b in
               (bench_of[c] for c in columns)]
    wanted = [b for b in dict.fromkeys(benches) if b is not None and b not in columns]
    frame = state.returns([symbol, *wanted])
    returns = frame[list(columns)].to_numpy(np.float64)
    bench = np.column_stack([frame[b].to_numpy(np.float64) if b is not None
                             else np.full(len(frame), np.nan) for b in benches]
                            ) if columns else np.empty((len(frame), 0))
    return PortfolioPiece(
        user_id=state.user_id, as_of=state.as_of, symbol=symbol, equity=state.equity,
        currency=state.base_currency, rules=state.rules, symbols=columns,
        weights=np.array([weight.get(c, 0.0) for c in columns], dtype=np.float64),
        open_risk=np.array([risk.get(c, 0.0) for c in columns], dtype=np.float64),
        has_benchmark=np.array([b is not None for b in benches], dtype=bool),
        returns=returns, benchmark_returns=bench, window=state.window.describe(),
        state=state)


#: The provider ``buddy.api.default_providers`` registers (its cache is per process).
portfolio_provider = PortfolioProvider()
