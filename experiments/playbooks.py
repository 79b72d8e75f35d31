"""Per-user playbook models: their registry and promotion path, ready for personalization.

A trader's playbooks are clusters of their past setups. Each user has one registered model,
``buddy-playbooks-<user>`` (the user id with anything outside ``[A-Za-z0-9_.-]`` replaced by
``_``), whose versions are promoted by the same aliases as ``buddy-scoring``: ``production``
(what the workbench uses) and ``previous`` (what ``rollback`` restores), through the same
gate hook (``experiments.registry.promote``: a decision recorded as a run, aliases moved
after it, production last).

**Artifact format** (``playbooks.json``, schema version 1), logged with the pyfunc model from
code (``experiments/pyfunc_playbooks.py``), never pickled:

.. code-block:: json

    {"schema_version": 1, "user_id": "alice",
     "features": ["stop_distance_atr", "rr"],      # column order of every vector below
     "center": [1.8, 2.1], "scale": [0.6, 0.9],    # standardisation: z = (x - center) / scale
     "centroids": [[-0.5, 0.2], [1.1, -0.4]],      # one per playbook, in z units
     "labels": ["tight pullback", "wide breakout"],
     "max_distance": 2.5,                          # farther than this from every centroid:
                                                   # no playbook (z units, Euclidean)
     "params": {"algorithm": "kmeans", "n_setups": 240, "seed": 0}}

``predict`` on a DataFrame with the ``features`` columns returns ``playbook`` (a label or
None) and ``distance`` (to the nearest centroid) per row. The personalization work fits the
clusters (HDBSCAN centroids fit this format) and supplies a gate (metrics such as
``coverage``, the share of a holdout of the user's setups that fall in a playbook) and a
scorer: ``promote_playbooks(user, version, gate=..., scorer=...)``. Until then the first
promotion passes by definition and later ones need a scorer or ``force``.
"""

from __future__ import annotations

import math
import re
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from buddy.config import Config, param
from buddy.errors import FieldError
from experiments.gate import GateConfig, HoldoutWindow, MetricRule

if TYPE_CHECKING:
    from experiments.gate import ReplayScorer
    from experiments.registry import Promotion, StepHook
    from experiments.tracking import ExperimentStore

PLAYBOOK_PREFIX = "buddy-playbooks-"
PLAYBOOK_SCHEMA_VERSION = 1
ARTIFACT_KEY = "playbooks"
ARTIFACT_FILE = "playbooks.json"
MODEL_CODE = Path(__file__).with_name("pyfunc_playbooks.py")

#: The gate playbook promotions use until the personalization work sets its own: the share
#: of the user's logged setups that fall in a playbook may drop by at most 5 points.
PLAYBOOK_GATE = GateConfig(
    rules=(MetricRule(metric="coverage", tolerance=0.05),),
    window=HoldoutWindow(intent_source="database", symbols=None, start=None, end=None,
                         providers="none"),
    min_n=30)


def _floats(value: Any) -> tuple[float, ...]:
    return tuple(map(float, value))


def _rows(value: Any) -> tuple[tuple[float, ...], ...]:
    return tuple(_floats(row) for row in value)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybookModel(Config):
    """A user's playbooks: standardisation, centroids, labels and the no-playbook radius."""

    config_name: ClassVar[str] = "playbooks"

    user_id: str = param(doc="whose playbooks")
    features: tuple[str, ...] = param(doc="column order of every vector below")
    center: tuple[float, ...] = param(parse=_floats, doc="feature means (z = (x - center) "
                                                         "/ scale)")
    scale: tuple[float, ...] = param(parse=_floats, doc="feature standard deviations")
    centroids: tuple[tuple[float, ...], ...] = param(parse=_rows,
                                                     doc="one per playbook, in z units")
    labels: tuple[str, ...] = param(doc="one name per centroid")
    max_distance: float = param(lo=0.0, lo_open=True, unit="z units (Euclidean)",
                                doc="farther than this from every centroid: no playbook")
    params: Mapping[str, Any] = param(factory=dict, doc="how the clusters were fitted")
    schema_version: int = param(PLAYBOOK_SCHEMA_VERSION, choices=(PLAYBOOK_SCHEMA_VERSION,),
                                doc="version of the artifact format")

    def check(self) -> list[FieldError]:
        """Return the shape violations: empty names, vectors of the wrong length, bad scales."""
        k = len(self.features)
        errors = []
        if not self.user_id:
            errors.append(FieldError("playbooks.user_id", "must not be empty", self.user_id))
        if k == 0:
            errors.append(FieldError("playbooks.features", "must not be empty", self.features))
        if len(self.center) != k or len(self.scale) != k:
            errors.append(FieldError("playbooks.center/scale",
                                     f"center and scale need {k} values each",
                                     (len(self.center), len(self.scale))))
        if any(not (math.isfinite(s) and s > 0) for s in self.scale):
            errors.append(FieldError("playbooks.scale", "every scale must be a finite number > 0",
                                     self.scale))
        if any(len(c) != k for c in self.centroids):
            errors.append(FieldError("playbooks.centroids", f"every centroid needs {k} values",
                                     [len(c) for c in self.centroids]))
        if len(self.labels) != len(self.centroids):
            errors.append(FieldError("playbooks.labels", "labels and centroids must pair up",
                                     (len(self.labels), len(self.centroids))))
        return errors

    def assign(self, setups: pd.DataFrame) -> pd.DataFrame:
        """Return ``playbook`` (label or None) and ``distance`` per row of ``setups``.

        A row with a missing feature, or farther than ``max_distance`` from every centroid,
        gets no playbook.
        """
        missing = [f for f in self.features if f not in setups.columns]
        if missing:
            raise ValueError(f"setups lack feature column(s) {missing}")
        x = setups.loc[:, list(self.features)].apply(pd.to_numeric, errors="coerce"
                                                      ).to_numpy(float)
        z = (x - np.array(self.center)) / np.array(self.scale)
        if not self.centroids:
            distance = np.full(len(z), np.nan)
            nearest = np.zeros(len(z), dtype=int)
        else:
            d = np.linalg.norm(z[:, None, :] - np.array(self.centroids)[None, :, :], axis=2)
            nearest = np.argmin(np.nan_to_num(d, nan=np.inf), axis=1)
            distance = d[np.arange(len(z)), nearest]
        ok = np.isfinite(distance) & (distance <= self.max_distance)
        labels = [self.labels[i] if keep else None for i, keep in zip(nearest, ok, strict=True)]
        return pd.DataFrame({"playbook": pd.Series(labels, dtype=object),
                             "distance": distance}, index=setups.index)


def playbook_model_name(user_id: str) -> str:
    """Return the registered model name of ``user_id``'s playbooks."""
    if not str(user_id).strip():
        raise ValueError("user_id is empty")
    return PLAYBOOK_PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", str(user_id).strip())


def register_playbooks(model: PlaybookModel, *, tags: Mapping[str, str] | None = None,
                       experiments: ExperimentStore | None = None) -> int:
    """Log ``model`` as a run with its pyfunc model and register a new version of the user's
    playbook model; return the version number."""
    import mlflow

    from experiments.registry import record_version_tags
    from experiments.tracking import PLAYBOOKS_EXPERIMENT, ensure_store, retry_locked

    experiments = experiments or ensure_store()
    name = playbook_model_name(model.user_id)
    with tempfile.TemporaryDirectory(prefix="buddy-playbooks-") as tmp:
        artifact = Path(tmp) / ARTIFACT_FILE
        artifact.write_text(model.to_json())
        with mlflow.start_run(experiment_id=experiments.experiment_id(PLAYBOOKS_EXPERIMENT),
                              run_name=f"playbooks {model.user_id} {model.hash}",
                              tags={"buddy.playbooks_hash": model.hash,
                                    "buddy.user_id": model.user_id, **(tags or {})},
                              nested=mlflow.active_run() is not None) as run:
            retry_locked(lambda: mlflow.log_params({
                "user_id": model.user_id, "playbooks_hash": model.hash,
                "schema_version": model.schema_version, "n_playbooks": len(model.labels),
                "features": ",".join(model.features), "max_distance": model.max_distance,
                **{f"fit.{k}": v for k, v in model.params.items()}}))
            mlflow.log_artifact(str(artifact))
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*input example was not provided")
                info = mlflow.pyfunc.log_model(
                    name="playbooks_model", python_model=str(MODEL_CODE),
                    artifacts={ARTIFACT_KEY: str(artifact)},
                    pip_requirements=_requirements(), signature=_signature(),
                    metadata={"playbooks_hash": model.hash, "user_id": model.user_id})
    found = retry_locked(lambda: mlflow.register_model(info.model_uri, name))
    record_version_tags(experiments, name, str(found.version),
                        {"buddy.playbooks_hash": model.hash, "buddy.run_id": run.info.run_id})
    return int(found.version)


def _requirements() -> list[str]:
    from experiments.registry import pip_requirements

    return pip_requirements()


def _signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(outputs=Schema([ColSpec("string", "playbook", required=False),
                                          ColSpec("double", "distance")]))


def load_playbook_version(version: int | str, name: str) -> PlaybookModel:
    """Return version ``version`` of registered playbook model ``name``."""
    import mlflow

    from experiments.registry import RegistryError
    from experiments.tracking import point_mlflow_at_store

    point_mlflow_at_store()
    try:
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    except Exception as exc:
        raise RegistryError(f"cannot load {name} version {version}: {exc}") from exc
    return model.unwrap_python_model().playbooks


def load_playbooks(user_id: str, alias: str = "production") -> PlaybookModel | None:
    """Return ``user_id``'s playbooks at ``alias``, or None (no store, model or alias)."""
    from experiments.registry import alias_version
    from experiments.tracking import store_exists

    if not store_exists():
        return None
    name = playbook_model_name(user_id)
    found = alias_version(name, alias)
    return None if found is None else load_playbook_version(found, name)


def promote_playbooks(user_id: str, version: int | str, *,
                      gate: GateConfig = PLAYBOOK_GATE, scorer: ReplayScorer | None = None,
                      force: bool = False, reason: str = "", on_step: StepHook | None = None,
                      experiments: ExperimentStore | None = None) -> Promotion:
    """Promote version ``version`` of ``user_id``'s playbooks through the shared gate path
    (``scorer(playbooks, gate.window)`` returns the gate metrics of a playbook model)."""
    from experiments.registry import promote

    return promote(version, name=playbook_model_name(user_id), gate=gate, scorer=scorer,
                   force=force, reason=reason, on_step=on_step, experiments=experiments,
                   load=load_playbook_version)


def rollback_playbooks(user_id: str, *, reason: str = "",
                       experiments: ExperimentStore | None = None) -> Promotion:
    """Give ``production`` of ``user_id``'s playbooks back to the ``previous`` version."""
    from experiments.registry import rollback

    return rollback(playbook_model_name(user_id), reason=reason, experiments=experiments,
                    load=load_playbook_version)
