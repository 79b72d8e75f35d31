"""Find and show a behaviour nudge on one of a trader's own logged intents (``make demo``).

``revenge_example(store, user)`` looks, among the user's logged intents decided within the
revenge window after one of their losing trades closed, for those where
BehaviorNudgesEvaluator raises REVENGE_TRADING (the detectors decide, not the demo's ground
truth), and returns the latest whose loss is known in R (else the latest) with its rendered
nudge. ``show_revenge_nudge`` prints it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from buddy.domain import Issue
    from buddy.explain import RenderedIssue
    from buddy.store import Store

__all__ = ["NudgeExample", "revenge_example", "show_revenge_nudge"]


@dataclass(frozen=True, slots=True)
class NudgeExample:
    """A logged intent, the nudge raised on it and its words."""

    intent_id: str
    symbol: str
    as_of: pd.Timestamp
    issue: Issue
    rendered: RenderedIssue

    def text(self) -> str:
        """Return the nudge as the trader reads it, with its evidence lines."""
        r = self.rendered
        lines = [f"{self.symbol} intent {self.intent_id} as of {self.as_of.isoformat()}",
                 f"[{r.severity}] {r.title}", f"  {r.explanation}", f"  -> {r.mitigation}"]
        lines += [f"     {e}" for e in r.evidence]
        return "\n".join(lines)


def revenge_example(store: Store, user_id: str) -> NudgeExample | None:
    """Return the latest of ``user_id``'s logged intents on which a revenge nudge is raised
    (None: there is none)."""
    from buddy.batch.builder import build_batch_context
    from buddy.behavior.provider import BehaviorProvider
    from buddy.context.providers import ProviderRegistry
    from buddy.evaluators.behavior_nudges import BehaviorNudgesEvaluator
    from buddy.explain import render_issue
    from buddy.store.behavior import read_user_intents

    provider = BehaviorProvider()
    stored = provider.history(store, user_id)
    intents = read_user_intents(store, user_id)
    trades = stored.trades
    lost = trades[(trades["pnl"] < 0) & trades["close_ts"].notna()]
    if intents.empty or lost.empty:
        return None
    window = pd.Timedelta(hours=revenge_window_hours(store, user_id))
    closes = np.sort(pd.to_datetime(lost["close_ts"], utc=True).to_numpy("datetime64[ns]"))
    at = pd.to_datetime(intents["as_of"], utc=True).to_numpy("datetime64[ns]")
    k = np.searchsorted(closes, at, side="left") - 1
    near = (k >= 0) & (at - closes[np.maximum(k, 0)] <= window.to_timedelta64())
    candidates = intents[near].reset_index(drop=True)
    if candidates.empty:
        return None
    evaluator = BehaviorNudgesEvaluator()
    ctx = build_batch_context(store, candidates,
                              providers=ProviderRegistry({"behavior": provider}))
    result = evaluator.evaluate_batch(ctx)
    found = result.issues
    rows = found.loc[found["code"] == "REVENGE_TRADING", "row"].to_numpy(np.int64)
    if not len(rows):
        return None
    issues = {int(r): next(i for i in result.row(int(r)).issues if i.code == "REVENGE_TRADING")
              for r in rows}
    # the clearest example: a loss measured in R (its trade had a planned stop), the latest
    row = max(issues, key=lambda r: (_loss_r_known(issues[r]), r))
    issue = issues[row]
    return NudgeExample(intent_id=str(candidates.loc[row, "intent_id"]),
                        symbol=str(candidates.loc[row, "symbol"]),
                        as_of=pd.Timestamp(candidates.loc[row, "as_of"]), issue=issue,
                        rendered=render_issue(issue, evaluator.templates["REVENGE_TRADING"]))


def _loss_r_known(issue: Issue) -> bool:
    value = next((f.value for f in issue.evidence if f.name == "loss_r"), None)
    return isinstance(value, int | float) and np.isfinite(value)


def revenge_window_hours(store: Store, user_id: str) -> float:
    """Return the revenge window (hours) at the user's sensitivity."""
    from buddy.behavior.provider import params_of
    from buddy.behavior.settings import nudge_settings

    return float(params_of(nudge_settings(store, user_id)).revenge.window_hours)


def show_revenge_nudge(store: Store, user_id: str, *,
                       echo: Callable[[str], None] = print) -> NudgeExample | None:
    """Print the revenge nudge of ``revenge_example`` (or say there is none); return it."""
    example = revenge_example(store, user_id)
    if example is None:
        echo(f"\n# Behaviour nudges\nNo revenge-trading nudge on {user_id}'s logged intents.")
        return None
    echo(f"\n# A behaviour nudge on one of {user_id}'s own intents, right after a loss\n"
         f"{example.text()}")
    return example
