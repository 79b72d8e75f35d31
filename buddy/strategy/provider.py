"""The ContextPack's ``strategy`` piece: the user's profile, playbooks, rules and drift as of t.

``StrategyProvider`` (the instance ``strategy_provider``) implements
``buddy.context.providers.PieceProvider``. For a request at t it

1. counts the user's trades with entry facts (``n_facts``: one query per store state, cached
   under the store's context stamp, which every facts write touches) and then those closed by
   t: none, or fewer than ``MIN_TRADES``, and the piece is None with the reason. Nothing else
   is read and no playbook source (MLflow) is asked, so a user without trades costs a stamp
   read per pack;
2. reads ``read_entry_facts(closed_by=t)`` (only trades closed by t: the point-in-time read),
   builds the profile (``build_profile``) and the playbooks:

   - the production PlaybookFit (``buddy.strategy.sources.production_playbooks``) AS IS when
     its training trades are exactly those closed by t;
   - otherwise the production fit's recipe REFIT on the trades closed by t (a model fitted on
     later trades would leak them into the past);
   - no production model: the default recipe (``PlaybookRecipe()``) fitted on them;

3. adds the drift of the recent trades as of t (``profile_drift``) and the user's rules.

What is computed from the trades (profile and playbooks) depends only on the trades closed by
t, so it is cached per process by (store path, user, (count, newest close), recipe hash): a
batch or a process computes each distinct state once. The profile of state (n, newest close)
is built "as of" that newest close, so every t sharing the state shares the profile.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from buddy.context.providers import BatchPieceRequest, BatchPieces, PieceRequest

if TYPE_CHECKING:
    from buddy.store import Store
    from buddy.strategy.playbooks import PlaybookFit, PlaybookRecipe
    from buddy.strategy.profile import Drift, StrategyProfile
    from buddy.strategy.sources import PlaybookSource
    from buddy.users.model import RiskRules

__all__ = ["CACHE_SIZE", "StrategyProvider", "UserStrategy", "strategy_of", "strategy_provider"]

#: Distinct (store, user, trade state, recipe) computations kept per process.
CACHE_SIZE = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class UserStrategy:
    """The ``strategy`` piece: what the user's own closed trades say as of ``as_of``.

    ``profile``: built from the trades closed by ``as_of``; ``playbooks``: the fit placing a
    new idea among them (None when it could not be fitted: ``playbooks_reason`` says why);
    ``playbooks_source``: where the fit came from ('production vN as is', 'refit as of T with
    production vN's recipe', 'default recipe, fitted as of T'); ``rules``: the user's risk
    rules (None without an account); ``drift``: features whose recent distribution moved;
    ``n_closed``: trades closed by ``as_of`` with entry facts.
    """

    user_id: str
    as_of: datetime
    n_closed: int
    profile: StrategyProfile
    playbooks: PlaybookFit | None
    playbooks_source: str
    playbooks_reason: str | None = None
    rules: RiskRules | None = None
    drift: tuple[Drift, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class _State:
    """What the trades closed by t give (shared by every t with the same trades)."""

    profile: StrategyProfile
    playbooks: PlaybookFit | None
    source: str
    reason: str | None
    facts: pd.DataFrame


class StrategyProvider:
    """The ``strategy`` piece's provider (see the module docstring).

    ``sources``: the playbook sources to ask for a production fit (default: the installed
    ones, asked only for a user with enough trades); ``recipe``: the recipe fitted when no
    production fit exists (default: ``PlaybookRecipe()``).
    """

    def __init__(self, *, sources: Mapping[str, PlaybookSource] | None = None,
                 recipe: PlaybookRecipe | None = None, cache_size: int = CACHE_SIZE) -> None:
        self.sources = sources
        self.recipe = recipe
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[Any, ...], _State] = OrderedDict()
        self._production: dict[tuple[str, str], PlaybookFit | None] = {}
        self._counts: dict[tuple[str, str, int], int] = {}

    def __repr__(self) -> str:
        return f"StrategyProvider(sources={self.sources!r}, recipe={self.recipe!r})"

    def _settings(self) -> tuple[Any, ...]:
        return (self.sources, self.recipe, self.cache_size)

    def __eq__(self, other: object) -> bool:
        """Providers with the same settings give the same pieces (caches aside)."""
        return isinstance(other, StrategyProvider) and self._settings() == other._settings()

    __hash__ = None  # type: ignore[assignment]  # mutable caches: compared, never hashed

    def __getstate__(self) -> dict[str, Any]:
        """Ship the settings, not the caches (a replay worker builds its own)."""
        return {"sources": self.sources, "recipe": self.recipe, "cache_size": self.cache_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def clear(self) -> None:
        """Drop every cached state and production lookup."""
        self._cache.clear()
        self._production.clear()
        self._counts.clear()

    def __call__(self, request: PieceRequest) -> tuple[UserStrategy | None, str | None]:
        """Return the strategy piece of ``request.user_id`` as of ``request.as_of``, or None
        and why it is missing."""
        if self.n_facts(request.store, request.user_id) == 0:
            return None, no_trades_reason(request.user_id)
        return self.strategy_at(request.store, request.user_id, request.as_of)

    def batch(self, request: BatchPieceRequest) -> BatchPieces:
        """Return (pieces, reasons) per row, equal to the scalar answers: one count per user
        first (a user without trades costs nothing more), then one piece per distinct
        (user, as_of), sharing the cached state of each distinct set of closed trades."""
        n = len(request)
        pieces = np.full(n, None, dtype=object)
        reasons = np.full(n, None, dtype=object)
        users = request.intents["user_id"].astype(str).to_numpy(object)
        as_of = pd.to_datetime(request.intents["as_of"], utc=True)
        for user in pd.unique(users):
            rows = np.flatnonzero(users == user)
            if self.n_facts(request.store, str(user)) == 0:
                reasons[rows] = no_trades_reason(str(user))
                continue
            codes, times = pd.factorize(as_of.iloc[rows], sort=True)
            for k, t in enumerate(times):
                at = rows[codes == k]
                piece, reason = self.strategy_at(request.store, str(user),
                                                 pd.Timestamp(t).to_pydatetime())
                pieces[at] = piece
                reasons[at] = reason
        return pieces, reasons

    def n_facts(self, store: Store, user_id: str) -> int:
        """Return how many entry-facts rows ``user_id`` has, read once per store state: every
        facts write touches the store's context stamp, so the count is cached under it (a
        user without trades then costs a file read per pack, not a query)."""
        from buddy.store.strategy import entry_facts_key

        key = (str(store.path), user_id, store.context_stamp())
        found = self._counts.get(key)
        if found is None:
            found = entry_facts_key(store, user_id, None)[0]
            if len(self._counts) >= self.cache_size:
                self._counts.clear()
            self._counts[key] = found
        return found

    def strategy_at(self, store: Store, user_id: str, as_of: datetime
                    ) -> tuple[UserStrategy | None, str | None]:
        """Return the strategy piece of ``user_id`` from the trades closed by ``as_of``."""
        from buddy.store.strategy import entry_facts_key
        from buddy.strategy.profile import MIN_TRADES, profile_drift
        from buddy.users.store import get_account_context

        n_closed, newest = entry_facts_key(store, user_id, as_of)
        if n_closed < MIN_TRADES:
            return None, (f"{user_id} has {n_closed} closed trade(s) by "
                          f"{pd.Timestamp(as_of).isoformat()}; the strategy checks need at "
                          f"least {MIN_TRADES}")
        state = self._state(store, user_id, as_of, (n_closed, newest))
        account = get_account_context(store, user_id)
        return UserStrategy(
            user_id=user_id, as_of=as_of, n_closed=n_closed, profile=state.profile,
            playbooks=state.playbooks, playbooks_source=state.source,
            playbooks_reason=state.reason,
            rules=None if account is None else account.rules,
            drift=tuple(profile_drift(state.facts, as_of))), None

    def _state(self, store: Store, user_id: str, as_of: datetime,
               key: tuple[int, str]) -> _State:
        from buddy.store.strategy import read_entry_facts
        from buddy.strategy.playbooks import PlaybookRecipe

        production = self._production_fit(store, user_id)
        recipe = (production.recipe if production is not None
                  else self.recipe or PlaybookRecipe())
        cache_key = (str(store.path), user_id, key, recipe.hash,
                     None if production is None else production.key)
        state = self._cache.get(cache_key)
        if state is not None:
            self._cache.move_to_end(cache_key)
            return state
        facts = read_entry_facts(store, user_id, closed_by=as_of)
        # the key's text is 'newest close|newest computed_at'
        state = build_state(facts, user_id=user_id, newest=key[1].split("|")[0],
                            production=production, recipe=recipe)
        self._cache[cache_key] = state
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return state

    def _production_fit(self, store: Store, user_id: str) -> PlaybookFit | None:
        # asked once per (store, user) and process: the source keeps its own per-version cache
        key = (str(store.path), user_id)
        if key not in self._production:
            from buddy.strategy.sources import production_playbooks

            self._production[key] = production_playbooks(user_id, sources=self.sources)
        return self._production[key]


def build_state(facts: pd.DataFrame, *, user_id: str, newest: str,
                production: PlaybookFit | None, recipe: PlaybookRecipe) -> _State:
    """Return the profile and playbooks of ``facts`` (the trades closed by t, newest close
    ``newest``): the production fit as is when it was trained on exactly these trades, else
    ``recipe`` refit on them."""
    from buddy.errors import BuddyError
    from buddy.strategy.playbooks import fit_playbooks
    from buddy.strategy.profile import build_profile

    through = pd.Timestamp(newest).to_pydatetime()
    profile = build_profile(facts, user_id=user_id, as_of=through)
    stamp = pd.Timestamp(newest).isoformat()
    if production is not None and trained_on(production) == complete_ids(production, facts):
        return _State(profile, production, f"production {version_of(production)} as is",
                      None, facts)
    try:
        fit = fit_playbooks(facts, recipe, user_id=user_id, fitted_until=through)
    except BuddyError as exc:  # facts the recipe cannot read: said, never guessed
        return _State(profile, None, "none", f"playbooks not fitted: {exc}", facts)
    if not fit.playbooks and fit.n_trades < 3:
        return _State(profile, None, "none", f"playbooks not fitted: only {fit.n_trades} "
                      f"trade(s) with every embedding fact", facts)
    source = (f"refit as of {stamp} with production {version_of(production)}'s recipe"
              if production is not None else f"default recipe, fitted as of {stamp}")
    return _State(profile, fit, source, None, facts)


def trained_on(fit: PlaybookFit) -> frozenset[str]:
    """Return the trade ids ``fit`` was trained on."""
    return frozenset(str(t) for t in fit.trade_ids)


def complete_ids(fit: PlaybookFit, facts: pd.DataFrame) -> frozenset[str] | None:
    """Return the ids of the rows of ``facts`` holding every feature of ``fit``'s recipe (the
    trades a refit would train on), None when a feature column is absent."""
    if any(f not in facts.columns for f in fit.features):
        return None
    _, ok = fit.vectors(facts)
    return frozenset(facts.loc[ok, "trade_id"].astype(str))


def version_of(fit: PlaybookFit | None) -> str:
    """Return 'vN' for a fit that carries its registry version, else 'model'."""
    version = getattr(fit, "version", None)
    return f"v{version}" if version is not None else "model"


def no_trades_reason(user_id: str) -> str:
    """Return the missing reason of a user with no closed trades with entry facts."""
    return (f"{user_id} has no closed trades with entry facts (import trades, then run "
            f"`buddy profile --user {user_id}`)")


def strategy_of(store: Store, user_id: str, as_of: datetime
                ) -> tuple[UserStrategy | None, str | None]:
    """Return the strategy piece of ``user_id`` as of ``as_of`` (the shared provider)."""
    return strategy_provider.strategy_at(store, user_id, as_of)


#: The provider ``buddy.api.default_providers`` registers (its cache is per process).
strategy_provider = StrategyProvider()
