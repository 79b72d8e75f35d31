"""Per-user playbook models: the registry, the gate (stability and later-holdout coverage)
and the promotion path.

A trader's playbooks are the stable clusters of their own past trades
(``buddy.strategy.playbooks.PlaybookFit``). Each user has one registered model,
``buddy-playbooks-<user>`` (the user id with anything outside ``[A-Za-z0-9_.-]`` replaced by
``_``), whose versions are promoted by the same aliases as ``buddy-scoring``: ``production``
(what the workbench uses) and ``previous`` (what ``rollback`` restores), through the shared
path ``experiments.registry.promote_with`` (a decision recorded as a run in
``buddy-promotions``, aliases moved after it, production last).

**Artifact format** (``playbooks.json``, schema version 2), logged with the pyfunc model from
code (``experiments/pyfunc_playbooks.py``), never pickled:

.. code-block:: json

    {"schema_version": 2, "user_id": "demo", "key": "<PlaybookFit.key>",
     "fit": {...}}          # PlaybookFit.to_dict(): recipe, scaled vectors, labels, stats

Loading (``PlaybookFit.from_dict``) refits hdbscan on the stored vectors with the stored
recipe and verifies the labels. The pyfunc's ``predict`` takes entry facts (the recipe's
feature columns) and returns ``PlaybookFit.place`` columns; the signature names both.
Schema version 1 (k-means centroids and a radius) is refused with an error naming the field.

**The gate** (``PlaybookGate``), for a challenger fit against the production version:

- ``stability`` (absolute, also on the first promotion): the mean over the published
  playbooks of their clusterboot stability (mean Jaccard of each cluster's best match over
  the resamples) must be at least ``min_stability`` (0.75); a fit with no published playbook
  has no stability and is refused.
- ``coverage`` of a LATER holdout of the user's trades: the latest ``holdout_share`` (30%)
  of the trades the challenger was fitted on, by entry time, form the holdout; each recipe
  (the challenger's and production's) is refit on the trades CLOSED BEFORE the holdout's
  first entry, and the holdout trades are placed with it; coverage = share of the placed
  holdout trades that fall in a playbook (Wilson 95% interval, with its n; trades whose
  embedding is incomplete are not placed and are counted apart). The challenger's coverage
  may be at most ``coverage_tolerance`` (0.05) below production's, on the same holdout,
  and only with at least ``min_holdout`` placed holdout trades; fewer is refused as not
  enough evidence. With no production version coverage is computed for the record only.

Refitting both recipes on the same earlier trades compares what each recipe finds in data
it has not seen; placing the holdout in the stored fits themselves would reuse trades they
were fitted on.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from buddy.config import Config, param
from buddy.errors import ConfigError, FieldError
from experiments.gate import (
    FIRST,
    FORCED,
    PASSED,
    REFUSED,
    GateComparison,
    GateConfig,
    HoldoutWindow,
    MetricRule,
    RuleCheck,
    check_rule,
)

if TYPE_CHECKING:
    from buddy.store import Store
    from buddy.strategy.playbooks import PlaybookFit
    from experiments.registry import Promotion, StepHook
    from experiments.tracking import ExperimentStore

PLAYBOOK_PREFIX = "buddy-playbooks-"
PLAYBOOK_SCHEMA_VERSION = 2
ARTIFACT_KEY = "playbooks"
ARTIFACT_FILE = "playbooks.json"
MODEL_CODE = Path(__file__).with_name("pyfunc_playbooks.py")
#: Version tags: the fit's key (trades and recipe), its last close, the run that logged it.
KEY_TAG = "buddy.playbooks_key"
FITTED_UNTIL_TAG = "buddy.fitted_until"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybookGate(Config):
    """The playbook gate: absolute stability, and later-holdout coverage against production."""

    config_name: ClassVar[str] = "playbook_gate"

    min_stability: float = param(0.75, lo=0.0, hi=1.0, unit="Jaccard",
                                 doc="least mean stability of the published playbooks")
    coverage_tolerance: float = param(0.05, lo=0.0, hi=1.0, unit="share",
                                      doc="how far the holdout coverage may drop below "
                                          "production's")
    holdout_share: float = param(0.3, lo=0.05, hi=0.5, unit="share of trades",
                                 doc="the latest trades (by entry) that form the holdout")
    min_holdout: int = param(30, lo=1, unit="trades",
                             doc="fewest placed holdout trades a coverage comparison needs")

    def record(self, user_id: str, start: str | None, end: str | None) -> GateConfig:
        """Return the GateConfig a comparison is recorded with (its window: the holdout)."""
        return GateConfig(
            rules=(MetricRule(metric="stability", tolerance=0.0),
                   MetricRule(metric="coverage", tolerance=self.coverage_tolerance)),
            window=HoldoutWindow(intent_source=f"database:{user_id}", symbols=None,
                                 start=start, end=end, providers="none"),
            min_n=self.min_holdout)


PLAYBOOK_GATE = PlaybookGate()


def playbook_model_name(user_id: str) -> str:
    """Return the registered model name of ``user_id``'s playbooks."""
    if not str(user_id).strip():
        raise ValueError("user_id is empty")
    return PLAYBOOK_PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", str(user_id).strip())


# ---------------------------------------------------------------------------- the artifact
def artifact_dict(fit: PlaybookFit) -> dict[str, Any]:
    """Return the schema-2 artifact of ``fit`` (JSON-safe)."""
    return {"schema_version": PLAYBOOK_SCHEMA_VERSION, "user_id": fit.user_id,
            "key": fit.key, "fit": fit.to_dict()}


def fit_from_artifact(data: Mapping[str, Any]) -> PlaybookFit:
    """Return the PlaybookFit of a schema-2 artifact; ConfigError naming the field otherwise."""
    from buddy.strategy.playbooks import PlaybookFit

    version = data.get("schema_version")
    if version != PLAYBOOK_SCHEMA_VERSION:
        raise ConfigError([FieldError("playbooks.schema_version",
                                      f"must be {PLAYBOOK_SCHEMA_VERSION} (this package reads "
                                      "PlaybookFit artifacts only)", version)])
    if not isinstance(data.get("fit"), Mapping):
        raise ConfigError([FieldError("playbooks.fit", "must be a PlaybookFit.to_dict() "
                                      "mapping", type(data.get("fit")).__name__)])
    fit = PlaybookFit.from_dict(data["fit"])
    if data.get("key") not in (None, fit.key):
        raise ConfigError([FieldError("playbooks.key", f"must equal the fit's key {fit.key}",
                                      data.get("key"))])
    return fit


def stability(fit: PlaybookFit) -> tuple[float, int]:
    """Return (mean stability of the published playbooks in Jaccard units, their number);
    NaN with 0 playbooks."""
    return float(fit.mean_stability), len(fit.playbooks)


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Return the Wilson 95% interval of k successes in n (NaN, NaN for n = 0)."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# ---------------------------------------------------------------------------- registering
def register_playbooks(fit: PlaybookFit, *, tags: Mapping[str, str] | None = None,
                       experiments: ExperimentStore | None = None) -> int:
    """Log ``fit`` as a run with its pyfunc model and register a new version of the user's
    playbook model; return the version number."""
    import mlflow

    from experiments.registry import record_version_tags
    from experiments.tracking import PLAYBOOKS_EXPERIMENT, ensure_store, retry_locked

    experiments = experiments or ensure_store()
    name = playbook_model_name(fit.user_id)
    stable, n_playbooks = stability(fit)
    fitted_until = "" if fit.fitted_until is None else pd.Timestamp(fit.fitted_until
                                                                    ).isoformat()
    with tempfile.TemporaryDirectory(prefix="buddy-playbooks-") as tmp:
        artifact = Path(tmp) / ARTIFACT_FILE
        artifact.write_text(json.dumps(artifact_dict(fit), sort_keys=True))
        with mlflow.start_run(experiment_id=experiments.experiment_id(PLAYBOOKS_EXPERIMENT),
                              run_name=f"playbooks {fit.user_id} {fit.key[:12]}",
                              tags={KEY_TAG: fit.key, "buddy.user_id": fit.user_id,
                                    **(tags or {})},
                              nested=mlflow.active_run() is not None) as run:
            retry_locked(lambda: mlflow.log_params({
                "user_id": fit.user_id, "playbooks_key": fit.key,
                "schema_version": PLAYBOOK_SCHEMA_VERSION, "fitted_until": fitted_until,
                "recipe_hash": fit.recipe.hash, "features": ",".join(fit.recipe.features),
                **{f"recipe.{k}": v for k, v in fit.recipe.as_dict().items()
                   if k != "features"}}))
            retry_locked(lambda: mlflow.log_metrics({
                "n_trades": float(fit.n_trades), "n_left_out": float(fit.n_left_out),
                "n_playbooks": float(n_playbooks), "stability": stable}))
            mlflow.log_artifact(str(artifact))
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*input example was not provided")
                info = mlflow.pyfunc.log_model(
                    name="playbooks_model", python_model=str(MODEL_CODE),
                    artifacts={ARTIFACT_KEY: str(artifact)},
                    pip_requirements=_requirements(), signature=signature(fit),
                    metadata={"playbooks_key": fit.key, "user_id": fit.user_id,
                              "schema_version": PLAYBOOK_SCHEMA_VERSION})
    found = retry_locked(lambda: mlflow.register_model(info.model_uri, name))
    record_version_tags(experiments, name, str(found.version),
                        {KEY_TAG: fit.key, FITTED_UNTIL_TAG: fitted_until,
                         "buddy.run_id": run.info.run_id,
                         # the column `buddy experiments list` shows for every model
                         "buddy.config_hash": fit.key})
    return int(found.version)


def _requirements() -> list[str]:
    from experiments.registry import pip_requirements

    return [*pip_requirements(), *_pins("hdbscan", "scikit-learn")]


def _pins(*dists: str) -> list[str]:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    pins = []
    for dist in dists:
        try:
            pins.append(f"{dist}=={package_version(dist)}")
        except PackageNotFoundError:
            pins.append(dist)
    return pins


def signature(fit: PlaybookFit) -> Any:
    """Return the pyfunc signature: the recipe's features in (doubles, a missing one allowed:
    that row is not placed), ``PlaybookFit.place`` columns out (types read from placing the
    fit's own first trade)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([ColSpec("double", f, required=False) for f in fit.recipe.features])
    sample = pd.DataFrame({f: [0.0] for f in fit.recipe.features})
    placed = fit.place(sample)
    outputs = Schema([ColSpec(_mlflow_type(placed[c]), str(c), required=False)
                      for c in placed.columns])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _mlflow_type(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column):
        return "boolean"
    if pd.api.types.is_integer_dtype(column):
        return "long"
    if pd.api.types.is_float_dtype(column):
        return "double"
    return "string"


# ---------------------------------------------------------------------------- loading
@dataclass(frozen=True, slots=True)
class PlaybookVersion:
    """A registered version: its fit, model name and number; ``hash`` is the fit's key (what
    the shared promotion path records)."""

    fit: PlaybookFit
    name: str
    version: str

    @property
    def hash(self) -> str:
        """Return the fit's key (hash of its trade ids and recipe)."""
        return str(self.fit.key)


def load_playbook_version(version: int | str, name: str) -> PlaybookVersion:
    """Return version ``version`` of registered playbook model ``name`` (through its pyfunc)."""
    import mlflow

    from experiments.registry import RegistryError
    from experiments.tracking import point_mlflow_at_store

    point_mlflow_at_store()
    try:
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    except Exception as exc:
        raise RegistryError(f"cannot load {name} version {version}: {exc}") from exc
    return PlaybookVersion(fit=model.unwrap_python_model().fit, name=name,
                           version=str(version))


def load_playbooks(user_id: str, alias: str = "production") -> PlaybookFit | None:
    """Return ``user_id``'s PlaybookFit at ``alias``, or None (no store, model or alias)."""
    from experiments.registry import alias_version
    from experiments.tracking import store_exists

    if not store_exists():
        return None
    name = playbook_model_name(user_id)
    found = alias_version(name, alias)
    return None if found is None else load_playbook_version(found, name).fit


# ---------------------------------------------------------------------------- the gate
def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


@dataclass(frozen=True, slots=True, kw_only=True)
class Holdout:
    """The later holdout of a fit's trades: fit set (closed before ``start``), holdout
    (entered at or after ``start``, closed by ``end``)."""

    start: pd.Timestamp
    end: pd.Timestamp
    fit_facts: pd.DataFrame
    holdout_facts: pd.DataFrame


def later_holdout(facts: pd.DataFrame, *, share: float, end: pd.Timestamp) -> Holdout | None:
    """Split entry facts (with ``open_ts`` and ``close_ts``) into the trades closed before the
    holdout's first entry and the latest ``share`` of trades by entry; None with fewer than
    two trades. Trades entered before the start but closed after it belong to neither."""
    closed = facts.loc[pd.to_datetime(facts["close_ts"], utc=True) <= end]
    if len(closed) < 2:
        return None
    opened = pd.to_datetime(closed["open_ts"], utc=True).sort_values(kind="stable")
    first = min(len(opened) - 1, max(1, math.floor(len(opened) * (1 - share))))
    start = opened.iloc[first]
    open_ts = pd.to_datetime(closed["open_ts"], utc=True)
    close_ts = pd.to_datetime(closed["close_ts"], utc=True)
    return Holdout(start=start, end=end, fit_facts=closed.loc[close_ts < start],
                   holdout_facts=closed.loc[open_ts >= start])


@dataclass
class HoldoutCoverage:
    """The playbook gate's scorer: refit a recipe on the trades closed before the later
    holdout and place the holdout with it (metrics ``coverage``, ``coverage_low``/``_high``
    (Wilson 95%), ``n`` (placed holdout trades), ``n_unplaced``, ``n_fit``). ``prepare``
    reads the challenger's user's entry facts once, as of its ``fitted_until``; each recipe
    is refit once (cached by its hash)."""

    store: Store | None
    gate: PlaybookGate = PLAYBOOK_GATE
    facts: pd.DataFrame | None = None  # the user's entry facts, when the caller holds them
    user_id: str = ""
    holdout: Holdout | None = None
    scored: dict[str, dict[str, float]] = field(default_factory=dict)

    def prepare(self, challenger: PlaybookFit) -> Holdout | None:
        """Read the challenger's user's facts closed by its ``fitted_until`` (every closed
        trade when None) and cut the holdout (None: fewer than two closed trades)."""
        self.user_id = challenger.user_id
        self.scored.clear()
        until = None if challenger.fitted_until is None else _utc(challenger.fitted_until)
        if self.facts is not None:
            facts = self.facts
        elif self.store is not None:
            from buddy.store.strategy import read_entry_facts

            facts = read_entry_facts(self.store, self.user_id,
                                     closed_by=None if until is None else until.to_pydatetime())
        else:
            raise ValueError("HoldoutCoverage needs a store or the user's entry facts")
        end = until if until is not None else pd.to_datetime(facts["close_ts"], utc=True).max()
        self.holdout = None if pd.isna(end) else later_holdout(
            facts, share=self.gate.holdout_share, end=end)
        return self.holdout

    def __call__(self, fit: PlaybookFit) -> dict[str, float]:
        """Return the holdout coverage metrics of ``fit``'s recipe."""
        from buddy.strategy.playbooks import fit_playbooks

        if self.holdout is None:
            raise ValueError("HoldoutCoverage.prepare(challenger) must run first")
        recipe = fit.recipe
        if recipe.hash in self.scored:
            return self.scored[recipe.hash]
        h = self.holdout
        n_fit = len(h.fit_facts)
        if not len(h.holdout_facts) or n_fit < 2:
            metrics = {"coverage": math.nan, "coverage_low": math.nan,
                       "coverage_high": math.nan, "n": 0.0,
                       "n_unplaced": float(len(h.holdout_facts)), "n_fit": float(n_fit)}
        else:
            earlier = fit_playbooks(h.fit_facts, recipe, user_id=self.user_id,
                                    fitted_until=h.start.to_pydatetime())
            placed = earlier.place(h.holdout_facts)
            ok = placed["placed"].to_numpy(bool)
            inside = placed.loc[ok, "playbook_id"].notna().to_numpy(bool)
            n, k = int(ok.sum()), int(inside.sum())
            low, high = wilson(k, n)
            metrics = {"coverage": k / n if n else math.nan, "coverage_low": low,
                       "coverage_high": high, "n": float(n),
                       "n_unplaced": float(len(ok) - n), "n_fit": float(n_fit)}
        self.scored[recipe.hash] = metrics
        return metrics


def gate_decision(gate: PlaybookGate, *, name: str, version: str, challenger: PlaybookFit,
                  production: PlaybookVersion | None, scorer: HoldoutCoverage | None,
                  force: bool = False, reason: str = "") -> GateComparison:
    """Return the promotion decision for ``challenger`` against ``production`` (the rules in
    the module docstring); ``scorer`` is needed unless ``force`` (it is prepared here)."""
    record = partial(GateComparison, model=name, challenger_version=version,
                     production_version=None if production is None else production.version,
                     challenger_hash=str(challenger.key),
                     production_hash="" if production is None else production.hash)
    if force:
        return record(outcome=FORCED, gate=gate.record(challenger.user_id, None, None),
                      reason=reason or "forced: the gate was not consulted")
    if scorer is None:
        from experiments.registry import RegistryError

        raise RegistryError("the playbook gate needs a HoldoutCoverage scorer (the user's "
                            "store); pass one, or force the promotion")
    holdout = scorer.prepare(challenger)
    window = gate.record(challenger.user_id,
                         None if holdout is None else holdout.start.isoformat(),
                         None if holdout is None else holdout.end.isoformat())
    stable, n_playbooks = stability(challenger)
    mine = {**scorer(challenger), "stability": stable, "n_playbooks": float(n_playbooks)}
    absolute = RuleCheck(metric="stability", challenger=stable, production=gate.min_stability,
                         tolerance=0.0, higher_is_better=True,
                         passed=bool(stable >= gate.min_stability),
                         note=f"absolute rule: at least {gate.min_stability:g}"
                              + ("; no published playbook" if not n_playbooks else ""))
    if production is None:
        passed = absolute.passed
        return record(outcome=FIRST if passed else REFUSED, gate=window, checks=(absolute,),
                      challenger_metrics=mine,
                      reason=("no production version yet: the absolute rules hold"
                              if passed else f"stability {stable:.3f} below "
                              f"{gate.min_stability:g}"))
    theirs = {**scorer(production.fit), "stability": stability(production.fit)[0]}
    coverage = check_rule(MetricRule(metric="coverage", tolerance=gate.coverage_tolerance),
                          mine, theirs)
    checks = (absolute, coverage)
    if not absolute.passed:
        outcome, why = REFUSED, f"stability {stable:.3f} below {gate.min_stability:g}"
    elif production.version == version:
        outcome, why = PASSED, f"v{version} already holds production"
    elif not mine["n"] >= gate.min_holdout:
        outcome, why = REFUSED, (f"not enough evidence: {mine['n']:g} placed holdout trades, "
                                 f"the gate needs at least {gate.min_holdout}")
    elif not coverage.passed:
        outcome, why = REFUSED, (f"holdout coverage {mine['coverage']:.3f} more than "
                                 f"{gate.coverage_tolerance:g} below production's "
                                 f"{theirs['coverage']:.3f}")
    else:
        outcome, why = PASSED, "stable, and no worse than production on holdout coverage"
    return record(outcome=outcome, gate=window, checks=checks, reason=why,
                  challenger_metrics=mine, production_metrics=theirs)


def promote_playbooks(user_id: str, version: int | str, *,
                      scorer: HoldoutCoverage | None = None,
                      gate: PlaybookGate = PLAYBOOK_GATE, force: bool = False,
                      reason: str = "", on_step: StepHook | None = None,
                      experiments: ExperimentStore | None = None) -> Promotion:
    """Promote version ``version`` of ``user_id``'s playbooks if the playbook gate allows it
    (``scorer``: ``HoldoutCoverage(store)``, needed unless ``force``)."""
    return promote_playbook_model(playbook_model_name(user_id), version, scorer=scorer,
                                  gate=gate, force=force, reason=reason, on_step=on_step,
                                  experiments=experiments)


def promote_playbook_model(name: str, version: int | str, *,
                           scorer: HoldoutCoverage | None = None,
                           gate: PlaybookGate = PLAYBOOK_GATE, force: bool = False,
                           reason: str = "", on_step: StepHook | None = None,
                           experiments: ExperimentStore | None = None) -> Promotion:
    """Promote version ``version`` of registered playbook model ``name`` through the
    playbook gate (``promote_playbooks`` by model name: the command line's form)."""
    from experiments.registry import promote_with


    def decide(current: str | None) -> GateComparison:
        challenger = load_playbook_version(version, name).fit
        production = None if current is None else load_playbook_version(current, name)
        return gate_decision(gate, name=name, version=str(version), challenger=challenger,
                             production=production, scorer=scorer, force=force,
                             reason=reason)

    return promote_with(name, version, decide, on_step=on_step, experiments=experiments)


def rollback_playbooks(user_id: str, *, reason: str = "",
                       experiments: ExperimentStore | None = None) -> Promotion:
    """Give ``production`` of ``user_id``'s playbooks back to the ``previous`` version."""
    from experiments.registry import rollback

    return rollback(playbook_model_name(user_id), reason=reason, experiments=experiments,
                    load=load_playbook_version)


def version_with_key(name: str, key: str, *, experiments: ExperimentStore
                     ) -> str | None:
    """Return the newest version of ``name`` tagged with fit key ``key``, or None."""
    from experiments.registry import model_versions

    found = [int(v.version) for v in model_versions(experiments.client, name)
             if (v.tags or {}).get(KEY_TAG) == key]
    return str(max(found)) if found else None

