"""Behaviour nudges: what the trader's OWN history says about taking this idea now.

Reads the ``behavior`` piece (``buddy.behavior.provider.BehaviorState``: the trader's history
as of as_of, their nudge settings and the detector params those imply, the nudges shown in
the last 24 hours and the detectors dismissed within their quiet window) and runs the
behaviour detectors (``buddy.behavior.detectors.detect``: revenge, overtrading, FOMO,
fatigue, rule drift, stop drift, sizing after outcomes) on the intents. Each hit becomes one
nudge worded by the library (``buddy.behavior.nudges``): the idea's figure, the trader's
usual figure from n of their own trades or days, the difference with its 95% interval, and
a supportive step chosen by the hit's severity. In the report's ranking and verdict a nudge
is at most ``max_severity`` (medium): the trader's history supports a decision about the idea,
it does not make the verdict "fix first" by itself.

The trader's controls decide what is shown, in this order:

1. sensitivity per detector (low / medium / high: the detectors' documented thresholds) and
   opt-outs (an opted-out detector does not run; 'off' runs none) - in the piece's params;
2. a detector the trader dismissed within ``dismiss_quiet_hours`` stays quiet;
3. the daily cap: at most ``max_per_day`` nudges in 24 hours, counting those already shown
   by the trader's logged evaluations, and at most ``max_per_report`` in one report; the
   highest severity first, then the detector order. What is held back is counted in the
   explain facts (``nudges_held_back``), never silently dropped from the record.

``BEHAVIOR_NOT_CHECKED`` (not checked): every detector that runs was below its minimum
sample or lacked an input, so nothing could be compared (never read as "no pattern").

A nudge is about the trader's process, not the market: it predicts nothing and its numbers
are the trader's own.

Firing rates on the demo trader's 785 logged intents at the default settings (each at its
own as_of, every hit shown, no dismissals): STOP_DRIFT 18.6% (only when the recent share of
stops not honoured is above the trader's own earlier share beyond chance; 25.6% before that
rule, with nudges on one stop in 20 against a usual 2%), RULE_DRIFT 2.4%, REVENGE_TRADING
2.0% (15 of the 15 injected size-ups after a loss that were logged as intents, and 1 other),
SIZING_AFTER_OUTCOMES 0.1%, OVERTRADING 0% (the injected overtrading days' trades log no
intents), FOMO and FATIGUE 0% (off by default: ``buddy.behavior.params.DEFAULT_OFF_REASONS``),
BEHAVIOR_NOT_CHECKED 1.3% (the first intents). On the clean trader (792 intents, nothing
injected): RULE_DRIFT 1.4%, every other code 0%.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from buddy.batch.result import BatchResult, IssueBlock
from buddy.behavior.nudges import LIBRARY, MONEY, step_for
from buddy.config import ModuleConfig, param
from buddy.domain import Severity
from buddy.evaluators.base import Code, Evaluator, Evidence
from buddy.evaluators.registry import register

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext
    from buddy.behavior.detectors import Hits
    from buddy.behavior.provider import BehaviorState

__all__ = ["BehaviorNudgesConfig", "BehaviorNudgesEvaluator", "nudge_facts"]

_SEVERITY = {"low": Severity.LOW, "medium": Severity.MEDIUM, "high": Severity.HIGH}
_RANK = {"low": 1, "medium": 2, "high": 3}
#: What a detector's metric is called in a nudge.
_SIZE_MEASURE = {"risk_amount": "risk", "notional": "position value"}


@dataclass(frozen=True, slots=True, kw_only=True)
class BehaviorNudgesConfig(ModuleConfig):
    """How many nudges one report shows, and whether the trader's limits apply."""

    config_name = "behavior_nudges"
    max_per_report: int = param(2, lo=1, hi=7, unit="nudges",
                                doc="at most this many nudges in one report, the highest "
                                    "severity first (reminders lose effect when they pile up)")
    max_severity: str = param("medium", choices=("low", "medium", "high"),
                              doc="the highest severity a nudge takes in the report's ranking "
                                  "and verdict (a nudge supports, it does not decide the "
                                  "verdict alone); its step still follows the detector's "
                                  "severity")
    apply_user_limits: bool = param(True, choices=(True, False),
                                    doc="honour the trader's daily cap and the quiet window "
                                        "after a dismissal (a replay measuring every "
                                        "detector's rate turns this off)")


def _code(code: str) -> Code:
    wording = LIBRARY[code]
    evidence = tuple(Evidence(e.name, e.unit, digits=e.digits) for e in wording.evidence)
    return Code(wording.title, wording.explanation, "{step}", evidence=evidence,
                action=wording.action, action_facts=(Evidence("step"),), harm=wording.harm,
                measure=wording.measure)


@register
class BehaviorNudgesEvaluator(Evaluator[BehaviorNudgesConfig]):
    """Nudge the trader where their own history shows a behaviour pattern at this idea."""

    name = "behavior_nudges"
    version = "1.0.0"
    requires = frozenset({"behavior"})
    optional = frozenset({"market"})  # the EMA20 and ATR of the FOMO check
    config_cls = BehaviorNudgesConfig
    codes: ClassVar = {
        **{code: _code(code) for code in LIBRARY},
        "BEHAVIOR_NOT_CHECKED": Code(
            "Behaviour checks not run",
            "None of your behaviour checks could compare this idea with your history: "
            "{reasons} ({n_trades} of your trades by now).",
            "Nothing to change: the checks start once your history holds enough trades.",
            evidence=(Evidence("n_trades", "trades"), Evidence("reasons")),
            action="NONE", kind="not_checked"),
    }
    explain = (Evidence("nudges_shown", "nudges"), Evidence("nudges_held_back", "nudges"),
               Evidence("detectors_run", "detectors"))

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Run the detectors on every row against its piece's history, then apply the
        trader's controls (see the module docstring)."""
        from buddy.behavior.detectors import detect

        n = ctx.n
        frame = detector_intents(ctx)
        states = ctx.piece("behavior")
        # one detector pass per (stored history, params): detect cuts each row's view of
        # the history at the row's own as_of, so rows at different times share the pass
        groups, _ = pd.factorize(pd.Series([(id(s.stored), s.params.hash) for s in states],
                                           dtype=object))
        picked: list[pd.DataFrame] = []
        held = np.zeros(n, dtype=np.int64)
        run = np.zeros(n, dtype=np.int64)
        unchecked: list[tuple[int, int, str]] = []
        for k in range(int(groups.max()) + 1 if n else 0):
            rows = np.flatnonzero(groups == k)
            first: BehaviorState = states[rows[0]]
            hits = detect(first.stored, frame.iloc[rows].reset_index(drop=True), first.params)
            shown, held[rows] = self._shown(hits, states[rows])
            shown["row"] = rows[shown["row"].to_numpy(np.int64)]
            picked.append(shown)
            run[rows] = len(first.params.enabled)
            for row, reasons in _nothing_checked(hits, len(rows)).items():
                unchecked.append((int(rows[row]), states[rows[row]].n_trades, reasons))
        hits_shown = (pd.concat(picked, ignore_index=True) if picked
                      else pd.DataFrame(columns=["row", "detector"]))
        account = ctx.piece_values("behavior", lambda s: s.currency, dtype=object,
                                   default=None)
        # no account: the amounts are the traded instruments' (the quote currency)
        currency = np.where(pd.isna(account), ctx.instrument["currency"].to_numpy(object),
                            account).astype(object)
        blocks = self._blocks(hits_shown, currency)
        if unchecked:
            rows = np.array([u[0] for u in unchecked], dtype=np.int64)
            order = np.argsort(rows, kind="stable")
            blocks.append(self.fire(
                "BEHAVIOR_NOT_CHECKED", rows[order], Severity.INFO,
                n_trades=np.array([u[1] for u in unchecked], dtype=np.int64)[order],
                reasons=np.array([u[2] for u in unchecked], dtype=object)[order]))
        counts = np.bincount(hits_shown["row"].to_numpy(np.int64), minlength=n)
        return self.result(n, blocks, explain={"nudges_shown": counts,
                                               "nudges_held_back": held,
                                               "detectors_run": run})

    def _shown(self, hits: Hits, states: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        """Return the hits shown (each row's state: the trader's quiet windows and caps
        applied, the highest severity first) and how many were held back per row."""
        frame = hits.hits
        held = np.zeros(hits.n, dtype=np.int64)
        if frame.empty:
            return frame.copy(), held
        row = frame["row"].to_numpy(np.int64)
        keep = np.ones(len(frame), dtype=bool)
        budget = np.full(hits.n, self.config.max_per_report, dtype=np.int64)
        if self.config.apply_user_limits:
            keep = np.array([d not in states[r].quiet for d, r in
                             zip(frame["detector"], row, strict=True)], dtype=bool)
            left = np.array([max(0, s.settings.max_per_day - s.shown_24h) for s in states],
                            dtype=np.int64)
            budget = np.minimum(budget, left)
        order = np.lexsort((np.arange(len(frame)),
                            -frame["severity"].map(_RANK).to_numpy(np.int64), row))
        ranked = frame.iloc[order][keep[order]]
        place = ranked.groupby("row", sort=False).cumcount().to_numpy(np.int64)
        shown = ranked[place < budget[ranked["row"].to_numpy(np.int64)]]
        np.add.at(held, frame["row"].to_numpy(np.int64), 1)
        np.add.at(held, shown["row"].to_numpy(np.int64), -1)
        return shown.sort_values(["row"], kind="stable").reset_index(drop=True), held

    def _capped(self, severity: str) -> str:
        """Return the detector's severity, at most ``max_severity`` (the step keeps the
        detector's own)."""
        cap = self.config.max_severity
        return severity if _RANK[severity] <= _RANK[cap] else cap

    def _blocks(self, shown: pd.DataFrame, currency: np.ndarray) -> list[IssueBlock]:
        blocks = []
        codes = nudge_codes(shown)
        for code in LIBRARY:
            mine = shown[codes == code]
            if mine.empty:
                continue
            mine = mine.sort_values("row", kind="stable")
            rows = mine["row"].to_numpy(np.int64)
            severity = mine["severity"].to_numpy(object)
            values: dict[str, Any] = dict(nudge_facts(code, mine))
            values["step"] = np.array([step_for(code, s) for s in severity], dtype=object)
            blocks.append(self.fire(
                code, rows,
                np.array([_SEVERITY[self._capped(s)].value for s in severity], dtype=object),
                units={MONEY: currency[rows]}, **values))
        return blocks


def detector_intents(ctx: BatchContext) -> pd.DataFrame:
    """Return the intents as ``detect`` reads them: the plan's columns, the contract
    multiplier and the entry's extension from the EMA20 in ATR (NaN without market)."""
    from buddy.behavior.detectors import extension_atr

    intents = ctx.intents
    latest = ctx.latest
    n = ctx.n

    def feature(name: str) -> np.ndarray:
        if name not in latest.columns:
            return np.full(n, np.nan)
        return latest[name].to_numpy(np.float64)

    frame = pd.DataFrame({
        "intent_id": intents["intent_id"].astype(str).to_numpy(object),
        "symbol": intents["symbol"].astype(str).to_numpy(object),
        "side": intents["side"].astype(str).to_numpy(object),
        "as_of": pd.to_datetime(intents["as_of"], utc=True),
        "timeframe": intents["timeframe"].astype(str).to_numpy(object),
        "proposed_entry": intents["proposed_entry"].to_numpy(np.float64),
        "proposed_stop": intents["proposed_stop"].to_numpy(np.float64),
        "proposed_size": intents["proposed_size"].to_numpy(np.float64),
        "proposed_risk_amount": intents["proposed_risk_amount"].to_numpy(np.float64),
        "multiplier": ctx.instrument["contract_multiplier"].to_numpy(np.float64),
    })
    frame["extension_atr"] = extension_atr(frame["proposed_entry"].to_numpy(np.float64),
                                           feature("ema_20"), feature("atr_14"),
                                           frame["side"].to_numpy(object))
    return frame


def _nothing_checked(hits: Hits, n: int) -> dict[int, str]:
    """Return row -> the reasons, for rows where every detector that ran was silent or not
    checked (no detector ran: nothing is said, the trader switched them off)."""
    checks = hits.checks
    if checks.empty:
        return {}
    out = {}
    for row, group in checks.groupby("row", sort=True):
        if group["status"].isin(["silent", "not_checked"]).all():
            out[int(row)] = "; ".join(f"{d}: {r}" for d, r in
                                      zip(group["detector"], group["reason"], strict=True))
    return {r: out[r] for r in sorted(out) if r < n}


def _evidence(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Return the detector's further fact ``name`` per hit (NaN where absent)."""
    values = [e.get(name) if isinstance(e, dict) else None for e in frame["evidence"]]
    if all(v is None or isinstance(v, int | float) for v in values):
        return np.array([np.nan if v is None else float(v) for v in values])
    return np.array(["n/a" if v is None else str(v) for v in values], dtype=object)


def nudge_codes(hits: pd.DataFrame) -> np.ndarray:
    """Return each hit's nudge code: the detector's, overtrading's without results when its
    such days were too few to compare (``results_checked`` false)."""
    codes = {w.detector: code for code, w in reversed(list(LIBRARY.items()))}
    out = np.array([codes[d] for d in hits["detector"]], dtype=object)
    if len(hits):
        checked = _evidence(hits, "results_checked")
        uncompared = (hits["detector"].to_numpy(object) == "overtrading") & ~(checked == 1.0)
        out[uncompared] = "OVERTRADING_BUSY_DAY"
    return out


def nudge_facts(code: str, hits: pd.DataFrame) -> dict[str, np.ndarray]:
    """Return nudge ``code``'s facts (``LIBRARY[code].evidence`` names) from its hits
    (``buddy.behavior.detectors.HIT_COLUMNS``), one value per hit."""
    detector = LIBRARY[code].detector
    col = {c: hits[c].to_numpy() for c in ("value", "baseline", "difference",
                                           "difference_lo", "difference_hi", "threshold")}
    col = {c: np.asarray(v, dtype=np.float64) for c, v in col.items()}
    n = hits["n"].to_numpy(np.int64)
    interval = {"difference": col["difference"], "difference_low": col["difference_lo"],
                "difference_high": col["difference_hi"]}
    ev = lambda name: _evidence(hits, name)  # noqa: E731 - one short accessor
    if detector == "revenge":
        return {"loss_symbol": ev("loss_symbol"), "hours_since_loss": ev("hours_since_loss"),
                "loss_amount": np.abs(ev("loss_pnl")), "loss_r": ev("loss_r"),
                "size_measure": np.array([_SIZE_MEASURE.get(m, m) for m in hits["metric"]],
                                         dtype=object),
                "size_amount": col["value"], "size_ratio": ev("ratio"),
                "usual_size": col["baseline"], "sample_size": n, **interval}
    if code == "OVERTRADING_BUSY_DAY":
        return {"entries_today": col["value"].astype(np.int64),
                "usual_entries": col["baseline"], "sample_size": n, **interval,
                "such_days": ev("such_days").astype(np.int64)}
    if detector == "overtrading":
        return {"entries_today": col["value"].astype(np.int64),
                "usual_entries": col["baseline"], "sample_size": n,
                "such_days": ev("such_days").astype(np.int64),
                "such_mean_pnl": ev("such_mean_pnl"), "other_mean_pnl": ev("other_mean_pnl"),
                "result_difference": ev("result_difference"),
                "result_difference_low": ev("result_difference_lo"),
                "result_difference_high": ev("result_difference_hi")}
    if detector == "fomo":
        return {"extension_atr": col["value"], "rank_pct": ev("rank_pct"), "sample_size": n,
                "max_before": ev("max_before"), "p_value": ev("p_value"),
                "usual_extension_atr": col["baseline"], **interval}
    if detector == "fatigue":
        return {"session_hours": col["value"],
                "entries_today": ev("entries_today").astype(np.int64),
                "n_late": ev("n_late").astype(np.int64), "late_mean_pnl": ev("late_mean_pnl"),
                "other_mean_pnl": ev("other_mean_pnl"),
                "n_other": ev("n_other").astype(np.int64),
                "result_difference": ev("result_difference"),
                "result_difference_low": ev("result_difference_lo"),
                "result_difference_high": ev("result_difference_hi")}
    if detector == "rule_drift":
        return {"recent_score": col["value"], "n_recent": ev("n_recent").astype(np.int64),
                "recent_days": ev("recent_days"), "usual_score": col["baseline"],
                "sample_size": n, "prior_days": ev("prior_days"), **interval}
    if detector == "stop_drift":
        return {"past_stop_trades": ev("count").astype(np.int64),
                "recent_trades": ev("recent_trades").astype(np.int64),
                "min_past_stop_r": ev("min_past_stop_r"),
                "recent_share": 100.0 * col["value"], "usual_share": 100.0 * col["baseline"],
                "sample_size": n, "difference": 100.0 * col["difference"],
                "difference_low": 100.0 * col["difference_lo"],
                "difference_high": 100.0 * col["difference_hi"]}
    if detector == "sizing":
        return {"sample_size": n, "direction": ev("direction"),
                "correlation": col["value"], "correlation_low": col["difference_lo"],
                "correlation_high": col["difference_hi"]}
    raise KeyError(f"code: {code!r} has no nudge wording")
