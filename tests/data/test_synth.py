from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from buddy.data.calendars import get_calendar
from buddy.data.frames import BARS_COLUMNS, TICKERS_COLUMNS
from buddy.data.synth import SECTORS, synth_universe
from buddy.data.validation import validate_bars


def test_same_seed_same_universe_and_other_seed_differs() -> None:
    first = synth_universe(5, 2, "1d", seed=42)
    again = synth_universe(5, 2, "1d", seed=42)
    other = synth_universe(5, 2, "1d", seed=43)
    pd.testing.assert_frame_equal(first.bars, again.bars)
    pd.testing.assert_frame_equal(first.true_regimes, again.true_regimes)
    pd.testing.assert_frame_equal(first.tickers, again.tickers)
    assert not np.allclose(first.bars["close"], other.bars["close"])


def test_shapes_and_layout() -> None:
    universe = synth_universe(7, 3, "1d", seed=1)
    sessions = get_calendar("XNYS").sessions("2021-12-31", "2024-12-31")
    assert len(universe.tickers) == 7
    assert list(universe.tickers.columns) == list(TICKERS_COLUMNS)
    assert universe.tickers["symbol"].tolist()[:2] == ["SYN0001", "SYN0002"]
    assert list(universe.bars.columns) == list(BARS_COLUMNS)
    assert len(universe.bars) == 7 * len(sessions)
    assert list(universe.true_regimes.columns) == ["symbol", "timeframe", "ts", "trend_regime",
                                                   "vol_regime"]
    pd.testing.assert_series_equal(universe.true_regimes["ts"], universe.bars["ts"])
    assert set(universe.true_regimes["trend_regime"]) == {"trend_up", "trend_down", "range"}
    assert set(universe.true_regimes["vol_regime"]) == {"calm", "volatile"}
    assert set(universe.tickers["sector"]) == set(SECTORS)


def test_bars_pass_validation_daily_and_intraday() -> None:
    daily = synth_universe(20, 2, "1d", seed=2)
    assert validate_bars(daily.bars, get_calendar("XNYS"), "1d").ok
    hourly = synth_universe(3, 0.5, "1h", seed=2)
    report = validate_bars(hourly.bars, get_calendar("FX24x5"), "1h")
    assert report.ok and report.gaps.empty
    assert hourly.tickers["trading_calendar"].iloc[0] == "FX24x5"
    assert len(hourly.bars) % 24 == 0


def test_regimes_are_long_and_separable() -> None:
    universe = synth_universe(30, 10, "1d", seed=9)
    bars, regimes = universe.bars, universe.true_regimes
    vol = regimes["vol_regime"].to_numpy().reshape(30, -1)
    switches = (vol[:, 1:] != vol[:, :-1]).sum()
    assert 25 < vol.size / (switches + 30) < 100  # mean stay in bars
    returns = np.log(bars["close"]).groupby(bars["symbol"]).diff()
    realised = returns.groupby(regimes["vol_regime"]).std()
    assert realised["calm"] == pytest.approx(0.008, rel=0.1)
    assert realised["volatile"] == pytest.approx(0.025, rel=0.1)
    volume = bars["volume"].groupby(regimes["vol_regime"]).median()
    assert volume["volatile"] > 1.8 * volume["calm"]
    drift = returns.groupby(regimes["trend_regime"]).mean()
    assert drift["trend_up"] > 0.0005 > drift["range"] > -0.0005 > drift["trend_down"]


def test_open_is_near_previous_close() -> None:
    bars = synth_universe(5, 2, "1d", seed=4).bars
    previous = bars.groupby("symbol")["close"].shift()
    gap = np.log(bars["open"] / previous).dropna()
    assert gap.abs().quantile(0.99) < 0.03


def test_sector_members_correlate_more_than_strangers() -> None:
    universe = synth_universe(10, 10, "1d", seed=6)
    returns = np.log(universe.bars["close"]).groupby(universe.bars["symbol"]).diff()
    wide = pd.DataFrame(returns.to_numpy().reshape(10, -1).T,
                        columns=universe.tickers["symbol"]).dropna()
    corr = wide.corr().to_numpy()
    sector = universe.tickers["sector"].to_numpy()
    same = sector[:, None] == sector[None, :]
    off_diagonal = ~np.eye(10, dtype=bool)
    assert corr[same & off_diagonal].mean() > corr[~same].mean() + 0.1


def test_large_universe_has_the_expected_size() -> None:
    # speed lives in `make bench` (bulk_load builds this universe), never in a timed test
    universe = synth_universe(500, 10, "1d", seed=0)
    assert len(universe.bars) > 1_200_000
    assert universe.bars["symbol"].nunique() == 500


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="timeframe"):
        synth_universe(2, 1, "1w", seed=0)
    with pytest.raises(ValueError, match="n_symbols"):
        synth_universe(0, 1, "1d", seed=0)
    with pytest.raises(ValueError, match="years"):
        synth_universe(2, 0, "1d", seed=0)
