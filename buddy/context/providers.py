"""Piece providers: the typed contract and the registry (piece name -> provider).

A provider answers one request with ``provider(PieceRequest) -> (piece, reason)`` (the piece,
or None and why it is missing) and many with ``provider.batch(BatchPieceRequest) ->
(pieces, reasons)``: two object arrays with one entry per row, equal row by row to the
scalar answers (rows that share a snapshot may share one piece object). ``PieceProvider``
is that contract as a Protocol; the standard providers are classes implementing it
(``buddy.users.provider.AccountProvider``, ``buddy.regime.provider.RegimeProvider``, ...).

``ProviderRegistry`` holds one provider per piece and validates each on registration: the
piece must be a provider slot of the ContextPack and the provider callable, with a callable
``batch`` when it has one. A plain function (a test stub, a plug-in's one-liner) is accepted
as the scalar form and given the row-by-row batch form (``RowByRow``). ContextPackBuilder,
``buddy.batch.builder.build_batch_context`` and ``buddy.api.default_providers`` all use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import pandas as pd

from buddy.context.pack import PIECES, Instrument, MarketData
from buddy.context.piece_columns import PieceColumn
from buddy.errors import BuddyError, ConfigError, FieldError
from buddy.store import Store
from buddy.timeframes import Timeframe

__all__ = ["BatchPieceRequest", "BatchPieces", "PieceProvider", "PieceRequest",
           "ProviderRegistry", "ProviderSource", "RowByRow", "ScalarProvider", "rows_of"]

#: The ContextPack pieces a provider fills (the market piece is the builder's own).
PROVIDER_SLOTS: tuple[str, ...] = tuple(p for p in PIECES if p != "market")

Piece_co = TypeVar("Piece_co", covariant=True)

#: (pieces, reasons) of a batch, one entry per row: the pieces an object array or a
#: PieceColumn (columns, objects built when asked), the reasons an object array.
BatchPieces = tuple[np.ndarray | PieceColumn, np.ndarray]


@dataclass(frozen=True, slots=True, kw_only=True)
class PieceRequest:
    """What a piece provider is given: the request and the market piece already built."""

    store: Store
    user_id: str
    instrument: Instrument
    timeframe: Timeframe
    as_of: datetime
    market: MarketData | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchPieceRequest:
    """What a batch provider is given: N rows of requests.

    ``intents`` has at least user_id, symbol, timeframe and as_of (tz-aware UTC) per row;
    ``instrument`` the Instrument fields per row; ``market`` the MARKET_COLUMNS per row (see
    ``buddy.batch.context``); ``market_data(i)`` rebuilds row i's MarketData (None without
    market) for a provider that needs the bars themselves. ``store`` is read-only.
    """

    store: Store
    intents: pd.DataFrame
    instrument: pd.DataFrame
    market: pd.DataFrame
    market_data: Callable[[int], MarketData | None]

    def __len__(self) -> int:
        return len(self.intents)

    def request(self, i: int) -> PieceRequest:
        """Return row i as the scalar provider's PieceRequest."""
        row = self.intents.iloc[i]
        return PieceRequest(
            store=self.store, user_id=str(row["user_id"]),
            instrument=Instrument.from_row(self.instrument.iloc[i].to_dict()),
            timeframe=Timeframe.parse(row["timeframe"]),
            as_of=pd.Timestamp(row["as_of"]).to_pydatetime(), market=self.market_data(i))


@runtime_checkable
class PieceProvider(Protocol[Piece_co]):
    """The provider of one ContextPack piece, over one request and over many."""

    def __call__(self, request: PieceRequest) -> tuple[Piece_co | None, str | None]:
        """Return the piece of ``request``, or None and why it is missing."""
        ...

    def batch(self, request: BatchPieceRequest) -> BatchPieces:
        """Return (pieces, reasons) per row of ``request``, equal to the scalar answers."""
        ...


#: A provider's scalar form alone: what a plain function provider is.
ScalarProvider = Callable[[PieceRequest], tuple[Any | None, str | None]]
#: What registration accepts: a provider, or a scalar form to run row by row.
ProviderSource = PieceProvider[Any] | ScalarProvider


def rows_of(piece: str, scalar: ScalarProvider, request: BatchPieceRequest) -> BatchPieces:
    """Return (pieces, reasons) of ``request`` by calling ``scalar`` row by row; a row whose
    call raises anything but a BuddyError gets the reason ContextPackBuilder gives."""
    pieces = np.empty(len(request), dtype=object)
    reasons = np.empty(len(request), dtype=object)
    for i in range(len(request)):
        try:
            found, reason = scalar(request.request(i))
        except BuddyError:
            raise  # a deliberate refusal (e.g. a replay worker writing) is not a data gap
        except Exception as exc:  # one broken row must not take the batch down
            found, reason = None, failure_reason(piece, exc)
        pieces[i] = found
        reasons[i] = None if found is not None else (reason or "provider returned nothing")
    return pieces, reasons


def failure_reason(piece: str, exc: Exception) -> str:
    """Return the missing reason of a piece whose provider raised ``exc``."""
    return f"the {piece} provider failed: {type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class RowByRow:
    """A provider from a scalar form alone: its batch form calls it row by row."""

    piece: str
    scalar: ScalarProvider

    def __call__(self, request: PieceRequest) -> tuple[Any | None, str | None]:
        """Return the scalar form's answer to ``request``."""
        return self.scalar(request)

    def batch(self, request: BatchPieceRequest) -> BatchPieces:
        """Return (pieces, reasons) per row of ``request``, one scalar call per row."""
        return rows_of(self.piece, self.scalar, request)


class ProviderRegistry(Mapping[str, PieceProvider[Any]]):
    """Piece name -> provider, validated on registration."""

    def __init__(self, providers: Mapping[str, ProviderSource] | None = None) -> None:
        self._providers: dict[str, PieceProvider[Any]] = {}
        for piece, provider in (providers or {}).items():
            self.register(piece, provider)

    def register(self, piece: str, provider: ProviderSource) -> PieceProvider[Any]:
        """Install ``provider`` as the provider of ``piece`` (replacing any) and return it
        as registered: a plain function comes back wrapped in RowByRow.

        Refuses (ConfigError naming ``providers.<piece>``) a piece that is not a provider
        slot, a provider that is not callable and a ``batch`` that is not callable.
        """
        field = f"providers.{piece}"
        if piece not in PROVIDER_SLOTS:
            raise ConfigError([FieldError(field, "must name a provider slot of the "
                                          f"ContextPack ({', '.join(PROVIDER_SLOTS)})", piece)])
        if not callable(provider):
            raise ConfigError([FieldError(field, "must be callable as provider(PieceRequest)",
                                          provider)])
        batch = getattr(provider, "batch", None)
        if batch is not None and not callable(batch):
            raise ConfigError([FieldError(f"{field}.batch", "must be callable as "
                                          "batch(BatchPieceRequest)", batch)])
        registered: PieceProvider[Any] = (provider if isinstance(provider, PieceProvider)
                                          else RowByRow(piece, provider))
        self._providers[piece] = registered
        return registered

    def __getitem__(self, piece: str) -> PieceProvider[Any]:
        return self._providers[piece]

    def __iter__(self) -> Iterator[str]:
        return iter(self._providers)

    def __len__(self) -> int:
        return len(self._providers)

    def __repr__(self) -> str:
        return f"ProviderRegistry({self._providers!r})"
