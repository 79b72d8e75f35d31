"""Rule labels: each state on its constructed case, thresholds from config, warm-up as None,
the split basis, and the spread proxy agreeing with risk_reward's estimator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from buddy.features.spread import corwin_schultz_spread
from buddy.regime.rules import (
    RegimeRulesConfig,
    corwin_schultz_pairs,
    regime_rules,
    split_basis,
)

N = 400


def frame(**columns: np.ndarray | float) -> pd.DataFrame:
    """Return N bars of a flat, orderly market: close 100, range 1, ATR 1, ADX 15, rv 0.2,
    small alternating returns, relative volume 1; ``columns`` override."""
    rng = np.random.default_rng(3)
    close = np.full(N, 100.0)
    values: dict[str, np.ndarray | float] = dict(
        high=close + 0.5 + rng.uniform(0, 0.1, N), low=close - 0.5 - rng.uniform(0, 0.1, N),
        close=close, ema_20=close, atr_14=1.0, adx_14=15.0,
        rv_20=0.2 * np.exp(rng.normal(0, 0.1, N)), ret_1=0.01 * np.where(np.arange(N) % 2, 1, -1),
        relvol_20=1.0)
    values.update(columns)
    return pd.DataFrame({k: np.broadcast_to(v, N).astype(float) for k, v in values.items()})


def last(result: pd.DataFrame, column: str) -> object:
    return result[column].iloc[-1]


CONFIG = RegimeRulesConfig()


@pytest.mark.parametrize(("slope", "adx", "state"), [(0.1, 30.0, "up"), (-0.1, 30.0, "down"),
                                                     (0.1, 15.0, "range"),
                                                     (0.01, 30.0, "range")])
def test_trend_needs_adx_and_an_ema_slope_in_atr(slope: float, adx: float, state: str) -> None:
    ema = 100.0 + slope * np.arange(N)  # ATR 1: the slope is in ATR per bar
    result = regime_rules(frame(ema_20=ema, adx_14=adx), CONFIG)
    assert last(result, "trend_state") == state
    assert last(result, "ema_slope_atr") == pytest.approx(slope)
    assert last(result, "trend_strength") == adx


def test_volatility_states_follow_the_z_score_of_log_rv() -> None:
    rv = frame()["rv_20"].to_numpy().copy()
    rv[-1] = 0.6
    assert last(regime_rules(frame(rv_20=rv), CONFIG), "vol_state") == "volatile"
    rv[-1] = 0.12
    result = regime_rules(frame(rv_20=rv), CONFIG)
    assert last(result, "vol_state") == "calm" and last(result, "vol_z") < -3
    assert last(regime_rules(frame(), CONFIG), "vol_state") == "normal"
    loose = RegimeRulesConfig(calm_vol_z=-10.0)
    assert last(regime_rules(frame(rv_20=rv), loose), "vol_state") == "normal"


def test_expansion_flag_compares_short_and_20_bar_return_volatility() -> None:
    ret = frame()["ret_1"].to_numpy().copy()
    ret[-3:] = [0.05, -0.06, 0.05]
    result = regime_rules(frame(ret_1=ret), CONFIG)
    assert last(result, "vol_expansion_flag") == 1.0
    assert last(regime_rules(frame(), CONFIG), "vol_expansion_flag") == 0.0


def test_liquidity_from_relative_volume_and_a_widening_spread() -> None:
    assert last(regime_rules(frame(relvol_20=0.3), CONFIG), "liquidity_state") == "thin"
    assert last(regime_rules(frame(relvol_20=2.5), CONFIG), "liquidity_state") == "heavy"
    assert last(regime_rules(frame(), CONFIG), "liquidity_state") == "normal"
    base = frame()
    high, low = base["high"].to_numpy().copy(), base["low"].to_numpy().copy()
    high[-20:] += 3.0  # the last bars' ranges (and the spread proxy) widen
    low[-20:] -= 3.0
    result = regime_rules(frame(high=high, low=low), CONFIG)
    assert last(result, "liquidity_state") == "thin"
    assert last(result, "spread_proxy") > 2 * result["spread_proxy"].iloc[-100]


def test_states_are_none_while_their_inputs_warm_up() -> None:
    adx = np.full(N, 30.0)
    adx[:27] = np.nan
    result = regime_rules(frame(adx_14=adx), CONFIG)
    assert result["trend_state"].iloc[:27].isna().all()
    assert result["trend_state"].iloc[27:].notna().all()
    assert result["vol_state"].iloc[:CONFIG.vol_z_min_bars - 1].isna().all()
    assert result["vol_state"].iloc[CONFIG.vol_z_min_bars - 1:].notna().all()
    assert result["liquidity_state"].iloc[:CONFIG.spread_window].isna().all()


def test_rules_at_t_use_bars_up_to_t_only() -> None:
    rng = np.random.default_rng(9)
    base = frame(adx_14=rng.uniform(10, 40, N), ema_20=100 + np.cumsum(rng.normal(0, 0.2, N)),
                 relvol_20=rng.uniform(0.3, 2.5, N), ret_1=rng.normal(0, 0.01, N))
    full = regime_rules(base, CONFIG)
    for t in (30, 90, 250, 399):
        prefix = regime_rules(base.iloc[:t + 1], CONFIG)
        pd.testing.assert_series_equal(prefix.iloc[-1], full.iloc[t])


def test_split_basis_applies_each_split_from_its_ex_date_on() -> None:
    sessions = pd.to_datetime(["2005-02-24", "2005-02-25", "2005-02-28", "2005-03-01"]
                              ).to_numpy(dtype="datetime64[D]")
    splits = pd.DataFrame({"ex_date": pd.to_datetime(["2000-06-21", "2005-02-28"]),
                           "ratio": [2.0, 2.0], "action": ["split", "split"]})
    np.testing.assert_array_equal(split_basis(sessions, splits), [1.0, 1.0, 2.0, 2.0])
    np.testing.assert_array_equal(split_basis(sessions, None), [1.0] * 4)


def test_spread_pairs_agree_with_risk_rewards_two_bar_estimator() -> None:
    rng = np.random.default_rng(5)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, 50)))
    high = close * (1 + rng.uniform(0.001, 0.02, 50))
    low = close * (1 - rng.uniform(0.001, 0.02, 50))
    pairs = corwin_schultz_pairs(high, low, close)
    assert np.isnan(pairs[0])
    for i in range(1, 50):
        expected, _ = corwin_schultz_spread(high[i - 1:i + 1], low[i - 1:i + 1],
                                         close[i - 1:i + 1])
        assert pairs[i] == pytest.approx(expected, abs=1e-15)
