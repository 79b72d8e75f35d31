"""The ContextPack's ``behavior`` piece: the trader's own history as of t and their nudge
controls.

``BehaviorProvider`` (the instance ``behavior_provider``) implements
``buddy.context.providers.PieceProvider``. For a request at t it gives a ``BehaviorState``:

- ``history``: ``buddy.behavior.history.TraderHistory`` as of t (trades opened by t,
  outcomes and reviews known by t, intents logged before t: nothing after t). The piece
  holds the user's stored history (``stored``, shared by every t of a batch) and cuts it at
  t when ``history`` is read; the evaluator hands ``stored`` to ``detect``, which cuts each
  intent's view at its own as_of (one detector pass per user instead of one per t;
  tests/evaluators/test_behavior_nudges.py holds the results equal to those on the cut
  history);
- ``settings``: the user's ``NudgeSettings`` and the detector ``params`` they imply (each
  detector at the user's level; an opted-out one, or every one under 'off', does not run);
- ``currency``: the account's base currency (the history's amounts are in it; None
  without an account, when the evaluator names the instrument's currency);
- ``shown_24h``: nudges the user's logged evaluations showed in the 24 hours before t (the
  frequency cap counts them); ``quiet``: detector -> the dismissal at or before t whose quiet
  window still covers t.

None (with the reason) for a user without any trade opened by t: there is no history of
their own to compare with, and a behaviour nudge never rests on a rule of thumb alone.

A user without trades costs a stamp read (their trade count is cached per stamp). The whole
history is read once per (store, user, context stamp, reviews) and cut per t; a review or a
logged intent does not touch the stamp, so one small query per request checks both (a new
intent re-reads the intents only). Settings, dismissals and shown nudges are read once per
request (a batch: once per user).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from buddy.behavior.settings import NudgeSettings, nudge_settings
from buddy.context.providers import BatchPieceRequest, BatchPieces, PieceRequest

if TYPE_CHECKING:
    from buddy.behavior.history import TraderHistory
    from buddy.behavior.params import BehaviorParams
    from buddy.store import Store

__all__ = ["MODULE", "BehaviorProvider", "BehaviorState", "behavior_of", "behavior_provider",
           "params_of"]

#: The evaluator whose logged items are the nudges shown (buddy.evaluators.behavior_nudges).
MODULE = "behavior_nudges"
#: The window of the frequency cap.
CAP_WINDOW = timedelta(hours=24)
#: Distinct (store, user, state) histories kept per process.
CACHE_SIZE = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class BehaviorState:
    """The ``behavior`` piece (see the module docstring)."""

    user_id: str
    as_of: datetime
    stored: TraderHistory
    settings: NudgeSettings
    params: BehaviorParams
    shown_24h: int = 0
    quiet: Mapping[str, datetime] = field(default_factory=dict)
    #: The account's base currency (amounts are in it), None without an account.
    currency: str | None = None

    @property
    def history(self) -> TraderHistory:
        """Return the trader's history as of ``as_of`` (nothing after it)."""
        return self.stored.truncated(self.as_of)

    @property
    def n_trades(self) -> int:
        """Return the trades opened by as_of."""
        opened = pd.to_datetime(self.stored.trades["open_ts"], utc=True)
        return int((opened <= pd.Timestamp(self.as_of)).sum())


def params_of(settings: NudgeSettings) -> BehaviorParams:
    """Return the detector params ``settings`` imply: each detector at its level, those
    switched off not run."""
    from buddy.behavior.params import params_for

    levels = settings.levels()
    on = {d: level for d, level in levels.items() if level is not None}
    return params_for(on, enabled=tuple(d for d in levels if d in on))


@dataclass(frozen=True, slots=True)
class _UserReads:
    """What is read once per user for a request up to ``until``: the settings, the account
    currency, the nudges shown before ``until`` and the dismissals at or before it."""

    settings: NudgeSettings
    params: BehaviorParams
    currency: str | None
    shown: pd.DataFrame
    dismissed: pd.DataFrame

    @classmethod
    def of(cls, store: Store, user_id: str, until: datetime | pd.Timestamp) -> _UserReads:
        from buddy.store.nudges import dismissal_rows, shown_rows
        from buddy.users.store import get_user

        t = pd.Timestamp(until).tz_convert("UTC").to_pydatetime()
        user = get_user(store, user_id)
        settings = nudge_settings(store, user_id)
        return cls(settings=settings, params=params_of(settings),
                   currency=None if user is None else user.account.base_currency,
                   shown=shown_rows(store, user_id, MODULE, t),
                   dismissed=dismissal_rows(store, user_id, t))


class BehaviorProvider:
    """The ``behavior`` piece's provider (see the module docstring)."""

    def __init__(self, *, cache_size: int = CACHE_SIZE) -> None:
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[Any, ...], tuple[tuple[str, ...], TraderHistory]] = (
            OrderedDict())
        self._trades: dict[tuple[str, str, int], int] = {}

    def __repr__(self) -> str:
        return f"BehaviorProvider(cache_size={self.cache_size})"

    def __eq__(self, other: object) -> bool:
        """Providers with the same settings give the same pieces (caches aside)."""
        return isinstance(other, BehaviorProvider) and other.cache_size == self.cache_size

    __hash__ = None  # type: ignore[assignment]  # mutable cache: compared, never hashed

    def __getstate__(self) -> dict[str, Any]:
        """Ship the settings, not the cache (a replay worker builds its own)."""
        return {"cache_size": self.cache_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def clear(self) -> None:
        """Drop every cached history and trade count."""
        self._cache.clear()
        self._trades.clear()

    def cached(self) -> int:
        """Return how many stored histories this provider holds."""
        return len(self._cache)

    def n_trades(self, store: Store, user_id: str) -> int:
        """Return how many trades ``user_id`` has, once per store state (trades are written
        by imports and rebuilds, which touch the context stamp): a user without trades costs
        a stamp read per pack, not a history read."""
        from buddy.store.trades import count_trades

        key = (str(store.path), user_id, store.context_stamp())
        found = self._trades.get(key)
        if found is None:
            if len(self._trades) >= 4 * self.cache_size:
                self._trades.clear()
            found = self._trades[key] = count_trades(store, user_id)
        return found

    def __call__(self, request: PieceRequest) -> tuple[BehaviorState | None, str | None]:
        """Return the behavior piece of ``request.user_id`` as of ``request.as_of``, or None
        and why it is missing."""
        return self.state_at(request.store, request.user_id, request.as_of)

    def batch(self, request: BatchPieceRequest) -> BatchPieces:
        """Return (pieces, reasons) per row, equal to the scalar answers: one piece per
        distinct (user, as_of), each user's history read once."""
        n = len(request)
        pieces = np.full(n, None, dtype=object)
        reasons = np.full(n, None, dtype=object)
        users = request.intents["user_id"].astype(str).to_numpy(object)
        as_of = pd.to_datetime(request.intents["as_of"], utc=True)
        for user in pd.unique(users):
            rows = np.flatnonzero(users == user)
            codes, times = pd.factorize(as_of.iloc[rows], sort=True)
            if self.n_trades(request.store, str(user)) == 0:
                reasons[rows] = [_no_trades(str(user), t) for t in as_of.iloc[rows]]
                continue
            stored = self.history(request.store, str(user))
            if not _opened_by(stored, pd.Timestamp(times.max())):
                reasons[rows] = [_no_trades(str(user), t) for t in as_of.iloc[rows]]
                continue
            # the user's settings, dismissals and shown nudges read once, up to the last t
            reads = _UserReads.of(request.store, str(user), pd.Timestamp(times.max()))
            for k, t in enumerate(times):
                at = rows[codes == k]
                piece, reason = self._state(stored, str(user),
                                            pd.Timestamp(t).to_pydatetime(), reads)
                pieces[at] = piece
                reasons[at] = reason
        return pieces, reasons

    def state_at(self, store: Store, user_id: str, as_of: datetime
                 ) -> tuple[BehaviorState | None, str | None]:
        """Return the behavior piece of ``user_id`` as of ``as_of``, or None and why."""
        if self.n_trades(store, user_id) == 0:
            return None, _no_trades(user_id, as_of)
        stored = self.history(store, user_id)
        if not _opened_by(stored, as_of):
            return None, _no_trades(user_id, as_of)
        return self._state(stored, user_id, as_of, _UserReads.of(store, user_id, as_of))

    def _state(self, stored: TraderHistory, user_id: str, as_of: datetime, reads: _UserReads
               ) -> tuple[BehaviorState | None, str | None]:
        t = pd.Timestamp(as_of).tz_convert("UTC")
        if not _opened_by(stored, t):
            return None, _no_trades(user_id, t)
        settings = reads.settings
        shown = reads.shown["shown_at"]
        recent = int(((shown < t) & (shown > t - CAP_WINDOW)).sum())
        quiet: dict[str, datetime] = {}
        if settings.dismiss_quiet_hours > 0:
            window = pd.Timedelta(hours=settings.dismiss_quiet_hours)
            dismissed = reads.dismissed
            for detector, at in zip(dismissed["detector"], dismissed["dismissed_at"],
                                    strict=True):
                if at <= t < at + window:
                    quiet[str(detector)] = pd.Timestamp(at).to_pydatetime()
        return BehaviorState(user_id=user_id, as_of=t.to_pydatetime(), stored=stored,
                             settings=settings, params=reads.params, shown_24h=recent,
                             quiet=quiet, currency=reads.currency), None

    def history(self, store: Store, user_id: str) -> TraderHistory:
        """Return ``user_id``'s whole stored history, read once per store state: the context
        stamp (imports, rebuilds) and the reviews; a newly logged intent re-reads only the
        intents (one query), not the trades and their bars."""
        from buddy.behavior.history import load_history
        from buddy.store.nudges import activity_key

        intents_key, reviews_key = activity_key(store, user_id)
        key = (str(store.path), user_id, store.context_stamp(), reviews_key)
        found = self._cache.get(key)
        if found is None:
            stored = load_history(store, user_id)
        elif found[0] != intents_key:
            stored = dataclasses.replace(found[1], intents=_intents(store, user_id))
        else:
            self._cache.move_to_end(key)
            return found[1]
        self._cache[key] = (intents_key, stored)
        self._cache.move_to_end(key)
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return stored


def _intents(store: Store, user_id: str) -> pd.DataFrame:
    """Return the user's logged intents as ``TraderHistory.intents`` holds them."""
    from buddy.behavior.history import INTENT_COLUMNS
    from buddy.store.behavior import read_user_intents

    frame = read_user_intents(store, user_id)
    out = pd.DataFrame({c: frame[c] for c in INTENT_COLUMNS})
    for c in ("proposed_entry", "proposed_stop", "proposed_size", "proposed_risk_amount"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    return out.reset_index(drop=True)


def _opened_by(stored: TraderHistory, as_of: datetime | pd.Timestamp) -> bool:
    """Return True when the stored history has a trade opened by ``as_of``."""
    opened = pd.to_datetime(stored.trades["open_ts"], utc=True)
    return bool((opened <= pd.Timestamp(as_of)).any())


def _no_trades(user_id: str, as_of: datetime | pd.Timestamp) -> str:
    """Return the missing reason of a user without a trade opened by ``as_of``."""
    return (f"{user_id} has no trades opened by {pd.Timestamp(as_of).isoformat()}: the "
            f"behaviour checks compare an idea with the trader's own history")


def behavior_of(store: Store, user_id: str, as_of: datetime
                ) -> tuple[BehaviorState | None, str | None]:
    """Return the behavior piece of ``user_id`` as of ``as_of`` (the shared provider)."""
    return behavior_provider.state_at(store, user_id, as_of)


#: The provider ``buddy.api.default_providers`` registers (its cache is per process).
behavior_provider = BehaviorProvider()
