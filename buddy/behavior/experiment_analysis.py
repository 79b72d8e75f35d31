"""The analysis of one nudge/warning experiment: per arm, the dismiss and helpfulness rates
of the items shown and the behavioural outcomes of the decision points, each with its n and
an interval, and each arm's difference from the control with an interval.

The unit is the decision point the arm was assigned to: (experiment, user, intent). An intent
evaluated more than once counts once (its first evaluation: the arm is the same by
construction); feedback given on any of its evaluations counts for it. Measures:

- ``dismissed``: shown items the trader dismissed, over shown items (Wilson interval);
- ``helpful``: items rated helpful, over items rated (Wilson);
- ``changed`` / ``traded`` / ``abandoned``: decision points with that outcome, over decision
  points whose outcome is known (``buddy.behavior.feedback.intent_outcomes``; Wilson);
- ``process_score``: the mean review score (0-1) of the trades those decisions led to (a
  t interval).

Read as of t: decisions made by t, outcomes known by t (``intent_outcomes``), feedback
first given by t; an item's feedback changed after t (one row per item keeps its latest
state) has no known state at t and is left out of that measure's n.

Differences from the control: Newcombe's hybrid score interval for a difference of two
proportions, Welch's t interval for a difference of means. Intervals treat decision points as
independent; several decisions of one trader are not, so with few traders read them as the
narrowest the data allow. A measure with no observations is NaN with n = 0 ("not
checked"), never a zero.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from buddy.behavior.experiments import NudgeExperiment, load_experiment
from buddy.behavior.feedback import DEFAULT_WINDOW_HOURS, intent_outcomes
from buddy.errors import FieldError

if TYPE_CHECKING:
    from buddy.store import Store

__all__ = ["MEASURES", "arm_effects", "arm_rates", "experiment_units", "render_analysis"]

#: The measures, in report order: (name, kind, what it is over).
MEASURES: tuple[tuple[str, str, str], ...] = (
    ("dismissed", "rate", "shown items"),
    ("helpful", "rate", "rated items"),
    ("changed", "rate", "decisions with a known outcome"),
    ("traded", "rate", "decisions with a known outcome"),
    ("abandoned", "rate", "decisions with a known outcome"),
    ("process_score", "mean", "reviewed trades"),
)
_RATE_COLUMNS = ["arm", "measure", "kind", "k", "n", "value", "lo", "hi", "over"]


def experiment_units(store: Store, experiment_id: str, *, as_of: datetime | None = None,
                     window_hours: float = DEFAULT_WINDOW_HOURS
                     ) -> tuple[NudgeExperiment, pd.DataFrame, pd.DataFrame]:
    """Return the experiment, its decision points and their items, read as of ``as_of``.

    Decisions: one row per (user, intent) the experiment assigned with eval_id (the first),
    intent_id, user_id, eval_ts, arm, action and the outcome columns of ``intent_outcomes``.
    Items: one row per (decision, targeted code) with issue_code, shown, dismissed and
    helpful (nullable: not shown, not rated, or its feedback changed after ``as_of``, so
    its state then is not known)."""
    from buddy.store.nudge_experiments import arm_rows, feedback_rows

    experiment = load_experiment(store, experiment_id)
    logged = arm_rows(store, experiment_id, until=as_of)
    decisions, items = [], []
    for row in logged.itertuples(index=False):
        for arm in json.loads(row.experiment_arms_json):
            if arm["experiment_id"] != experiment_id or not arm["codes"]:
                continue  # every targeted item was exempt: not a decision of this test
            decisions.append({"eval_id": row.eval_id, "intent_id": row.intent_id,
                              "user_id": row.user_id, "eval_ts": row.eval_ts,
                              "arm": arm["arm"], "action": arm["action"],
                              "codes": tuple(arm["codes"])})
    frame = pd.DataFrame(decisions, columns=["eval_id", "intent_id", "user_id", "eval_ts",
                                             "arm", "action", "codes"])
    every_eval = frame[["eval_id", "user_id", "intent_id"]]
    frame = frame.drop_duplicates(["user_id", "intent_id"], keep="first")
    feedback = feedback_rows(store, list(every_eval["eval_id"]), until=as_of)
    feedback = feedback.merge(every_eval, on="eval_id")
    # one row per item keeps its latest state only: an item given feedback by as_of but
    # changed after it has a state as of then that is not known (read nothing after t)
    feedback["known"] = True if as_of is None else (
        pd.to_datetime(feedback["updated_at"], utc=True) <= pd.Timestamp(as_of))
    # an intent's items across its evaluations: dismissed on any, the latest rating
    feedback = feedback.sort_values("updated_at")
    said = feedback.groupby(["user_id", "intent_id", "issue_code"], sort=False).agg(
        dismissed=("dismissed", "any"), helpful=("helpful", _last_rating),
        known=("known", "all"))
    for row in frame.itertuples(index=False):
        shown = row.action != "hold_back"
        for code in row.codes:
            key = (row.user_id, row.intent_id, code)
            got = said.loc[key] if key in said.index else None
            dismissed: bool | None = None
            helpful: bool | None = None
            if shown and got is None:
                dismissed = False  # shown, no feedback: not dismissed, not rated
            elif shown and got is not None and bool(got["known"]):
                dismissed = bool(got["dismissed"])
                helpful = None if pd.isna(got["helpful"]) else bool(got["helpful"])
            items.append({"eval_id": row.eval_id, "intent_id": row.intent_id,
                          "user_id": row.user_id, "arm": row.arm, "issue_code": code,
                          "shown": shown, "dismissed": dismissed, "helpful": helpful})
    item_frame = pd.DataFrame(items, columns=["eval_id", "intent_id", "user_id", "arm",
                                              "issue_code", "shown", "dismissed", "helpful"])
    for column in ("dismissed", "helpful"):
        item_frame[column] = item_frame[column].astype("boolean")
    outcomes = intent_outcomes(store, frame[["eval_id", "intent_id", "user_id", "eval_ts"]],
                               as_of=as_of, window_hours=window_hours)
    frame = frame.drop(columns="codes").merge(outcomes, on="eval_id", how="left")
    return experiment, frame.reset_index(drop=True), item_frame


def _last_rating(values: pd.Series) -> object:
    rated = values.dropna()
    return rated.iloc[-1] if len(rated) else None


def _wilson(k: int, n: int, confidence: float) -> tuple[float, float, float]:
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return math.nan, math.nan, math.nan
    lo, hi = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    return k / n, float(lo), float(hi)


def _mean_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    from scipy import stats

    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)
                 * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def _observations(decisions: pd.DataFrame, items: pd.DataFrame, arm: str, measure: str
                  ) -> np.ndarray:
    """Return the observations of ``measure`` in ``arm`` (booleans as 0/1, unknowns out)."""
    if measure in ("dismissed", "helpful"):
        column = items.loc[items["arm"] == arm, measure]
    else:
        column = decisions.loc[decisions["arm"] == arm, measure]
    return column.dropna().to_numpy(np.float64)


def arm_rates(experiment: NudgeExperiment, decisions: pd.DataFrame, items: pd.DataFrame, *,
              confidence: float = 0.95) -> pd.DataFrame:
    """Return one row per (arm, measure): k (successes; NaN for means), n, value, interval
    lo and hi, and what n counts; arms in the experiment's order (the control first)."""
    _check_confidence(confidence)
    rows = []
    for arm in experiment.arms:
        for measure, kind, over in MEASURES:
            values = _observations(decisions, items, arm.name, measure)
            if kind == "rate":
                k = int(values.sum())
                value, lo, hi = _wilson(k, len(values), confidence)
                rows.append([arm.name, measure, kind, k, len(values), value, lo, hi, over])
            else:
                value, lo, hi = _mean_interval(values, confidence)
                rows.append([arm.name, measure, kind, math.nan, len(values), value, lo, hi,
                             over])
    frame = pd.DataFrame(rows, columns=_RATE_COLUMNS)
    frame["k"] = frame["k"].astype("float64")
    return frame


def arm_effects(experiment: NudgeExperiment, decisions: pd.DataFrame, items: pd.DataFrame,
                *, confidence: float = 0.95) -> pd.DataFrame:
    """Return each arm's difference from the control per measure: arm, measure, n_arm,
    n_control, difference (arm minus control: rate points as a fraction, or score), lo, hi
    (Newcombe for rates, Welch for means; NaN when either side has no observation)."""
    from scipy import stats
    from statsmodels.stats.proportion import confint_proportions_2indep

    _check_confidence(confidence)
    control = experiment.control.name
    rows = []
    for arm in experiment.arms[1:]:
        for measure, kind, _ in MEASURES:
            mine = _observations(decisions, items, arm.name, measure)
            base = _observations(decisions, items, control, measure)
            diff = lo = hi = math.nan
            if len(mine) and len(base):
                diff = float(mine.mean() - base.mean())
                if kind == "rate":
                    lo, hi = (float(x) for x in confint_proportions_2indep(
                        int(mine.sum()), len(mine), int(base.sum()), len(base),
                        method="newcomb", compare="diff", alpha=1 - confidence))
                elif len(mine) >= 2 and len(base) >= 2 and (mine.std() > 0 or base.std() > 0):
                    ci = stats.ttest_ind(mine, base, equal_var=False).confidence_interval(
                        confidence)
                    lo, hi = float(ci.low), float(ci.high)
            rows.append([arm.name, measure, len(mine), len(base), diff, lo, hi])
    return pd.DataFrame(rows, columns=["arm", "measure", "n_arm", "n_control", "difference",
                                       "lo", "hi"])


def _check_confidence(confidence: float) -> None:
    from buddy.behavior.experiments import ExperimentError

    if not (0.5 <= confidence < 1):
        raise ExperimentError([FieldError("confidence", "must be in [0.5, 1)", confidence)])


def render_analysis(experiment: NudgeExperiment, decisions: pd.DataFrame,
                    rates: pd.DataFrame, effects: pd.DataFrame, *,
                    confidence: float = 0.95) -> str:
    """Return the analysis as text: the arms with their n, every measure per arm with its n
    and interval, and each arm's difference from the control."""
    pct = f"{confidence:.0%}"
    lines = [f"Experiment {experiment.experiment_id}: codes {', '.join(experiment.codes)}; "
             f"{len(decisions)} decision points, {decisions['user_id'].nunique()} traders"]
    for arm in experiment.arms:
        n = int((decisions["arm"] == arm.name).sum())
        role = "control" if arm is experiment.control else arm.action
        style = f" ({arm.style})" if arm.style else ""
        lines.append(f"  arm {arm.name}: {role}{style}, weight {arm.weight:g}, n={n}")
    lines.append(f"Per arm (value [{pct} interval], n):")
    for row in rates.itertuples(index=False):
        lines.append(f"  {row.arm:<12} {row.measure:<14} {_value(row.value, row.kind)} "
                     f"[{_value(row.lo, row.kind)}, {_value(row.hi, row.kind)}]  "
                     f"n={row.n} {row.over}")
    lines.append(f"Difference from the control arm {experiment.control.name!r} "
                 f"(arm minus control, [{pct} interval]):")
    for row in effects.itertuples(index=False):
        unit = "points" if row.measure != "process_score" else "score"
        scale = 100.0 if unit == "points" else 1.0
        lines.append(f"  {row.arm:<12} {row.measure:<14} "
                     f"{_signed(row.difference * scale)} [{_signed(row.lo * scale)}, "
                     f"{_signed(row.hi * scale)}] {unit}  n={row.n_arm} vs {row.n_control}")
    return "\n".join(lines)


def _value(value: float, kind: str) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.1%}" if kind == "rate" else f"{value:.3f}"


def _signed(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.2f}"
