"""Strategy consistency: is this idea like the trader's own past trades, and within their rules?

Reads the ``strategy`` piece (``buddy.strategy.provider.UserStrategy``: the profile, the
playbook fit and the drift of the user's trades closed by as_of, and the user's rules) and the
intent's entry facts (``buddy.strategy.facts.entry_facts``: the same rule that embedded the
past trades, over the market columns and, when present, the mtfa and levels pieces):

- OUT_OF_PATTERN: the idea's novelty (distance to its k nearest past trades, in the fit's
  scaled space) has a conformal p-value ``(1 + #{reference >= score}) / (n + 1)`` below
  ``alpha`` against the user's own trades; flagged only when the reference is large enough
  for p to go below ``alpha`` at all (19 trades for 0.05). Evidence: p, n, the nearest
  playbook and the features outside the user's usual range (10th-90th percentile: "stop
  3.1 ATR against your usual 1.2-1.8"). MEDIUM below ``strict_alpha`` or when the idea is
  farther from its neighbours than every past trade (p at its floor 1 / (n + 1)), else LOW;
- PERSONAL_RED_FLAG: the idea matches a condition under which this user's mean R has been
  reliably worse (the profile's red flags: significant after its multiple-comparison
  correction), with n in and out, both means and the difference with its interval; the
  largest difference is cited, the count of the others given;
- PROFILE_DRIFT: the user's recent trades (last 30 days against the 60 before, with minimum
  counts) drifted from their profile (``profile_drift``);
- RULE_BREAK: the idea breaks a rule the user set and no other module checks: the symbol
  outside ``allowed_symbols``, the timeframe outside ``allowed_timeframes``, the decision
  time (as_of, in the exchange's zone) outside every ``trading_windows`` window;
- PATTERN_NOT_CHECKED (not checked): the idea could not be compared with the user's trades:
  no playbook fit, a missing fact (no stop or no target: the embedding needs both), or too
  few reference trades to reach ``alpha``.

The explain facts say which playbook the idea resembles and how strongly (the "84%" is the
soft membership of ``membership_vector``), the playbook's n, win rate and mean R with their
intervals and where the fit came from; the report prints them as one "your history" line.

Firing rates on the demo trader's own intents (211 intents entered after 70% of its history,
judged against the strategy fitted as of that split; tests/strategy/test_consistency_demo.py):
OUT_OF_PATTERN 2.4% at the default alpha 0.01 (14.2% of them have p < 0.05: later intents
drift from the fitted trades, so the reference is not exchangeable with them; hence 0.01),
PERSONAL_RED_FLAG 0%, PROFILE_DRIFT 0%, RULE_BREAK 0% (the demo user sets no such rule),
PATTERN_NOT_CHECKED 0%.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from buddy.batch.result import BatchResult, IssueBlock
from buddy.config import ModuleConfig, param
from buddy.domain import Severity
from buddy.errors import ConfigError, FieldError
from buddy.evaluators.base import Code, Evaluator, Evidence, severity_where
from buddy.evaluators.registry import register

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext
    from buddy.strategy.playbooks import PlaybookFit
    from buddy.strategy.provider import UserStrategy

#: How an unusual feature is named in words, with its unit and digits.
FEATURE_WORDS: dict[str, tuple[str, str, int]] = {
    "stop_atr": ("stop", "ATR", 1),
    "reward_risk": ("reward/risk", "", 1),
    "close_ema20_atr": ("close from EMA20", "ATR", 1),
    "bb_z": ("Bollinger z", "", 1),
    "high20_atr": ("close from the 20-bar high", "ATR", 1),
    "trend_atr": ("EMA20 - EMA50", "ATR", 1),
    "rsi_14": ("RSI(14)", "", 0),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyConsistencyConfig(ModuleConfig):
    """Thresholds of the strategy-consistency checks."""

    config_name = "strategy_consistency"

    alpha: float = param(0.01, lo=0.001, hi=0.5, unit="p-value",
                         doc="an idea whose novelty p-value against the user's own trades is "
                             "below this is out of pattern")
    strict_alpha: float = param(0.002, lo=0.0001, hi=0.5, unit="p-value",
                                doc="an out-of-pattern p-value below this is medium severity "
                                    "(as is one at its floor 1 / (n + 1)), else low")
    max_unusual_features: int = param(3, lo=1, hi=8, unit="features",
                                      doc="features outside the usual range named in the "
                                          "evidence, farthest first")

    def __post_init__(self) -> None:
        ModuleConfig.__post_init__(self)
        if self.strict_alpha > self.alpha:
            raise ConfigError([FieldError("strategy_consistency.strict_alpha",
                                          f"must be <= alpha ({self.alpha})",
                                          self.strict_alpha)])

    @property
    def min_reference(self) -> int:
        """Return the fewest reference trades with which p can go below ``alpha``."""
        # the smallest n with 1 / (n + 1) < alpha (20 for 0.05)
        return math.floor(1.0 / self.alpha - 1.0 + 1e-9) + 1


@register
class StrategyConsistencyEvaluator(Evaluator[StrategyConsistencyConfig]):
    """Compare the idea with the user's own trades, red flags, drift and rules."""

    name = "strategy_consistency"
    version = "1.0.0"
    requires = frozenset({"strategy", "market"})
    optional = frozenset({"mtfa", "levels"})
    config_cls = StrategyConsistencyConfig
    codes: ClassVar = {
        "OUT_OF_PATTERN": Code(
            "Unlike your past trades",
            "This idea is unusual for you: its distance to your nearest past trades gives "
            "p = {p_value} against your past trades (n = {n_reference}; flagged below "
            "{alpha}); nearest "
            "playbook {nearest_playbook}. {unusual_features}.",
            "Check what makes this idea different from your usual setups, or size it as an "
            "experiment.",
            evidence=(Evidence("p_value", digits=3, threshold="alpha"), Evidence("alpha"),
                      Evidence("n_reference", "trades"), Evidence("nearest_playbook"),
                      Evidence("unusual_features")),
            action="REVIEW_AGAINST_PLAYBOOKS",
            harm="an idea unlike any of your past trades has none of your own record behind "
                 "it: your usual results say nothing about how you handle it",
            measure="realized_r"),
        "PERSONAL_RED_FLAG": Code(
            "A condition that has gone worse for you",
            "This idea matches '{condition}': on your {n_in} such trades your mean R was "
            "{mean_r_in} against {mean_r_out} on your other {n_out} (difference "
            "{difference_r} R, interval {difference_interval}; {correction}). "
            "{n_other_flags} other red flag(s) match.",
            "Compare this idea with your trades under '{condition}' before you take it, or "
            "trade it smaller.",
            evidence=(Evidence("condition"), Evidence("n_in", "trades"),
                      Evidence("mean_r_in", "R", 2), Evidence("n_out", "trades"),
                      Evidence("mean_r_out", "R", 2), Evidence("difference_r", "R", 2),
                      Evidence("difference_interval", "R"), Evidence("correction"),
                      Evidence("n_other_flags")),
            action="REVIEW_RED_FLAG",
            harm="under this condition your own trades have ended worse in R than the rest "
                 "of your trades",
            measure="realized_r"),
        "PROFILE_DRIFT": Code(
            "Your recent trades drift from your profile",
            "Your recent trades differ from your usual ones: {drifts}.",
            "Check whether the change in your recent trades is deliberate before adding "
            "this one.",
            evidence=(Evidence("n_drifts", "features"), Evidence("drifts")),
            action="REVIEW_RECENT_TRADES",
            harm="a change of habit in your recent trades leaves your usual record a weaker "
                 "guide to how these trades end",
            measure="realized_r"),
        "RULE_BREAK": Code(
            "Outside your own rules",
            "This idea breaks your rule(s): {broken}.",
            "Keep to the symbols, timeframes and hours you set, or change the rule "
            "deliberately (`buddy user set`).",
            evidence=(Evidence("n_broken", "rules"), Evidence("broken")),
            action="KEEP_TO_YOUR_RULES",
            harm="a trade outside the symbols, timeframes or hours you set for yourself; no "
                 "outcome measure judges a rule you chose (it is the plan's form)",
            measure=None),
        "PATTERN_NOT_CHECKED": Code(
            "Fit with your past trades",
            "Whether this idea resembles your past trades was not checked: {why}.",
            "Give the idea a stop and a target so it can be compared with your trades.",
            evidence=(Evidence("why"), Evidence("n_reference", "trades")),
            action="COMPLETE_THE_PLAN", kind="not_checked",
            harm="not a warning: the idea could not be compared with your own trades"),
    }
    explain = (Evidence("playbook_number"), Evidence("playbook_name"),
               Evidence("membership", "%", 0), Evidence("nearest_number"),
               Evidence("nearest_membership", "%", 0), Evidence("playbook_n", "trades"),
               Evidence("playbook_win_rate", digits=2),
               Evidence("playbook_win_rate_interval"),
               Evidence("playbook_mean_r", "R", 2), Evidence("playbook_mean_r_interval", "R"),
               Evidence("p_value", digits=3), Evidence("n_reference", "trades"),
               Evidence("playbooks_source"), Evidence("n_closed", "trades"))

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Place each row among its user's trades (one fit per distinct strategy piece),
        then flag the out-of-pattern, red-flag, drift and rule-break rows."""
        from buddy.strategy.facts import entry_facts

        cfg = self.config
        snap, strategies = ctx.distinct_pieces("strategy")
        facts = entry_facts(ctx)
        placed = _placements(facts, snap, strategies)
        blocks: list[IssueBlock] = []

        enough = placed["n_reference"] >= cfg.min_reference
        p = placed["p_value"]
        rows = np.flatnonzero(placed["placed"] & enough & (p < cfg.alpha))
        # farther from its neighbours than every one of the user's trades ever was: p is at
        # its floor 1 / (n + 1), as strong as this reference can say (with n < 1 / strict_alpha
        # the strict p is out of reach)
        beyond_all = p * (placed["n_reference"] + 1) < 1.0 + 1e-9
        if len(rows):
            blocks.append(self.fire(
                "OUT_OF_PATTERN", rows,
                severity_where(beyond_all[rows] | (p[rows] < cfg.strict_alpha),
                               Severity.MEDIUM, Severity.LOW),
                p_value=p[rows], alpha=cfg.alpha, n_reference=placed["n_reference"][rows],
                nearest_playbook=placed["nearest_text"][rows],
                unusual_features=_unusual(facts, snap, strategies, rows,
                                          cfg.max_unusual_features)))

        flags = _red_flags(facts, snap, strategies)
        rows = np.flatnonzero(flags["matched"])
        if len(rows):
            blocks.append(self.fire(
                "PERSONAL_RED_FLAG", rows, Severity.MEDIUM,
                **_take(flags, self.codes["PERSONAL_RED_FLAG"].names, rows)))

        drift = _drift(snap, strategies)
        rows = np.flatnonzero(drift["n_drifts"] > 0)
        if len(rows):
            blocks.append(self.fire("PROFILE_DRIFT", rows, Severity.LOW,
                                    n_drifts=drift["n_drifts"][rows],
                                    drifts=drift["drifts"][rows]))

        broken = _broken_rules(ctx, snap, strategies)
        n_broken = np.array([len(b) for b in broken], dtype=np.int64)
        rows = np.flatnonzero(n_broken > 0)
        if len(rows):
            blocks.append(self.fire("RULE_BREAK", rows, Severity.MEDIUM,
                                    n_broken=n_broken[rows],
                                    broken=np.array(["; ".join(broken[i]) for i in rows],
                                                    dtype=object)))

        why = _not_checked_why(placed, enough, cfg.alpha, cfg.min_reference)
        rows = np.flatnonzero(why != "")
        if len(rows):
            blocks.append(self.fire("PATTERN_NOT_CHECKED", rows, Severity.INFO,
                                    why=why[rows], n_reference=placed["n_reference"][rows]))

        source = np.array([s.playbooks_source for s in strategies], dtype=object)[snap]
        n_closed = np.array([s.n_closed for s in strategies], dtype=np.int64)[snap]
        return self.result(ctx.n, blocks, explain={
            "playbook_number": placed["playbook_number"],
            "playbook_name": placed["playbook_name"],
            "membership": 100.0 * placed["membership"],
            "nearest_number": placed["nearest_number"],
            "nearest_membership": 100.0 * placed["nearest_membership"],
            "playbook_n": placed["playbook_n"],
            "playbook_win_rate": placed["win_rate"],
            "playbook_win_rate_interval": placed["win_rate_interval"],
            "playbook_mean_r": placed["mean_r"],
            "playbook_mean_r_interval": placed["mean_r_interval"],
            "p_value": p, "n_reference": placed["n_reference"],
            "playbooks_source": source, "n_closed": n_closed})


def _placements(facts: pd.DataFrame, snap: np.ndarray, strategies: list[UserStrategy]
                ) -> dict[str, np.ndarray]:
    """Return, per row, where its strategy's playbook fit places it (NaN/None when the row
    has no fit or could not be placed)."""
    n = len(facts)
    out: dict[str, np.ndarray] = {
        "placed": np.zeros(n, dtype=bool),
        "p_value": np.full(n, math.nan), "n_reference": np.zeros(n, dtype=np.int64),
        "membership": np.full(n, math.nan), "nearest_membership": np.full(n, math.nan),
        "win_rate": np.full(n, math.nan), "mean_r": np.full(n, math.nan),
    }
    for name in ("playbook_number", "playbook_name", "nearest_number", "nearest_text",
                 "playbook_n", "win_rate_interval", "mean_r_interval", "reason"):
        out[name] = np.full(n, None, dtype=object)
    for s, strategy in enumerate(strategies):
        rows = np.flatnonzero(snap == s)
        fit = strategy.playbooks
        if fit is None:
            out["reason"][rows] = strategy.playbooks_reason or "no playbook fit"
            continue
        where = fit.place(facts.iloc[rows].reset_index(drop=True))
        ok = where["placed"].to_numpy(bool)
        out["placed"][rows] = ok
        out["p_value"][rows] = where["p_value"].to_numpy(np.float64)
        out["n_reference"][rows] = np.where(ok, where["n_reference"].fillna(0), 0)
        out["membership"][rows] = where["membership"].to_numpy(np.float64)
        out["nearest_membership"][rows] = where["nearest_membership"].to_numpy(np.float64)
        stats = _playbook_stats(fit)
        for k, i in enumerate(rows):
            if not ok[k]:
                out["reason"][i] = _missing_features_reason(facts.iloc[i], fit.features)
                continue
            number = _int_or_none(where["playbook_number"].iloc[k])
            nearest = _int_or_none(where["nearest_number"].iloc[k])
            out["playbook_number"][i] = number
            out["playbook_name"][i] = where["playbook_name"].iloc[k] if number else None
            out["nearest_number"][i] = nearest
            out["nearest_text"][i] = (f"#{nearest} ({100 * out['nearest_membership'][i]:.0f}%)"
                                      if nearest is not None else "none")
            if number is not None and number in stats:
                row = stats[number]
                out["playbook_n"][i] = row["n"]
                out["win_rate"][i] = row["win_rate"]
                out["win_rate_interval"][i] = row["win_rate_interval"]
                out["mean_r"][i] = row["mean_r"]
                out["mean_r_interval"][i] = row["mean_r_interval"]
    return out


def _take(columns: Mapping[str, np.ndarray], names: Any, rows: np.ndarray) -> dict[str, Any]:
    """Return ``names``' columns at ``rows`` (keyword values of ``fire``)."""
    return {name: columns[name][rows] for name in names}


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _playbook_stats(fit: PlaybookFit) -> dict[int, dict[str, Any]]:
    """Return each published playbook's n, win rate and mean R with their intervals."""
    out: dict[int, dict[str, Any]] = {}
    for book in fit.playbooks:
        win, mean_r = book.stats.get("win_rate", {}), book.stats.get("mean_r", {})
        out[book.number] = {"n": book.n, "win_rate": _float(win.get("value")),
                            "win_rate_interval": _interval(win),
                            "mean_r": _float(mean_r.get("value")),
                            "mean_r_interval": _interval(mean_r)}
    return out


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _interval(stat: Mapping[str, Any]) -> str | None:
    """Return '[low, high]' of a stat dict, None without an interval."""
    low, high = stat.get("low"), stat.get("high")
    return None if low is None or high is None else f"[{low:.2f}, {high:.2f}]"


def _missing_features_reason(row: pd.Series, features: tuple[str, ...]) -> str:
    """Return why ``row`` could not be placed: the embedding features it lacks, in words."""
    missing = [f for f in features if pd.isna(row.get(f))]
    words = {"stop_atr": "no stop", "reward_risk": "no target"}
    named = ", ".join(words.get(f, f) for f in missing) or "an incomplete plan"
    return f"the idea's facts are incomplete ({named})"


def _not_checked_why(placed: dict[str, np.ndarray], enough: np.ndarray, alpha: float,
                     min_reference: int) -> np.ndarray:
    """Return per row why the comparison with the user's trades was not made ('' when it
    was)."""
    why = np.full(len(enough), "", dtype=object)
    for i in range(len(enough)):
        if not placed["placed"][i]:
            why[i] = placed["reason"][i] or "the idea could not be placed"
        elif not enough[i]:
            why[i] = (f"only {placed['n_reference'][i]} reference trades; p can go below "
                      f"{alpha} from {min_reference}")
    return why


def _unusual(facts: pd.DataFrame, snap: np.ndarray, strategies: list[UserStrategy],
             rows: np.ndarray, limit: int) -> np.ndarray:
    """Return per row of ``rows`` the features outside the user's usual range, in words,
    farthest (in range widths) first."""
    out = np.empty(len(rows), dtype=object)
    for k, i in enumerate(rows):
        profile = strategies[snap[i]].profile
        found: list[tuple[float, str]] = []
        for feature, (words, unit, digits) in FEATURE_WORDS.items():
            value = facts[feature].iloc[i] if feature in facts else math.nan
            usual = profile.usual_range(feature)
            if usual is None or pd.isna(value):
                continue
            lo, hi, _ = usual
            if lo <= value <= hi:
                continue
            width = max(hi - lo, 1e-12)
            far = (lo - value if value < lo else value - hi) / width
            unit_text = f" {unit}" if unit else ""
            found.append((far, f"{words} {value:.{digits}f}{unit_text} against your usual "
                               f"{lo:.{digits}f}-{hi:.{digits}f}"))
        found.sort(key=lambda x: -x[0])
        out[k] = ("; ".join(t for _, t in found[:limit]) if found
                  else "no single feature is outside your usual range")
    return out


def _red_flags(facts: pd.DataFrame, snap: np.ndarray, strategies: list[UserStrategy]
               ) -> dict[str, np.ndarray]:
    """Return per row the matched red flag with the largest shortfall (``matched``), its
    facts, and how many others match."""
    n = len(facts)
    out: dict[str, np.ndarray] = {"matched": np.zeros(n, dtype=bool)}
    for name in ("condition", "n_in", "mean_r_in", "n_out", "mean_r_out", "difference_r",
                 "difference_interval", "correction", "n_other_flags"):
        out[name] = np.full(n, None, dtype=object)
    for s, strategy in enumerate(strategies):
        rows = np.flatnonzero(snap == s)
        flags = strategy.profile.red_flags
        if not flags or not len(rows):
            continue
        part = facts.iloc[rows].reset_index(drop=True)
        hits = np.column_stack([flag.matches(part) for flag in flags])
        # the most negative difference first: the flag that has cost this user the most
        order = np.argsort([flag.difference.value or 0.0 for flag in flags], kind="stable")
        for k, i in enumerate(rows):
            matched = [j for j in order if hits[k, j]]
            if not matched:
                continue
            flag = flags[matched[0]]
            d = flag.difference
            out["matched"][i] = True
            out["condition"][i] = flag.label
            out["n_in"][i], out["n_out"][i] = flag.n_in, flag.n_out
            out["mean_r_in"][i], out["mean_r_out"][i] = flag.mean_r_in, flag.mean_r_out
            out["difference_r"][i] = d.value
            out["difference_interval"][i] = (None if d.low is None else
                                             f"95% [{d.low:+.2f}, {d.high:+.2f}]")
            out["correction"][i] = f"{flag.correction} p={flag.p_adjusted:.3g}"
            out["n_other_flags"][i] = len(matched) - 1
    for name in ("mean_r_in", "mean_r_out", "difference_r"):
        out[name] = np.array([math.nan if v is None else float(v) for v in out[name]])
    return out


def _drift(snap: np.ndarray, strategies: list[UserStrategy]) -> dict[str, np.ndarray]:
    """Return per row the number of drifted facts and their description."""
    count = np.array([len(s.drift) for s in strategies], dtype=np.int64)
    text = np.array(["; ".join(d.text() for d in s.drift) for s in strategies], dtype=object)
    return {"n_drifts": count[snap], "drifts": text[snap]}


def _broken_rules(ctx: BatchContext, snap: np.ndarray, strategies: list[UserStrategy]
                  ) -> list[list[str]]:
    """Return per row the user's rules the idea breaks, in words."""
    symbols = ctx.intents["symbol"].astype(str).to_numpy(object)
    timeframes = ctx.intents["timeframe"].astype(str).to_numpy(object)
    local = [pd.Timestamp(t).tz_convert(z) for t, z in
             zip(pd.to_datetime(ctx.intents["as_of"], utc=True),
                 ctx.instrument["timezone"].astype(str), strict=True)]
    out: list[list[str]] = []
    for i in range(ctx.n):
        rules = strategies[snap[i]].rules
        broken: list[str] = []
        if rules is not None:
            if rules.allowed_symbols and symbols[i] not in rules.allowed_symbols:
                broken.append(f"symbol {symbols[i]} not in your allowed symbols "
                              f"({', '.join(rules.allowed_symbols)})")
            if rules.allowed_timeframes and timeframes[i] not in rules.allowed_timeframes:
                broken.append(f"timeframe {timeframes[i]} not in your allowed timeframes "
                              f"({', '.join(rules.allowed_timeframes)})")
            if rules.trading_windows and not any(in_window(local[i], w)
                                                 for w in rules.trading_windows):
                broken.append(f"{local[i]:%H:%M} {local[i].tzinfo} outside your trading "
                              f"windows ({', '.join(rules.trading_windows)})")
        out.append(broken)
    return out


def in_window(when: pd.Timestamp, window: str) -> bool:
    """Return True when the local clock time of ``when`` lies in ``window`` ('HH:MM-HH:MM',
    start included, end excluded; a start after the end wraps past midnight)."""
    start, end = (int(a) * 60 + int(b) for a, b in (p.split(":") for p in window.split("-")))
    minute = when.hour * 60 + when.minute
    if start <= end:
        return start <= minute < end
    return minute >= start or minute < end
