"""The MLflow registry as the playbook source and publisher of ``buddy`` (entry-point groups
``trading_buddy.playbook_sources`` and ``trading_buddy.playbook_publishers``, declared in
pyproject.toml and read by ``buddy.strategy.sources``).

- ``production_playbooks(user_id)``: the PlaybookFit holding ``production`` of
  ``buddy-playbooks-<user>``, or None (no store, no model, no alias). Loaded fits are kept per
  process by (store, model, version), so only the alias lookup is repeated; a store that
  cannot be read is warned about and answers None (a broken experiment store must not stop
  evaluations: the strategy piece then fits the default recipe).
- ``publish(store, fit)``: register the fit as a new version (unless production already
  holds a version of the same trades and recipe), run the playbook gate (stability, and
  coverage of a later holdout of the user's trades in ``store``) and promote; return the
  sentences to print.

mlflow is imported only when the store exists (or when publishing creates it).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import pandas as pd

from experiments.playbooks import (
    PLAYBOOK_GATE,
    HoldoutCoverage,
    PlaybookGate,
    load_playbook_version,
    playbook_model_name,
    promote_playbooks,
    register_playbooks,
    stability,
    version_with_key,
)

if TYPE_CHECKING:
    from buddy.store import Store
    from buddy.strategy.playbooks import PlaybookFit
    from experiments.gate import GateComparison

_LOADED: dict[tuple[str, str, str], PlaybookFit] = {}


def production_playbooks(user_id: str) -> PlaybookFit | None:
    """Return ``user_id``'s production PlaybookFit, or None when there is none."""
    from experiments.registry import PRODUCTION, alias_version
    from experiments.tracking import store_exists, tracking_uri

    if not store_exists():
        return None
    name = playbook_model_name(user_id)
    try:
        version = alias_version(name, PRODUCTION)
        if version is None:
            return None
        key = (tracking_uri(), name, version)
        if key not in _LOADED:
            _LOADED[key] = load_playbook_version(version, name).fit
        return _LOADED[key]
    except Exception as exc:  # an unreadable store: see the module docstring
        warnings.warn(f"experiment store {tracking_uri()}: {exc}; no production playbooks "
                      f"for {user_id}", RuntimeWarning, stacklevel=2)
        return None


def publish(store: Store | None, fit: PlaybookFit, *, gate: PlaybookGate = PLAYBOOK_GATE,
            facts: pd.DataFrame | None = None) -> list[str]:
    """Register ``fit``, gate it against production and promote it; return what happened
    in sentences (the version, the gate's figures with n and intervals, the aliases).

    The holdout is read from ``store`` (the user's entry facts), or cut from ``facts`` when
    the caller holds them."""
    from experiments.registry import PRODUCTION, alias_version
    from experiments.tracking import ensure_store

    experiments = ensure_store()
    name = playbook_model_name(fit.user_id)
    current = alias_version(name, PRODUCTION, client=experiments.client)
    same = version_with_key(name, fit.key, experiments=experiments)
    if current is not None and same == current:
        return [f"{name}: v{current} already holds production (the same "
                f"{fit.n_trades} trades and recipe); nothing registered"]
    version = register_playbooks(fit, experiments=experiments)
    stable, n_playbooks = stability(fit)
    until = ("(no closed trade)" if fit.fitted_until is None
             else f"{pd.Timestamp(fit.fitted_until):%Y-%m-%d %H:%M} UTC")
    lines = [f"{name}: registered v{version} ({n_playbooks} playbooks from {fit.n_trades} "
             f"trades closed by {until}, "
             f"{fit.n_left_out} left out; stability {stable:.2f})"]
    promotion = promote_playbooks(fit.user_id, version,
                                  scorer=HoldoutCoverage(store, gate=gate, facts=facts),
                                  gate=gate, experiments=experiments)
    if promotion.comparison is not None:
        lines += gate_lines(promotion.comparison, gate)
    before, after = promotion.production_before, promotion.production_after
    lines.append(f"{name}: production {f'v{before}' if before else '(none)'} -> "
                 f"{f'v{after}' if after else '(none)'} "
                 f"({'promoted' if promotion.moved else 'refused'}; run {promotion.run_id})")
    return lines


def gate_lines(comparison: GateComparison, gate: PlaybookGate) -> list[str]:
    """Return the gate's decision in sentences: outcome, stability, holdout coverage."""
    mine, theirs = comparison.challenger_metrics, comparison.production_metrics
    window = comparison.gate.window
    lines = [f"gate: {comparison.outcome.upper()} - {comparison.reason}",
             f"  stability {mine.get('stability', math.nan):.2f} over "
             f"{mine.get('n_playbooks', 0):g} published playbooks (at least "
             f"{gate.min_stability:g})"]
    n = mine.get("n", 0.0)
    if n:
        line = (f"  holdout coverage {mine['coverage']:.2f} [{mine['coverage_low']:.2f}, "
                f"{mine['coverage_high']:.2f}] (n={n:g} trades entered from "
                f"{pd.Timestamp(window.start):%Y-%m-%d}, recipe refit on the "
                f"{mine['n_fit']:g} trades closed before)")
        if theirs and theirs.get("n"):
            line += (f"; production's recipe {theirs['coverage']:.2f} "
                     f"[{theirs['coverage_low']:.2f}, {theirs['coverage_high']:.2f}] "
                     f"(may drop at most {gate.coverage_tolerance:g})")
        lines.append(line)
    else:
        lines.append("  holdout coverage not checked: no later holdout trade could be placed")
    return lines
