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

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from buddy.config import ScoringConfig, canonical_json, config_hash

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
class MetricRule:
    """One gate metric: its name in calibration_metrics, how much worse the challenger may
    be (in the metric's unit), and its direction."""

    metric: str
    tolerance: float = 0.0
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.tolerance, int | float) and math.isfinite(self.tolerance)
                and self.tolerance >= 0):
            raise ValueError(f"gate rule {self.metric}: tolerance must be a finite number "
                             f">= 0 (got {self.tolerance!r})")


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldoutWindow:
    """The intents both configs are replayed on (``replay.reports.load_intents`` terms).

    ``intent_source``: 'generator:<name>', 'database[:<user>]' or 'import:<csv>'; ``start``
    and ``end`` bound the intents' as_of (UTC dates or ISO times; None: unbounded);
    ``providers``: 'standard' (every context provider installed) or 'none' (market data only).
    """

    intent_source: str = "generator:ma_cross"
    symbols: tuple[str, ...] | None = ("AAPL", "GOOG", "IBM", "MSFT")
    timeframe: str = "1d"
    start: str | None = "2011-03-01"
    end: str | None = "2013-03-01"
    seed: int = 0
    providers: str = "standard"

    def __post_init__(self) -> None:
        if self.providers not in ("standard", "none"):
            raise ValueError(f"holdout window: providers must be 'standard' or 'none' "
                             f"(got {self.providers!r})")
        if self.symbols is not None:
            object.__setattr__(self, "symbols", tuple(self.symbols))

    @property
    def key(self) -> str:
        """Return a short id of the window (part of the replay run names)."""
        return config_hash(asdict(self))[:10]

    def describe(self) -> str:
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
class GateConfig:
    """The gate: metric rules, the holdout window, and the fewest resolved outcomes."""

    rules: tuple[MetricRule, ...] = DEFAULT_RULES
    window: HoldoutWindow = field(default_factory=HoldoutWindow)
    min_n: int = 30

    def __post_init__(self) -> None:
        if not self.rules:
            raise ValueError("a gate needs at least one metric rule")
        names = [r.metric for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"gate rules list a metric twice: {names}")
        if isinstance(self.min_n, bool) or not isinstance(self.min_n, int) or self.min_n < 0:
            raise ValueError(f"gate min_n must be a whole number >= 0 (got {self.min_n!r})")

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"rules": [asdict(r) for r in self.rules], "window": asdict(self.window)
                | {"symbols": list(self.window.symbols) if self.window.symbols else None},
                "min_n": self.min_n}

    def to_json(self) -> str:
        """Return the gate as pretty JSON (the format ``from_json`` reads)."""
        return json.dumps(self.as_dict(), indent=2, sort_keys=True)

    @property
    def hash(self) -> str:
        """Return the content hash of the gate."""
        return config_hash(self.as_dict())

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GateConfig:
        """Build from a parsed JSON mapping; missing keys keep their defaults."""
        unknown = sorted(set(values) - {"rules", "window", "min_n"})
        if unknown:
            raise ValueError(f"gate: unknown key(s) {unknown}; allowed: rules, window, min_n")
        kwargs: dict[str, Any] = {}
        if "rules" in values:
            kwargs["rules"] = tuple(MetricRule(**r) for r in values["rules"])
        if "window" in values:
            window = dict(values["window"])
            if window.get("symbols") is not None:
                window["symbols"] = tuple(window["symbols"])
            kwargs["window"] = HoldoutWindow(**window)
        if "min_n" in values:
            kwargs["min_n"] = values["min_n"]
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> GateConfig:
        """Build from JSON text."""
        return cls.from_mapping(json.loads(text))

    @classmethod
    def from_file(cls, path: str | Path) -> GateConfig:
        """Build from a JSON file."""
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
