"""The look-ahead test: features at t computed from history up to t equal the full run's at t."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import pytest

from buddy.data.sample import SampleData, load_sample
from buddy.features.ta import FEATURE_COLUMNS, compute_features

FeatureFunction = Callable[[pd.DataFrame, pd.DataFrame | None], pd.DataFrame]

# AAPL has 2:1 splits inside the data (2000-06-21, 2005-02-28); EURUSD is 1-hour FX with
# intraday sessions; the rest are plain daily equities and indices.
SYMBOLS = ("AAPL", "IBM", "MSFT", "GOOG", "SP500", "NASDAQ", "EURUSD")
RANDOM_POINTS_PER_SYMBOL = 60
SEED = 20240607


@pytest.fixture(scope="module")
def sample() -> SampleData:
    """Return the real sample universe (loaded once per module)."""
    return load_sample()


def one_series(sample: SampleData, symbol: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (bars sorted by ts, this symbol's splits) for one symbol of the sample."""
    bars = sample.bars[sample.bars["symbol"] == symbol].sort_values("ts").reset_index(drop=True)
    actions = sample.corporate_actions
    splits = actions[(actions["symbol"] == symbol) & (actions["action"] == "split")]
    return bars, splits.reset_index(drop=True)


def check_points(bars: pd.DataFrame, splits: pd.DataFrame, seed: int) -> list[int]:
    """Return bar positions to check: seeded random ones plus the edges around each split."""
    rng = np.random.default_rng(seed)
    n = len(bars)
    points = set(rng.choice(n, size=min(RANDOM_POINTS_PER_SYMBOL, n), replace=False).tolist())
    points |= {0, 1, 13, 14, 19, 20, 33, 199, 200, n - 1}
    sessions = pd.to_datetime(bars["session"]).to_numpy()
    for ex_date in pd.to_datetime(splits["ex_date"]).to_numpy():
        first_after = int(np.searchsorted(sessions, ex_date, side="left"))
        points |= {first_after - 1, first_after, first_after + 1, first_after + 20}
    return sorted(p for p in points if 0 <= p < n)


def assert_point_in_time(
    compute: FeatureFunction,
    bars: pd.DataFrame,
    splits: pd.DataFrame,
    points: Iterable[int],
) -> None:
    """Assert that compute's row at each point equals its row from history known at that bar."""
    full = compute(bars, splits)[list(FEATURE_COLUMNS)].to_numpy()
    ex_dates = pd.to_datetime(splits["ex_date"])
    for position in points:
        t = bars["ts"].iloc[position]
        session = pd.Timestamp(bars["session"].iloc[position])
        known_bars = bars[bars["ts"] <= t]
        known_splits = splits[(ex_dates <= session).to_numpy()]
        row = compute(known_bars, known_splits)[list(FEATURE_COLUMNS)].to_numpy()[-1]
        np.testing.assert_array_equal(
            np.isnan(row), np.isnan(full[position]), err_msg=f"NaN pattern at {t}"
        )
        np.testing.assert_allclose(row, full[position], rtol=1e-9, err_msg=f"values at {t}")


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_features_at_t_use_only_bars_and_splits_known_at_t(sample: SampleData, symbol: str) -> None:
    bars, splits = one_series(sample, symbol)
    assert len(bars) > 1_000, f"{symbol}: expected a long real history"
    points = check_points(bars, splits, SEED + zlib.crc32(symbol.encode()))
    assert len(points) >= 50
    assert_point_in_time(compute_features, bars, splits, points)


def test_sample_covers_a_split_and_intraday_sessions(sample: SampleData) -> None:
    aapl_bars, aapl_splits = one_series(sample, "AAPL")
    in_data = pd.to_datetime(aapl_splits["ex_date"]).between(
        pd.Timestamp(aapl_bars["session"].iloc[1]), pd.Timestamp(aapl_bars["session"].iloc[-1])
    )
    assert in_data.any(), "AAPL's 2005 split must fall inside the data"
    fx_bars, _ = one_series(sample, "EURUSD")
    assert fx_bars["session"].duplicated().any(), "EURUSD must have several bars per session"


def test_the_check_catches_a_feature_that_peeks_one_bar_ahead(sample: SampleData) -> None:
    bars, splits = one_series(sample, "AAPL")

    def peeking(b: pd.DataFrame, s: pd.DataFrame | None) -> pd.DataFrame:
        feats = compute_features(b, s)
        feats["atr_14"] = feats["atr_14"].shift(-1)
        return feats

    with pytest.raises(AssertionError):
        assert_point_in_time(peeking, bars, splits, [500, 1_000, 2_000])


def test_the_check_catches_back_adjusted_prices(sample: SampleData) -> None:
    bars, splits = one_series(sample, "AAPL")

    def back_adjusting(b: pd.DataFrame, s: pd.DataFrame | None) -> pd.DataFrame:
        # What a vendor's adjusted history does: each split rescales every earlier bar, so
        # a bar's value changes when a later split becomes known.
        assert s is not None
        sessions = pd.to_datetime(b["session"]).to_numpy()
        later = np.ones(len(b))
        for ex_date, ratio in zip(pd.to_datetime(s["ex_date"]), s["ratio"], strict=True):
            later[sessions < ex_date.to_datetime64()] *= ratio
        adjusted = b.assign(**{c: b[c] / later for c in ("open", "high", "low", "close")})
        return compute_features(adjusted, None)

    between_the_splits = [300, 600, 900]  # after 2000-06-21, before 2005-02-28
    with pytest.raises(AssertionError, match="values at"):
        assert_point_in_time(back_adjusting, bars, splits, between_the_splits)


@pytest.mark.parametrize("ratio", [1.5, 3.0, 0.25])
def test_non_binary_split_ratios_are_point_in_time_too(ratio: float) -> None:
    rng = np.random.default_rng(11)
    n = 600
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
    ts = pd.date_range("2015-01-05", periods=n, freq="B", tz="UTC").astype("datetime64[us, UTC]")
    divisor = np.where(np.arange(n) >= 300, ratio, 1.0)
    bars = pd.DataFrame(
        {
            "symbol": "SYN",
            "timeframe": "1d",
            "ts": ts,
            "ts_close": ts + pd.Timedelta(hours=21),
            "session": ts.tz_localize(None).astype("datetime64[s]"),
            "open": close / divisor,
            "high": close * 1.01 / divisor,
            "low": close * 0.98 / divisor,
            "close": close / divisor,
            "volume": rng.integers(100, 1_000, n) * divisor,
            "adj_close": np.nan,
        }
    )
    splits = pd.DataFrame(
        {
            "symbol": ["SYN"],
            "ex_date": [bars["session"].iloc[300]],
            "action": ["split"],
            "ratio": [ratio],
            "source": ["synthetic"],
        }
    )
    assert_point_in_time(compute_features, bars, splits, check_points(bars, splits, SEED))
