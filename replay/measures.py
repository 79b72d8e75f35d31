"""Each warning's claim, tested with its own measure.

A process audit does not promise a better mean R: each issue code warns of a specific harm and
names the outcome measure that shows it (``Code.harm``, ``Code.measure``, a key of
``buddy.evaluators.measures.MEASURES``). ``intent_measures`` computes every measure per
replayed intent from its labelled outcome; ``claim_table`` compares, per code, the intents it
fired on with those it did not (same corpus), with n on each side, the difference and its
cluster bootstrap interval, and a plain verdict: 'supported', 'contradicted' or 'cannot judge
yet' (and why).

Who is measured (``Measure.over``): 'all' measures (not_filled) use every intent whose fill is
known; 'filled' measures use intents whose entry filled and whose trade ended (stop, target,
time, or a real trade for the measures a real trade can show). Open trades (data ended first)
and unfilled entries never enter an R measure; ``claim_table`` counts, per side, the intents
in a measure's scope whose value is unknown (``*_unknown``: an exit reason a real trade does
not record, or no account equity known at the decision).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from buddy.evaluators.measures import EARLY_BARS, MEASURES
from buddy.orchestrator import ORCHESTRATOR_CLAIMS
from buddy.store import Store
from buddy.store.accounts import equity_as_of
from buddy.store.replay import replay_intents
from replay.calibration import (
    MIN_SAMPLES,
    cluster_ids,
    mean_difference,
    mean_statistic,
    rate_statistic,
)

#: Exit reasons of a simulated trade that ended; 'trade' is a real trade (reason unknown).
ENDED = ("stop", "target", "time")
#: A loss counts as beyond the stop below -1 R by more than this (float noise at the stop).
STOP_TOLERANCE_R = 1e-9
VERDICTS = ("supported", "contradicted", "cannot judge yet")

CLAIM_COLUMNS: tuple[str, ...] = (
    "code", "modules", "kind", "harm", "measure", "unit", "worse", "n_fired", "n_not_fired",
    "n_fired_unknown", "n_not_fired_unknown", "fired", "fired_low", "fired_high", "not_fired",
    "not_fired_low", "not_fired_high", "diff", "diff_low", "diff_high", "verdict", "reason")


class DeclaredCode(Protocol):
    """What ``claim_table`` reads of a code's declaration (``buddy.evaluators.base.Code``)."""

    @property
    def kind(self) -> str: ...
    @property
    def harm(self) -> str: ...
    @property
    def measure(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class _Declared:
    kind: str
    harm: str
    measure: str | None


#: The orchestrator's own items (declared in buddy.orchestrator next to their templates).
ORCHESTRATOR_CODES: Mapping[str, DeclaredCode] = ORCHESTRATOR_CLAIMS


def _as_codes(codes: Mapping[str, DeclaredCode] | pd.DataFrame) -> Mapping[str, DeclaredCode]:
    if not isinstance(codes, pd.DataFrame):
        return {**ORCHESTRATOR_CODES, **codes}
    missing = sorted({"code", "kind", "harm", "measure"} - set(codes.columns))
    if missing:
        raise ValueError(f"codes frame lacks column(s) {missing}")
    out: dict[str, DeclaredCode] = dict(ORCHESTRATOR_CODES)
    for row in codes.itertuples(index=False):
        measure = row.measure if isinstance(row.measure, str) else None
        out.setdefault(str(row.code), _Declared(str(row.kind), str(row.harm or ""), measure))
    return out


def declared_codes() -> dict[str, DeclaredCode]:
    """Return every registered evaluator's codes by code (the first declaration of a code
    two modules share; their claims are the same warning)."""
    from buddy.evaluators.registry import available

    out: dict[str, DeclaredCode] = {}
    for cls in available().values():
        for code, spec in cls.codes.items():
            out.setdefault(code, spec)
    return out


# --------------------------------------------------------------------------- inputs
def account_inputs(store: Store, run_ids: Sequence[str]) -> pd.DataFrame:
    """Return per replayed intent of ``run_ids`` the money at risk and the account equity at
    the decision, read point-in-time (``buddy.store.accounts.equity_as_of``).

    Columns run_id, intent_id, risk_money (|entry - stop| x size x contract multiplier, in the
    instrument's currency) and equity (account currency at as_of; NaN where unknown, or where
    the account's currency is not the instrument's: the two would not be comparable).
    """
    intents = replay_intents(store, run_ids)
    if intents.empty:
        return pd.DataFrame({"run_id": pd.Series(dtype=str), "intent_id": pd.Series(dtype=str),
                             "risk_money": pd.Series(dtype="float64"),
                             "equity": pd.Series(dtype="float64")})
    tickers = store.tickers().set_index("symbol")
    multiplier = tickers["contract_multiplier"].reindex(intents["symbol"]).to_numpy(float)
    currency = tickers["currency"].reindex(intents["symbol"]).to_numpy(object)
    risk = ((intents["proposed_entry"] - intents["proposed_stop"]).abs().to_numpy(float)
            * intents["proposed_size"].to_numpy(float) * multiplier)
    account = equity_as_of(store, intents["user_id"].tolist(), intents["as_of"])
    same = account["base_currency"].to_numpy(object) == currency
    return pd.DataFrame({"run_id": intents["run_id"].astype(str).to_numpy(),
                         "intent_id": intents["intent_id"].astype(str).to_numpy(),
                         "risk_money": risk,
                         "equity": np.where(same, account["equity"].to_numpy(float), np.nan)})


def _keys(frame: pd.DataFrame, with_run: bool) -> pd.MultiIndex | pd.Index:
    if with_run:
        return pd.MultiIndex.from_arrays([frame["run_id"].astype(str),
                                          frame["intent_id"].astype(str)])
    return pd.Index(frame["intent_id"].astype(str))


def filled_state(results: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Return per row (filled, known): whether the entry filled, and whether that is known.

    With the outcome column ``filled``: as labelled; 'not_filled' rows are known unfilled.
    Without it (outcomes labelled before fills were simulated): every row with an outcome
    other than 'open' counted as filled at its entry.
    """
    reason = results["exit_reason"].astype(object)
    has_outcome = reason.notna().to_numpy()
    if "filled" in results.columns:
        filled = results["filled"].astype("boolean").fillna(False).to_numpy(bool) & has_outcome
        known = filled | (reason == "not_filled").to_numpy()
        return filled, known
    filled = has_outcome & (reason != "open").to_numpy()
    return filled, filled.copy()


def intent_measures(results: pd.DataFrame, accounts: pd.DataFrame | None = None
                    ) -> pd.DataFrame:
    """Return every measure of ``MEASURES`` per row of ``results``.

    Column ``<measure>`` holds the value (1.0/0.0 for a rate, the value for a mean; NaN where
    it is unknown or does not apply) and ``<measure>_applies`` whether the row is in the
    measure's scope (so ``applies & isnan(value)`` is an unknown value, counted as such).
    ``accounts`` (``account_inputs``) gives risk money and equity for ``equity_loss``; without
    it that measure is unknown on every row. Also ``cluster`` (symbol-month, for resampling).
    """
    missing = sorted({"intent_id", "exit_reason", "realized_r", "mae_r", "bars_held"}
                     - set(results.columns))
    if missing:
        raise ValueError(f"results frame lacks outcome column(s) {missing}")
    reason = results["exit_reason"].astype(object)
    r = pd.to_numeric(results["realized_r"], errors="coerce").to_numpy(float)
    mae = pd.to_numeric(results["mae_r"], errors="coerce").to_numpy(float)
    bars = pd.to_numeric(results["bars_held"], errors="coerce").to_numpy(float)
    filled, known = filled_state(results)
    simulated_end = filled & reason.isin(ENDED).to_numpy()
    ended = simulated_end | (filled & (reason == "trade").to_numpy())

    def rate(hit: np.ndarray, where: np.ndarray) -> np.ndarray:
        return np.where(where, hit.astype(float), np.nan)

    out: dict[str, Any] = {}
    scope: dict[str, np.ndarray] = {}
    out["not_filled"], scope["not_filled"] = rate(~filled, known), known
    stop = (reason == "stop").to_numpy()
    for name, hit in (("stopped_early", stop & (bars <= EARLY_BARS)), ("stopped_out", stop),
                      ("target_reached", (reason == "target").to_numpy()),
                      ("time_stopped", (reason == "time").to_numpy())):
        # a real trade's exit reason is not recorded: in scope, value unknown
        out[name], scope[name] = rate(hit, simulated_end), ended
    has_r = ended & np.isfinite(r)
    out["loss_beyond_stop"] = rate(r < -1 - STOP_TOLERANCE_R, has_r)
    scope["loss_beyond_stop"] = ended
    out["adverse_excursion"] = np.where(ended & np.isfinite(mae), -mae, np.nan)
    scope["adverse_excursion"] = ended
    out["realized_r"], scope["realized_r"] = np.where(ended, r, np.nan), ended
    losing = has_r & (r < 0)
    loss_pct = np.full(len(results), np.nan)
    if accounts is not None and len(results):
        with_run = "run_id" in results.columns and "run_id" in accounts.columns
        inputs = accounts.set_index(_keys(accounts, with_run))
        inputs = inputs[~inputs.index.duplicated()].reindex(_keys(results, with_run))
        risk = inputs["risk_money"].to_numpy(float)
        equity = inputs["equity"].to_numpy(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            loss_pct = np.where(losing & (equity > 0), -r * risk / equity * 100, np.nan)
    out["equity_loss"], scope["equity_loss"] = loss_pct, losing
    unknown_measures = sorted(set(MEASURES) - set(out))
    if unknown_measures:  # a measure added to the vocabulary must be computed here
        raise NotImplementedError(f"no computation for measure(s) {unknown_measures}")
    frame = pd.DataFrame(index=results.index)
    for key in ("run_id", "intent_id", "symbol", "as_of"):
        if key in results.columns:
            frame[key] = results[key]
    frame["cluster"] = cluster_ids(results)
    for name in MEASURES:
        frame[name] = np.asarray(out[name], dtype=float)
        frame[f"{name}_applies"] = np.asarray(scope[name], dtype=bool)
    return frame


# --------------------------------------------------------------------------- claims
def fired_mask(results: pd.DataFrame, issues: pd.DataFrame, code: str) -> np.ndarray:
    """Return per row of ``results`` whether ``code`` fired on it (within its run)."""
    with_run = "run_id" in results.columns and "run_id" in issues.columns
    rows = issues[issues["code"].astype(str) == code]
    return np.asarray(_keys(results, with_run).isin(_keys(rows, with_run).unique()))


def _side(values: np.ndarray, clusters: np.ndarray, kind: str, *, n_boot: int, seed: int,
          stream: str, min_samples: int) -> tuple[float, float, float]:
    if kind == "rate":
        stat = rate_statistic(values.astype(bool), min_samples=min_samples)
    else:
        stat = mean_statistic(values, n_boot=n_boot, seed=seed, stream=stream,
                              min_samples=min_samples, clusters=clusters)
    return stat.estimate, stat.low, stat.high


def _verdict(diff: float, low: float, high: float, worse: str, n_fired: int,
             n_not_fired: int, min_samples: int) -> tuple[str, str]:
    if n_fired == 0:
        return "cannot judge yet", "never fired on an intent with this measure known"
    if n_fired < min_samples:
        return "cannot judge yet", f"fewer than {min_samples} fired (n={n_fired})"
    if n_not_fired < min_samples:
        return "cannot judge yet", f"fewer than {min_samples} not fired (n={n_not_fired})"
    if not (math.isfinite(low) and math.isfinite(high)):
        return "cannot judge yet", "no interval (some resample drew a side empty)"
    harm_side = (low > 0) if worse == "higher" else (high < 0)
    other_side = (high < 0) if worse == "higher" else (low > 0)
    direction = "higher" if diff > 0 else "lower"
    if harm_side:
        return "supported", f"{direction} when fired, interval excludes 0 on the harm side"
    if other_side:
        return "contradicted", f"{direction} when fired: the opposite of the harm claimed"
    return "cannot judge yet", "interval covers 0"


def claim_table(results: pd.DataFrame, issues: pd.DataFrame,
                codes: Mapping[str, DeclaredCode] | pd.DataFrame, *,
                accounts: pd.DataFrame | None = None, n_boot: int = 2000, seed: int = 0,
                min_samples: int = MIN_SAMPLES) -> pd.DataFrame:
    """Return, per code, its declared measure fired vs not fired on the same corpus.

    ``codes``: code -> declaration (``Code``), or ``replay.flags.declared_codes()``'s frame.
    Every code of ``codes`` is listed, and every code of ``issues`` (an undeclared one cannot
    be judged). ``fired``/``not_fired``: the measure's rate (Wilson interval) or mean (cluster
    bootstrap interval) on each side, over the intents in the measure's scope whose value is
    known (n on each side; ``*_unknown``: in scope, value unknown). ``diff`` = fired minus not
    fired, with a cluster bootstrap interval (symbol-month clusters drawn whole, both sides
    together). ``verdict``: 'supported' when the interval lies on the harm side of 0
    (``Measure.worse``), 'contradicted' when on the other side, else 'cannot judge yet';
    ``reason`` says which, including fewer than ``min_samples`` on a side, no measure
    declared, or a 'not_checked' code. Sorted by verdict, then code.
    """
    codes = _as_codes(codes)
    measures = intent_measures(results, accounts)
    clusters = measures["cluster"].to_numpy()
    modules = (issues.groupby(issues["code"].astype(str))["module"]
               .agg(lambda m: ", ".join(sorted(set(map(str, m))))).to_dict()
               if len(issues) and "module" in issues.columns else {})
    fired_codes = set(issues["code"].astype(str)) if len(issues) else set()
    rows = []
    for code in sorted(set(codes) | fired_codes):
        spec = codes.get(code)
        row: dict[str, Any] = {c: math.nan for c in CLAIM_COLUMNS}
        row.update(code=code, modules=modules.get(code, ""), kind=getattr(spec, "kind", ""),
                   harm=getattr(spec, "harm", ""), measure=getattr(spec, "measure", None),
                   unit="", worse="", n_fired=0, n_not_fired=0, n_fired_unknown=0,
                   n_not_fired_unknown=0)
        fired = fired_mask(results, issues, code) if code in fired_codes else np.zeros(
            len(results), bool)
        if spec is None:
            row.update(verdict="cannot judge yet", reason="code not declared by any module")
        elif spec.kind == "not_checked":
            row.update(verdict="cannot judge yet",
                       reason="not checked: an input that could not be checked, not a warning")
        elif spec.measure is None:
            row.update(verdict="cannot judge yet",
                       reason="no outcome measure declared" + (
                           f" ({spec.harm})" if spec.harm else ""))
        elif spec.measure not in MEASURES:
            row.update(verdict="cannot judge yet",
                       reason=f"unknown measure {spec.measure!r}; expected one of "
                              f"{sorted(MEASURES)}")
        else:
            row.update(_compare(measures, spec.measure, fired, clusters, code, n_boot=n_boot,
                                seed=seed, min_samples=min_samples))
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))
    order = table["verdict"].map({v: i for i, v in enumerate(VERDICTS)})
    return (table.assign(_order=order).sort_values(["_order", "code"], kind="stable")
            .drop(columns="_order").reset_index(drop=True))


def _compare(measures: pd.DataFrame, name: str, fired: np.ndarray, clusters: np.ndarray,
             code: str, *, n_boot: int, seed: int, min_samples: int) -> dict[str, Any]:
    spec = MEASURES[name]
    values = measures[name].to_numpy(float)
    applies = measures[f"{name}_applies"].to_numpy(bool)
    known = applies & np.isfinite(values)
    on, off = known & fired, known & ~fired
    out: dict[str, Any] = {
        "unit": spec.unit, "worse": spec.worse, "n_fired": int(on.sum()),
        "n_not_fired": int(off.sum()),
        "n_fired_unknown": int((applies & fired & ~known).sum()),
        "n_not_fired_unknown": int((applies & ~fired & ~known).sum())}
    for side, mask in (("fired", on), ("not_fired", off)):
        estimate, low, high = _side(values[mask], clusters[mask], spec.kind, n_boot=n_boot,
                                    seed=seed, stream=f"claim-{code}-{side}",
                                    min_samples=min_samples)
        out.update({side: estimate, f"{side}_low": low, f"{side}_high": high})
    diff = mean_difference(values[on], values[off], n_boot=n_boot, seed=seed,
                           stream=f"claim-{code}-diff", min_samples=min_samples,
                           clusters=(clusters[on], clusters[off]))
    out.update(diff=diff.estimate, diff_low=diff.low, diff_high=diff.high)
    verdict, reason = _verdict(diff.estimate, diff.low, diff.high, spec.worse, out["n_fired"],
                               out["n_not_fired"], min_samples)
    if verdict == "cannot judge yet" and out["n_fired"] == 0 and out["n_fired_unknown"]:
        reason = (f"the measure is unknown on all {out['n_fired_unknown']} fired intents in "
                  "its scope")
    out.update(verdict=verdict, reason=reason)
    return out


def claim_summary(table: pd.DataFrame) -> str:
    """Return a plain paragraph: which warnings the data support, contradict, cannot judge."""
    def listed(verdict: str) -> list[pd.Series]:
        return [row for _, row in table[table["verdict"] == verdict].iterrows()]

    def judged(row: pd.Series) -> str:
        if row["unit"] == "share":  # rates read as percentages, differences as points
            values = (f"{100 * row['fired']:.1f}% fired vs {100 * row['not_fired']:.1f}% not; "
                      f"difference {100 * row['diff']:+.1f} points [{100 * row['diff_low']:+.1f}"
                      f", {100 * row['diff_high']:+.1f}]")
        else:
            values = (f"{row['fired']:.3g} vs {row['not_fired']:.3g} {row['unit']}; difference "
                      f"{row['diff']:+.3g} [{row['diff_low']:+.3g}, {row['diff_high']:+.3g}]")
        return (f"{row['code']} ({row['measure']}: {values}; n={row['n_fired']} fired / "
                f"{row['n_not_fired']} not)")

    parts = []
    for verdict, opening in (("supported", "The data support"),
                             ("contradicted", "The data contradict")):
        rows = listed(verdict)
        parts.append(f"{opening} {len(rows)} warning(s)"
                     + (": " + "; ".join(judged(r) for r in rows) + "." if rows else "."))
    waiting = listed("cannot judge yet")
    by_reason: dict[str, list[str]] = {}
    for row in waiting:
        key = str(row["reason"]).split(" (")[0] if str(row["reason"]).startswith(
            "no outcome measure") else str(row["reason"])
        key = "fewer than the minimum on a side" if key.startswith("fewer than") else key
        by_reason.setdefault(key, []).append(str(row["code"]))
    parts.append(f"They cannot judge {len(waiting)} yet"
                 + (": " + "; ".join(f"{reason}: {', '.join(codes)}"
                                     for reason, codes in by_reason.items()) + "."
                    if waiting else "."))
    return " ".join(parts)
