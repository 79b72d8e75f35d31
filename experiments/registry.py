"""The model registry: scoring configs as versions of ``buddy-scoring``, promoted by aliases.

- ``register_config(config)`` logs the config as a run (params: hash, schema version, every
  module's switch and weight; artifact: the config JSON) with the pyfunc model logged from
  code (``experiments.scoring_model``), registers it and returns the new version number.
- ``load_production_config()`` returns the version holding the ``production`` alias as a
  ScoringConfig named ``buddy-scoring`` with ``version`` the version number (a report then
  says ``config buddy-scoring@3 #<hash>``), or None when there is none. It never creates the
  store and imports mlflow only when the store exists. ``$BUDDY_SCORING_MODEL`` changes what
  production consumers load: another ``models:/NAME@ALIAS`` (or ``models:/NAME/VERSION``) URI,
  or ``packaged`` for the packaged default config whatever the registry holds. Each read of
  the registry there (and each promote and rollback) rewrites the production pointer next to a
  SQLite store (``pointer_path``; ``buddy.config_sources.ConfigPointer``), from which
  ``experiments.config_source`` answers without importing mlflow while the store is unchanged.
- ``promote(version, gate=..., scorer=...)`` replays the challenger and the current production
  on the gate's holdout window (``experiments.gate``), records the comparison as a run in the
  ``buddy-promotions`` experiment, and only then moves the aliases: ``previous`` to the
  outgoing production version, ``production`` to the challenger, in that order, production
  LAST. An interruption at any point therefore leaves ``production`` on a valid version (the
  old one until the very last write). With no production version yet the challenger passes by
  definition (outcome ``first``); ``force=True`` skips the replays and is recorded as forced.
- ``rollback()`` gives ``production`` back to the ``previous`` version and ``previous`` to the
  version rolled back from (so a second rollback undoes the first); recorded as a run too.

Promotions of one model are expected from one operator at a time: two concurrent promotions
of the same model both record their comparison, and the later alias write wins.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from buddy.config import ScoringConfig
from buddy.config_sources import ConfigPointer, file_stamp, write_config_pointer
from buddy.errors import BuddyError
from experiments.config_source import MODEL_ENV, PRODUCTION, SCORING_MODEL, pointer_path
from experiments.gate import (
    DEFAULT_GATE,
    FIRST,
    FORCED,
    PASSED,
    REFUSED,
    FitWindow,
    GateComparison,
    GateConfig,
    HoldoutReplay,
    ReplayScorer,
    check_windows,
    compare,
    compare_paired,
    window_text,
)
from experiments.tracking import (
    CONFIGS_EXPERIMENT,
    DESCRIPTION_TAG,
    PROMOTIONS_EXPERIMENT,
    ExperimentStore,
    client_for,
    ensure_store,
    log_run,
    log_values,
    quiet_downloads,
    retry_locked,
    sqlite_path,
    store_exists,
    tracked_run,
    tracking_uri,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

PREVIOUS = "previous"
#: The steps of a promotion, reported to ``on_step`` as they complete.
STEPS: tuple[str, ...] = ("compared", "recorded", "previous_moved", "production_moved")

#: Each step in words (what a command prints as the step completes).
STEP_SENTENCES: dict[str, str] = {
    "compared": "The gate compared the challenger with production on the holdout window.",
    "recorded": "The decision is recorded as a run in the buddy-promotions experiment.",
    "previous_moved": "The alias 'previous' names the outgoing production version (if any).",
    "production_moved": "The alias 'production' moved; consumers load the new version now.",
}

StepHook = Callable[[str], None]


class RegistryError(BuddyError):
    """A registry operation cannot proceed (unknown version, nothing to roll back to, ...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Promotion:
    """What a promote or rollback did: the aliases before and after, and its record."""

    model: str
    action: str  # 'promote' | 'rollback'
    version: str  # the version that was to hold production
    production_before: str | None
    production_after: str | None
    previous_after: str | None
    moved: bool
    run_id: str  # the comparison (or rollback) run in the promotions experiment
    comparison: GateComparison | None = None

    def __str__(self) -> str:
        head = (f"{self.model}: production {self._v(self.production_before)} -> "
                f"{self._v(self.production_after)}, previous {self._v(self.previous_after)} "
                f"({self.action} {'done' if self.moved else 'refused'}; run {self.run_id})")
        return f"{self.comparison}\n{head}" if self.comparison is not None else head

    @staticmethod
    def _v(version: str | None) -> str:
        return "(none)" if version is None else f"v{version}"

    def sentence(self) -> str:
        """Return what happened in one or two plain sentences (the commands' summary)."""
        where = f"The decision is MLflow run {self.run_id} in buddy-promotions."
        if self.action == "rollback":
            return (f"Production of {self.model} rolled back from {self._v(self.production_before)}"
                    f" to {self._v(self.production_after)}. {where}")
        reason = self.comparison.reason if self.comparison is not None else ""
        if not self.moved:
            return (f"Production of {self.model} stays on {self._v(self.production_before)}: "
                    f"v{self.version} was refused ({reason}). {where}")
        if self.production_before is None:
            return f"{self.model} v{self.version} is now production ({reason}). {where}"
        if self.production_before == self.version:
            return f"{self.model} v{self.version} already held production. {where}"
        return (f"Production of {self.model} moved from {self._v(self.production_before)} to "
                f"v{self.version} ({reason}); 'previous' is {self._v(self.previous_after)}. "
                f"{where}")


# ---------------------------------------------------------------------------- logging
def pip_requirements() -> list[str]:
    """Return the pinned requirements a scoring model needs to load and predict."""
    pins = []
    for dist in ("trading-buddy", "mlflow", "pandas", "numpy", "duckdb"):
        try:
            pins.append(f"{dist}=={package_version(dist)}")
        except PackageNotFoundError:
            pins.append(dist)
    return pins


def config_params(config: ScoringConfig) -> dict[str, Any]:
    """Return the run params of a config: identity, limits, each module's switch and weight."""
    params: dict[str, Any] = {"config_name": config.name, "config_version": config.version,
                              "config_hash": config.hash,
                              "schema_version": config.schema_version,
                              "min_issues": config.min_issues, "max_issues": config.max_issues}
    for spec in config.modules:
        params[f"module.{spec.name}.enabled"] = spec.enabled
        params[f"module.{spec.name}.weight"] = spec.weight
    return params


def log_config(config: ScoringConfig, *, experiment: str = CONFIGS_EXPERIMENT,
               run_name: str | None = None, tags: Mapping[str, str] | None = None,
               experiments: ExperimentStore | None = None) -> tuple[str, str]:
    """Log ``config`` as a run with its pyfunc model; return (run id, model URI)."""
    import mlflow

    from experiments.scoring_model import (
        CONFIG_ARTIFACT,
        CONFIG_FILE,
        MODEL_CODE,
        output_schema,
    )

    experiments = experiments or ensure_store()
    with tempfile.TemporaryDirectory(prefix="buddy-config-") as tmp:
        config_file = Path(tmp) / CONFIG_FILE
        config_file.write_text(config.to_json())
        with mlflow.start_run(experiment_id=experiments.experiment_id(experiment),
                              run_name=run_name or f"config {config.hash}",
                              tags={"buddy.config_hash": config.hash, **(tags or {})},
                              description=f"Scoring config #{config.hash} logged as a "
                                          "pyfunc model (experiments.scoring_model).",
                              nested=mlflow.active_run() is not None) as run:
            retry_locked(lambda: mlflow.log_params(
                {k: str(v) for k, v in config_params(config).items()}))
            mlflow.log_artifact(str(config_file))
            with warnings.catch_warnings():
                # the signature is given; an example would need a store to evaluate against
                warnings.filterwarnings("ignore", message=".*input example was not provided")
                info = mlflow.pyfunc.log_model(
                    name="scoring_model", python_model=str(MODEL_CODE),
                    artifacts={CONFIG_ARTIFACT: str(config_file)}, model_config={"db_path": ""},
                    pip_requirements=pip_requirements(), signature=output_schema(),
                    metadata={"config_hash": config.hash,
                              "schema_version": config.schema_version})
    return run.info.run_id, info.model_uri


def register_config(config: ScoringConfig, name: str = SCORING_MODEL, *,
                    tags: Mapping[str, str] | None = None,
                    experiments: ExperimentStore | None = None) -> int:
    """Log ``config`` and register it as a new version of model ``name``; return the version.

    The version carries the tags ``buddy.config_hash`` and ``buddy.run_id``, and ``tags``
    (which the run carries too: e.g. the fit window, ``FitWindow.tags()``).
    """
    import mlflow

    experiments = experiments or ensure_store()
    run_id, model_uri = log_config(config, tags=tags, experiments=experiments)
    found = retry_locked(lambda: mlflow.register_model(
        model_uri, name, tags={**(tags or {}), "buddy.config_hash": config.hash,
                               "buddy.run_id": run_id}))
    describe_version(experiments, name, str(found.version), config, run_id)
    return int(found.version)


#: The registered model's description (the registry page of ``buddy-scoring``).
MODEL_DESCRIPTION = (
    "Trading Buddy's scoring configuration: which evaluator modules run, their thresholds and "
    "weights. predict() takes trade intents (a DataFrame of trade_intents rows) and returns "
    "one Buddy Report per intent: verdict, overall score (0-100), the issues with their "
    "evidence and mitigations, what was not checked, and the config name, version, alias and "
    "hash. It reads market data point-in-time from a Trading Buddy DuckDB file ($BUDDY_DB or "
    "the model config's db_path) and describes risks; it predicts no prices or outcomes. "
    "The 'production' alias is moved only by the replay gate (experiments.registry.promote).")


def describe_version(experiments: ExperimentStore, name: str, version: str,
                     config: ScoringConfig, run_id: str) -> None:
    """Write the descriptions the registry UI shows: the model's (when it has none yet) and
    version ``version``'s (its config hash, modules and weights, source run)."""
    client = experiments.client
    if not (client.get_registered_model(name).description or "").strip():
        retry_locked(lambda: client.update_registered_model(name, description=MODEL_DESCRIPTION))
    modules = ", ".join(f"{m.name} {m.weight:g}" if m.enabled else f"{m.name} off"
                        for m in config.modules)
    text = (f"Scoring config #{config.hash} (schema {config.schema_version}), logged by run "
            f"{run_id}. Modules and weights: {modules}.")
    retry_locked(lambda: client.update_model_version(name, version, description=text))


def record_version_tags(experiments: ExperimentStore, name: str, version: str,
                        tags: Mapping[str, str]) -> None:
    """Set ``tags`` on version ``version`` of ``name``."""
    client = experiments.client
    for key, value in tags.items():
        retry_locked(partial(client.set_model_version_tag, name, version, key, value))


# ---------------------------------------------------------------------------- loading
def parse_model_uri(uri: str) -> tuple[str, str, bool]:
    """Return (model name, alias or version, is_alias) of 'models:/NAME@ALIAS' or
    'models:/NAME/VERSION'."""
    if not uri.startswith("models:/"):
        raise RegistryError(f"not a registered model URI (models:/NAME@ALIAS or "
                            f"models:/NAME/VERSION): {uri!r}")
    body = uri.removeprefix("models:/")
    if "@" in body:
        name, _, alias = body.partition("@")
        if name and alias:
            return name, alias, True
    name, _, ref = body.partition("/")
    if name and ref.isdigit():
        return name, ref, False
    raise RegistryError(f"not a registered model URI (models:/NAME@ALIAS or "
                        f"models:/NAME/VERSION): {uri!r}")


def _client(experiments: ExperimentStore | None = None) -> MlflowClient:
    if experiments is not None:
        return experiments.client
    import mlflow

    uri = tracking_uri()
    quiet_downloads()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return client_for(uri)


def alias_version(name: str, alias: str, *, client: MlflowClient | None = None
                  ) -> str | None:
    """Return the version of ``name`` holding ``alias``, or None (no model, no alias)."""
    from mlflow.exceptions import MlflowException

    client = client or _client()
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def load_config_version(version: int | str, name: str = SCORING_MODEL, *, alias: str = ""
                        ) -> ScoringConfig:
    """Load version ``version`` of ``name`` through its pyfunc model and return its config,
    named ``name`` at version ``version``, resolved from ``alias`` ('' when asked by number)."""
    import mlflow

    _client()
    try:
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    except Exception as exc:
        raise RegistryError(f"cannot load {name} version {version}: {exc}") from exc
    config = model.unwrap_python_model().config
    return dataclasses.replace(config, name=name, version=str(version), alias=alias)


def load_scoring_config(uri: str) -> ScoringConfig:
    """Return the config registered at 'models:/NAME@ALIAS' or 'models:/NAME/VERSION'."""
    name, ref, is_alias = parse_model_uri(uri)
    if not is_alias:
        return load_config_version(ref, name)
    found = alias_version(name, ref)
    if found is None:
        raise RegistryError(f"{uri}: model {name} has no version with alias {ref!r}")
    return load_config_version(found, name, alias=ref)


def load_production_config(name: str = SCORING_MODEL) -> ScoringConfig | None:
    """Return what production consumers should score with, or None for the packaged default.

    That is ``models:/<name>@production`` when the experiment store exists and the alias is
    set. A store that cannot be read is warned about and treated as having no production
    version: a broken experiment store must not stop evaluations, and every report names the
    config it used. ``$BUDDY_SCORING_MODEL`` overrides the URI ('packaged': always None); a
    model named there must exist.
    """
    requested = os.environ.get(MODEL_ENV, "").strip()
    if requested == "packaged":
        return None
    if requested:
        return load_scoring_config(requested)
    if not store_exists():
        return None
    try:
        return refresh_production_pointer(name)
    except Exception as exc:  # an unreadable store: see the docstring
        warnings.warn(f"experiment store {tracking_uri()}: {exc}; using the packaged default "
                      "config", RuntimeWarning, stacklevel=2)
        return None


def refresh_production_pointer(name: str = SCORING_MODEL, *,
                               experiments: ExperimentStore | None = None
                               ) -> ScoringConfig | None:
    """Read ``name``'s production version from the registry, rewrite its pointer, and return
    its config (None when no version holds the alias).

    The store is stamped BEFORE it is read: a write racing this read leaves the pointer's
    stamp older than the file, so the next reader reads the registry again.
    """
    uri = experiments.uri if experiments is not None else tracking_uri()
    db, path = sqlite_path(uri), pointer_path(name, uri)
    stamp = file_stamp(db) if db is not None else ""
    found = alias_version(name, PRODUCTION,
                          client=experiments.client if experiments is not None else None)
    config = None if found is None else load_config_version(found, name, alias=PRODUCTION)
    if db is not None and path is not None:
        pointer = ConfigPointer(store=str(db), store_stamp=stamp, model=name, alias=PRODUCTION,
                                version=found, config_hash=config.hash if config else "",
                                config_json=config.to_json() if config else "")
        try:
            write_config_pointer(path, pointer)
        except OSError as exc:  # the pointer only saves time: evaluations go on without it
            warnings.warn(f"cannot write the production pointer {path}: {exc}",
                          RuntimeWarning, stacklevel=2)
    return config


def list_versions(name: str = SCORING_MODEL) -> pd.DataFrame:
    """Return every version of ``name``: version, aliases, config hash, run, created (UTC)."""
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        held = client.get_registered_model(name).aliases or {}
    except MlflowException:
        held = {}
    by_version: dict[str, list[str]] = {}
    for alias, number in held.items():
        by_version.setdefault(str(number), []).append(alias)
    rows = [{"version": int(v.version), "aliases": ",".join(sorted(by_version.get(
                str(v.version), []))),
             "config_hash": (v.tags or {}).get("buddy.config_hash", ""),
             "status": v.status, "run_id": v.run_id,
             "created": pd.Timestamp(v.creation_timestamp, unit="ms", tz="UTC")}
            for v in model_versions(client, name)]
    frame = pd.DataFrame(rows, columns=["version", "aliases", "config_hash", "status",
                                        "run_id", "created"])
    return frame.sort_values("version").reset_index(drop=True)


def name_filter(name: str) -> str:
    """Return an MLflow search filter matching model ``name`` (quotes in it included).

    MLflow takes a quoted value literally (no escapes), and a backslash before the closing
    quote ends the parse: a name is quoted with the quote it does not contain; one holding
    both kinds or a backslash is matched by LIKE with each of those characters as the
    one-character wildcard, so the caller keeps the exact matches (``model_versions``).
    """
    if "\\" not in name:
        if "'" not in name:
            return f"name='{name}'"
        if '"' not in name:
            return f'name="{name}"'
    return "name LIKE '" + name.replace("'", "_").replace("\\", "_") + "'"


def model_versions(client: MlflowClient, name: str) -> list[Any]:
    """Return every version of registered model ``name`` (whatever characters it holds)."""
    return [v for v in client.search_model_versions(name_filter(name)) if v.name == name]


def _check_version(client: MlflowClient, name: str, version: int | str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise RegistryError(f"model {name} has no version {version}") from exc
    if found.status != "READY":
        raise RegistryError(f"model {name} version {version} is {found.status}, not READY")
    return str(found.version)


# ---------------------------------------------------------------------------- promotion
Decide = Callable[[str | None], GateComparison]


def promote_with(name: str, version: int | str, decide: Decide, *,
                 on_step: StepHook | None = None,
                 experiments: ExperimentStore | None = None) -> Promotion:
    """Promote ``version`` of ``name`` if ``decide(current production version)`` allows it.

    The generic path every registered model shares: decide, record the comparison run, move
    ``previous`` to the outgoing version, move ``production`` LAST. ``on_step`` is called
    after each step in STEPS (progress reporting; an exception there interrupts the
    promotion as a crash would).
    """
    experiments = experiments or ensure_store()
    client = experiments.client
    version = _check_version(client, name, version)
    current = alias_version(name, PRODUCTION, client=client)
    # the decision's run is open while the replays run (they name it as their parent): the
    # UI shows how long the promotion took, and a crash leaves it FAILED
    with tracked_run(experiments, PROMOTIONS_EXPERIMENT, run_name=f"promote {name} v{version}",
                     tags={"buddy.action": "promote", "buddy.model": name}) as run_id:
        comparison = decide(current)
        _step(on_step, "compared")
        record_comparison(experiments, comparison, run_id=run_id)
    _step(on_step, "recorded")
    previous = alias_version(name, PREVIOUS, client=client)
    if not comparison.promote:
        return Promotion(model=name, action="promote", version=version,
                         production_before=current, production_after=current,
                         previous_after=previous, moved=False, run_id=run_id,
                         comparison=comparison)
    if current is not None and current != version:
        retry_locked(lambda: client.set_registered_model_alias(name, PREVIOUS, current))
        previous = current
    _step(on_step, "previous_moved")
    retry_locked(lambda: client.set_registered_model_alias(name, PRODUCTION, version))
    _step(on_step, "production_moved")
    retry_locked(lambda: client.set_model_version_tag(name, version, "buddy.promoted_by_run",
                                                      run_id))
    return Promotion(model=name, action="promote", version=version, production_before=current,
                     production_after=version, previous_after=previous, moved=True,
                     run_id=run_id, comparison=comparison)


def _step(hook: StepHook | None, step: str) -> None:
    if hook is not None:
        hook(step)


def record_comparison(experiments: ExperimentStore, comparison: GateComparison, *,
                      run_id: str | None = None) -> str:
    """Log a promotion decision as a run in the promotions experiment (or into open run
    ``run_id`` there); return the run's id."""
    import json

    run_name = (f"promote {comparison.model} v{comparison.challenger_version} "
                f"({comparison.outcome})")
    record = dict(
        params={"action": "promote", "model": comparison.model,
                "challenger_version": comparison.challenger_version,
                "production_version": comparison.production_version or "",
                "challenger_hash": comparison.challenger_hash,
                "production_hash": comparison.production_hash,
                "outcome": comparison.outcome, "forced": comparison.forced,
                "reason": comparison.reason, "gate_hash": comparison.gate.hash,
                "window": window_text(comparison.gate.window),
                "min_n": comparison.gate.min_n},
        metrics=comparison.metrics(),
        tags={"buddy.action": "promote", "buddy.model": comparison.model,
              "buddy.outcome": comparison.outcome,
              "buddy.forced": str(comparison.forced).lower()},
        texts={"comparison.json": json.dumps(comparison.as_dict(), indent=2, sort_keys=True,
                                             default=str),
               "gate.json": comparison.gate.to_json()})
    if run_id is None:
        return log_run(experiments, PROMOTIONS_EXPERIMENT, run_name=run_name,
                       description=comparison.reason, **record)  # type: ignore[arg-type]
    log_values(experiments, run_id, **record)  # type: ignore[arg-type]
    retry_locked(lambda: experiments.client.update_run(run_id, name=run_name))
    retry_locked(lambda: experiments.client.set_tag(run_id, DESCRIPTION_TAG,
                                                    comparison.reason))
    return run_id


def promote(version: int | str, *, name: str = SCORING_MODEL,
            gate: GateConfig = DEFAULT_GATE, scorer: ReplayScorer | None = None,
            force: bool = False, reason: str = "", on_step: StepHook | None = None,
            experiments: ExperimentStore | None = None,
            load: Callable[[str, str], Any] | None = None) -> Promotion:
    """Move ``production`` of model ``name`` to ``version`` if the gate allows it.

    ``scorer`` replays a config on ``gate.window`` (``ReplayHoldoutScorer(store)`` for the
    real thing); it is needed unless this is the first promotion or ``force`` is set. Two
    HoldoutReplays are compared by ``compare_paired`` (paired bootstrap of the difference),
    metric dicts by ``compare`` (point estimates). A holdout window that overlaps the
    window the version was fitted on (its ``buddy.fit_*`` tags) raises WindowOverlapError
    before anything is replayed or recorded, unless ``force``. The
    returned Promotion says whether the alias moved; the decision is recorded either way.
    ``load(version, name)`` returns what the scorer scores (default: the ScoringConfig of a
    buddy-scoring version; the playbook registry passes its own); it must have a ``hash``.
    """
    scoring = load is None
    load = load or (lambda v, n: load_config_version(v, n))
    experiments = experiments or ensure_store()

    def decide(current: str | None) -> GateComparison:
        challenger = load(str(version), name)
        base = partial(GateComparison, model=name, challenger_version=str(version),
                       production_version=current, gate=gate, challenger_hash=challenger.hash)
        if force:
            return base(outcome=FORCED,
                                  reason=reason or "forced: the gate was not consulted")
        if current is None:
            first = scorer(challenger, gate.window) if scorer is not None else {}
            return base(outcome=FIRST, challenger_metrics=dict(_metrics_of(first)),
                        reason="no production version yet: the first promotion "
                               "passes by definition")
        production = load(current, name)
        base = partial(base, production_hash=production.hash)
        if current == str(version):
            return base(outcome=PASSED, reason=f"v{version} already holds production")
        if scorer is None:
            raise RegistryError("the gate needs a replay scorer (e.g. ReplayHoldoutScorer("
                                "store)); pass one, or force the promotion")
        challenger_replay = scorer(challenger, gate.window)
        production_replay = scorer(production, gate.window)
        evidence = None
        if isinstance(challenger_replay, HoldoutReplay) and isinstance(
                production_replay, HoldoutReplay):
            checks, passed, why, evidence = compare_paired(gate, challenger_replay,
                                                           production_replay)
        else:
            checks, passed, why = compare(gate, _metrics_of(challenger_replay),
                                          _metrics_of(production_replay))
        return base(outcome=PASSED if passed else REFUSED, reason=why, checks=checks,
                    evidence=evidence,
                    challenger_metrics=dict(_metrics_of(challenger_replay)),
                    production_metrics=dict(_metrics_of(production_replay)))

    if not force:  # refused before anything is replayed or recorded
        checked = _check_version(experiments.client, name, version)
        tags = experiments.client.get_model_version(name, checked).tags or {}
        check_windows(gate.window, FitWindow.from_tags(tags), challenger=f"v{version}")
    promotion = promote_with(name, version, decide, on_step=on_step, experiments=experiments)
    if scoring:  # the playbook registry passes its own ``load``: no config to point at
        refresh_production_pointer(name, experiments=experiments)
    return promotion


def _metrics_of(scored: HoldoutReplay | Mapping[str, float]) -> Mapping[str, float]:
    return scored.metrics if isinstance(scored, HoldoutReplay) else scored


def rollback(name: str = SCORING_MODEL, *, reason: str = "", on_step: StepHook | None = None,
             experiments: ExperimentStore | None = None,
             load: Callable[[str, str], Any] | None = None) -> Promotion:
    """Give ``production`` back to the ``previous`` version (and ``previous`` to the version
    rolled back from); record the rollback as a run. Raises RegistryError without one, or
    when the previous version no longer loads (``load(version, name)``, as in ``promote``).
    """
    experiments = experiments or ensure_store()
    client = experiments.client
    target = alias_version(name, PREVIOUS, client=client)
    current = alias_version(name, PRODUCTION, client=client)
    if target is None:
        raise RegistryError(f"model {name} has no '{PREVIOUS}' version to roll back to")
    if target == current:
        raise RegistryError(f"model {name}: '{PREVIOUS}' and '{PRODUCTION}' are both "
                            f"v{target}; nothing to roll back")
    (load or load_config_version)(target, name)  # never roll back onto a broken version
    run_id = log_run(experiments, PROMOTIONS_EXPERIMENT,
                     run_name=f"rollback {name} v{current} -> v{target}",
                     params={"action": "rollback", "model": name,
                             "production_version": current or "", "target_version": target,
                             "reason": reason},
                     tags={"buddy.action": "rollback", "buddy.model": name})
    _step(on_step, "recorded")
    # production first here: an interruption after it has already restored what the
    # operator asked for, and 'previous' still names a valid version
    retry_locked(lambda: client.set_registered_model_alias(name, PRODUCTION, target))
    _step(on_step, "production_moved")
    if current is not None:
        retry_locked(lambda: client.set_registered_model_alias(name, PREVIOUS, current))
    _step(on_step, "previous_moved")
    if load is None:
        refresh_production_pointer(name, experiments=experiments)
    return Promotion(model=name, action="rollback", version=target, production_before=current,
                     production_after=target, previous_after=current, moved=True,
                     run_id=run_id)
