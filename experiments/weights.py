"""Weight search: propose module weights from a replay's results; the gate decides.

A replay stores every module's score per intent (``score__<module>``) with the outcome, so a
new set of weights can be scored without replaying: the overall score is the weighted mean of
the module scores (``replay.calibration.recompute_score``, as the orchestrator computes it).

- ``method='logistic'``: an L2-regularised logistic regression of ``win`` on the module scores
  (standardised; NaN scores filled with the module's mean), one fit per ``C`` (inverse
  regularisation strength). Each coefficient, back on the score scale and clipped at 0 (a
  weight cannot be negative), becomes the module's weight, rescaled so the fitted modules'
  weights sum to what they summed to before. Modules with a constant or missing score keep
  their weight: the fit says nothing about them.
- ``method='grid'``: one module at a time, its weight multiplied by each of ``factors``.

Every candidate (and the baseline) carries its in-sample AUC, Spearman and decile spread on
the replay it was fitted on. In-sample figures flatter a candidate: they rank candidates,
they do not promote them. ``search_weights`` logs each candidate as a run in the
``buddy-weight-search`` experiment (params: method and its setting, the source replay, base
and candidate hashes, every weight, the fit window; artifact: the candidate config JSON) and,
with ``register=True``, registers it as a ``buddy-scoring`` version, ready for
``promote(version)``, whose replay on the holdout window is the real test.

Each candidate carries its **fit window**: the as_of range of the replay it was fitted on
(the run's data_start/data_end), recorded as version tags; the gate refuses a holdout window
that overlaps it. A gate's own holdout replay (purpose 'gate') is never fitted on.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from buddy.config import ScoringConfig

if TYPE_CHECKING:
    from buddy.store import Store
    from experiments.gate import FitWindow, GateConfig
    from experiments.registry import Promotion
    from experiments.tracking import ExperimentStore
    from replay.executors import Executor

METHODS: tuple[str, ...] = ("logistic", "grid")
DEFAULT_CS: tuple[float, ...] = (0.1, 1.0, 10.0)
DEFAULT_FACTORS: tuple[float, ...] = (0.0, 0.5, 2.0)
SCORE_PREFIX = "score__"
#: The in-sample figures each candidate carries (calibration's rank statistics).
CANDIDATE_METRICS: tuple[str, ...] = ("auc", "spearman", "decile_spread_r")


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A proposed configuration, how it was found, and its in-sample figures."""

    config: ScoringConfig
    method: str  # 'baseline' | 'logistic' | 'grid'
    setting: Mapping[str, Any] = field(default_factory=dict)  # {'C': 1.0} | {'module', 'factor'}
    metrics: Mapping[str, float] = field(default_factory=dict)
    run_id: str | None = None  # its run in the weight-search experiment, once logged
    version: int | None = None  # its buddy-scoring version, once registered
    fit: FitWindow | None = None  # the replay data it was fitted on

    @property
    def label(self) -> str:
        """Return e.g. 'logistic C=1' or 'grid mtfa x2'."""
        if self.method == "logistic":
            return f"logistic C={self.setting['C']:g}"
        if self.method == "grid":
            return f"grid {self.setting['module']} x{self.setting['factor']:g}"
        return self.method

    def weights(self) -> dict[str, float]:
        """Return the enabled modules' weights."""
        return {m.name: float(m.weight) for m in self.config.modules if m.enabled}


def module_matrix(results: pd.DataFrame, modules: Sequence[str]) -> pd.DataFrame:
    """Return the ``score__<module>`` columns of ``results`` as float, one column per module."""
    missing = [m for m in modules if f"{SCORE_PREFIX}{m}" not in results.columns]
    if missing:
        raise ValueError(f"results lack {SCORE_PREFIX}<module> columns for {missing}")
    return pd.DataFrame({m: pd.to_numeric(results[f"{SCORE_PREFIX}{m}"], errors="coerce")
                         .astype(float) for m in modules}, index=results.index)


def logistic_weights(results: pd.DataFrame, base: Mapping[str, float], *, C: float = 1.0
                     ) -> dict[str, float] | None:
    """Return weights from a logistic fit of ``win`` on module scores (see the module
    docstring), or None when every fitted coefficient is <= 0 (no usable weights).

    ``results``: resolved outcomes with ``win`` and the score columns; ``base``: the current
    weights of the modules to fit. Raises ValueError without both wins and losses.
    """
    from sklearn.linear_model import LogisticRegression

    if not C > 0:
        raise ValueError(f"C must be > 0 (got {C!r})")
    wins = results["win"].astype(bool).to_numpy()
    if wins.all() or not wins.any():
        raise ValueError(f"a logistic fit needs wins and losses (got {int(wins.sum())} wins "
                         f"of {len(wins)} outcomes)")
    scores = module_matrix(results, list(base))
    spread = scores.std(ddof=0)
    fitted = [m for m in base if np.isfinite(spread[m]) and spread[m] > 0]
    if not fitted:
        return None
    x = scores[fitted].fillna(scores[fitted].mean())
    z = ((x - x.mean()) / spread[fitted]).to_numpy()
    model = LogisticRegression(C=C, max_iter=2000)
    model.fit(z, wins)
    raw = np.clip(model.coef_[0] / spread[fitted].to_numpy(), 0.0, None)
    if raw.sum() <= 0:
        return None
    budget = sum(float(base[m]) for m in fitted)
    scaled = raw / raw.sum() * (budget if budget > 0 else len(fitted))
    weights = {m: float(base[m]) for m in base}
    weights.update({m: round(min(float(w), 100.0), 3) for m, w in zip(fitted, scaled,
                                                                       strict=True)})
    return weights


def grid_weights(base: Mapping[str, float], factors: Sequence[float] = DEFAULT_FACTORS
                 ) -> list[tuple[dict[str, Any], dict[str, float]]]:
    """Return (setting, weights) for each module and factor, other weights unchanged;
    settings that leave no positive weight, or change nothing, are skipped."""
    out = []
    for module in base:
        for factor in factors:
            weights = dict(base)
            weights[module] = round(min(float(base[module]) * float(factor), 100.0), 3)
            if weights == dict(base) or sum(weights.values()) <= 0:
                continue
            out.append(({"module": module, "factor": float(factor)}, weights))
    return out


def with_weights(base: ScoringConfig, weights: Mapping[str, float], label: str
                 ) -> ScoringConfig:
    """Return ``base`` with ``weights`` applied, named '<base name>-candidate', version
    ``label`` (modules absent from ``weights`` unchanged)."""
    modules = tuple(dataclasses.replace(m, weight=float(weights[m.name]))
                    if m.name in weights else m for m in base.modules)
    return dataclasses.replace(base, name=f"{base.name}-candidate", version=label,
                               modules=modules)


def in_sample_metrics(results: pd.DataFrame, weights: Mapping[str, float], *,
                      n_boot: int = 200) -> dict[str, float]:
    """Return CANDIDATE_METRICS and n of the score ``weights`` give on ``results``."""
    from replay.calibration import rank_stats, recompute_score

    frame = results.copy()
    frame["candidate_score"] = recompute_score(frame, weights)
    stats = rank_stats(frame, "candidate_score", n_boot=n_boot, seed=0)
    out = {name: float(stats[name].estimate) for name in CANDIDATE_METRICS}
    out["n"] = float(stats["auc"].n)
    return out


def propose_weights(results: pd.DataFrame, base: ScoringConfig, *, method: str = "logistic",
                    Cs: Sequence[float] = DEFAULT_CS,
                    factors: Sequence[float] = DEFAULT_FACTORS, n_boot: int = 200
                    ) -> list[Candidate]:
    """Return the baseline then the candidates of ``method`` found on a replay's results
    frame, best in-sample AUC first among the candidates; duplicates (same hash) dropped."""
    from replay.calibration import resolved_outcomes

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)} (got {method!r})")
    data = resolved_outcomes(results, None)
    enabled = {m.name: float(m.weight) for m in base.modules if m.enabled}
    present = {m: w for m, w in enabled.items() if f"{SCORE_PREFIX}{m}" in data.columns}
    if not present:
        raise ValueError(f"the replay has no score column of the enabled modules "
                         f"{sorted(enabled)}")
    baseline = Candidate(config=base, method="baseline",
                         metrics=in_sample_metrics(data, present, n_boot=n_boot))
    proposals: list[tuple[str, dict[str, Any], dict[str, float]]] = []
    if method == "logistic":
        for c in Cs:
            weights = logistic_weights(data, present, C=float(c))
            if weights is not None:
                proposals.append(("logistic", {"C": float(c)}, weights))
    else:
        proposals = [("grid", setting, weights)
                     for setting, weights in grid_weights(present, factors)]
    seen = {base.hash}
    candidates = []
    for kind, setting, weights in proposals:
        label = (f"logistic-C{setting['C']:g}" if kind == "logistic"
                 else f"grid-{setting['module']}-x{setting['factor']:g}")
        config = with_weights(base, weights, label)
        if config.hash in seen:
            continue
        seen.add(config.hash)
        candidates.append(Candidate(config=config, method=kind, setting=setting,
                                    metrics=in_sample_metrics(data, weights, n_boot=n_boot)))
    candidates.sort(key=lambda c: -_sortable(c.metrics.get("auc", math.nan)))
    return [baseline, *candidates]


def _sortable(value: float) -> float:
    return -math.inf if value is None or math.isnan(value) else float(value)


def candidates_frame(candidates: Sequence[Candidate]) -> pd.DataFrame:
    """Return one row per candidate: label, hash, in-sample figures, weights, run, version."""
    rows = []
    for c in candidates:
        rows.append({"candidate": c.label, "config_hash": c.config.hash,
                     **{k: c.metrics.get(k, math.nan) for k in (*CANDIDATE_METRICS, "n")},
                     **{f"w_{m}": w for m, w in c.weights().items()},
                     "run_id": c.run_id, "version": c.version})
    return pd.DataFrame(rows)


def search_weights(store: Store, run_id: str, *, method: str = "logistic",
                   Cs: Sequence[float] = DEFAULT_CS, factors: Sequence[float] = DEFAULT_FACTORS,
                   n_boot: int = 200, top: int | None = None, log: bool = True,
                   register: bool = False, experiments: ExperimentStore | None = None
                   ) -> list[Candidate]:
    """Propose weights from replay run ``run_id`` of ``store``; log each candidate as a run
    (``log``) and register the non-baseline ones as buddy-scoring versions (``register``).
    ``top``: keep only the best ``top`` candidates (by in-sample AUC) after the baseline.

    Nothing is promoted: pass a registered version to ``experiments.registry.promote``.
    A run the promotion gate made (purpose 'gate') is refused: it is a holdout.
    """
    from buddy.errors import ConfigError, FieldError
    from experiments.gate import FitWindow
    from replay.engine import results_frame, run_info

    info = run_info(store, run_id)
    if info.get("purpose", "research") != "research":
        raise ConfigError([FieldError("run_id", "must be a research replay run, not a "
                                      "promotion gate's holdout replay (purpose "
                                      f"{info['purpose']!r}): fit on data the gate never "
                                      "judges", run_id)])
    fit = None
    if not (pd.isna(info["data_start"]) or pd.isna(info["data_end"])):
        fit = FitWindow(start=pd.Timestamp(info["data_start"]).tz_convert("UTC"),
                        end=pd.Timestamp(info["data_end"]).tz_convert("UTC"), run_id=run_id)
    base = ScoringConfig.from_mapping(info["config"])
    candidates = [dataclasses.replace(c, fit=fit) for c in propose_weights(
        results_frame(store, run_id), base, method=method, Cs=Cs, factors=factors,
        n_boot=n_boot)]
    if top is not None:
        candidates = candidates[:1 + max(int(top), 0)]
    if not (log or register):
        return candidates
    from experiments.registry import register_config
    from experiments.tracking import WEIGHT_SEARCH_EXPERIMENT, ensure_store, log_run

    experiments = experiments or ensure_store()
    logged = []
    for rank, candidate in enumerate(candidates):
        version = None
        if register and candidate.method != "baseline":
            version = register_config(candidate.config, experiments=experiments,
                                      tags=_version_tags(candidate))
        run = None
        if log:
            params: dict[str, Any] = {
                "method": candidate.method, "source_replay_run_id": run_id,
                "base_config_hash": base.hash, "config_hash": candidate.config.hash,
                "registered_version": version or "",
                "fit_start": fit.start.isoformat() if fit else "",
                "fit_end": fit.end.isoformat() if fit else "",
                **{f"setting.{k}": v for k, v in candidate.setting.items()},
                **{f"module.{m}.weight": w for m, w in candidate.weights().items()}}
            run = log_run(experiments, WEIGHT_SEARCH_EXPERIMENT,
                          run_name=f"{candidate.label} on {run_id}", params=params,
                          metrics={f"in_sample_{k}": v for k, v in candidate.metrics.items()},
                          tags={"buddy.config_hash": candidate.config.hash,
                                "buddy.replay_run_id": run_id, "buddy.rank": str(rank)},
                          texts={"scoring_config.json": candidate.config.to_json()})
        logged.append(dataclasses.replace(candidate, run_id=run, version=version))
    return logged


def resolve_run_id(store: Store, run_id: str = "") -> str:
    """Return ``run_id``, or the latest finished research replay run of ``store`` when empty
    (a promotion gate's holdout replay is never picked: fitting on it would let the holdout
    judge weights it chose)."""
    from replay.engine import latest_run_id

    return run_id or latest_run_id(store, "research")


def promote_best(store: Store, candidates: Sequence[Candidate], *,
                 gate: GateConfig | None = None, executor: Executor | None = None,
                 experiments: ExperimentStore | None = None) -> Promotion:
    """Register the best non-baseline candidate (if not yet) and hand it to the gate:
    ``experiments.registry.promote`` with a real holdout replay decides."""
    from experiments.gate import DEFAULT_GATE, ReplayHoldoutScorer
    from experiments.registry import promote, register_config

    proposed = [c for c in candidates if c.method != "baseline"]
    if not proposed:
        raise ValueError("no candidate besides the baseline to promote")
    best = proposed[0]
    version = best.version if best.version is not None else register_config(
        best.config, experiments=experiments, tags=_version_tags(best))
    return promote(version, gate=gate or DEFAULT_GATE, experiments=experiments,
                   scorer=ReplayHoldoutScorer(store, executor=executor))


def _version_tags(candidate: Candidate) -> dict[str, str]:
    tags = {"buddy.source": "weight-search"}
    if candidate.fit is not None:
        tags.update({"buddy.replay_run_id": candidate.fit.run_id, **candidate.fit.tags()})
    return tags


def describe(candidates: Sequence[Candidate]) -> str:
    """Return the candidates as text lines (the CLI's output)."""
    lines = []
    for c in candidates:
        figures = " ".join(f"{k}={c.metrics.get(k, math.nan):.3f}" for k in CANDIDATE_METRICS)
        weights = json.dumps(c.weights(), sort_keys=True)
        extra = f" -> buddy-scoring v{c.version}" if c.version is not None else ""
        lines.append(f"{c.label:<28} #{c.config.hash} {figures} {weights}{extra}")
    return "\n".join(lines)

