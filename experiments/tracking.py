"""Where the experiment store lives, its experiments, and writes that survive a busy SQLite.

The store is MLflow on SQLite: ``sqlite:///<repo>/mlruns/mlflow.db`` with every artifact in a
folder per experiment next to it (``<repo>/mlruns/<experiment>/``). ``MLFLOW_TRACKING_URI``
overrides the location; for any ``sqlite:///`` URI the artifacts go to the folder holding the
database file, for a server URI (``http://...``) to the server's own artifact root.

The store is created on first use by ``ensure_store()``, which also creates every experiment
this package writes to. Creating them up front, in one process, matters: parallel workers
racing to create the same experiment (and the database tables) collide. Every client is
made by ``client_for()``, under an exclusive lock on ``<store>.lock`` next to a SQLite store:
MLflow creates (or upgrades) the tables when a client is made, and two processes doing that
at once fail ("duplicate column name: step", then alembic errors). SQLite allows one
writer at a time; MLflow waits up to 20 s for the lock, and ``retry_locked`` retries a write
that still failed with "database is locked".

Runs are opened when the work starts and closed when it ends (``tracked_run``), so the UI
shows their real duration, and a run that crashed is FAILED. Each carries MLflow's own context
tags (``mlflow.user``, ``mlflow.source.name``/``type``, ``mlflow.source.git.commit``: the
project's commit when the entry script lies outside the checkout) and, when opened inside
another run, ``buddy.parent_run_id`` (replays of a promotion live in another experiment, so not
``mlflow.parentRunId``). Every experiment carries ``mlflow.experimentKind =
custom_model_development``: without it MLflow 3's UI opens an experiment in its GenAI view.

``import mlflow`` takes seconds: it happens inside the functions that need it, never when
this module is imported. ``store_exists()`` answers without importing mlflow at all.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from buddy.retry import retry_while

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: The experiment tag MLflow 3's UI reads to choose its view, and the value of a classic
#: (non-GenAI) model-development experiment (mlflow/server/js: ExperimentKind).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: The run tag naming the run this one was opened inside (possibly in another experiment).
PARENT_TAG = "buddy.parent_run_id"
#: MLflow's run tag holding the run's description (the UI's "Description").
DESCRIPTION_TAG = "mlflow.note.content"

#: The experiments this package writes to, by purpose.
CONFIGS_EXPERIMENT = "buddy-scoring-configs"
REPLAYS_EXPERIMENT = "buddy-replays"
PROMOTIONS_EXPERIMENT = "buddy-promotions"
WEIGHT_SEARCH_EXPERIMENT = "buddy-weight-search"
PLAYBOOKS_EXPERIMENT = "buddy-playbooks"
EXPERIMENTS: tuple[str, ...] = (CONFIGS_EXPERIMENT, REPLAYS_EXPERIMENT, PROMOTIONS_EXPERIMENT,
                                WEIGHT_SEARCH_EXPERIMENT, PLAYBOOKS_EXPERIMENT)

#: Attempts and first back-off (seconds, doubled per attempt) of ``retry_locked``.
LOCK_RETRIES = 8
LOCK_BACKOFF_S = 0.2

T = TypeVar("T")


def quiet_downloads() -> None:
    """Turn MLflow's artifact download progress bars off unless the user set them: loading
    a config for every evaluation must not draw a bar on stderr."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def tracking_uri() -> str:
    """Return $MLFLOW_TRACKING_URI, else the SQLite store under the project's mlruns/
    (``buddy.paths.default_tracking_uri``: absolute, whatever the working directory)."""
    from buddy import paths

    return paths.tracking_uri()


def point_mlflow_at_store() -> MlflowClient:
    """Point mlflow's tracking and registry URIs at ``tracking_uri()`` (so ``models:/`` URIs
    load from it) and return a client on that store (callers check ``store_exists``
    first: a client on a missing SQLite file creates it)."""
    import mlflow

    uri = tracking_uri()
    quiet_downloads()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return client_for(uri)


@contextmanager
def first_use_lock(uri: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``<store>.lock`` beside the SQLite store at ``uri`` (default
    ``tracking_uri()``) for the block; nothing to lock for a server URI or a store whose
    folder does not exist yet (a client there fails on its own)."""
    db = sqlite_path(uri)
    if db is None or not db.parent.is_dir():
        yield
        return
    import fcntl  # POSIX: the lock is the kernel's, released when the process dies

    with open(db.with_name(db.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def client_for(uri: str) -> MlflowClient:
    """Return an MLflow client on the store at ``uri`` (tracking and registry), creating or
    upgrading a SQLite store's tables under ``first_use_lock`` so two processes never do it
    at once."""
    from mlflow import MlflowClient

    with first_use_lock(uri):
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        # the tracking store makes its tables with the client; the registry store makes
        # (or checks) them on its first call: both inside the lock
        client.search_registered_models(max_results=1)
    return client


def sqlite_path(uri: str | None = None) -> Path | None:
    """Return the database file of a ``sqlite:///`` URI (relative paths from the working
    directory, as MLflow reads them), or None for any other kind of store."""
    uri = uri or tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///")).resolve()


def artifact_root(uri: str | None = None) -> Path | None:
    """Return the folder experiments keep their artifacts in (None: the server decides)."""
    db = sqlite_path(uri)
    return None if db is None else db.parent


def store_exists(uri: str | None = None) -> bool:
    """Return whether the store has been created (always True for a server URI)."""
    db = sqlite_path(uri)
    return db is None or db.is_file()


@dataclass(frozen=True, slots=True)
class ExperimentStore:
    """An opened experiment store: its URI, a client bound to it and its experiments' ids."""

    uri: str
    client: MlflowClient
    experiment_ids: Mapping[str, str]

    def experiment_id(self, name: str) -> str:
        """Return the id of experiment ``name`` (one of EXPERIMENTS)."""
        return self.experiment_ids[name]


def ensure_store(uri: str | None = None) -> ExperimentStore:
    """Open the store at ``uri`` (default ``tracking_uri()``), creating the database and
    every experiment in EXPERIMENTS on first use; point mlflow's fluent API at it too."""
    import mlflow

    uri = uri or tracking_uri()
    root = artifact_root(uri)
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    quiet_downloads()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = client_for(uri)
    ids = {name: retry_locked(partial(_ensure_experiment, client, name, root))
           for name in EXPERIMENTS}
    return ExperimentStore(uri=uri, client=client, experiment_ids=ids)


def _ensure_experiment(client: MlflowClient, name: str, root: Path | None) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        if found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # a store made before
            client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return found.experiment_id
    location = None if root is None else (root / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location,
                                        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except MlflowException:  # another process created it first
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def is_locked_error(exc: BaseException) -> bool:
    """Return whether ``exc`` (or its cause) is SQLite's 'database is locked'."""
    while exc is not None:
        if "database is locked" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def retry_locked(action: Callable[[], T], *, attempts: int = LOCK_RETRIES,
                 backoff_s: float = LOCK_BACKOFF_S) -> T:
    """Return ``action()``, retrying with jittered back-off (from ``backoff_s`` seconds,
    doubled up to 5 s) while SQLite reports a lock, at most ``attempts`` calls."""
    return retry_while(action, busy=is_locked_error, attempts=attempts, first_s=backoff_s,
                       max_s=5.0)


_open_run: ContextVar[str | None] = ContextVar("buddy_open_run", default=None)


def context_tags() -> dict[str, str]:
    """Return the tags MLflow's fluent ``start_run`` sets (user, source, git commit), with
    the project's git commit when the entry script lies outside a checkout."""
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

    tags = {k: str(v) for k, v in resolve_tags().items()}
    if MLFLOW_GIT_COMMIT not in tags:
        commit = _project_commit()
        if commit:
            tags[MLFLOW_GIT_COMMIT] = commit
    return tags


@lru_cache(maxsize=1)
def _project_commit() -> str:
    from buddy.paths import project_root

    try:
        import git

        return str(git.Repo(project_root(), search_parent_directories=True).head.commit.hexsha)
    except Exception:  # no checkout, no git: the run simply has no commit tag
        return ""


@contextmanager
def tracked_run(store: ExperimentStore, experiment: str, *, run_name: str | None = None,
                tags: Mapping[str, str] | None = None, description: str = "",
                start_time_ms: int | None = None) -> Iterator[str]:
    """Open a run in ``experiment`` for the block and yield its id; close it FINISHED, or
    FAILED (and re-raise) when the block raises.

    The run carries ``context_tags()``, ``tags``, ``description`` (the UI's Description)
    and ``buddy.parent_run_id`` when opened inside another ``tracked_run``.
    ``start_time_ms``: when the work began, if before the block (epoch milliseconds).
    """
    client = store.client
    all_tags = {**context_tags(), "buddy.logged_by": "experiments",
                **{k: str(v) for k, v in (tags or {}).items()}}
    parent = _open_run.get()
    if parent is not None:
        all_tags.setdefault(PARENT_TAG, parent)
    if description:
        all_tags[DESCRIPTION_TAG] = description
    run = retry_locked(lambda: client.create_run(
        store.experiment_id(experiment), run_name=run_name, tags=all_tags,
        start_time=start_time_ms))
    run_id = run.info.run_id
    token = _open_run.set(run_id)
    try:
        yield run_id
    except BaseException:
        _open_run.reset(token)
        retry_locked(lambda: client.set_terminated(run_id, "FAILED"))
        raise
    _open_run.reset(token)
    retry_locked(lambda: client.set_terminated(run_id, "FINISHED"))


def log_values(store: ExperimentStore, run_id: str, *,
               params: Mapping[str, Any] | None = None,
               metrics: Mapping[str, float] | None = None,
               artifacts: Sequence[str | Path] = (),
               texts: Mapping[str, str] | None = None,
               tags: Mapping[str, str] | None = None) -> list[str]:
    """Log params, metrics, tags and files into open run ``run_id``; return the names of
    the metrics left out because they have no value (NaN or infinite: the UI would show NaN).

    Params and metrics go in batches of 100; ``artifacts`` are files copied into the run;
    ``texts`` maps an artifact file name to its content. Writes are retried on a lock.
    """
    from mlflow.entities import Metric, Param, RunTag

    client = store.client
    now = int(time.time() * 1000)
    batch_params = [Param(k, _param_text(v)) for k, v in (params or {}).items()]
    batch_tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    batch_metrics, missing = [], []
    for name, value in (metrics or {}).items():
        if math.isfinite(float(value)):
            batch_metrics.append(Metric(name, float(value), now, 0))
        else:
            missing.append(name)
    for start in range(0, max(len(batch_params), len(batch_metrics), len(batch_tags)), 100):
        retry_locked(partial(client.log_batch, run_id,
                             metrics=batch_metrics[start:start + 100],
                             params=batch_params[start:start + 100],
                             tags=batch_tags[start:start + 100]))
    for path in artifacts:
        client.log_artifact(run_id, str(path))
    for file_name, text in (texts or {}).items():
        client.log_text(run_id, text, file_name)
    return missing


def log_run(store: ExperimentStore, experiment: str, *, run_name: str | None = None,
            params: Mapping[str, Any] | None = None, metrics: Mapping[str, float] | None = None,
            tags: Mapping[str, str] | None = None, artifacts: Sequence[str | Path] = (),
            texts: Mapping[str, str] | None = None, description: str = "") -> str:
    """Log one run in ``experiment`` (``tracked_run`` + ``log_values``) and return its id.

    For a record that takes no work of its own (a rollback, a weight candidate); work that
    takes time opens ``tracked_run`` around it instead. A failure marks the run FAILED and
    is raised.
    """
    with tracked_run(store, experiment, run_name=run_name, tags=tags,
                     description=description) as run_id:
        log_values(store, run_id, params=params, metrics=metrics, artifacts=artifacts,
                   texts=texts)
    return run_id


def _param_text(value: Any) -> str:
    text = "" if value is None else str(value)
    return text[:6000]  # MLflow's limit on a param value
