"""The promotion gate: a challenger config replaces production only if it is no worse.

Both configurations are replayed on the same **holdout window** (the same intents, the same
outcomes; only the scores differ) and compared on the **gate metrics**. The challenger passes
when, for every rule, ``challenger >= production - tolerance`` (``<=``, ``+`` for a metric
where lower is better), and its replay resolved at least ``min_n`` outcomes.

The default gate (``DEFAULT_GATE``), all figures from ``replay.calibration.calibration_metrics``:

- ``auc``, tolerance 0.01: P(score of a win > score of a loss); 0.5 is no separation;
- ``spearman``, tolerance 0.02: rank correlation of the overall score with realized R;
- ``decile_spread_r``, tolerance 0.05 R: mean R of the top score decile minus the bottom one;

with ``min_n = 30`` resolved outcomes, on the holdout window: ``generator:ma_cross`` intents on
AAPL, GOOG, IBM and MSFT daily bars with an as_of from 2011-03-01 to 2013-03-01 (the last two
years of the bundled equity data), the standard context providers.

A metric undefined for both (NaN: e.g. a constant score has no rank correlation) cannot tell
them apart and passes; undefined for the challenger only fails. Change the gate with a JSON
file (``GateConfig.to_json()`` shows the format; ``buddy experiments promote --gate FILE``) or
in Python (``GateConfig(rules=..., window=..., min_n=...)``).

A ``ReplayScorer`` is anything that maps (config, window) to those metrics;
``ReplayHoldoutScorer`` is the real one (a point-in-time replay on a store). The gate itself
(``compare``) is a pure function of two metric dicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from buddy.config import Config, ScoringConfig, canonical_json, param
from buddy.errors import FieldError

if TYPE_CHECKING:
    from buddy.store import Store
    from replay.executors import Executor

#: Outcomes of a promotion decision.
PASSED = "passed"  # the challenger is no worse on every rule
REFUSED = "refused"  # worse on a rule, or too few outcomes: production stays
FORCED = "forced"  # promoted without the gate deciding (recorded as forced)
FIRST = "first"  # no production version yet: passes by definition
OUTCOMES: tuple[str, ...] = (PASSED, REFUSED, FORCED, FIRST)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricRule(Config):
    """One gate metric: its name in calibration_metrics, how much worse the challenger may
    be (in the metric's unit), and its direction."""

    config_name: ClassVar[str] = "gate.rules"

    metric: str = param(doc="the metric's name in calibration_metrics")
    tolerance: float = param(0.0, lo=0.0, unit="metric units",
                             doc="how much worse than production the challenger may be")
    higher_is_better: bool = param(True, choices=(True, False), doc="the metric's direction")

    def field_prefix(self) -> str:
        """Return 'gate.rules.<metric>': errors say which rule."""
        return f"gate.rules.{self.metric}"


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldoutWindow(Config):
    """The intents both configs are replayed on (``replay.reports.load_intents`` terms).

    ``intent_source``: 'generator:<name>', 'database[:<user>]' or 'import:<csv>'; ``start``
    and ``end`` bound the intents' as_of (UTC dates or ISO times; None: unbounded);
    ``providers``: 'standard' (every context provider installed) or 'none' (market data only).
    """

    config_name: ClassVar[str] = "gate.window"

    intent_source: str = param("generator:ma_cross", doc="where the intents come from")
    symbols: tuple[str, ...] | None = param(("AAPL", "GOOG", "IBM", "MSFT"),
                                            doc="the symbols (None: every symbol)")
    timeframe: str = param("1d", doc="the bars' timeframe")
    start: str | None = param("2011-03-01", doc="earliest intent as_of (UTC; None: open)")
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

    def describe(self) -> str:  # type: ignore[override]
        """Return the window in one line."""
        symbols = ",".join(self.symbols) if self.symbols else "all symbols"
        return (f"{self.intent_source} {symbols} {self.timeframe} {self.start or ''}.."
                f"{self.end or ''} "
                f"(seed {self.seed}, providers {self.providers})")


DEFAULT_RULES: tuple[MetricRule, ...] = (
    MetricRule(metric="auc", tolerance=0.01),
    MetricRule(metric="spearman", tolerance=0.02),
    MetricRule(metric="decile_spread_r", tolerance=0.05),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class GateConfig(Config):
    """The gate: metric rules, the holdout window, and the fewest resolved outcomes."""

    config_name: ClassVar[str] = "gate"

    rules: tuple[MetricRule, ...] = param(DEFAULT_RULES, doc="one rule per gate metric")
    # param() is a field specifier (it returns dataclasses.field), which ruff cannot see
    window: HoldoutWindow = param(factory=HoldoutWindow,  # noqa: RUF009
                                  doc="the holdout window")
    min_n: int = param(30, lo=0, unit="outcomes",
                       doc="fewest resolved outcomes the challenger's replay needs")

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


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleCheck:
    """One rule applied: both values, the bound the challenger had to reach, the verdict."""

    metric: str
    challenger: float
    production: float
    tolerance: float
    higher_is_better: bool
    passed: bool
    note: str = ""

    @property
    def delta(self) -> float:
        """Return challenger minus production (NaN when either is undefined)."""
        return self.challenger - self.production


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
        lines = [head]
        for c in self.checks:
            sign = ">=" if c.higher_is_better else "<="
            bound = c.production - c.tolerance if c.higher_is_better else (
                c.production + c.tolerance)
            lines.append(f"  {'ok  ' if c.passed else 'FAIL'} {c.metric}: challenger "
                         f"{c.challenger:.4f} {sign} {bound:.4f} (production {c.production:.4f}"
                         f" - tolerance {c.tolerance:g}){' ' + c.note if c.note else ''}")
        return "\n".join(lines)


def check_rule(rule: MetricRule, challenger: Mapping[str, float],
               production: Mapping[str, float]) -> RuleCheck:
    """Apply one rule to two metric dicts (a missing metric counts as undefined)."""
    c = float(challenger.get(rule.metric, math.nan))
    p = float(production.get(rule.metric, math.nan))
    note = ""
    if math.isnan(c) and math.isnan(p):
        passed, note = True, "undefined for both: cannot tell them apart"
    elif math.isnan(c):
        passed, note = False, "undefined for the challenger"
    elif math.isnan(p):
        passed, note = True, "undefined for production"
    elif rule.higher_is_better:
        passed = c >= p - rule.tolerance - 1e-12
    else:
        passed = c <= p + rule.tolerance + 1e-12
    return RuleCheck(metric=rule.metric, challenger=c, production=p, tolerance=rule.tolerance,
                     higher_is_better=rule.higher_is_better, passed=passed, note=note)


def compare(gate: GateConfig, challenger: Mapping[str, float],
            production: Mapping[str, float]) -> tuple[tuple[RuleCheck, ...], bool, str]:
    """Return (checks, passed, reason) for a challenger's metrics against production's."""
    checks = tuple(check_rule(rule, challenger, production) for rule in gate.rules)
    n = float(challenger.get("n", math.nan))
    if gate.min_n and not (n >= gate.min_n):
        return checks, False, (f"too few resolved outcomes on the holdout window (n={n:g} < "
                               f"{gate.min_n}): widen the window, or force the promotion")
    failed = [c.metric for c in checks if not c.passed]
    if failed:
        return checks, False, f"worse than production on {', '.join(failed)}"
    return checks, True, "no worse than production on " + ", ".join(c.metric for c in checks)


class ReplayScorer(Protocol):
    """Replay a config on a holdout window and return its calibration metrics."""

    def __call__(self, config: ScoringConfig, window: HoldoutWindow) -> Mapping[str, float]:
        """Return calibration_metrics-style figures (at least the gate's metrics and n)."""
        ...


@dataclass
class ReplayHoldoutScorer:
    """The real ReplayScorer: a point-in-time replay of the window on ``store``.

    Each replay is stored in the DuckDB replay tables (a repeat with the same config and
    window is read back, not recomputed) and, with ``track``, logged as an MLflow run in the
    replays experiment. ``runs`` maps a config hash to (replay run id, MLflow run id or None).
    """

    store: Store
    executor: Executor | None = None
    mode: str = "batch"
    n_boot: int = 500
    track: bool = True
    progress: bool = False
    runs: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def __call__(self, config: ScoringConfig, window: HoldoutWindow) -> dict[str, float]:
        """Replay ``config`` on ``window`` and return its calibration metrics."""
        from replay.calibration import calibration_metrics
        from replay.engine import issues_frame, results_frame, run_replay, standard_providers
        from replay.reports import load_intents

        intents, trades = load_intents(self.store, window.intent_source,
                                       symbols=window.symbols, timeframe=window.timeframe,
                                       start=window.start, end=window.end, seed=window.seed)
        providers = standard_providers() if window.providers == "standard" else {}
        run = run_replay(self.store, intents, config=config, name=f"holdout-{window.key}",
                         executor=self.executor, progress=self.progress, mode=self.mode,  # type: ignore[arg-type]
                         trades=trades, providers=providers)
        results = results_frame(self.store, run.run_id)
        issues = issues_frame(self.store, run.run_id)
        metrics = calibration_metrics(results, issues, n_boot=self.n_boot, seed=0)
        tracked = None
        if self.track:
            from experiments.replay_tracking import log_replay

            tracked = log_replay(self.store, run.run_id, metrics=metrics,
                                 results=results, issues=issues,
                                 tags={"buddy.purpose": "gate", "buddy.window": window.key},
                                 extra_params={"window": window.describe()})
        self.runs[config.hash] = (run.run_id, tracked)
        return metrics


def window_text(window: HoldoutWindow) -> str:
    """Return the canonical JSON of a window (logged with every comparison)."""
    return canonical_json(asdict(window))
