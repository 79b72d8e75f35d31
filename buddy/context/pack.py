"""The ContextPack: everything evaluators may read about one (user, symbol, timeframe, as_of).

It is built once per request and shared by every evaluator. ``as_of`` is the only "now" an
evaluator sees. A piece that could not be provided is None, and ``missing[piece]`` says why;
an evaluator that requires it is skipped and the report says so, instead of guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

import pandas as pd

from buddy.timeframes import Timeframe

#: The pieces of a ContextPack that evaluators may declare in ``requires``.
PIECES: tuple[str, ...] = (
    "market",  # MarketData: closed bars + TA features up to as_of
    "state",  # state vectors per timeframe + HMM state/transition probabilities
    "mtfa",  # multi-timeframe alignment score and conflicts
    "regime",  # RegimeSnapshot: trend/vol/liquidity regime, transition risk
    "levels",  # KeyLevelsSnapshot: prior-day levels, pivots, ranges, VWAPs, S/R
    "strategy",  # UserStrategy: strategy profile, playbooks, rules
    "portfolio",  # Portfolio: positions, exposures, correlation clusters, heat
    "account",  # the user's account snapshot and risk defaults
    "schedule",  # known upcoming events: earnings, macro dates, holidays, early closes
    "behavior",  # BehaviorState: the trader's own history as of t and their nudge controls
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument:
    """Static data of a ticker (the tickers table)."""

    symbol: str
    name: str
    asset_class: str
    exchange: str
    currency: str
    sector: str | None
    tick_size: float
    lot_size: float
    contract_multiplier: float
    trading_calendar: str
    benchmark: str | None
    timezone: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Instrument:
        """Build from a tickers row (extra columns such as source and licence are ignored)."""
        names = cls.__dataclass_fields__
        values: dict[str, Any] = {k: (None if pd.isna(v) else v) if not isinstance(v, str) else v
                  for k, v in row.items() if k in names}
        for key in ("tick_size", "lot_size", "contract_multiplier"):
            values[key] = float(values[key])
        return cls(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketData:
    """Closed bars and their TA features up to as_of, on the price basis in force at as_of.

    ``bars`` hold the last N bars whose ``ts_close <= as_of``, oldest first, split-adjusted for
    splits with ex_date <= as_of only (so the last close equals the price traded then).
    ``features`` are the matching ta_features rows, price-level columns on the same basis;
    bars without a feature row are absent from it (see ``bars_without_features``).
    """

    bars: pd.DataFrame
    features: pd.DataFrame
    last_bar_close: datetime
    sessions_since_last_bar: int  # calendar sessions that closed after the last bar, <= as_of
    missing_sessions: tuple[date, ...]  # sessions inside the window with no bar (gaps)
    window_sessions: int  # calendar sessions the window spans
    bars_without_features: int
    splits_applied: tuple[tuple[date, float], ...] = ()
    #: The last closed bar's close (price, as-of basis); derived once at construction.
    last_close: float = field(init=False)
    #: The last closed bar's feature values, empty when it has no feature row; derived once.
    latest_features: Mapping[str, float] = field(init=False)

    def __post_init__(self) -> None:
        # Derived once here because every evaluator reads them (the pack is immutable).
        object.__setattr__(self, "last_close", float(self.bars["close"].iloc[-1]))
        latest: dict[str, float] = {}
        if not self.features.empty and (
            self.features["ts"].iloc[-1] == self.bars["ts"].iloc[-1]
        ):
            numeric = self.features.select_dtypes("number")
            latest = dict(zip(numeric.columns, map(float, numeric.iloc[-1].to_numpy()),
                              strict=True))
        object.__setattr__(self, "latest_features", MappingProxyType(latest))


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextPack:
    """What every evaluator reads. Pieces that later work fills are explicit slots now."""

    user_id: str
    symbol: str
    timeframe: Timeframe
    as_of: datetime
    instrument: Instrument
    market: MarketData | None
    state: Any | None = None
    mtfa: Any | None = None
    regime: Any | None = None
    levels: Any | None = None
    strategy: Any | None = None
    portfolio: Any | None = None
    account: Any | None = None
    schedule: Any | None = None
    behavior: Any | None = None
    missing: Mapping[str, str] = field(default_factory=dict)

    def piece(self, name: str) -> Any | None:
        """Return the piece called ``name`` (one of PIECES)."""
        if name not in PIECES:
            raise KeyError(f"{name!r} is not a ContextPack piece; pieces: {', '.join(PIECES)}")
        return getattr(self, name)

    def missing_pieces(self, names: frozenset[str] | set[str]) -> dict[str, str]:
        """Return {piece: reason} for those of ``names`` that are absent."""
        return {n: self.missing.get(n, "not provided") for n in sorted(names)
                if self.piece(n) is None}
