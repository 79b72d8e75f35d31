"""Synthetic replay frames with a known relation between score and outcome."""

from __future__ import annotations

import numpy as np
import pandas as pd

from replay.model import ISSUE_COLUMNS

WEIGHTS = {"data_quality": 1.0, "risk_reward": 3.0, "exit_plan": 2.0}


def results_frame(n: int = 600, *, separation: float = 1.0, seed: int = 0,
                  years: tuple[int, int] = (2008, 2011), run_id: str = "run-1") -> pd.DataFrame:
    """Return a results frame whose score orders R by ``separation`` (0 = no relation).

    ``risk_reward`` and ``exit_plan`` carry the signal; ``data_quality`` is 100 on every row
    (a module that cannot separate anything). The overall score is the orchestrator's weighted
    mean of the three with ``WEIGHTS``. R is the latent quality plus noise, win is R > 0.
    """
    rng = np.random.default_rng(seed)
    quality = rng.standard_normal(n)
    risk_reward = np.clip(50 + 15 * quality + 5 * rng.standard_normal(n), 0, 100)
    exit_plan = np.clip(50 + 10 * quality + 10 * rng.standard_normal(n), 0, 100)
    data_quality = np.full(n, 100.0)
    overall = (WEIGHTS["data_quality"] * data_quality + WEIGHTS["risk_reward"] * risk_reward
               + WEIGHTS["exit_plan"] * exit_plan) / sum(WEIGHTS.values())
    realized_r = separation * 0.6 * quality + rng.standard_normal(n)
    first, last = years
    day = rng.integers(0, 365 * (last - first + 1), n)
    as_of = pd.Timestamp(f"{first}-01-01", tz="UTC") + pd.to_timedelta(day, unit="D")
    severity = np.select([overall < 55, overall < 68], ["high", "medium"], "info")
    return pd.DataFrame({
        "run_id": run_id, "intent_id": [f"i{k:05d}" for k in range(n)], "symbol": "TEST",
        "timeframe": "1d", "side": "long", "as_of": as_of, "overall_score": overall.round(1),
        "overall_severity": severity, "n_issues": 1,
        "score__data_quality": data_quality, "score__risk_reward": risk_reward,
        "score__exit_plan": exit_plan, "exit_reason": "time", "realized_r": realized_r,
        "win": realized_r > 0,
    })


def issues_frame(rows: list[tuple[str, str, str]], run_id: str = "run-1") -> pd.DataFrame:
    """Return an issues frame from (intent_id, module, code) rows, severity 'medium'."""
    return pd.DataFrame([(run_id, i, m, c, "medium") for i, m, c in rows],
                        columns=list(ISSUE_COLUMNS))
