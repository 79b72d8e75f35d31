"""``buddy experiments``: log, list, promote and roll back scoring configs; search weights.

Attached to the main CLI as a group; also runs on its own as ``python -m experiments.cli``.
The experiment store is $MLFLOW_TRACKING_URI, else ``sqlite:///<repo>/mlruns/mlflow.db``.
Exit codes: 0 done, 1 promotion refused by the gate, 2 error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from buddy.cli import accept_db, open_store
from buddy.errors import BuddyError


class _ExperimentsObj:
    def __init__(self, db: str | None) -> None:
        self.db = db

    def store(self) -> Any:
        # every command here reads the file: a --db naming none is refused, not created
        return open_store(self.db)


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.group("experiments", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", default=None, metavar="PATH",
              help="DuckDB file replays read (default: the main --db, $BUDDY_DB, "
                   "data/buddy.duckdb).")
@click.pass_context
def experiments(ctx: click.Context, db: str | None) -> None:
    """Version scoring configs in MLflow and promote them through the replay gate."""
    ctx.obj = _ExperimentsObj(db or getattr(ctx.obj, "db", None))


@experiments.command("log-config")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Scoring config JSON (default: the packaged default).")
@click.option("--model", default="buddy-scoring", show_default=True)
def log_config_cmd(path: Path | None, model: str) -> None:
    """Log a scoring config as a run and register it as a new model version."""
    from buddy.config import default_scoring_config
    from experiments.registry import register_config
    from replay.cli import config_from_file

    try:
        config = config_from_file("--file", path) if path else default_scoring_config()
        version = register_config(config, name=model)
    except (BuddyError, ValueError) as exc:
        _fail(exc)
    click.echo(f"registered {model} v{version} #{config.hash}")


@experiments.command("promote")
@click.option("--model", default="buddy-scoring", show_default=True)
@click.option("--version", "version", required=True, type=int, help="Version to promote.")
@click.option("--force", is_flag=True, help="Skip the gate (recorded as forced).")
@click.option("--reason", default="", help="Why (recorded with the decision).")
@click.option("--gate", "gate_path", type=click.Path(exists=True, dir_okay=False,
                                                     path_type=Path), default=None,
              help="Gate JSON (metrics, tolerances, holdout window; see experiments.gate).")
@click.option("--executor", "executor_kind", type=click.Choice(["local", "serial"]),
              default="local", show_default=True, help="How holdout replays run.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.pass_obj
def promote_cmd(obj: _ExperimentsObj, model: str, version: int, force: bool, reason: str,
                gate_path: Path | None, executor_kind: str, workers: int) -> None:
    """Move the production alias to VERSION if its holdout replay is no worse."""
    from experiments.gate import DEFAULT_GATE, GateConfig, ReplayHoldoutScorer
    from experiments.playbooks import (
        PLAYBOOK_GATE,
        PLAYBOOK_PREFIX,
        HoldoutCoverage,
        PlaybookGate,
        promote_playbook_model,
    )
    from experiments.registry import STEP_SENTENCES, promote
    from replay.executors import LocalProcessExecutor, SerialExecutor

    executor = SerialExecutor() if executor_kind == "serial" else LocalProcessExecutor(workers)
    on_step = lambda step: click.echo(STEP_SENTENCES.get(step, step))  # noqa: E731
    try:
        if model.startswith(PLAYBOOK_PREFIX):  # stability and later-holdout coverage
            rules = PlaybookGate.from_json(gate_path.read_text()) if gate_path else (
                PLAYBOOK_GATE)
            result = promote_playbook_model(
                model, version, scorer=None if force else HoldoutCoverage(obj.store(), rules),
                gate=rules, force=force, reason=reason, on_step=on_step)
        else:
            gate = GateConfig.from_file(gate_path) if gate_path else DEFAULT_GATE
            scorer = None if force else ReplayHoldoutScorer(obj.store(), executor=executor)
            result = promote(version, name=model, gate=gate, scorer=scorer, force=force,
                             reason=reason, on_step=on_step)
    except (BuddyError, ValueError) as exc:
        _fail(exc)
    finally:
        executor.close()
    if result.comparison is not None and result.comparison.checks:
        click.echo(f"Comparison: {result.comparison}")
    click.echo(result.sentence())
    if not result.moved:
        sys.exit(1)


@experiments.command("rollback")
@click.option("--model", default="buddy-scoring", show_default=True)
@click.option("--reason", default="", help="Why (recorded with the rollback).")
def rollback_cmd(model: str, reason: str) -> None:
    """Give the production alias back to the previous version."""
    from experiments.playbooks import PLAYBOOK_PREFIX, load_playbook_version
    from experiments.registry import rollback

    try:
        result = rollback(model, reason=reason, load=load_playbook_version
                          if model.startswith(PLAYBOOK_PREFIX) else None)
    except (BuddyError, ValueError) as exc:
        _fail(exc)
    click.echo(result.sentence())


@experiments.command("list")
@click.option("--model", default="buddy-scoring", show_default=True)
def list_cmd(model: str) -> None:
    """List the versions of a model with their aliases and config hashes."""
    from experiments.registry import list_versions

    versions = list_versions(model)
    if versions.empty:
        click.echo(f"{model}: no versions")
    else:
        click.echo(versions.to_string(index=False))


@experiments.command("show")
def show_cmd() -> None:
    """Print the config production consumers (buddy evaluate, Buddy.open) will use."""
    from buddy.config import default_scoring_config
    from experiments.registry import load_production_config

    config = load_production_config() or default_scoring_config()
    click.echo(f"{config.name}@{config.version} #{config.hash}")


@experiments.command("search-weights")
@click.option("--run-id", required=True, help="Replay run to fit on (buddy replay list).")
@click.option("--method", type=click.Choice(["logistic", "grid"]), default="logistic",
              show_default=True)
@click.option("--top", type=click.IntRange(min=0), default=None,
              help="Keep the best N candidates (by in-sample AUC).")
@click.option("--register", is_flag=True,
              help="Register each candidate as a buddy-scoring version (not promoted).")
@click.pass_obj
def search_weights_cmd(obj: _ExperimentsObj, run_id: str, method: str, top: int | None,
                       register: bool) -> None:
    """Propose weights from a replay, log each candidate as a run; the gate promotes."""
    from experiments.weights import describe, search_weights
    from replay.engine import ReplayError

    try:
        candidates = search_weights(obj.store(), run_id, method=method, top=top,
                                    register=register)
    except (BuddyError, ReplayError, ValueError) as exc:
        _fail(exc)
    click.echo(describe(candidates))


accept_db(experiments)  # `experiments promote --db PATH` as well as `experiments --db PATH ...`

if __name__ == "__main__":
    experiments(prog_name="experiments")
