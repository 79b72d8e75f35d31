"""Replays are experiments: log a stored replay run as an MLflow run.

One MLflow run per replay run, in the ``buddy-replays`` experiment:

- **params**: the replay run id and name, the config's name, version and hash, the intent
  source, the data range (first and last as_of), the number of intents, the intents' hash and
  the market data version, plus any ``extra_params``;
- **metrics**: ``replay.calibration.calibration_metrics`` (AUC, Spearman, decile spread, win
  rate, mean R, each with its interval, and per issue code ``flag__<CODE>__...``);
- **artifacts**: ``results.parquet`` and ``issues.parquet`` (the run's result and issue
  frames), ``scoring_config.json``, ``plots/*.png`` (outcome by score decile and by severity,
  mean R per flag) and ``notebooks/*.ipynb`` (executed notebooks given by the caller).

Tags: ``buddy.replay_run_id`` and ``buddy.config_hash``, so a run is found from either.
A metric without a value (a flag that never fired among resolved trades, an AUC with one
class) is not logged as NaN: its name is listed in the ``metrics_not_computed.json`` artifact
and counted in the tag ``buddy.n_metrics_not_computed``.

A replay done inside ``experiments.tracking.tracked_run`` (the gate's scorer) is logged into
that run (``mlflow_run_id``), so the run spans the replay itself: its duration is the
replay's. ``log_replay`` of a replay stored earlier opens a run of its own.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from buddy.store import Store
    from experiments.tracking import ExperimentStore


def replay_params(info: Mapping[str, Any]) -> dict[str, Any]:
    """Return the MLflow params of a replay run from ``replay.engine.run_info``."""
    return {"replay_run_id": info["run_id"], "replay_name": info["name"],
            "config_name": info["config_name"], "config_version": info["config_version"],
            "config_hash": info["config_hash"], "intent_source": info["intent_source"],
            "data_start": _iso(info["data_start"]), "data_end": _iso(info["data_end"]),
            "n_intents": int(info["n_intents"]), "intents_hash": info["intents_hash"],
            "market_data_version": int(info["market_data_version"]),
            "status": info["status"]}


def _iso(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return pd.Timestamp(value).isoformat()


def log_replay(store: Store, run_id: str, *, metrics: Mapping[str, float] | None = None,
               results: pd.DataFrame | None = None, issues: pd.DataFrame | None = None,
               notebooks: Sequence[str | Path] = (), plots: bool = True,
               tags: Mapping[str, str] | None = None,
               extra_params: Mapping[str, Any] | None = None, n_boot: int = 500,
               experiments: ExperimentStore | None = None,
               mlflow_run_id: str | None = None) -> str:
    """Log replay run ``run_id`` of ``store`` as an MLflow run; return the MLflow run id.

    ``metrics``/``results``/``issues`` are computed from the store when not given
    (``n_boot`` bootstrap draws for the intervals). ``notebooks``: executed notebooks to
    attach. ``experiments``: an opened experiment store (default: ``ensure_store()``).
    ``mlflow_run_id``: an open run to log into (default: a new run in ``buddy-replays``).
    """
    from experiments.tracking import REPLAYS_EXPERIMENT, ensure_store, tracked_run
    from replay.engine import run_info

    experiments = experiments or ensure_store()
    if mlflow_run_id is not None:
        _record(store, run_id, experiments, mlflow_run_id, metrics=metrics, results=results,
                issues=issues, notebooks=notebooks, plots=plots, tags=tags,
                extra_params=extra_params, n_boot=n_boot)
        return mlflow_run_id
    info = run_info(store, run_id)
    with tracked_run(experiments, REPLAYS_EXPERIMENT, run_name=f"replay {info['name']}",
                     description=replay_description(info)) as opened:
        _record(store, run_id, experiments, opened, metrics=metrics, results=results,
                issues=issues, notebooks=notebooks, plots=plots, tags=tags,
                extra_params=extra_params, n_boot=n_boot)
    return opened


def replay_description(info: Mapping[str, Any]) -> str:
    """Return a run description of a replay (the UI's Description) from ``run_info``."""
    return (f"Point-in-time replay '{info['name']}' of {int(info['n_intents'])} intents "
            f"({info['intent_source']}, {_iso(info['data_start'])[:10]} to "
            f"{_iso(info['data_end'])[:10]}) scored with {info['config_name']}"
            f"@{info['config_version']} #{info['config_hash']}.")


def _record(store: Store, run_id: str, experiments: ExperimentStore, mlflow_run_id: str, *,
            metrics: Mapping[str, float] | None, results: pd.DataFrame | None,
            issues: pd.DataFrame | None, notebooks: Sequence[str | Path], plots: bool,
            tags: Mapping[str, str] | None, extra_params: Mapping[str, Any] | None,
            n_boot: int) -> None:
    from experiments.tracking import log_values
    from replay.calibration import calibration_metrics
    from replay.engine import issues_frame, results_frame, run_info

    info = run_info(store, run_id)
    results = results_frame(store, run_id) if results is None else results
    issues = issues_frame(store, run_id) if issues is None else issues
    if metrics is None:
        metrics = calibration_metrics(results, issues, n_boot=n_boot, seed=0)
    numbers = {k: float(v) for k, v in metrics.items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    client = experiments.client
    with tempfile.TemporaryDirectory(prefix="buddy-replay-") as tmp:
        folder = Path(tmp)
        files = [_parquet(results, folder / "results.parquet"),
                 _parquet(issues, folder / "issues.parquet")]
        config_file = folder / "scoring_config.json"
        config_file.write_text(json.dumps(info["config"], indent=2, sort_keys=True))
        files.append(config_file)
        missing = log_values(
            experiments, mlflow_run_id, params={**replay_params(info), **(extra_params or {})},
            metrics=numbers, artifacts=files,
            tags={"buddy.replay_run_id": run_id, "buddy.config_hash": info["config_hash"],
                  **(tags or {})})
        missing_file = folder / "metrics_not_computed.json"
        missing_file.write_text(json.dumps(sorted(missing), indent=1))
        log_values(experiments, mlflow_run_id, artifacts=[missing_file],
                   tags={"buddy.n_metrics_not_computed": str(len(missing))})
        plot_files = _plots(results, issues, folder / "plots", n_boot) if plots else []
        for path in plot_files:
            client.log_artifact(mlflow_run_id, str(path), "plots")
        for notebook in notebooks:
            client.log_artifact(mlflow_run_id, str(notebook), "notebooks")


def _parquet(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False)
    return path


def _plots(results: pd.DataFrame, issues: pd.DataFrame, folder: Path, n_boot: int
           ) -> list[Path]:
    """Write the calibration charts as PNG files; charts without data are left out."""
    from replay.calibration import decile_table, flag_table, severity_reliability
    from replay.plots import decile_plot, flag_plot, reliability_plot

    folder.mkdir(parents=True, exist_ok=True)
    charts = {"deciles.png": lambda: decile_plot(decile_table(results, n_boot=n_boot)),
              "severity.png": lambda: reliability_plot(severity_reliability(results,
                                                                            n_boot=n_boot)),
              "flags.png": lambda: flag_plot(flag_table(results, issues, n_boot=n_boot))}
    written = []
    for name, draw in charts.items():
        try:
            figure = draw()
        except (ValueError, KeyError, IndexError):  # too little data for this chart
            continue
        path = folder / name
        figure.savefig(path, dpi=80)
        written.append(path)
    return written

