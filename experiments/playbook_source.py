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

mlflow is imported only when the store exists (or when publishing creates it), and not even
then while the production pointer answers: each registry read writes, next to a SQLite store,
``buddy-playbooks-<user>.production.pointer.json`` (the version holding production and its fit
as ``PlaybookFit.to_dict()``, with a ``file_stamp`` of the store taken BEFORE the read, as
``buddy.config_sources.ConfigPointer`` does for the scoring config). While the store's stamp is
unchanged the pointer answers; any write to the store (a promotion, a rollback, a run logged)
makes the next call read the registry again and rewrite it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
#: The alias production consumers load, and the version of the pointer file's layout.
PRODUCTION_ALIAS = "production"
POINTER_FORMAT = 1


def production_playbooks(user_id: str) -> PlaybookFit | None:
    """Return ``user_id``'s production PlaybookFit, or None when there is none: from the
    current pointer when there is one (no mlflow import), else from the registry (and the
    pointer is rewritten)."""
    from experiments.tracking import sqlite_path, store_exists, tracking_uri

    if not store_exists():
        return None
    uri = tracking_uri()
    name = playbook_model_name(user_id)
    db = sqlite_path(uri)
    path = playbook_pointer_path(user_id, uri)
    if db is not None and path is not None:
        answered, fit = _pointed(path, db, uri, name)
        if answered:
            return fit
    try:
        return refresh_playbook_pointer(user_id)
    except Exception as exc:  # an unreadable store: see the module docstring
        warnings.warn(f"experiment store {uri}: {exc}; no production playbooks "
                      f"for {user_id}", RuntimeWarning, stacklevel=2)
        return None


def playbook_pointer_path(user_id: str, uri: str | None = None) -> Path | None:
    """Return the production pointer file of ``user_id``'s playbooks next to the SQLite store
    at ``uri`` (default ``tracking_uri()``), or None for a store that is not a SQLite file."""
    from experiments.tracking import sqlite_path

    db = sqlite_path(uri)
    name = playbook_model_name(user_id)
    return None if db is None else db.parent / f"{name}.{PRODUCTION_ALIAS}.pointer.json"


def refresh_playbook_pointer(user_id: str) -> PlaybookFit | None:
    """Read ``user_id``'s production playbooks from the registry, rewrite the pointer and
    return the fit (None when no version holds production).

    The store is stamped BEFORE it is read: a write racing this read leaves the pointer's
    stamp older than the file, so the next call reads the registry again."""
    from buddy.config_sources import file_stamp
    from experiments.registry import PRODUCTION, alias_version
    from experiments.tracking import sqlite_path, tracking_uri

    uri = tracking_uri()
    db = sqlite_path(uri)
    stamp = file_stamp(db) if db is not None else ""
    name = playbook_model_name(user_id)
    version = alias_version(name, PRODUCTION)
    fit = None
    if version is not None:
        key = (uri, name, version)
        if key not in _LOADED:
            _LOADED[key] = load_playbook_version(version, name).fit
        fit = _LOADED[key]
    path = playbook_pointer_path(user_id, uri)
    if db is not None and path is not None:
        pointer = {"format": POINTER_FORMAT, "store": str(db), "store_stamp": stamp,
                   "model": name, "alias": PRODUCTION, "version": version,
                   "fit": None if fit is None else fit.to_dict()}
        try:
            _write_json(path, pointer)
        except OSError as exc:  # the pointer only saves time: evaluations go on without it
            warnings.warn(f"cannot write the playbook pointer {path}: {exc}", RuntimeWarning,
                          stacklevel=2)
    return fit


def _pointed(path: Path, db: Path, uri: str, name: str) -> tuple[bool, PlaybookFit | None]:
    """Return (True, fit or None) when the pointer at ``path`` describes ``db`` as it is now
    for ``name``@production; (False, None) otherwise (read the registry: an unreadable or
    stale pointer is never guessed at)."""
    from buddy.config_sources import file_stamp
    from buddy.strategy.playbooks import PlaybookFit

    try:
        values: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False, None
    if not isinstance(values, dict) or values.get("format") != POINTER_FORMAT or (
            values.get("store"), values.get("model"), values.get("alias")) != (
            str(db), name, PRODUCTION_ALIAS):
        return False, None
    if values.get("store_stamp") != file_stamp(db):
        return False, None
    version = values.get("version")
    if version is None:
        return True, None
    key = (uri, name, str(version))
    if key not in _LOADED:
        try:
            fit = PlaybookFit.from_dict(values["fit"])
        except Exception:  # a fit this code cannot rebuild: the registry decides
            return False, None
        _LOADED[key] = fit
    return True, _LOADED[key]


def _write_json(path: Path, values: dict[str, Any]) -> None:
    """Write ``values`` to ``path`` atomically (a reader sees the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(values, out, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
