"""Behaviour job: scan a user's history with the detectors and store the events.

Reads the history as of ``as_of`` (everything when None; ``buddy.behavior.history``), runs
``buddy.behavior.detectors.scan`` and replaces the user's ``behavior_events`` in one
transaction (``buddy.store.behavior.replace_events``), so a rescan under other settings
never leaves a mix. ``computed_at`` is the only wall-clock read (this is an edge).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pandas as pd

from buddy.behavior.detectors import scan
from buddy.behavior.history import load_history
from buddy.behavior.params import DETECTORS, BehaviorParams, params_for
from buddy.store.behavior import replace_events

if TYPE_CHECKING:
    from buddy.store import Store

__all__ = ["BehaviorJobResult", "run_behavior_job"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BehaviorJobResult:
    """What a scan found (and wrote, unless ``dry_run``)."""

    user_id: str
    as_of: datetime | None
    n_trades: int
    n_intents: int
    params_hash: str
    events: pd.DataFrame
    written: bool

    def counts(self) -> dict[str, int]:
        """Return the events per detector (every detector, zeros included)."""
        found = self.events["event_type"].value_counts()
        return {d: int(found.get(d, 0)) for d in DETECTORS}

    def text(self, last: int = 5) -> str:
        """Return the scan in words: counts per detector and the ``last`` newest events."""
        when = ("everything stored" if self.as_of is None
                else f"as of {self.as_of:%Y-%m-%d %H:%M} UTC")
        head = (f"behaviour scan of {self.user_id!r} ({when}; {self.n_trades} trades, "
                f"{self.n_intents} intents; params #{self.params_hash}): "
                f"{len(self.events)} events" + (" written to behavior_events" if self.written
                                                else " (dry run: nothing written)"))
        lines = [head, "  " + ", ".join(f"{d} {n}" for d, n in self.counts().items())]
        for e in self.events.tail(last).itertuples(index=False):
            figure = "" if pd.isna(e.value) else f" {e.metric} {e.value:.4g} {e.unit}"
            base = "" if pd.isna(e.baseline) else f" (yours: {e.baseline:.4g}, n={e.n})"
            lines.append(f"  {e.ts:%Y-%m-%d %H:%M} {e.event_type} [{e.severity}] {e.symbol}"
                         f"{figure}{base}")
        return "\n".join(lines)


def run_behavior_job(store: Store, user_id: str, *, params: BehaviorParams | None = None,
                     as_of: datetime | None = None, dry_run: bool = False
                     ) -> BehaviorJobResult:
    """Scan ``user_id``'s history as of ``as_of`` and replace their behaviour events
    (``dry_run``: compute only)."""
    params = params or params_for()
    history = load_history(store, user_id, as_of=as_of)
    events = scan(history, params)
    if not dry_run:
        replace_events(store, user_id, events.assign(computed_at=datetime.now(UTC)))
    return BehaviorJobResult(user_id=user_id, as_of=as_of, n_trades=len(history.trades),
                             n_intents=len(history.intents), params_hash=params.hash,
                             events=events, written=not dry_run)
