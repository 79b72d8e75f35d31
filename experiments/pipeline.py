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

``python -m experiments.pipeline [--db PATH] [--serial]``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from buddy.config import ScoringConfig, default_scoring_config
from buddy.store import Store
from experiments.gate import DEFAULT_GATE, GateConfig, ReplayHoldoutScorer
from experiments.registry import Promotion


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
        prepare_store(store, echo=echo, progress=False)
    experiments = ensure_store()
    echo(f"experiment store: {experiments.uri}")
    config = config or default_scoring_config()
    version = register_config(config, experiments=experiments)
    echo(f"registered buddy-scoring v{version} #{config.hash}")
    echo(f"gate: {', '.join(f'{r.metric} (tolerance {r.tolerance:g})' for r in gate.rules)}; "
         f"holdout {gate.window.describe()}")
    executor = SerialExecutor() if serial else LocalProcessExecutor(workers=2)
    scorer = ReplayHoldoutScorer(store, executor=executor)
    try:
        promotion = promote(version, gate=gate, scorer=scorer, experiments=experiments,
                            on_step=lambda step: echo(f"  .. {step}"))
    finally:
        executor.close()
    echo(str(promotion))
    for config_hash, (replay_run, mlflow_run) in scorer.runs.items():
        echo(f"replay of #{config_hash}: replay run {replay_run}, MLflow run {mlflow_run}")
    production = load_production_config() or default_scoring_config()
    echo(f"buddy evaluate will use {production.name}@{production.version} #{production.hash}")
    return PipelineResult(version=version, promotion=promotion, production=production,
                          replay_runs=dict(scorer.runs))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the pipeline from the command line; exit 1 when the gate refused."""
    parser = argparse.ArgumentParser(prog="python -m experiments.pipeline",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=os.environ.get("BUDDY_DB", "data/buddy.duckdb"),
                        help="DuckDB file (default: $BUDDY_DB or data/buddy.duckdb)")
    parser.add_argument("--serial", action="store_true", help="replay in this process")
    args = parser.parse_args(argv)
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    result = run_pipeline(args.db, serial=args.serial)
    return 0 if result.promotion.moved else 1


if __name__ == "__main__":
    raise SystemExit(main())
