"""Profile the batch context build: CPU seconds of the series reads and of each piece
provider's batch form, over a small synthetic universe (rerunnable; not part of make bench).

Run: ``python -m benchmarks.context_reads [--symbols 30] [--years 8] [--intents 20000]
[--chunks 2] [--profile]``. The universe is built once under $TMPDIR/context_reads (reused
while the parameters match). The build runs ``chunks`` times over equal slices of the
intents, as replay's workers do, in this one process: the later chunks show what a
per-process read cache saves.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from buddy.api import default_providers
from buddy.batch import builder
from buddy.batch import pieces as batch_pieces
from buddy.jobs.features import run_features_job
from buddy.jobs.levels import run_levels_job
from buddy.jobs.load import synth_into
from buddy.jobs.regime import run_regime_job
from buddy.store import Store
from buddy.timeframes import Timeframe
from buddy.users.store import set_user

USER = "replay"


def universe(symbols: int, years: int, n_intents: int) -> tuple[Store, pd.DataFrame]:
    """Return the synthetic store and its intents (built once per parameter set)."""
    from replay.intents import generate_intents  # the harness sits above buddy

    root = Path(os.environ.get("TMPDIR", tempfile.gettempdir())) / "context_reads"
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"u_{symbols}x{years}.duckdb"
    intents_path = root / f"u_{symbols}x{years}_{n_intents}.parquet"
    if not path.exists():
        store = Store(path)
        synth_into(store, n_symbols=symbols, years=years, timeframe=Timeframe.D1, seed=11)
        run_features_job(store, progress=False)
        run_regime_job(store, workers=2, progress=False)
        run_levels_job(store, workers=2, progress=False)
        set_user(store, USER, equity=1_000_000.0, base_currency="USD")
    store = Store(path)
    if not intents_path.exists():
        intents = generate_intents(store, "random", timeframe="1d", seed=3, user_id=USER,
                                   entry_probability=1.0)
        intents = intents.sample(min(n_intents, len(intents)), random_state=1
                                 ).reset_index(drop=True)
        intents.to_parquet(intents_path)
    return store, pd.read_parquet(intents_path)


def timed_build(store: Store, intents: pd.DataFrame, chunks: int) -> dict[str, float]:
    """Return CPU seconds per part (reads and base build, each provider) over ``chunks``."""
    spent: dict[str, float] = defaultdict(float)
    real_provide = batch_pieces.provide

    def provide(name: str, provider: Any, request: Any) -> Any:
        started = time.process_time()
        try:
            return real_provide(name, provider, request)
        finally:
            spent[name] += time.process_time() - started

    builder.provide = provide  # type: ignore[assignment]
    try:
        for part in np.array_split(np.arange(len(intents)), chunks):
            started = time.process_time()
            before = sum(spent.values())
            builder.build_batch_context(store, intents.iloc[part].reset_index(drop=True),
                                        providers=default_providers())
            spent["series reads + base"] += (time.process_time() - started
                                             - (sum(spent.values()) - before))
    finally:
        builder.provide = real_provide  # type: ignore[assignment]
    return dict(spent)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--symbols", type=int, default=30, show_default=True,
              help="Synthetic symbols in the universe.")
@click.option("--years", type=int, default=8, show_default=True, help="Years of daily bars.")
@click.option("--intents", "n_intents", type=int, default=20_000, show_default=True,
              help="Intents built (a random sample of the generator's).")
@click.option("--chunks", type=int, default=2, show_default=True,
              help="Equal slices built one after another, as replay's workers do.")
@click.option("--profile", is_flag=True, help="Also print the top of a cProfile.")
def main(symbols: int, years: int, n_intents: int, chunks: int, profile: bool) -> None:
    """Print the CPU seconds of each part of the batch context build."""
    store, intents = universe(symbols, years, n_intents)
    print(f"{len(intents):,} intents, {symbols} symbols x {years} y daily, {chunks} chunks")
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    spent = timed_build(store, intents, chunks)
    if profiler:
        profiler.disable()
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<22} {seconds:7.2f} CPU s")
    print(f"  {'total':<22} {sum(spent.values()):7.2f} CPU s")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)


if __name__ == "__main__":
    main()
