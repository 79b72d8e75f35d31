"""Deterministic stand-ins and configs for the experiments tests (no mocks of our code)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from buddy.config import ScoringConfig, default_scoring_config
from experiments.gate import GateConfig, HoldoutWindow

#: The first promotion passes by definition; its holdout replay is for the record only, so a
#: small window keeps the tests about where the production config is read from.
SMALL_GATE = GateConfig(window=HoldoutWindow(symbols=("AAPL",), timeframe="1d",
                                             start="2012-06-01", end="2012-09-01"))
REPO = Path(__file__).resolve().parents[2]
#: One `buddy evaluate` a fresh process runs against a test database (no log).
EVALUATE = ["evaluate", "--user", "cli-user", "--symbol", "AAPL", "--side", "long",
            "--timeframe", "1d", "--entry", "560.99", "--stop", "540", "--target", "600",
            "--size", "10", "--as-of", "2012-06-01", "--json", "--no-log"]


def heavier_risk_config() -> ScoringConfig:
    """Return the default config with the risk/reward weight doubled (another hash)."""
    base = default_scoring_config()
    modules = tuple(dataclasses.replace(m, weight=m.weight * 2) if m.name == "risk_reward"
                    else m for m in base.modules)
    return dataclasses.replace(base, modules=modules)


@dataclass
class TableScorer:
    """A ReplayScorer whose metrics are a table keyed by config hash (what a replay of that
    config on the window would have measured); records each call."""

    table: Mapping[str, Mapping[str, float]]
    calls: list[tuple[str, HoldoutWindow]] = field(default_factory=list)

    def __call__(self, config: ScoringConfig, window: HoldoutWindow) -> Mapping[str, float]:
        self.calls.append((config.hash, window))
        return self.table[config.hash]


def log_runs_worker(uri: str, worker: int, n_runs: int) -> list[str]:
    """Log ``n_runs`` runs into the replays experiment of the store at ``uri`` (a spawned
    process's target); return their run ids."""
    from experiments.tracking import REPLAYS_EXPERIMENT, ensure_store, log_run

    store = ensure_store(uri)
    return [log_run(store, REPLAYS_EXPERIMENT, run_name=f"w{worker}-r{i}",
                    params={"worker": worker, "index": i},
                    metrics={"auc": 0.5 + worker / 10 + i / 100, "n": float(i)},
                    tags={"buddy.test": "concurrency"},
                    texts={"note.txt": f"worker {worker} run {i}"})
            for i in range(n_runs)]
