"""Post-trade review (the seed's PostTradeReviewGenerator), over columns.

Excursions (``excursions``): MAE and MFE from the bars of the trade's timeframe that overlap
the trade (the entry and exit bars included whole: their extremes may fall just before the
entry or after the exit, which a coarser timeframe cannot resolve), in price, in R (against
the initial risk per unit) and for the position (largest units held x multiplier). A trade
that lies inside one bar is not measured ("bars do not cover"), never guessed.

Exit efficiency follows the journals' risk-bounded window: from the last execution before
the exit to the end of the exit's session, cut at the first bar that goes further against
the position than the larger of MAE and the initial risk per unit (that bar excluded). The
best exit is the most favourable price in the window; efficiency is
(avg_exit - avg_entry) / (best_exit - avg_entry), signed for the side.

Process grade (``process_checks``): was the evaluated plan followed, independent of the
result: stop honoured, risk within the user's budget, size within the plan, exit by the plan
or its template, the evaluation's top issues acted on (where fills can show it). Each check
is passed, failed or not checked (missing input); the grade is the share passed. The 2x2 of
process and outcome names good process with a bad outcome as what it is: not a mistake.

Lessons (``lessons``): what went well, what to improve and key lessons, each a text with the
numbers (facts) it rests on, taken from this trade and its evaluation; never a forecast.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from buddy.domain import Fact

#: Stored with every review; the job reviews trades without a review of this version.
REVIEW_VERSION = "1"

_SECOND_KEY = 10**10  # seconds since 1970 stay below this until 2286


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewConfig:
    """Tolerances of the process checks."""

    stop_tolerance_r: float = 0.25  # beyond the stop by more than this many R: not honoured
    budget_tolerance_pct: float = 5.0  # risk above budget by more than this % of the budget
    size_tolerance_pct: float = 5.0  # size above plan by more than this % of the plan
    target_tolerance_r: float = 0.25  # an exit this close to target or stop is "by plan", R
    size_cut_pct: float = 5.0  # a size cut smaller than this % of the plan is not a cut
    good_process_score: float = 0.75  # share of checks passed for a good process
    top_issues: int = 3  # the evaluation's issues that count as "top", by severity
    high_efficiency: float = 0.7
    low_efficiency: float = 0.3


DEFAULT_REVIEW_CONFIG = ReviewConfig()

_SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def review_id_for(trade_id: str, version: str = REVIEW_VERSION) -> str:
    """Return the id of a trade's review of ``version`` (same inputs, same id)."""
    return "R" + hashlib.sha1(f"{trade_id}\x1f{version}".encode()).hexdigest()[:20]


# ---------------------------------------------------------------------------- excursions
def excursions(trades: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    """Return MAE/MFE, exit efficiency and bars held per trade (index of ``trades``).

    ``trades``: symbol, timeframe, side, open_ts, close_ts, avg_entry, avg_exit,
    initial_stop (NaN when unknown), max_position, multiplier, last_exec_ts (the execution
    before the final exit). ``bars``: symbol, timeframe, ts, ts_close, session, high, low.
    Columns: coverage (covered | inside_one_bar | no_bars), bars_held, mae_price,
    mfe_price, mae_r, mfe_r, mae_position, mfe_position, best_exit, exit_efficiency.
    """
    n = len(trades)
    out = pd.DataFrame(index=trades.index)
    nan = np.full(n, np.nan)
    if n == 0:
        for c in ("bars_held", "mae_price", "mfe_price", "mae_r", "mfe_r", "mae_position",
                  "mfe_position", "best_exit", "exit_efficiency"):
            out[c] = nan
        out["coverage"] = pd.Series(dtype=object)
        return out
    series = pd.concat([trades["symbol"].astype(str) + "|" + trades["timeframe"].astype(str),
                        bars["symbol"].astype(str) + "|" + bars["timeframe"].astype(str)])
    codes, _ = pd.factorize(series)
    trade_key, bar_key = codes[:n].astype(np.int64), codes[n:].astype(np.int64)
    bar_open_s = _seconds(bars["ts"], np.floor)
    order = np.lexsort((bar_open_s, bar_key))
    bar_key, bar_open_s = bar_key[order], bar_open_s[order]
    bar_close_s = _seconds(bars["ts_close"], np.floor)[order]
    high = bars["high"].to_numpy(np.float64)[order]
    low = bars["low"].to_numpy(np.float64)[order]
    session = pd.to_datetime(bars["session"]).to_numpy()[order]
    open_key = bar_key * _SECOND_KEY + bar_open_s
    close_key = bar_key * _SECOND_KEY + bar_close_s  # increasing within a series, like ts

    base = trade_key * _SECOND_KEY
    first = np.searchsorted(close_key, base + _seconds(trades["open_ts"], np.floor), "right")
    stop_at = np.searchsorted(open_key, base + _seconds(trades["close_ts"], np.ceil), "left")
    held = np.clip(stop_at - first, 0, None)
    covered = held >= 2
    coverage = np.where(covered, "covered", np.where(held == 1, "inside_one_bar", "no_bars"))

    direction = np.where(trades["side"].to_numpy() == "long", 1.0, -1.0)
    entry = trades["avg_entry"].to_numpy(np.float64)
    exit_price = trades["avg_exit"].to_numpy(np.float64)
    risk_unit = (entry - trades["initial_stop"].to_numpy(np.float64)) * direction
    risk_unit = np.where(risk_unit > 0, risk_unit, np.nan)
    size = (trades["max_position"].to_numpy(np.float64)
            * trades["multiplier"].to_numpy(np.float64))

    hi, lo = nan.copy(), nan.copy()
    if covered.any():
        hi[covered] = _range_reduce(np.maximum, high, first[covered], stop_at[covered])
        lo[covered] = _range_reduce(np.minimum, low, first[covered], stop_at[covered])
    favourable = np.where(direction > 0, hi, lo)
    adverse = np.where(direction > 0, lo, hi)
    mae = np.clip((entry - adverse) * direction, 0, None)
    mfe = np.clip((favourable - entry) * direction, 0, None)

    # ---- risk-bounded best exit: last execution before the exit .. end of the exit session
    best = nan.copy()
    if covered.any():
        run_start = np.r_[True, (bar_key[1:] != bar_key[:-1]) | (session[1:] != session[:-1])]
        run_no = np.cumsum(run_start) - 1
        run_last = np.r_[np.flatnonzero(run_start)[1:], len(bar_key)] - 1
        idx = np.flatnonzero(covered)
        exit_bar = stop_at[idx] - 1
        w_start = np.searchsorted(close_key, base[idx] + _seconds(
            trades["last_exec_ts"].iloc[idx], np.floor), "right")
        w_start = np.minimum(w_start, exit_bar)
        w_end = run_last[run_no[exit_bar]]
        lengths = w_end - w_start + 1
        rows = np.repeat(np.arange(len(idx)), lengths)
        offset = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        bar = w_start[rows] + offset
        d = direction[idx][rows]
        bound = np.fmax(mae[idx], risk_unit[idx])[rows]
        limit = entry[idx][rows] - d * bound
        breached = np.where(d > 0, low[bar] < limit, high[bar] > limit)
        first_breach = np.minimum.reduceat(np.where(breached, offset, np.iinfo(np.int64).max),
                                           np.cumsum(lengths) - lengths)
        keep = offset < first_breach[rows]
        value = np.where(keep, np.where(d > 0, high[bar], -low[bar]), -np.inf)
        top = np.maximum.reduceat(value, np.cumsum(lengths) - lengths)
        best_idx = np.where(np.isfinite(top), top * direction[idx], np.nan)
        best[idx] = best_idx
    with np.errstate(invalid="ignore", divide="ignore"):
        room = (best - entry) * direction
        efficiency = np.where(room > 0, (exit_price - entry) * direction / room, np.nan)
        out["coverage"] = coverage
        out["bars_held"] = held
        out["mae_price"] = np.where(covered, mae, np.nan)
        out["mfe_price"] = np.where(covered, mfe, np.nan)
        out["mae_r"] = out["mae_price"].to_numpy() / risk_unit
        out["mfe_r"] = out["mfe_price"].to_numpy() / risk_unit
        out["mae_position"] = out["mae_price"].to_numpy() * size
        out["mfe_position"] = out["mfe_price"].to_numpy() * size
        out["best_exit"] = best
        out["exit_efficiency"] = efficiency
    return out


def _seconds(values: pd.Series, rounding: Any) -> np.ndarray:
    stamps = pd.to_datetime(values, utc=True).dt.tz_localize(None).to_numpy("datetime64[us]")
    return rounding(stamps.astype(np.int64) / 1e6).astype(np.int64)


def _range_reduce(ufunc: np.ufunc, values: np.ndarray, start: np.ndarray, stop: np.ndarray
                  ) -> np.ndarray:
    # reduceat over interleaved (start, stop) pairs reduces values[start:stop] at the even
    # positions; the odd positions reduce the gaps between pairs, so the pairs go in start
    # order (gaps then add up to one pass over the values). A sentinel keeps every stop a
    # valid index.
    order = np.argsort(start, kind="stable")
    padded = np.r_[values, values[-1]]
    pairs = np.column_stack([start[order], stop[order]]).ravel()
    out = np.empty(len(start))
    out[order] = ufunc.reduceat(padded, pairs)[::2]
    return out


# ---------------------------------------------------------------------------- process
def process_checks(frame: pd.DataFrame, config: ReviewConfig = DEFAULT_REVIEW_CONFIG
                   ) -> pd.DataFrame:
    """Return the process checks (1 passed, 0 failed, NaN not checked) and their evidence.

    ``frame`` holds per trade: side, avg_entry, avg_exit, initial_stop, initial_risk, pnl,
    max_position, mae_r, bars_held, and (NaN when unknown) equity, budget_pct,
    proposed_size, plan_target_r, time_stop_bars, top_size_actions (count of top issues
    asking for a smaller size), top_stop_actions (asking for a stop), top_issues (count).
    """
    c = config
    d = np.where(frame["side"] == "long", 1.0, -1.0)
    risk_unit = (frame["avg_entry"] - frame["initial_stop"]) * d
    risk_unit = risk_unit.where(risk_unit > 0)
    exit_r = (frame["avg_exit"] - frame["avg_entry"]) * d / risk_unit
    worst_r = pd.concat([frame["mae_r"], -exit_r], axis=1).max(axis=1, skipna=True)
    worst_r = worst_r.where(risk_unit.notna())
    stop_ok = _check(worst_r <= 1 + c.stop_tolerance_r, worst_r.notna())
    risk_pct = 100 * frame["initial_risk"] / frame["equity"]
    budget_ok = _check(risk_pct <= frame["budget_pct"] * (1 + c.budget_tolerance_pct / 100),
                       risk_pct.notna() & frame["budget_pct"].notna())
    size_ok = _check(frame["max_position"] <= frame["proposed_size"]
                     * (1 + c.size_tolerance_pct / 100), frame["proposed_size"].notna())
    at_target = exit_r >= frame["plan_target_r"] - c.target_tolerance_r
    at_stop = (exit_r + 1).abs() <= c.target_tolerance_r
    timed = frame["bars_held"] >= frame["time_stop_bars"]
    exit_ok = _check(at_target | at_stop | timed,
                     exit_r.notna() & (frame["plan_target_r"].notna()
                                       | frame["time_stop_bars"].notna()))
    cut = frame["max_position"] <= frame["proposed_size"] * (1 - c.size_cut_pct / 100)
    has_stop = risk_unit.notna()
    observable = frame["top_size_actions"].fillna(0) + frame["top_stop_actions"].fillna(0)
    acted = (np.where(cut.fillna(False), frame["top_size_actions"].fillna(0), 0)
             + np.where(has_stop, frame["top_stop_actions"].fillna(0), 0))
    issues_ok = _check(acted >= observable, observable > 0)
    checks = pd.DataFrame({"stop_honoured": stop_ok, "risk_within_budget": budget_ok,
                           "size_as_planned": size_ok, "exit_by_plan": exit_ok,
                           "top_issues_acted_on": issues_ok}, index=frame.index)
    n_checked = checks.notna().sum(axis=1)
    n_passed = checks.sum(axis=1, skipna=True)
    score = (n_passed / n_checked).where(n_checked > 0)
    grade = np.select([n_checked == 0, score >= 0.9, score >= c.good_process_score,
                       score >= 0.5], ["not graded", "A", "B", "C"], "D")
    good_process = score >= c.good_process_score
    good_outcome = frame["pnl"] > 0
    cell = np.where(n_checked == 0, "process_not_graded",
                    np.where(good_process, "good_process", "bad_process"))
    cell = np.where(n_checked == 0, cell, np.char.add(cell.astype(str), np.where(
        good_outcome, "_good_outcome", "_bad_outcome")))
    return checks.assign(
        n_checked=n_checked, n_passed=n_passed, process_score=score, process_grade=grade,
        outcome=np.where(good_outcome, "good", "bad"), process_outcome=cell,
        exit_r=exit_r, worst_r=worst_r, risk_pct=risk_pct, observable_issues=observable,
        acted_issues=acted)


def _check(passed: pd.Series, checked: pd.Series) -> pd.Series:
    return pd.Series(np.where(checked, passed.fillna(False).astype(float), np.nan),
                     index=passed.index)


# ---------------------------------------------------------------------------- lessons
@dataclass(frozen=True, slots=True)
class Lesson:
    """One sentence of a review and the facts every number in it comes from."""

    code: str
    text: str
    facts: tuple[Fact, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"code": self.code, "text": self.text,
                "facts": [f.as_dict() for f in self.facts]}


def _r2(value: float) -> float:
    return round(float(value), 2)


def lessons(row: Mapping[str, Any], config: ReviewConfig = DEFAULT_REVIEW_CONFIG
            ) -> dict[str, list[Lesson]]:
    """Return what went well, what to improve and key lessons of one reviewed trade (a row
    of excursions, process_checks and trade columns: see ``generate_reviews``)."""
    well: list[Lesson] = []
    improve: list[Lesson] = []
    key: list[Lesson] = []
    ccy = str(row.get("currency") or "USD")

    def fact(name: str, value: float, unit: str) -> Fact:
        return Fact(name=name, value=_r2(value), unit=unit)

    f: tuple[Fact, ...]  # the facts of the lesson being written
    if row["stop_honoured"] == 1:
        f = (fact("worst_r", row["worst_r"], "R"), fact("stop_r", 1.0, "R"))
        well.append(Lesson("STOP_HONOURED", f"The stop was honoured: the worst point was "
                           f"{f[0].value:.2f} R against the entry, with the stop at "
                           f"{f[1].value:.2f} R.", f))
    elif row["stop_honoured"] == 0:
        f = (fact("worst_r", row["worst_r"], "R"), fact("stop_r", 1.0, "R"))
        improve.append(Lesson("STOP_NOT_HONOURED", f"Price went {f[0].value:.2f} R against "
                              f"the entry, past the planned stop at {f[1].value:.2f} R, before "
                              "the trade was closed.", f))
    else:
        improve.append(Lesson("NO_STOP_KNOWN", "No stop was known for this trade, so R, the "
                              "stop check and the risk budget were not checked.", ()))
    if not np.isnan(row["risk_within_budget"]):
        f = (fact("risk_pct", row["risk_pct"], "%"), fact("budget_pct", row["budget_pct"], "%"))
        if row["risk_within_budget"] == 1:
            well.append(Lesson("RISK_WITHIN_BUDGET", f"Risk at the stop was {f[0].value:.2f}% "
                               f"of equity, within the {f[1].value:.2f}% budget.", f))
        else:
            improve.append(Lesson("RISK_ABOVE_BUDGET", f"Risk at the stop was "
                                  f"{f[0].value:.2f}% of equity, above the {f[1].value:.2f}% "
                                  "budget.", f))
    if not np.isnan(row["size_as_planned"]):
        f = (fact("max_position", row["max_position"], "units"),
             fact("proposed_size", row["proposed_size"], "units"))
        if row["size_as_planned"] == 1:
            well.append(Lesson("SIZE_AS_PLANNED", f"The position peaked at {f[0].value:g} "
                               f"units, within the {f[1].value:g} units planned.", f))
        else:
            improve.append(Lesson("SIZE_ABOVE_PLAN", f"The position peaked at {f[0].value:g} "
                                  f"units against {f[1].value:g} units planned.", f))
    if not np.isnan(row["exit_by_plan"]):
        f = (fact("exit_r", row["exit_r"], "R"),)
        if row["exit_by_plan"] == 1:
            well.append(Lesson("EXIT_BY_PLAN", f"The exit at {f[0].value:.2f} R followed the "
                               "plan: target, stop or time stop.", f))
        else:
            target = fact("plan_target_r", row["plan_target_r"], "R")
            text = (f"The exit at {f[0].value:.2f} R was neither the stop nor the "
                    f"{target.value:.2f} R target." if not np.isnan(row["plan_target_r"]) else
                    f"The exit at {f[0].value:.2f} R came before the time stop.")
            improve.append(Lesson("EXIT_OFF_PLAN", text, (*f, target)))
    if not np.isnan(row["top_issues_acted_on"]):
        f = (fact("acted_issues", row["acted_issues"], "issues"),
             fact("observable_issues", row["observable_issues"], "issues"))
        codes = str(row.get("top_issue_codes") or "")
        if row["top_issues_acted_on"] == 1:
            well.append(Lesson("ISSUES_ACTED_ON", f"{f[0].value:g} of {f[1].value:g} top "
                               f"issues the fills can show were acted on ({codes}).", f))
        else:
            improve.append(Lesson("ISSUES_NOT_ACTED_ON", f"Only {f[0].value:g} of "
                                  f"{f[1].value:g} top issues the fills can show were acted "
                                  f"on ({codes}).", f))
    eff = row["exit_efficiency"]
    if not np.isnan(eff):
        f = (fact("exit_efficiency_pct", 100 * eff, "%"), fact("best_exit", row["best_exit"],
                                                               "price"),
             fact("avg_exit", row["avg_exit"], "price"))
        text = (f"The exit captured {f[0].value:.2f}% of the move to the best exit in the "
                f"risk-bounded window ({f[2].value:g} against {f[1].value:g}).")
        if eff >= config.high_efficiency:
            well.append(Lesson("HIGH_EXIT_EFFICIENCY", text, f))
        elif eff <= config.low_efficiency:
            improve.append(Lesson("LOW_EXIT_EFFICIENCY", text, f))
    if row["coverage"] != "covered":
        f = (fact("bars_held", row["bars_held"], "bars"),)
        improve.append(Lesson("EXCURSIONS_NOT_MEASURED", f"MAE and MFE were not measured: "
                              f"{f[0].value:g} {row['timeframe']} bars overlap the trade, "
                              "too coarse to show its path.", f))
    elif not np.isnan(row["mfe_r"]) and row["mfe_r"] >= 1 and row["exit_r"] <= 0:
        f = (fact("mfe_r", row["mfe_r"], "R"), fact("exit_r", row["exit_r"], "R"))
        improve.append(Lesson("OPEN_GAIN_GIVEN_BACK", f"The trade was {f[0].value:.2f} R in "
                              f"favour at best and closed at {f[1].value:.2f} R.", f))
    pnl = fact("pnl", row["pnl"], ccy)
    checked = fact("n_checked", row["n_checked"], "checks")
    passed = fact("n_passed", row["n_passed"], "checks")
    cell = row["process_outcome"]
    if cell == "good_process_bad_outcome":
        key.append(Lesson("GOOD_PROCESS_BAD_OUTCOME", f"The plan was followed in "
                          f"{passed.value:g} of {checked.value:g} checks and the trade closed "
                          f"at {pnl.value:.2f} {ccy}: a loss taken inside the plan is its "
                          "cost, not a mistake.", (passed, checked, pnl)))
    elif cell == "bad_process_good_outcome":
        key.append(Lesson("BAD_PROCESS_GOOD_OUTCOME", f"The trade closed at {pnl.value:.2f} "
                          f"{ccy} with only {passed.value:g} of {checked.value:g} checks "
                          "passed: the result did not come from following the plan.",
                          (passed, checked, pnl)))
    elif cell == "bad_process_bad_outcome":
        key.append(Lesson("BAD_PROCESS_BAD_OUTCOME", f"Only {passed.value:g} of "
                          f"{checked.value:g} checks passed on a trade that closed at "
                          f"{pnl.value:.2f} {ccy}: the checks to improve are where to start.",
                          (passed, checked, pnl)))
    elif cell == "good_process_good_outcome":
        key.append(Lesson("GOOD_PROCESS_GOOD_OUTCOME", f"The plan was followed in "
                          f"{passed.value:g} of {checked.value:g} checks and the trade closed "
                          f"at {pnl.value:.2f} {ccy}.", (passed, checked, pnl)))
    else:
        key.append(Lesson("PROCESS_NOT_GRADED", f"No process check could be made (no linked "
                          f"plan, no stop): only the result, {pnl.value:.2f} {ccy}, is known.",
                          (pnl,)))
    return {"what_went_well": well, "what_to_improve": improve, "key_lessons": key}


# ---------------------------------------------------------------------------- reviews
#: Per-trade inputs besides the trade row; NaN / None where unknown (see ``process_checks``).
CONTEXT_COLUMNS: tuple[str, ...] = (
    "timeframe", "last_exec_ts", "equity", "budget_pct", "proposed_size", "plan_target_r",
    "time_stop_bars", "top_issues", "top_size_actions", "top_stop_actions", "top_issue_codes",
    "linked_eval_id", "currency")


def generate_reviews(trades: pd.DataFrame, context: pd.DataFrame, bars: pd.DataFrame, *,
                     generated_at: pd.Timestamp, version: str = REVIEW_VERSION,
                     config: ReviewConfig = DEFAULT_REVIEW_CONFIG) -> pd.DataFrame:
    """Return one post_trade_reviews row per closed trade (``trades`` rows, ``context``
    with CONTEXT_COLUMNS on the same index, ``bars`` of the trades' series)."""
    frame = pd.concat([trades.drop(columns=[c for c in CONTEXT_COLUMNS if c in trades]),
                       context[list(CONTEXT_COLUMNS)]], axis=1)
    moves = excursions(frame, bars)
    frame = pd.concat([frame, moves], axis=1)
    checks = process_checks(frame, config)
    frame = pd.concat([frame, checks], axis=1)
    number_columns = ["mae_price", "mfe_price", "mae_r", "mfe_r", "mae_position",
                      "mfe_position", "best_exit", "exit_efficiency", "exit_r", "worst_r",
                      "risk_pct", "process_score"]
    check_columns = ["stop_honoured", "risk_within_budget", "size_as_planned", "exit_by_plan",
                     "top_issues_acted_on"]
    # review_json per row: the nested parts serialised column-wise (NaN -> null) and spliced
    config_json = json.dumps({k: getattr(config, k) for k in ReviewConfig.__dataclass_fields__})
    checks_json = _json_lines(frame[check_columns])
    numbers_json = _json_lines(frame[number_columns])
    head_json = _json_lines(frame[["match_method", "coverage", "r_source"]])
    detail = [f'{h[:-1]}, "checks": {c}, "numbers": {n}, "config": {config_json}}}'
              for h, c, n in zip(head_json, checks_json, numbers_json, strict=True)]
    lesson_inputs = frame[list(_LESSON_COLUMNS)].to_dict("records")
    told = [lessons(row, config) for row in lesson_inputs]
    out = pd.DataFrame({
        "review_id": [review_id_for(t, version) for t in frame["trade_id"]],
        "trade_id": frame["trade_id"].to_numpy(), "user_id": frame["user_id"].to_numpy(),
        "generated_at": generated_at, "process_grade": frame["process_grade"].to_numpy(),
        **{column: [json.dumps([x.as_dict() for x in t[column[:-5]]]) for t in told]
           for column in ("key_lessons_json", "what_went_well_json", "what_to_improve_json")},
        "linked_eval_id_optional": frame["linked_eval_id"].to_numpy(), "version": version,
        "outcome": frame["outcome"].to_numpy(),
        "process_outcome": frame["process_outcome"].to_numpy(),
        **{c: frame[c].to_numpy(np.float64) for c in (
            "process_score", "mae_price", "mfe_price", "mae_r", "mfe_r", "mae_position",
            "mfe_position", "exit_efficiency")},
        "bars_held": frame["bars_held"].to_numpy(np.int64),
        "bars_timeframe": frame["timeframe"].to_numpy(), "review_json": detail},
        index=frame.index)
    return out


#: The columns ``lessons`` reads from a review row.
_LESSON_COLUMNS: tuple[str, ...] = (
    "currency", "stop_honoured", "worst_r", "risk_within_budget", "risk_pct", "budget_pct",
    "size_as_planned", "max_position", "proposed_size", "exit_by_plan", "exit_r",
    "plan_target_r", "top_issues_acted_on", "acted_issues", "observable_issues",
    "top_issue_codes", "exit_efficiency", "best_exit", "avg_exit", "coverage", "bars_held",
    "timeframe", "mfe_r", "pnl", "n_checked", "n_passed", "process_outcome")


def _json_lines(frame: pd.DataFrame) -> list[str]:
    if frame.empty:
        return []
    return frame.reset_index(drop=True).to_json(orient="records", lines=True).splitlines()


def render_review(trade: Mapping[str, Any], review: Mapping[str, Any]) -> str:
    """Return a review as text for the command line."""
    r = "n/a" if pd.isna(trade.get("pnl_r")) else f"{trade['pnl_r']:.2f} R"
    lines = [f"Review of {trade['trade_id']} ({trade['user_id']}): {trade['symbol']} "
             f"{trade['side']} {trade['open_ts']} -> {trade['close_ts']}",
             f"  pnl {trade['pnl']:.2f} ({r}), matching {trade['match_method']}; process "
             f"grade {review['process_grade']} ({review['process_outcome']})"]
    if pd.isna(review.get("mae_price")):
        lines.append(f"  MAE/MFE not measured on {review['bars_timeframe']} bars "
                     f"({review['bars_held']} bar(s) overlap the trade)")
    else:
        def r_text(v: Any) -> str:
            return "n/a" if pd.isna(v) else f"{v:.2f} R"
        eff = review.get("exit_efficiency", np.nan)
        lines.append(f"  MAE {review['mae_price']:.4g} ({r_text(review['mae_r'])}), MFE "
                     f"{review['mfe_price']:.4g} ({r_text(review['mfe_r'])}) over "
                     f"{review['bars_held']} {review['bars_timeframe']} bars; exit "
                     f"efficiency {'n/a' if pd.isna(eff) else f'{100 * eff:.0f}%'}")
    for title, column in (("What went well", "what_went_well_json"),
                          ("What to improve", "what_to_improve_json"),
                          ("Key lessons", "key_lessons_json")):
        items = json.loads(review[column] or "[]")
        if items:
            lines.append(f"  {title}:")
            lines += [f"    - {item['text']}" for item in items]
    return "\n".join(lines)
