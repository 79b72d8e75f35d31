"""StrategyConsistencyEvaluator: its rules on a synthetic trader with two clear setups (known
answers), then the contract kit, point-in-time and the firing rates on the demo trader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from buddy.errors import ConfigError
from buddy.evaluators.strategy_consistency import (
    StrategyConsistencyConfig,
    _placements,
    _red_flags,
    _unusual,
    in_window,
)
from buddy.strategy.playbooks import PlaybookRecipe, fit_playbooks
from buddy.strategy.profile import build_profile
from buddy.strategy.provider import UserStrategy

AS_OF = datetime(2012, 1, 1, tzinfo=UTC)
#: Small and fast: the synthetic setups are far apart, a few resamples show it.
RECIPE = PlaybookRecipe(n_resamples=5)


def two_setups(n: int = 200, seed: int = 3) -> pd.DataFrame:
    """Return ``n`` closed trades from two setups: pullback longs (stop 1.2-1.8 ATR, close
    near the EMA20) and mean-reversion shorts (stop 2.5-3.0 ATR, stretched above the upper
    band); shorts on Fridays lose 1.5 R more (a planted red flag)."""
    rng = np.random.default_rng(seed)
    long = rng.random(n) < 0.5
    side = np.where(long, "long", "short")
    open_ts = [datetime(2010, 1, 4, tzinfo=UTC) + timedelta(days=int(d))
               for d in np.sort(rng.integers(0, 700, n))]
    weekday = np.array([t.weekday() for t in open_ts])
    r = rng.normal(0.3, 0.8, n)
    r[~long & (weekday == 4)] -= 1.5
    def pick(a: tuple[float, float], b: tuple[float, float]) -> np.ndarray:
        return np.where(long, rng.uniform(*a, n), rng.uniform(*b, n))
    return pd.DataFrame({
        "trade_id": [f"t{i:04d}" for i in range(n)], "open_ts": open_ts,
        "close_ts": [t + timedelta(hours=30) for t in open_ts],
        "pnl": r * 100, "pnl_r": r, "win": r > 0, "holding_hours": 30.0,
        "size_pct_equity": 10.0, "risk_pct_equity": 1.0,
        "side_sign": np.where(long, 1.0, -1.0), "stop_atr": pick((1.2, 1.8), (2.5, 3.0)),
        "reward_risk": pick((1.8, 2.2), (1.0, 1.4)),
        "close_ema20_atr": pick((-0.3, 0.3), (2.0, 2.6)), "bb_z": pick((-0.5, 0.5), (2.0, 2.5)),
        "high20_atr": pick((-1.5, -0.8), (-0.2, 0.2)), "trend_atr": pick((0.8, 1.2), (0.3, 0.6)),
        "rsi_14": pick((50, 58), (72, 80)), "symbol": "AAPL", "timeframe": "1d", "side": side,
        "hour_local": 16, "weekday": weekday, "regime": "uptrend", "alignment": 0.5,
        "level_ahead_atr": np.nan})


@pytest.fixture(scope="module")
def strategy() -> UserStrategy:
    facts = two_setups()
    profile = build_profile(facts, user_id="u1", as_of=AS_OF)
    fit = fit_playbooks(facts, RECIPE, user_id="u1", fitted_until=AS_OF)
    return UserStrategy(user_id="u1", as_of=AS_OF, n_closed=len(facts), profile=profile,
                        playbooks=fit, playbooks_source="default recipe, fitted as of test")


def ideas() -> pd.DataFrame:
    """Return three ideas: a pullback long like the trader's, a Friday short like theirs and
    a long with a 6 ATR stop far above the band (nothing like them), then one with no
    target."""
    base = two_setups(4, seed=9).drop(columns=["pnl", "pnl_r", "win"])
    rows = [
        dict(side_sign=1.0, side="long", stop_atr=1.5, reward_risk=2.0, close_ema20_atr=0.0,
             bb_z=0.0, high20_atr=-1.2, trend_atr=1.0, rsi_14=54, weekday=1),
        dict(side_sign=-1.0, side="short", stop_atr=2.7, reward_risk=1.2, close_ema20_atr=2.3,
             bb_z=2.2, high20_atr=0.0, trend_atr=0.45, rsi_14=76, weekday=4),
        dict(side_sign=1.0, side="long", stop_atr=6.0, reward_risk=0.5, close_ema20_atr=5.0,
             bb_z=4.0, high20_atr=3.0, trend_atr=-2.0, rsi_14=95, weekday=1),
        dict(side_sign=1.0, side="long", stop_atr=1.5, reward_risk=np.nan, close_ema20_atr=0.0,
             bb_z=0.0, high20_atr=-1.2, trend_atr=1.0, rsi_14=54, weekday=1),
    ]
    for i, row in enumerate(rows):
        for k, v in row.items():
            base.loc[i, k] = v
    return base


def test_config_refuses_a_strict_alpha_above_alpha_and_knows_the_reference_it_needs() -> None:
    with pytest.raises(ConfigError, match="strict_alpha"):
        StrategyConsistencyConfig(alpha=0.01, strict_alpha=0.05)
    assert StrategyConsistencyConfig(alpha=0.05).min_reference == 20  # 1/21 < 0.05 <= 1/20
    assert StrategyConsistencyConfig().min_reference == 100  # the default alpha, 0.01


def test_windows_include_the_start_exclude_the_end_and_wrap_past_midnight() -> None:
    at = pd.Timestamp("2012-06-01 09:30", tz="America/New_York")
    assert in_window(at, "09:30-11:30") and not in_window(at, "08:00-09:30")
    assert in_window(pd.Timestamp("2012-06-01 23:15", tz="UTC"), "22:00-02:00")
    assert in_window(pd.Timestamp("2012-06-01 01:59", tz="UTC"), "22:00-02:00")
    assert not in_window(pd.Timestamp("2012-06-01 02:00", tz="UTC"), "22:00-02:00")


def test_ideas_are_placed_in_their_setup_and_the_stranger_is_out_of_pattern(
        strategy: UserStrategy) -> None:
    fit = strategy.playbooks
    assert fit is not None and len(fit.playbooks) == 2, fit.text()
    facts = ideas()
    snap = np.zeros(len(facts), dtype=np.int64)
    placed = _placements(facts, snap, [strategy])
    assert placed["placed"].tolist() == [True, True, True, False]
    longs = next(p.number for p in fit.playbooks if p.centroid_raw["side_sign"] > 0)
    assert placed["playbook_number"][0] == longs and placed["membership"][0] > 0.5
    assert placed["playbook_number"][1] not in (None, longs)
    assert placed["playbook_n"][0] == next(p.n for p in fit.playbooks if p.number == longs)
    assert placed["win_rate_interval"][0].startswith("[")
    assert placed["p_value"][0] > 0.2 and placed["p_value"][1] > 0.2
    # nothing like it among 200 trades: the smallest p the reference allows
    assert placed["p_value"][2] == pytest.approx(1 / (fit.n_trades + 1))
    assert placed["playbook_number"][2] is None and placed["nearest_text"][2].startswith("#")
    assert "no target" in placed["reason"][3]
    unusual = _unusual(facts, snap, [strategy], np.array([0, 2]), 3)
    assert unusual[0] == "no single feature is outside your usual range"
    # farthest first in range widths: the trend (2.9), the stop (1.8), the 20-bar high (1.8)
    assert unusual[1].startswith("EMA20 - EMA50 -2.0 ATR against your usual ")
    assert "stop 6.0 ATR against your usual 1." in unusual[1]
    assert unusual[1].count("against your usual") == 3


def test_the_planted_red_flag_matches_friday_shorts_only(strategy: UserStrategy) -> None:
    flags = strategy.profile.red_flags
    assert any("Friday" in f.label or "weekday" in f.family for f in flags), \
        [f.text() for f in flags]
    facts = ideas()
    found = _red_flags(facts, np.zeros(len(facts), dtype=np.int64), [strategy])
    assert found["matched"][1] and not found["matched"][0]
    assert found["n_in"][1] >= 10 and found["difference_r"][1] < 0
    assert found["difference_interval"][1].startswith("95% [")
    assert found["correction"][1].startswith("Holm p=")
