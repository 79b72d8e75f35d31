"""The end-to-end path behind ``make promote-demo``: log, replay, promote, report.

1. Build the store from the bundled real data when it holds no bars.
2. Register the packaged default scoring config as a new ``buddy-scoring`` version.
3. Promote it through the gate: the challenger is replayed on the gate's holdout window
   (the all-data corpus from 2012-03-01 to 2013-03-01: about 700 intents, stored as a
   'gate' run, never "the latest run") and the replay is logged as a run in
   ``buddy-replays``; with no production version yet it passes by definition, otherwise it
   is compared with production's replay on the same intents (paired bootstrap of the
   difference, at least 200 resolved trades: ``experiments.gate``). The decision is a run
   in ``buddy-promotions`` either way.
4. Print which config production consumers load now; ``buddy evaluate`` then reports it
   (``config buddy-scoring@<version> #<hash>``).

Each step is printed as a sentence while it happens. The MLflow runs are open while their
work runs (``experiments.tracking.tracked_run``): ``make mlflow-ui`` shows their duration.

``python -m experiments.pipeline [--db PATH] [--serial]``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from buddy.config import ScoringConfig, default_scoring_config
from buddy.store import Store
from experiments.gate import DEFAULT_GATE, GateConfig, ReplayHoldoutScorer
from experiments.registry import STEP_SENTENCES, Promotion


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineResult:
    """What the pipeline did: the registered version, the promotion and what is live now."""

    version: int
    promotion: Promotion
    production: ScoringConfig
    replay_runs: dict[str, tuple[str, str | None]]


def run_pipeline(db: str | os.PathLike[str] | None = None, *, gate: GateConfig = DEFAULT_GATE,
                 config: ScoringConfig | None = None, serial: bool = False,
                 echo: Callable[[str], None] = print) -> PipelineResult:
    """Register ``config`` (default: the packaged one), replay and promote it; return what
    happened. The store at ``db`` is built from the bundled data when empty."""
    from buddy.demo import prepare_store
    from experiments.registry import load_production_config, promote, register_config
    from experiments.tracking import ensure_store
    from replay.executors import LocalProcessExecutor, SerialExecutor

    store = Store(db)
    if store.bar_coverage().empty:
        echo(f"The database {store.path} holds no bars: building it from the bundled data.")
        prepare_store(store, echo=echo, progress=False)
    experiments = ensure_store()
    echo(f"Experiment store: {experiments.uri} (browse it with `make mlflow-ui`).")
    config = config or default_scoring_config()
    version = register_config(config, experiments=experiments)
    echo(f"Registered scoring config #{config.hash} as buddy-scoring v{version}.")
    rules = ", ".join(f"{r.metric} (tolerance {r.tolerance:g})" for r in gate.rules)
    echo(f"The gate replays it on the holdout window ({gate.window.describe()}) and asks it "
         f"to be no worse than production on {rules}, over at least {gate.min_n} resolved "
         "trades.")
    executor = SerialExecutor() if serial else LocalProcessExecutor(workers=2)
    scorer = ReplayHoldoutScorer(store, executor=executor, experiments=experiments)
    try:
        promotion = promote(version, gate=gate, scorer=scorer, experiments=experiments,
                            on_step=lambda step: echo(STEP_SENTENCES.get(step, step)))
    finally:
        executor.close()
    for config_hash, (replay_run, mlflow_run) in scorer.runs.items():
        echo(f"Config #{config_hash} was replayed on the holdout as replay run {replay_run}"
             + (f", logged as MLflow run {mlflow_run} in buddy-replays." if mlflow_run
                else "."))
    if promotion.comparison is not None and promotion.comparison.checks:
        echo(f"Comparison: {promotion.comparison}")
    echo(promotion.sentence())
    production = load_production_config() or default_scoring_config()
    echo(f"buddy evaluate will use {production.name}@{production.version} #{production.hash}")
    return PipelineResult(version=version, promotion=promotion, production=production,
                          replay_runs=dict(scorer.runs))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="DuckDB file (default: $BUDDY_DB, else the project's data/buddy.duckdb); "
                   "built from the bundled data when it holds no bars.")
@click.option("--serial", is_flag=True, help="Replay in this process (no worker processes).")
def main(db: Path | None, serial: bool) -> None:
    """Register the packaged scoring config, replay it on the gate's holdout and promote it.

    Exit code 0 when production moved (or already held it), 1 when the gate refused.
    """
    from buddy.paths import db_path

    path = db_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    result = run_pipeline(path, serial=serial, echo=click.echo)
    if not result.promotion.moved:
        raise SystemExit(1)


if __name__ == "__main__":
    main(prog_name="python -m experiments.pipeline")
