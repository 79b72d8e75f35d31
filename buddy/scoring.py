"""The score and the verdict of a report, written once over columns.

Every report (one intent in ``Orchestrator.assemble``, N intents in ``run_batch``) is scored by
``overall_columns``; a single report is a batch of one. The rule, for each report:

1. **Verdict** from the worst severity of its RANKED issues (issue codes of kind 'issue' and
   MODULE_ERROR items; ``not_checked`` codes and CONTEXT_MISSING items are not issues):
   critical -> blocked, high -> fix first, medium -> review, low/info/none -> clear. While a
   module that guards the trade's risk (``Evaluator.guards_risk``) could not run, the verdict
   is at best review.
2. **Band** of the verdict (``ScoringConfig``): blocked [0, score_band_critical], fix first
   (critical, score_band_high], review (high, score_band_medium], clear (medium, 100].
3. **Module mean**: the weighted mean of the modules that ran for the report (the user's
   opt-outs do not run), each at its own score when it produced one, else (skipped for a
   missing piece, or failed) at ``unknown_module_score``: an unknown module is neither
   dropped nor counted as good.
4. **Score** = band_lo + (band_hi - band_lo) * module_mean / 100, rounded to 0.1; no score
   (NaN) when no module ran.

So the score always agrees with the verdict: a report with a high issue never scores above
``score_band_high``, however clean its other modules are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from buddy.config import ScoringConfig
from buddy.domain import Severity, Verdict

__all__ = ["OVERALL_COLUMNS", "VERDICT_BY_RANK", "band_edges", "overall_arrays",
           "overall_columns"]

#: Verdict values by rank (0 clear .. 3 blocked).
VERDICT_BY_RANK: np.ndarray = np.array([v.value for v in Verdict], dtype=object)
#: Severity values by rank (0 info .. 4 critical).
_SEVERITY_BY_RANK: np.ndarray = np.array([s.value for s in Severity], dtype=object)
#: Verdict rank by worst severity rank.
_VERDICT_OF_SEVERITY = np.array([Verdict.of(s).rank for s in Severity], dtype=np.int64)

#: Columns of ``overall_columns`` besides ``row``.
OVERALL_COLUMNS: tuple[str, ...] = ("overall_score", "overall_severity", "verdict",
                                    "module_mean", "band_lo", "band_hi", "n_unknown",
                                    "risk_unknown")


def band_edges(config: ScoringConfig) -> np.ndarray:
    """Return the score band edges by verdict rank: (lo, hi) rows for clear, review, fix
    first and blocked, in points."""
    critical, high, medium = (config.score_band_critical, config.score_band_high,
                              config.score_band_medium)
    return np.array([[medium, 100.0], [high, medium], [critical, high], [0.0, critical]])


def overall_columns(n: int, config: ScoringConfig, *, module_row: np.ndarray,
                    module_score: np.ndarray, module_weight: np.ndarray,
                    module_known: np.ndarray, module_guards_risk: np.ndarray,
                    issue_row: np.ndarray, issue_rank: np.ndarray) -> pd.DataFrame:
    """Return ``overall_arrays`` as a frame: one row per report 0..n-1 (``row``, then
    ``OVERALL_COLUMNS``)."""
    return pd.DataFrame(overall_arrays(
        n, config, module_row=module_row, module_score=module_score,
        module_weight=module_weight, module_known=module_known,
        module_guards_risk=module_guards_risk, issue_row=issue_row, issue_rank=issue_rank))


def overall_arrays(n: int, config: ScoringConfig, *, module_row: np.ndarray,
                   module_score: np.ndarray, module_weight: np.ndarray,
                   module_known: np.ndarray, module_guards_risk: np.ndarray,
                   issue_row: np.ndarray, issue_rank: np.ndarray) -> dict[str, np.ndarray]:
    """Return the score and verdict of reports 0..n-1 (module doc's rule) as columns of n
    values: ``row`` then ``OVERALL_COLUMNS`` (one report, ``Orchestrator.assemble``, reads
    its values without a frame around them).

    Modules: one entry per (report, module run): ``module_row`` (report number),
    ``module_score`` (0-100, ignored where not ``module_known``), ``module_weight``,
    ``module_known`` (the module produced a score) and ``module_guards_risk``. Issues: the
    RANKED issues only, ``issue_row`` and ``issue_rank`` (severity rank 0 info .. 4
    critical). Columns: ``OVERALL_COLUMNS`` (``overall_score`` NaN when no module ran;
    ``overall_severity``: the worst ranked issue's, info when none; ``module_mean``: step 3
    of the rule; ``n_unknown``: modules that could not run; ``risk_unknown``: a risk module
    among them).
    """
    module_row = np.asarray(module_row, dtype=np.int64)
    known = np.asarray(module_known, dtype=bool)
    weight = np.asarray(module_weight, dtype=np.float64)
    score = np.where(known, np.asarray(module_score, dtype=np.float64),
                     config.unknown_module_score)
    total_weight = np.bincount(module_row, weights=weight, minlength=n)
    weighted = np.bincount(module_row, weights=score * weight, minlength=n)
    n_unknown = np.bincount(module_row, weights=~known, minlength=n).astype(np.int32)
    risk_unknown = np.bincount(module_row,
                               weights=~known & np.asarray(module_guards_risk, dtype=bool),
                               minlength=n) > 0
    worst = np.zeros(n, dtype=np.int64)
    if len(issue_row):
        np.maximum.at(worst, np.asarray(issue_row, dtype=np.int64),
                      np.asarray(issue_rank, dtype=np.int64))
    verdict = _VERDICT_OF_SEVERITY[worst]
    verdict = np.where(risk_unknown, np.maximum(verdict, Verdict.REVIEW.rank), verdict)
    edges = band_edges(config)
    lo, hi = edges[verdict, 0], edges[verdict, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(total_weight > 0, weighted / total_weight, np.nan)
    overall = np.round(lo + (hi - lo) * mean / 100.0, 1)
    return {"row": np.arange(n, dtype=np.int64), "overall_score": overall,
            "overall_severity": _SEVERITY_BY_RANK[worst],
            "verdict": VERDICT_BY_RANK[verdict], "module_mean": mean,
            "band_lo": lo, "band_hi": hi, "n_unknown": n_unknown,
            "risk_unknown": risk_unknown}
