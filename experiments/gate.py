"""The promotion gate: a challenger config replaces production only if it is no worse.

Both configurations are replayed on the same **holdout window**: the same intents with the
same outcomes, only the scores differ. The gate pairs the two replays intent by intent,
keeps the **resolved trades** (an outcome that is neither ``not_filled`` nor ``open``, with a
finite realized R and both scores), and decides on the **difference** of each gate metric,
challenger minus production, with a **paired bootstrap interval**: resamples draw whole
symbol-months (trades on one symbol in one month overlap, so they are not independent) with
``scipy.stats.bootstrap`` and recompute both configs' metric on each resample.

The rule, for every gate metric with tolerance ``t`` (higher is better):

    **no worse** = the lower bound of the interval of (challenger - production) > -t

(for a metric where lower is better: the upper bound < +t). A challenger passes when it is no
worse on every metric AND the pair holds at least ``min_n`` resolved trades; fewer is
refused as **not enough evidence**, whatever the figures say. The interval is two-sided at
``confidence_level`` (default 95%, so the bound is a one-sided 97.5% bound), ``n_boot``
resamples, ``method`` 'percentile' by default.

The default gate (``DEFAULT_GATE``), metrics as in ``replay.calibration``:

- ``auc``, tolerance 0.02: P(score of a win > score of a loss); 0.5 is no separation;
- ``spearman``, tolerance 0.03: rank correlation of the overall score with realized R;
- ``decile_spread_r``, tolerance 0.25 R: mean R of the top score decile minus the bottom one;

with ``min_n = 200`` resolved trades, on the holdout window: the all-data corpus (every
intent generator over every symbol and timeframe with bars, ``replay.intents.corpus_intents``)
with an as_of from 2012-03-01 to 2013-03-01 (the last year of the bundled equity data: about
700 intents on AAPL, GOOG, IBM, MSFT, NASDAQ and SP500, daily and weekly), the standard
context providers.

A metric undefined for both (NaN: e.g. a constant score has no rank correlation) cannot tell
them apart and passes; undefined for the challenger only fails, and so does an interval the
resamples leave undefined.

**Fit and holdout never overlap.** A challenger found by the weight search carries the window
its fit run covered (version tags ``buddy.fit_start``/``buddy.fit_end``); a holdout window
that overlaps it is refused before anything is replayed or recorded (``WindowOverlapError``).
The gate's own replays are stored with purpose 'gate', so no "latest run" default ever fits
on them.

Change the gate with a JSON file (``GateConfig.to_json()`` shows the format; ``buddy
experiments promote --gate FILE``) or in Python (``GateConfig(rules=..., window=...,
min_n=...)``). A ``ReplayScorer`` maps (config, window) to a ``HoldoutReplay`` (per-intent
scores and outcomes, plus calibration figures for the record); ``ReplayHoldoutScorer`` is the
real one. ``compare_paired`` is a pure function of two HoldoutReplays. A scorer that returns
plain metric dicts (the playbook registry's coverage) is compared on point estimates by
``compare``: it has no trades to pair.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from buddy.config import Config, ScoringConfig, canonical_json, param
from buddy.errors import FieldError, FieldErrors

if TYPE_CHECKING:
    from buddy.store import Store
    from experiments.tracking import ExperimentStore
    from replay.executors import Executor

#: Outcomes of a promotion decision.
PASSED = "passed"  # the challenger is no worse on every rule
REFUSED = "refused"  # worse on a rule, or not enough evidence: production stays
FORCED = "forced"  # promoted without the gate deciding (recorded as forced)
FIRST = "first"  # no production version yet: passes by definition
OUTCOMES: tuple[str, ...] = (PASSED, REFUSED, FORCED, FIRST)
#: Outcomes that are not finished trades: no realized R, left out of every gate statistic.
UNRESOLVED: tuple[str, ...] = ("not_filled", "open")
#: The columns of a HoldoutReplay's frame (one row per intent).
HOLDOUT_COLUMNS: tuple[str, ...] = ("intent_id", "symbol", "as_of", "score", "realized_r",
                                    "win", "exit_reason")
#: How resamples are drawn: whole symbol-months, or single trades.
CLUSTERS: tuple[str, ...] = ("symbol_month", "trade")
#: scipy.stats.bootstrap's interval methods.
BOOTSTRAP_METHODS: tuple[str, ...] = ("percentile", "basic", "BCa")


class WindowOverlapError(FieldErrors):
    """The holdout window overlaps the window a challenger was fitted on; nothing was
    replayed or recorded."""

    what = "holdout window"


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricRule(Config):
    """One gate metric: its name, how much worse the challenger may be (in the metric's
    unit), and its direction."""

    config_name: ClassVar[str] = "gate.rules"

    metric: str = param(doc="the metric's name (PAIRED_METRICS for a replay gate)")
    tolerance: float = param(0.0, lo=0.0, unit="metric units",
                             doc="how much worse than production the challenger may be")
    higher_is_better: bool = param(True, choices=(True, False), doc="the metric's direction")

    def field_prefix(self) -> str:
        """Return 'gate.rules.<metric>': errors say which rule."""
        return f"gate.rules.{self.metric}"


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldoutWindow(Config):
    """The intents both configs are replayed on (``replay.reports.load_intents`` terms).

    ``intent_source``: 'corpus' (every generator over every series), a generator name (or
    'generator:<name>'), 'database[:<user>]' or 'csv:<path>'; ``start`` and ``end`` bound the
    intents' as_of (UTC dates, or ISO times with their zone; a date alone is the whole day;
    None: unbounded); ``providers``:
    'standard' (every context provider installed) or 'none' (market data only).
    """

    config_name: ClassVar[str] = "gate.window"

    intent_source: str = param("corpus", doc="where the intents come from")
    symbols: tuple[str, ...] | None = param(None, doc="the symbols (None: every symbol)")
    timeframe: str | None = param(None, doc="the bars' timeframe (None: every timeframe)")
    start: str | None = param("2012-03-01", doc="earliest intent as_of (UTC; None: open)")
    end: str | None = param("2013-03-01", doc="latest intent as_of (UTC; None: open)")
    seed: int = param(0, doc="the random generator's seed")
    providers: str = param("standard", choices=("standard", "none"),
                           doc="context providers: every one installed, or market data only")

    def __post_init__(self) -> None:
        if self.symbols is not None:  # a list from JSON or a caller: hashable and frozen
            object.__setattr__(self, "symbols", tuple(self.symbols))
        Config.__post_init__(self)

    @property
    def key(self) -> str:
        """Return a short id of the window (part of the replay run names)."""
        return self.hash[:10]

    def bounds(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """Return the as_of bounds in UTC as load_intents reads them (None: open)."""
        return (None if self.start is None else _utc(self.start),
                None if self.end is None else _utc(self.end, end_of_day=True))

    def span(self) -> str:
        """Return 'start..end' ('open' for an unbounded side)."""
        return f"{self.start or 'open'}..{self.end or 'open'}"

    def describe(self) -> str:  # type: ignore[override]
        """Return the window in one line."""
        symbols = ",".join(self.symbols) if self.symbols else "all symbols"
        return (f"{self.intent_source} {symbols} {self.timeframe or 'all timeframes'} "
                f"{self.span()} (seed {self.seed}, providers {self.providers})")


def _utc(value: str | pd.Timestamp, *, end_of_day: bool = False) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        if end_of_day and stamp == stamp.normalize():
            stamp += pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
        stamp = stamp.tz_localize("UTC")
    return stamp.tz_convert("UTC")


DEFAULT_RULES: tuple[MetricRule, ...] = (
    MetricRule(metric="auc", tolerance=0.02),
    MetricRule(metric="spearman", tolerance=0.03),
    MetricRule(metric="decile_spread_r", tolerance=0.25),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class GateConfig(Config):
    """The gate: metric rules, the holdout window, the least evidence, and the interval."""

    config_name: ClassVar[str] = "gate"

    rules: tuple[MetricRule, ...] = param(DEFAULT_RULES, doc="one rule per gate metric")
    # param() is a field specifier (it returns dataclasses.field), which ruff cannot see
    window: HoldoutWindow = param(factory=HoldoutWindow,  # noqa: RUF009
                                  doc="the holdout window")
    min_n: int = param(200, lo=0, unit="trades",
                       doc="fewest resolved trades the paired replays need; fewer is "
                           "refused as not enough evidence")
    n_boot: int = param(2000, lo=100, hi=100_000, unit="resamples",
                        doc="bootstrap resamples of the paired difference")
    confidence_level: float = param(0.95, lo=0.5, hi=0.999,
                                    doc="two-sided level of the difference's interval")
    cluster: str = param("symbol_month", choices=CLUSTERS,
                         doc="what a resample draws: whole symbol-months, or single trades")
    method: str = param("percentile", choices=BOOTSTRAP_METHODS,
                        doc="scipy.stats.bootstrap's interval method")
    seed: int = param(0, doc="the bootstrap's random seed")

    def check(self) -> list[FieldError]:
        """Return the rules' violations: none at all, or a metric listed twice."""
        names = [r.metric for r in self.rules]
        if not names:
            return [FieldError("gate.rules", "must hold at least one metric rule", ())]
        if len(set(names)) != len(names):
            return [FieldError("gate.rules", "must not list a metric twice", tuple(names))]
        return []

    @classmethod
    def from_file(cls, path: str | Path) -> GateConfig:
        """Build from a JSON file (``to_json`` shows the format; missing keys keep their
        defaults)."""
        return cls.from_json(Path(path).read_text())


DEFAULT_GATE = GateConfig()


# ---------------------------------------------------------------------------- fit windows
@dataclass(frozen=True, slots=True, kw_only=True)
class FitWindow:
    """The as_of range a challenger's weights were fitted on (its fit run's data range)."""

    start: pd.Timestamp
    end: pd.Timestamp
    run_id: str = ""

    def span(self) -> str:
        """Return 'start..end' as ISO dates-times."""
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    def tags(self) -> dict[str, str]:
        """Return the model-version tags that record it."""
        return {"buddy.fit_start": self.start.isoformat(),
                "buddy.fit_end": self.end.isoformat(), "buddy.fit_run_id": self.run_id}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> FitWindow | None:
        """Return the window recorded in ``tags``, or None when none is."""
        if not tags.get("buddy.fit_start") or not tags.get("buddy.fit_end"):
            return None
        return cls(start=_utc(tags["buddy.fit_start"]), end=_utc(tags["buddy.fit_end"]),
                   run_id=tags.get("buddy.fit_run_id", ""))


def check_windows(window: HoldoutWindow, fit: FitWindow | None, *, challenger: str = ""
                  ) -> None:
    """Raise WindowOverlapError when the holdout ``window`` overlaps ``fit`` (None: the
    challenger was not fitted on a replay, nothing to check)."""
    if fit is None:
        return
    start, end = window.bounds()
    apart = (end is not None and end < fit.start) or (start is not None and start > fit.end)
    if not apart:
        who = f"challenger {challenger}" if challenger else "the challenger"
        raise WindowOverlapError([FieldError(
            "gate.window", f"must not overlap the window {who} was fitted on ({fit.span()}, "
            f"replay run {fit.run_id or 'unknown'}): a holdout that saw the fit cannot judge "
            "it; choose a holdout after the fit, or fit on earlier data", window.span())])


# ---------------------------------------------------------------------------- the decision
@dataclass(frozen=True, slots=True, kw_only=True)
class RuleCheck:
    """One rule applied: both values, the difference with its interval, the verdict.

    ``low``/``high`` bound challenger minus production (NaN for a point comparison)."""

    metric: str
    challenger: float
    production: float
    tolerance: float
    higher_is_better: bool
    passed: bool
    low: float = math.nan
    high: float = math.nan
    note: str = ""

    @property
    def delta(self) -> float:
        """Return challenger minus production (NaN when either is undefined)."""
        return self.challenger - self.production

    @property
    def paired(self) -> bool:
        """Return whether the verdict rests on an interval (else on point estimates)."""
        return not (math.isnan(self.low) and math.isnan(self.high))

    def line(self) -> str:
        """Return the check in one line."""
        mark = "ok  " if self.passed else "FAIL"
        note = f" ({self.note})" if self.note else ""
        if not self.paired:
            sign = ">=" if self.higher_is_better else "<="
            bound = self.production - self.tolerance if self.higher_is_better else (
                self.production + self.tolerance)
            return (f"  {mark} {self.metric}: challenger {self.challenger:.4f} {sign} "
                    f"{bound:.4f} (production {self.production:.4f} - tolerance "
                    f"{self.tolerance:g}){note}")
        rule = (f"lower bound {self.low:+.4f} > {-self.tolerance:+.4f}"
                if self.higher_is_better else
                f"upper bound {self.high:+.4f} < {self.tolerance:+.4f}")
        return (f"  {mark} {self.metric}: challenger - production {self.delta:+.4f} "
                f"[{self.low:+.4f}, {self.high:+.4f}], {rule} (challenger "
                f"{self.challenger:.4f}, production {self.production:.4f}){note}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """What the paired comparison rested on: resolved trades, clusters, what was left out."""

    n: int = 0
    n_clusters: int = 0
    n_intents: int = 0
    excluded: Mapping[str, int] = field(default_factory=dict)
    cluster: str = ""
    interval: str = ""

    def line(self) -> str:
        """Return the evidence in one line."""
        left = ", ".join(f"{k} {v}" for k, v in self.excluded.items() if v) or "none"
        unit = "symbol-months" if self.cluster == "symbol_month" else "trades"
        return (f"  evidence: n={self.n} resolved trades paired of {self.n_intents} intents "
                f"in {self.n_clusters} {unit} (left out: {left}); {self.interval}")


@dataclass(frozen=True, slots=True, kw_only=True)
class GateComparison:
    """A promotion decision: what was compared, on what, and the outcome (one of OUTCOMES).

    ``production_version`` is None on a first promotion; metrics are empty where no replay
    was run (a forced promotion without a scorer).
    """

    model: str
    challenger_version: str
    production_version: str | None
    outcome: str
    reason: str
    gate: GateConfig
    checks: tuple[RuleCheck, ...] = ()
    evidence: Evidence | None = None
    challenger_hash: str = ""
    production_hash: str = ""
    challenger_metrics: Mapping[str, float] = field(default_factory=dict)
    production_metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES} (got {self.outcome!r})")

    @property
    def promote(self) -> bool:
        """Return whether the challenger may take the production alias."""
        return self.outcome != REFUSED

    @property
    def forced(self) -> bool:
        """Return whether the gate was bypassed."""
        return self.outcome == FORCED

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the comparison run's ``comparison.json``)."""
        return {"model": self.model, "challenger_version": self.challenger_version,
                "production_version": self.production_version, "outcome": self.outcome,
                "reason": self.reason, "gate": self.gate.as_dict(),
                "checks": [asdict(c) for c in self.checks],
                "evidence": None if self.evidence is None else asdict(self.evidence),
                "challenger_hash": self.challenger_hash,
                "production_hash": self.production_hash,
                "challenger_metrics": dict(self.challenger_metrics),
                "production_metrics": dict(self.production_metrics)}

    def metrics(self) -> dict[str, float]:
        """Return the comparison's figures as flat run metrics."""
        out: dict[str, float] = {"gate_passed": float(self.promote),
                                 "forced": float(self.forced)}
        for check in self.checks:
            out[f"challenger__{check.metric}"] = check.challenger
            out[f"production__{check.metric}"] = check.production
            out[f"delta__{check.metric}"] = check.delta
            if check.paired:
                out[f"delta_low__{check.metric}"] = check.low
                out[f"delta_high__{check.metric}"] = check.high
        if self.evidence is not None:
            out["paired_n"] = float(self.evidence.n)
            out["paired_clusters"] = float(self.evidence.n_clusters)
        for name in ("n", "n_wins"):
            if name in self.challenger_metrics:
                out[f"challenger__{name}"] = float(self.challenger_metrics[name])
            if name in self.production_metrics:
                out[f"production__{name}"] = float(self.production_metrics[name])
        return out

    def __str__(self) -> str:
        head = (f"{self.model} v{self.challenger_version} vs production "
                f"{'v' + self.production_version if self.production_version else '(none)'}: "
                f"{self.outcome.upper()} - {self.reason}")
        lines = [head, *(c.line() for c in self.checks)]
        if self.evidence is not None:
            lines.append(self.evidence.line())
        return "\n".join(lines)


def _undefined(challenger: float, production: float) -> tuple[bool, str] | None:
    """Return (passed, why) when a metric is undefined on either side, else None: undefined
    for both cannot tell them apart (passes), for the challenger alone fails, for production
    alone passes."""
    if math.isnan(challenger) and math.isnan(production):
        return True, "undefined for both: cannot tell them apart"
    if math.isnan(challenger):
        return False, "undefined for the challenger"
    if math.isnan(production):
        return True, "undefined for production"
    return None


def check_rule(rule: MetricRule, challenger: Mapping[str, float],
               production: Mapping[str, float]) -> RuleCheck:
    """Apply one rule to two metric dicts on point estimates (a missing metric counts as
    undefined): for scorers without trades to pair (playbook coverage)."""
    c = float(challenger.get(rule.metric, math.nan))
    p = float(production.get(rule.metric, math.nan))
    note = ""
    undefined = _undefined(c, p)
    if undefined is not None:
        passed, note = undefined
    elif rule.higher_is_better:
        passed = c >= p - rule.tolerance - 1e-12
    else:
        passed = c <= p + rule.tolerance + 1e-12
    return RuleCheck(metric=rule.metric, challenger=c, production=p, tolerance=rule.tolerance,
                     higher_is_better=rule.higher_is_better, passed=passed, note=note)


def compare(gate: GateConfig, challenger: Mapping[str, float],
            production: Mapping[str, float]) -> tuple[tuple[RuleCheck, ...], bool, str]:
    """Return (checks, passed, reason) on point estimates of two metric dicts (for scorers
    with nothing to pair; a replay gate uses ``compare_paired``)."""
    checks = tuple(check_rule(rule, challenger, production) for rule in gate.rules)
    n = float(challenger.get("n", math.nan))
    if gate.min_n and not (n >= gate.min_n):
        return checks, False, (f"not enough evidence: too few resolved outcomes on the "
                               f"holdout window (n={n:g} < {gate.min_n}): widen the window, "
                               "or force the promotion")
    failed = [c.metric for c in checks if not c.passed]
    if failed:
        return checks, False, f"worse than production on {', '.join(failed)}"
    return checks, True, "no worse than production on " + ", ".join(c.metric for c in checks)


# ---------------------------------------------------------------------------- paired metrics
def auc(score: np.ndarray, r: np.ndarray, win: np.ndarray) -> float:
    """Return P(score of a win > score of a loss), ties counting one half (NaN without both
    wins and losses): the Mann-Whitney U of scipy's average ranks over n_wins x n_losses,
    equal to scikit-learn's roc_auc_score (tests/experiments check it) at a tenth of its cost
    per bootstrap resample."""
    from scipy.stats import rankdata

    n_win = int(win.sum())
    n_loss = len(win) - n_win
    if not n_win or not n_loss:
        return math.nan
    ranks = rankdata(score)
    return float((ranks[win].sum() - n_win * (n_win + 1) / 2) / (n_win * n_loss))


def spearman(score: np.ndarray, r: np.ndarray, win: np.ndarray) -> float:
    """Return Spearman's rho of score against realized R: Pearson's r of scipy's average
    ranks, equal to scipy.stats.spearmanr (NaN when either is constant)."""
    from scipy.stats import rankdata

    if len(score) < 3 or np.ptp(score) == 0 or np.ptp(r) == 0:
        return math.nan
    return float(np.corrcoef(rankdata(score), rankdata(r))[0, 1])


def decile_spread_r(score: np.ndarray, r: np.ndarray, win: np.ndarray) -> float:
    """Return mean R (R) of the trades at or above the score's 90th percentile minus those at
    or below its 10th (NaN when the two tails meet: too few distinct scores)."""
    if len(score) < 2:
        return math.nan
    low, high = np.quantile(score, [0.1, 0.9])
    if not low < high:
        return math.nan
    return float(r[score >= high].mean() - r[score <= low].mean())


Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], float]
#: The metrics a replay gate can pair: f(score, realized R, win) -> float.
PAIRED_METRICS: dict[str, Metric] = {"auc": auc, "spearman": spearman,
                                     "decile_spread_r": decile_spread_r}


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldoutReplay:
    """One config's replay on the holdout window: per intent its score and outcome
    (HOLDOUT_COLUMNS), its calibration figures for the record, and its replay run."""

    frame: pd.DataFrame
    metrics: Mapping[str, float] = field(default_factory=dict)
    run_id: str = ""

    def __post_init__(self) -> None:
        missing = [c for c in HOLDOUT_COLUMNS if c not in self.frame.columns]
        if missing:
            raise ValueError(f"HoldoutReplay.frame lacks column(s) {missing}")


def pair_replays(challenger: HoldoutReplay, production: HoldoutReplay
                 ) -> tuple[pd.DataFrame, int, dict[str, int]]:
    """Return (paired resolved trades, intents, counts left out by reason).

    The frame has intent_id, symbol, as_of, realized_r, win, challenger and production
    (scores). Raises ValueError when the two replays hold different intents or outcomes:
    they were not replayed on the same window."""
    c = challenger.frame.set_index("intent_id")
    p = production.frame.set_index("intent_id")
    if set(c.index) != set(p.index):
        raise ValueError(f"the two replays hold different intents ({len(c)} and {len(p)}, "
                         f"{len(set(c.index) ^ set(p.index))} not shared): they must be "
                         "replayed on the same holdout window")
    p = p.loc[c.index]
    r_c = pd.to_numeric(c["realized_r"], errors="coerce").to_numpy(float)
    r_p = pd.to_numeric(p["realized_r"], errors="coerce").to_numpy(float)
    same = (c["exit_reason"].astype(str).to_numpy() == p["exit_reason"].astype(str).to_numpy())
    same &= np.isclose(r_c, r_p, equal_nan=True)
    if not same.all():
        raise ValueError(f"the two replays labelled {int((~same).sum())} intent(s) with "
                         "different outcomes: they must share the holdout's bars and rules")
    reason = c["exit_reason"].astype(str).to_numpy()
    score_c = pd.to_numeric(c["score"], errors="coerce").to_numpy(float)
    score_p = pd.to_numeric(p["score"], errors="coerce").to_numpy(float)
    unresolved = np.isin(reason, UNRESOLVED) | ~np.isfinite(r_c)
    unscored = ~unresolved & ~(np.isfinite(score_c) & np.isfinite(score_p))
    excluded = {name: int((reason == name).sum()) for name in UNRESOLVED}
    excluded["no_outcome"] = int((unresolved & ~np.isin(reason, UNRESOLVED)).sum())
    excluded["unscored"] = int(unscored.sum())
    keep = ~(unresolved | unscored)
    frame = pd.DataFrame({"intent_id": c.index[keep], "symbol": c["symbol"].to_numpy()[keep],
                          "as_of": pd.to_datetime(c["as_of"], utc=True).to_numpy()[keep],
                          "realized_r": r_c[keep],
                          "win": c["win"].astype(bool).to_numpy()[keep],
                          "challenger": score_c[keep], "production": score_p[keep]})
    return frame, len(c), excluded


def cluster_codes(frame: pd.DataFrame, cluster: str) -> np.ndarray:
    """Return each paired trade's cluster number: its symbol-month, or itself."""
    if cluster == "trade":
        return np.arange(len(frame))
    month = pd.to_datetime(frame["as_of"], utc=True).dt.strftime("%Y-%m")
    codes, _ = pd.factorize(frame["symbol"].astype(str) + "|" + month)
    return np.asarray(codes)


def paired_checks(gate: GateConfig, paired: pd.DataFrame
                  ) -> tuple[tuple[RuleCheck, ...], int]:
    """Return one RuleCheck per gate rule on the paired trades, with the cluster bootstrap
    interval of challenger minus production, and the number of clusters."""
    from scipy.stats import bootstrap

    unknown = [r.metric for r in gate.rules if r.metric not in PAIRED_METRICS]
    if unknown:
        raise FieldErrors([FieldError(f"gate.rules.{m}", "must name a paired gate metric "
                                      f"({', '.join(PAIRED_METRICS)})", m) for m in unknown])
    metrics = [PAIRED_METRICS[r.metric] for r in gate.rules]
    r = paired["realized_r"].to_numpy(float)
    win = paired["win"].to_numpy(bool)
    score_c = paired["challenger"].to_numpy(float)
    score_p = paired["production"].to_numpy(float)
    clusters = cluster_codes(paired, gate.cluster)
    k = int(clusters.max()) + 1 if len(clusters) else 0

    def values(rows: np.ndarray) -> np.ndarray:
        return np.array([[f(score_c[rows], r[rows], win[rows]) for f in metrics],
                         [f(score_p[rows], r[rows], win[rows]) for f in metrics]])

    def difference(drawn: np.ndarray, axis: int = -1) -> np.ndarray:
        # a resample of whole clusters: each trade enters as often as its cluster was drawn
        counts = np.bincount(drawn.astype(np.int64), minlength=k)
        rows = np.repeat(np.arange(len(r)), counts[clusters])
        both = values(rows)
        return both[0] - both[1]

    point = values(np.arange(len(r))) if len(r) else np.full((2, len(metrics)), math.nan)
    low = high = np.full(len(metrics), math.nan)
    if k >= 2:
        with warnings.catch_warnings():
            # identical challenger and production draw one value: the interval is that value
            warnings.filterwarnings("ignore", message=".*degenerate.*")
            found = bootstrap((np.arange(k),), difference, vectorized=False,
                              n_resamples=gate.n_boot, confidence_level=gate.confidence_level,
                              method=gate.method, rng=np.random.default_rng(gate.seed))
        low = np.atleast_1d(found.confidence_interval.low).astype(float)
        high = np.atleast_1d(found.confidence_interval.high).astype(float)
    checks = []
    for i, rule in enumerate(gate.rules):
        c, p, lo, hi = float(point[0, i]), float(point[1, i]), float(low[i]), float(high[i])
        note = ""
        undefined = _undefined(c, p)
        if undefined is not None:
            passed, note = undefined
        elif math.isnan(lo) or math.isnan(hi):
            passed, note = False, "interval undefined: some resamples leave the metric undefined"
        elif rule.higher_is_better:
            passed = lo > -rule.tolerance
        else:
            passed = hi < rule.tolerance
        checks.append(RuleCheck(metric=rule.metric, challenger=c, production=p,
                                tolerance=rule.tolerance, higher_is_better=rule.higher_is_better,
                                passed=passed, low=lo, high=hi, note=note))
    return tuple(checks), k


def compare_paired(gate: GateConfig, challenger: HoldoutReplay, production: HoldoutReplay
                   ) -> tuple[tuple[RuleCheck, ...], bool, str, Evidence]:
    """Return (checks, passed, reason, evidence) for two replays of the same holdout window:
    the rule in the module docstring (paired bootstrap interval of the difference; at least
    ``gate.min_n`` resolved trades, else refused as not enough evidence)."""
    paired, n_intents, excluded = pair_replays(challenger, production)
    checks, k = paired_checks(gate, paired)
    level = f"{gate.confidence_level:.0%}"
    evidence = Evidence(n=len(paired), n_clusters=k, n_intents=n_intents, excluded=excluded,
                        cluster=gate.cluster,
                        interval=f"{level} {gate.method} interval, {gate.n_boot} resamples "
                                 f"by {gate.cluster.replace('_', '-')}")
    if len(paired) < gate.min_n:
        return checks, False, (f"not enough evidence: {len(paired)} resolved trades paired on "
                               f"the holdout window, the gate needs at least {gate.min_n}: "
                               "widen the window, or force the promotion"), evidence
    failed = [c.metric for c in checks if not c.passed]
    if failed:
        return checks, False, (f"not shown to be no worse than production on "
                               f"{', '.join(failed)}"), evidence
    return checks, True, ("no worse than production on " + ", ".join(
        c.metric for c in checks) + f" ({level} interval of the difference above -tolerance)"
        ), evidence


# ---------------------------------------------------------------------------- replays
class ReplayScorer(Protocol):
    """Replay a config on a holdout window: a HoldoutReplay (or a metric dict for scorers
    with no trades to pair)."""

    def __call__(self, config: Any, window: HoldoutWindow
                 ) -> HoldoutReplay | Mapping[str, float]:
        """Return the config's holdout replay (or its metrics)."""
        ...


def holdout_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Return HOLDOUT_COLUMNS from a replay's results frame (score: the overall score)."""
    frame = results.rename(columns={"overall_score": "score"})
    return frame.loc[:, list(HOLDOUT_COLUMNS)].reset_index(drop=True)


@dataclass
class ReplayHoldoutScorer:
    """The real ReplayScorer: a point-in-time replay of the window on ``store``.

    Each replay is stored in the DuckDB replay tables with purpose 'gate' (never "the latest
    run"; a repeat with the same config and window is read back, not recomputed) and, with
    ``track``, logged as an MLflow run in the replays experiment. ``runs`` maps a config
    hash to (replay run id, MLflow run id or None).
    """

    store: Store
    executor: Executor | None = None
    mode: str = "batch"
    n_boot: int = 500
    track: bool = True
    progress: bool = False
    runs: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    experiments: ExperimentStore | None = None

    def __call__(self, config: ScoringConfig, window: HoldoutWindow) -> HoldoutReplay:
        """Replay ``config`` on ``window``; return its per-intent scores and outcomes."""
        from replay.calibration import calibration_metrics
        from replay.engine import issues_frame, results_frame, run_replay, standard_providers
        from replay.reports import load_intents

        intents, trades = load_intents(self.store, window.intent_source,
                                       symbols=window.symbols, timeframe=window.timeframe,
                                       start=window.start, end=window.end, seed=window.seed)
        providers = standard_providers() if window.providers == "standard" else {}
        name = f"holdout-{window.key}"
        tags = {"buddy.purpose": "gate", "buddy.window": window.key,
                "buddy.config_hash": config.hash}

        def replay(mlflow_run_id: str | None) -> HoldoutReplay:
            run = run_replay(self.store, intents, config=config, name=name,
                             executor=self.executor, progress=self.progress, mode=self.mode,  # type: ignore[arg-type]
                             trades=trades, providers=providers, purpose="gate")
            results = results_frame(self.store, run.run_id)
            issues = issues_frame(self.store, run.run_id)
            metrics = calibration_metrics(results, issues, n_boot=self.n_boot, seed=0)
            if mlflow_run_id is not None:
                from experiments.replay_tracking import log_replay

                log_replay(self.store, run.run_id, metrics=metrics, results=results,
                           issues=issues, tags=tags, extra_params={"window": window.describe()},
                           experiments=self.experiments, mlflow_run_id=mlflow_run_id)
            self.runs[config.hash] = (run.run_id, mlflow_run_id)
            return HoldoutReplay(frame=holdout_frame(results), metrics=metrics,
                                 run_id=run.run_id)

        if not self.track:
            return replay(None)
        from experiments.tracking import REPLAYS_EXPERIMENT, ensure_store, tracked_run

        self.experiments = self.experiments or ensure_store()
        # the run is open while the replay runs: the UI shows its real duration (and FAILED
        # if the replay fails)
        with tracked_run(self.experiments, REPLAYS_EXPERIMENT, run_name=f"replay {name}",
                         tags=tags, description=f"Holdout replay of {config.name}@"
                         f"{config.version} #{config.hash} for the promotion gate: "
                         f"{window.describe()}.") as mlflow_run_id:
            return replay(mlflow_run_id)


def window_text(window: HoldoutWindow) -> str:
    """Return the canonical JSON of a window (logged with every comparison)."""
    return canonical_json(asdict(window))
