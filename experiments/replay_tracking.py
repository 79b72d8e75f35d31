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
               experiments: ExperimentStore | None = None) -> str:
    """Log replay run ``run_id`` of ``store`` as an MLflow run; return the MLflow run id.

    ``metrics``/``results``/``issues`` are computed from the store when not given
    (``n_boot`` bootstrap draws for the intervals). ``notebooks``: executed notebooks to
    attach. ``experiments``: an opened experiment store (default: ``ensure_store()``).
    """
    from experiments.tracking import REPLAYS_EXPERIMENT, ensure_store, log_run
    from replay.calibration import calibration_metrics
    from replay.engine import issues_frame, results_frame, run_info

    info = run_info(store, run_id)
    results = results_frame(store, run_id) if results is None else results
    issues = issues_frame(store, run_id) if issues is None else issues
    if metrics is None:
        metrics = calibration_metrics(results, issues, n_boot=n_boot, seed=0)
    experiments = experiments or ensure_store()
    with tempfile.TemporaryDirectory(prefix="buddy-replay-") as tmp:
        folder = Path(tmp)
        files = [_parquet(results, folder / "results.parquet"),
                 _parquet(issues, folder / "issues.parquet")]
        config_file = folder / "scoring_config.json"
        config_file.write_text(json.dumps(info["config"], indent=2, sort_keys=True))
        files.append(config_file)
        plot_files = _plots(results, issues, folder / "plots", n_boot) if plots else []
        run = log_run(
            experiments, REPLAYS_EXPERIMENT, run_name=f"replay {info['name']}",
            params={**replay_params(info), **(extra_params or {})},
            metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)},
            tags={"buddy.replay_run_id": run_id, "buddy.config_hash": info["config_hash"],
                  **(tags or {})},
            artifacts=files)
        client = experiments.client
        for path in plot_files:
            client.log_artifact(run, str(path), "plots")
        for notebook in notebooks:
            client.log_artifact(run, str(notebook), "notebooks")
    return run


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

