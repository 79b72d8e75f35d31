"""Small synthetic entry-facts frames with the documented columns (known answers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd


def synthetic_facts(n: int = 240, *, seed: int = 1, bad_r: float = -1.2,
                    start: datetime = datetime(2010, 1, 1, tzinfo=UTC), days: int = 600
                    ) -> pd.DataFrame:
    """Return ``n`` closed trades opened over ``days`` from ``start`` with every documented
    facts column; shorts in an uptrend regime lose ``bad_r`` R more than the rest (the
    planted red flag)."""
    rng = np.random.default_rng(seed)
    open_ts = [start + timedelta(hours=int(h)) for h in np.sort(rng.integers(0, 24 * days, n))]
    close_ts = [t + timedelta(hours=int(rng.integers(1, 72))) for t in open_ts]
    side = rng.choice(["long", "short"], n)
    regime = rng.choice(["uptrend", "downtrend", "range"], n)
    r = rng.normal(0.2, 1.0, n)
    r[(side == "short") & (regime == "uptrend")] += bad_r
    return pd.DataFrame({
        "trade_id": [f"t{i:04d}" for i in range(n)], "open_ts": open_ts, "close_ts": close_ts,
        "pnl": r * 100, "pnl_r": r, "win": pd.array(r > 0, dtype="boolean"),
        "holding_hours": [(c - o).total_seconds() / 3600
                          for o, c in zip(open_ts, close_ts, strict=True)],
        "size_pct_equity": rng.uniform(5, 20, n), "risk_pct_equity": rng.uniform(0.5, 1.5, n),
        "side_sign": np.where(side == "long", 1.0, -1.0), "stop_atr": rng.uniform(1, 2, n),
        "reward_risk": rng.choice([1.5, 2.0, np.nan], n),
        "close_ema20_atr": rng.normal(0, 1, n), "bb_z": rng.normal(0, 1, n),
        "high20_atr": rng.normal(-1, 1, n), "trend_atr": rng.normal(0, 1, n),
        "rsi_14": rng.uniform(20, 80, n), "symbol": rng.choice(["AAPL", "MSFT", "EURUSD"], n),
        "timeframe": rng.choice(["1d", "1h"], n), "side": side,
        # nullable integers with a few missing, as read_entry_facts returns them
        "hour_local": pd.array(np.where(rng.random(n) < 0.05, None, rng.integers(0, 24, n)),
                               dtype="Int32"),
        "weekday": pd.array(rng.integers(0, 5, n), dtype="Int32"),
        "regime": regime, "alignment": rng.normal(0, 0.5, n),
        "level_ahead_atr": np.where(rng.random(n) < 0.3, np.nan, rng.uniform(0, 5, n)),
    })
