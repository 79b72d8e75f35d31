"""Playbook job: fit a user's playbooks on their closed trades' entry facts and store them.

Reads ``trade_entry_facts`` point-in-time (trades closed by ``as_of``; every closed trade when
None), fits ``buddy.strategy.playbooks.fit_playbooks`` and replaces the user's ``playbooks``
and ``playbook_members`` rows in one transaction (through ``buddy.store.strategy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pandas as pd

from buddy.store.strategy import read_entry_facts, replace_playbooks
from buddy.strategy.playbooks import PlaybookFit, PlaybookRecipe, fit_playbooks, playbook_tables

if TYPE_CHECKING:
    from buddy.store import Store


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybookJobResult:
    """What a playbook run fitted and wrote."""

    user_id: str
    as_of: datetime | None
    n_trades: int  # trades fitted
    n_left_out: int  # closed trades left out for a missing embedding feature
    n_playbooks: int
    n_members: int
    key: str
    fit: PlaybookFit

    def text(self) -> str:
        """Return the run in words, then the playbooks."""
        return (f"playbooks of {self.user_id}: {self.n_playbooks} written ({self.n_members} "
                f"member trades) from {self.n_trades} trades, {self.n_left_out} left out "
                f"(missing feature); fit key {self.key}\n{self.fit.text()}")


def closed_facts(store: Store, user_id: str, as_of: datetime | None) -> pd.DataFrame:
    """Return the entry facts of ``user_id``'s trades closed by ``as_of`` (all closed: None)."""
    facts = read_entry_facts(store, user_id, closed_by=as_of)
    if "close_ts" in facts.columns:
        facts = facts[facts["close_ts"].notna()]
    return facts.reset_index(drop=True)


def run_playbook_job(store: Store, user_id: str, *, recipe: PlaybookRecipe | None = None,
                     as_of: datetime | None = None) -> PlaybookJobResult:
    """Fit ``user_id``'s playbooks on the trades closed by ``as_of`` and store them."""
    facts = closed_facts(store, user_id, as_of)
    until = as_of
    if until is None and len(facts):
        until = pd.Timestamp(facts["close_ts"].max()).to_pydatetime()
    fit = fit_playbooks(facts, recipe, user_id=user_id, fitted_until=until)
    books, members = playbook_tables(fit, datetime.now(UTC))
    replace_playbooks(store, user_id, books, members)
    return PlaybookJobResult(user_id=user_id, as_of=as_of, n_trades=fit.n_trades,
                             n_left_out=fit.n_left_out, n_playbooks=len(fit.playbooks),
                             n_members=len(members), key=fit.key, fit=fit)
