"""ContextPackBuilder: read the store once per (user, symbol, timeframe, as_of), cache the pack.

Cache key: (user_id, symbol, timeframe, as_of, lookback, the store's context stamp). The stamp
is the modification time of a sidecar file that every context-affecting write touches after
it commits (market data, and later accounts, rules and positions), so a write from any
process invalidates every cached pack without a database round trip per lookup.

Providers fill the other pieces (``buddy.context.providers``: the PieceProvider protocol and
the ProviderRegistry, re-exported here).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from buddy.context.pack import PIECES, ContextPack, Instrument, MarketData
from buddy.context.providers import (
    PieceProvider,
    PieceRequest,
    ProviderRegistry,
    ProviderSource,
    ScalarProvider,
    failure_reason,
)
from buddy.data.calendars import get_calendar
from buddy.data.splits import adjust_bars, split_factor_of_times
from buddy.errors import BuddyError, FieldError, IntentValidationError
from buddy.features.ta import PRICE_LEVEL_FEATURES
from buddy.store import Store
from buddy.timeframes import Timeframe

__all__ = ["DEFAULT_LOOKBACK_BARS", "NOT_YET_PROVIDED", "ContextPackBuilder", "PieceProvider",
           "PieceRequest", "ProviderSource", "ScalarProvider", "market_data"]

DEFAULT_LOOKBACK_BARS = 300


#: Why a piece is missing when no provider of it is registered. Each says only that (no
#: claim about the user or the data, which nobody read): the standard registry
#: (``buddy.api.default_providers``) has account, regime, levels, mtfa, schedule, strategy
#: and portfolio; no provider of state exists yet. The HMM state and its transition
#: matrix are not the ``state`` piece: they come with the ``regime`` piece.
NOT_YET_PROVIDED = {
    "state": "no per-timeframe state-vector provider exists yet (the HMM state and its "
             "transition probabilities are part of the regime piece)",
    "mtfa": "no multi-timeframe alignment provider is installed",
    "regime": "no regime snapshot provider is installed",
    "levels": "no key-levels provider is installed",
    "strategy": "no strategy provider is installed (the user's profile and playbooks are not "
                "read)",
    "portfolio": "no portfolio provider is installed (open positions and exposure are not "
                 "read)",
    "account": "no account provider is installed",
    "schedule": "no event schedule provider is installed",
    "behavior": "no behaviour provider is installed (the trader's history and nudge settings "
                "are not read)",
}


class ContextPackBuilder:
    """Build ContextPacks from a Store, caching the most recent ``cache_size`` of them."""

    def __init__(self, store: Store, *, lookback_bars: int = DEFAULT_LOOKBACK_BARS,
                 cache_size: int = 256,
                 providers: Mapping[str, ProviderSource] | None = None) -> None:
        self.store = store
        self.lookback_bars = lookback_bars
        self.cache_size = cache_size
        self.providers = ProviderRegistry(providers)
        self._cache: OrderedDict[tuple[Any, ...], ContextPack] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def register(self, piece: str, provider: ProviderSource) -> None:
        """Install the provider of ``piece`` (validated by ProviderRegistry.register) and
        drop cached packs."""
        self.providers.register(piece, provider)
        self._cache.clear()

    def clear(self) -> None:
        """Drop every cached pack."""
        self._cache.clear()

    def build(self, user_id: str, symbol: str, timeframe: Timeframe | str,
              as_of: datetime, *, stamp: int | None = None) -> ContextPack:
        """Return the ContextPack for the request, from cache when nothing changed.

        ``stamp`` is the store's context stamp when the caller has just read it.
        """
        timeframe = Timeframe.parse(timeframe)
        if stamp is None:
            stamp = self.store.context_stamp()
        key = (user_id, symbol, timeframe, as_of, self.lookback_bars, stamp)
        pack = self._cache.get(key)
        if pack is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return pack
        self.misses += 1
        # every piece's reads on one connection, closed after (or handed to a waiting
        # writer while a piece computes: an on-demand HMM fit takes seconds)
        with self.store.reading(yield_to_writers=True):
            pack = self._build(user_id, symbol, timeframe, as_of)
        self._cache[key] = pack
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return pack

    def _build(self, user_id: str, symbol: str, timeframe: Timeframe, as_of: datetime
               ) -> ContextPack:
        inputs = self.store.context_inputs(symbol, timeframe, as_of, self.lookback_bars)
        if inputs["instrument"] is None:
            raise IntentValidationError([FieldError("symbol", "is not in the tickers table",
                                                    symbol)])
        instrument = Instrument.from_row(inputs["instrument"])
        missing: dict[str, str] = {}
        market = market_data(instrument, inputs["bars"], inputs["features"],
                             inputs["corporate_actions"], as_of)
        if market is None:
            missing["market"] = (f"no {timeframe} bars of {symbol} closed at or before "
                                 f"{pd.Timestamp(as_of).isoformat()}")
        pieces: dict[str, Any] = {}
        request = PieceRequest(store=self.store, user_id=user_id, instrument=instrument,
                               timeframe=timeframe, as_of=as_of, market=market)
        for name in PIECES[1:]:
            provider = self.providers.get(name)
            if provider is None:
                missing[name] = NOT_YET_PROVIDED[name]
                continue
            try:
                piece, reason = provider(request)
            except BuddyError:
                raise  # a deliberate refusal (e.g. a replay worker writing) is not a data gap
            except Exception as exc:  # one broken piece must not take the whole report down
                piece, reason = None, failure_reason(name, exc)
            if piece is None:
                missing[name] = reason or "provider returned nothing"
            pieces[name] = piece
        return ContextPack(user_id=user_id, symbol=symbol, timeframe=timeframe, as_of=as_of,
                           instrument=instrument, market=market, missing=missing, **pieces)


def market_data(instrument: Instrument, bars: pd.DataFrame, features: pd.DataFrame,
                actions: pd.DataFrame, as_of: datetime) -> MarketData | None:
    """Assemble MarketData from raw rows read at ``as_of``: put bars and price-level features
    on the as-of split basis and measure staleness and gaps against the trading calendar."""
    if bars.empty:
        return None
    adjusted = adjust_bars(bars, actions, as_of)
    features = features.copy()
    if not features.empty and not actions.empty:
        # each feature row on the as-of basis of its own bar's session: the split factor of
        # the session, whether or not that bar is inside the bar window
        per_row = split_factor_of_times(features["ts"], instrument.timezone, actions, as_of)
        columns = [c for c in PRICE_LEVEL_FEATURES if c in features]
        if columns:  # one block assignment: a column at a time costs a frame copy each
            features[columns] = features[columns].to_numpy(np.float64) / per_row[:, None]
    calendar = get_calendar(instrument.trading_calendar)
    first_session = pd.Timestamp(bars["session"].iloc[0]).date()
    as_of_ts = pd.Timestamp(as_of)
    as_of_day = as_of_ts.tz_convert(instrument.timezone).date()
    sessions = calendar.sessions(first_session, as_of_day)
    closes = calendar.session_open_close(sessions)["close"]
    closed = sessions[(closes <= as_of_ts).to_numpy()]
    # sessions as day numbers (numpy, no index built per comparison)
    have = np.asarray(pd.to_datetime(bars["session"])).astype("datetime64[D]")
    expected = np.asarray(pd.DatetimeIndex(closed).tz_localize(None)).astype("datetime64[D]")
    last_session = have.max()
    missing_sessions = expected[~np.isin(expected, have) & (expected <= last_session)]
    since_last = int(np.count_nonzero(expected > last_session))
    splits = tuple((pd.Timestamp(d).date(), float(r)) for d, r in
                   zip(actions.get("ex_date", []), actions.get("ratio", []), strict=True))
    n_without = int((~bars["ts"].isin(features["ts"])).sum()) if len(features) else len(bars)
    return MarketData(
        bars=adjusted.reset_index(drop=True),
        features=features.reset_index(drop=True),
        last_bar_close=pd.Timestamp(bars["ts_close"].iloc[-1]).to_pydatetime(),
        sessions_since_last_bar=since_last,
        missing_sessions=tuple(missing_sessions.astype(object)),
        window_sessions=int(np.count_nonzero(expected <= last_session)),
        bars_without_features=n_without,
        splits_applied=splits,
    )

