"""Known values of buddy.features.ta against independent calculations on synthetic bars."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from buddy.features.ta import (
    BARS_PER_YEAR,
    FEATURE_COLUMNS,
    FEATURE_UNITS,
    PRICE_LEVEL_FEATURES,
    compute_features,
)
from buddy.timeframes import Timeframe

with warnings.catch_warnings():
    warnings.simplefilter("ignore", pd.errors.Pandas4Warning)  # at its import; see ta.py
    import pandas_ta_classic as pta

Walk = tuple[pd.DataFrame, pd.DataFrame]

SCALE_FREE_FEATURES = tuple(c for c in FEATURE_COLUMNS if c not in PRICE_LEVEL_FEATURES)


def make_bars(
    close: np.ndarray,
    *,
    high: np.ndarray | None = None,
    low: np.ndarray | None = None,
    volume: np.ndarray | None = None,
    symbol: str = "TEST",
    start: str = "2020-01-06",
) -> pd.DataFrame:
    """Return canonical daily bars (one session per business day) around the given closes."""
    n = len(close)
    ts = pd.date_range(start, periods=n, freq="B", tz="UTC").astype("datetime64[us, UTC]")
    return pd.DataFrame(
        {
            "symbol": symbol,
            "timeframe": "1d",
            "ts": ts,
            "ts_close": ts + pd.Timedelta(hours=21),
            "session": ts.tz_localize(None).astype("datetime64[s]"),
            "open": close,
            "high": close * 1.01 if high is None else high,
            "low": close * 0.99 if low is None else low,
            "close": close,
            "volume": np.full(n, 1_000.0) if volume is None else volume,
            "adj_close": np.nan,
        }
    )


def random_walk(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return high, low, close, volume of a seeded geometric random walk around 100."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.015, n)))
    high = close * (1 + rng.uniform(0.0, 0.02, n))
    low = close * (1 - rng.uniform(0.0, 0.02, n))
    volume = rng.integers(1_000, 5_000, n).astype("float64")
    return high, low, close, volume


@pytest.fixture(scope="module")
def walk() -> Walk:
    """Return 400 seeded random-walk bars and their features."""
    high, low, close, volume = random_walk(400, seed=7)
    bars = make_bars(close, high=high, low=low, volume=volume)
    return bars, compute_features(bars)


def wilder(values: np.ndarray, period: int, first: int) -> np.ndarray:
    """Wilder's average seeded with the simple mean of values[first : first + period]."""
    out = np.full(len(values), np.nan)
    seed_at = first + period - 1
    out[seed_at] = values[first : first + period].mean()
    for i in range(seed_at + 1, len(values)):
        out[i] = (out[i - 1] * (period - 1) + values[i]) / period
    return out


def ema_seeded(
    values: np.ndarray, period: int, first: int = 0, seed_from: int | None = None
) -> np.ndarray:
    """EMA with k = 2 / (period + 1), seeded at first + period - 1 by an SMA.

    The SMA covers values[seed_from : first + period] (default: the period values ending there).
    """
    seed_at = first + period - 1
    seed_from = first if seed_from is None else seed_from
    out = np.full(len(values), np.nan)
    out[seed_at] = values[seed_from : seed_at + 1].mean()
    k = 2.0 / (period + 1)
    for i in range(seed_at + 1, len(values)):
        out[i] = values[i] * k + out[i - 1] * (1 - k)
    return out


# --- contract -------------------------------------------------------------------------------


def test_output_has_identity_then_float_features_one_row_per_bar(walk: Walk) -> None:
    bars, feats = walk
    assert list(feats.columns) == ["symbol", "timeframe", "ts", *FEATURE_COLUMNS]
    assert len(feats) == len(bars)
    assert feats.index.equals(bars.index)
    assert (feats["ts"] == bars["ts"]).all()
    assert all(feats[c].dtype == np.float64 for c in FEATURE_COLUMNS)
    assert len(set(FEATURE_COLUMNS)) == len(FEATURE_COLUMNS)
    assert set(PRICE_LEVEL_FEATURES) <= set(FEATURE_COLUMNS)
    assert set(FEATURE_UNITS) == set(FEATURE_COLUMNS)
    # every feature is defined after the longest warm-up (200 bars)
    assert feats[list(FEATURE_COLUMNS)].iloc[200:].notna().all().all()


def test_warm_up_lengths_match_talib_lookbacks(walk: Walk) -> None:
    _, feats = walk
    first_valid = {c: int(feats[c].notna().to_numpy().argmax()) for c in FEATURE_COLUMNS}
    assert first_valid["atr_14"] == 14
    assert first_valid["rsi_14"] == 14
    assert first_valid["adx_14"] == 27
    assert first_valid["sma_200"] == 199
    assert first_valid["ema_50"] == 49
    assert first_valid["bb_upper_20_2"] == 19
    assert first_valid["macd_12_26_9"] == 33
    assert first_valid["relvol_20"] == 20
    assert first_valid["rv_20"] == 20
    assert first_valid["ret_5"] == 5
    assert first_valid["vwap_session"] == 0


def test_empty_bars_give_empty_frame_with_all_columns() -> None:
    feats = compute_features(make_bars(np.array([])))
    assert list(feats.columns) == ["symbol", "timeframe", "ts", *FEATURE_COLUMNS]
    assert len(feats) == 0
    assert all(feats[c].dtype == np.float64 for c in FEATURE_COLUMNS)


def test_short_history_is_all_warm_up_not_an_error() -> None:
    feats = compute_features(make_bars(np.array([10.0, 10.5, 10.2])))
    assert feats["ret_1"].notna().sum() == 2
    assert feats["rv_20"].isna().all()
    assert feats["sma_20"].isna().all()
    assert feats["vwap_session"].notna().all()


def test_one_bar_has_vwap_equal_to_typical_price() -> None:
    feats = compute_features(make_bars(np.array([10.0])))
    assert feats["vwap_session"].iloc[0] == pytest.approx((10.1 + 9.9 + 10.0) / 3)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.assign(symbol=["A"] * 5 + ["B"] * 5), "one symbol"),
        (lambda b: b.iloc[::-1], "strictly increasing"),
        (lambda b: b.drop(columns="volume"), "missing columns"),
        (lambda b: b.assign(timeframe="2d"), "timeframe"),
    ],
)
def test_invalid_bars_are_rejected(
    mutate: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    bars = make_bars(np.linspace(10, 11, 10))
    with pytest.raises(ValueError, match=message):
        compute_features(mutate(bars))


# --- known values ---------------------------------------------------------------------------


def test_sma_and_ema_match_pandas_with_talib_seeding(walk: Walk) -> None:
    bars, feats = walk
    close = bars["close"].to_numpy()
    for period in (20, 50, 200):
        sma = bars["close"].rolling(period).mean().to_numpy()
        np.testing.assert_allclose(feats[f"sma_{period}"], sma, rtol=1e-12)
        np.testing.assert_allclose(feats[f"ema_{period}"], ema_seeded(close, period), rtol=1e-12)


def test_rsi_matches_hand_wilder_on_a_short_series() -> None:
    # fmt: off
    close = np.array([
        44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03,
        45.61, 46.28, 46.28, 46.00, 46.03, 46.41, 46.22, 45.64, 46.21, 46.25, 45.71, 46.45,
    ])
    # fmt: on
    change = np.diff(close, prepend=np.nan)
    avg_gain = wilder(np.clip(change, 0, None), 14, first=1)
    avg_loss = wilder(np.clip(-change, 0, None), 14, first=1)
    expected = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    feats = compute_features(make_bars(close))
    np.testing.assert_allclose(feats["rsi_14"], expected, rtol=1e-12)
    # the textbook (Wilder / StockCharts) value for this series at bar 14
    assert feats["rsi_14"].iloc[14] == pytest.approx(70.46, abs=0.01)


def test_atr_is_wilder_seeded_with_the_mean_of_the_first_14_true_ranges(walk: Walk) -> None:
    bars, feats = walk
    high, low, close = (bars[c].to_numpy() for c in ("high", "low", "close"))
    prev_close = np.concatenate(([np.nan], close[:-1]))
    true_range = np.fmax(high - low, np.fmax(abs(high - prev_close), abs(low - prev_close)))
    expected = wilder(true_range, 14, first=1)
    assert feats["atr_14"].iloc[14] == pytest.approx(true_range[1:15].mean(), rel=1e-12)
    np.testing.assert_allclose(feats["atr_14"], expected, rtol=1e-12)
    np.testing.assert_allclose(feats["natr_14"], 100.0 * expected / close, rtol=1e-12)
    np.testing.assert_allclose(feats["range_atr"], (high - low) / expected, rtol=1e-12)


def test_bollinger_bands_use_population_std_of_20_closes(walk: Walk) -> None:
    bars, feats = walk
    middle = bars["close"].rolling(20).mean()
    std = bars["close"].rolling(20).std(ddof=0)
    upper, lower = middle + 2 * std, middle - 2 * std
    np.testing.assert_allclose(feats["bb_middle_20_2"], middle, rtol=1e-12)
    np.testing.assert_allclose(feats["bb_upper_20_2"], upper, rtol=1e-9)
    np.testing.assert_allclose(feats["bb_lower_20_2"], lower, rtol=1e-9)
    np.testing.assert_allclose(feats["bb_width_20_2"], (upper - lower) / middle, rtol=1e-9)
    np.testing.assert_allclose(
        feats["bb_pctb_20_2"], (bars["close"] - lower) / (upper - lower), rtol=1e-9, atol=1e-12
    )


def test_macd_matches_talib_seeding_with_fast_ema_started_alongside_the_slow(walk: Walk) -> None:
    bars, feats = walk
    close = bars["close"].to_numpy()
    slow = ema_seeded(close, 26)
    fast = ema_seeded(close, 12, first=14)  # seeded at bar 25 with the SMA of bars 14..25
    macd = fast - slow
    signal = ema_seeded(macd, 9, first=25)
    macd[:33] = np.nan
    np.testing.assert_allclose(feats["macd_12_26_9"], macd, rtol=1e-9)
    np.testing.assert_allclose(feats["macd_signal_12_26_9"], signal, rtol=1e-9)
    np.testing.assert_allclose(feats["macd_hist_12_26_9"], macd - signal, rtol=1e-9, atol=1e-12)


def test_talib_indicators_agree_with_pandas_ta_classic_own_code(walk: Walk) -> None:
    bars, feats = walk
    high, low, close = bars["high"], bars["low"], bars["close"]
    adx = pta.adx(high, low, close, 14, talib=False)
    bbands = pta.bbands(close, 20, 2.0, talib=False)
    pairs = {
        "atr_14": pta.atr(high, low, close, 14, talib=False),
        "rsi_14": pta.rsi(close, 14, talib=False),
        "adx_14": adx["ADX_14"],
        "plus_di_14": adx["DMP_14"],
        "minus_di_14": adx["DMN_14"],
        "ema_50": pta.ema(close, 50, talib=False),
        "bb_width_20_2": bbands["BBB_20_2.0"] / 100.0,
        "bb_pctb_20_2": bbands["BBP_20_2.0"],
    }
    for name, theirs in pairs.items():
        np.testing.assert_allclose(feats[name], theirs, rtol=1e-9, atol=1e-12, err_msg=name)
    # pandas-ta seeds MACD's fast EMA on its own first 12 bars; the seeds wash out.
    theirs_macd = pta.macd(close, 12, 26, 9, talib=False)["MACD_12_26_9"]
    np.testing.assert_allclose(feats["macd_12_26_9"][200:], theirs_macd[200:], rtol=1e-9)


def test_log_returns_and_annualised_realised_volatility(walk: Walk) -> None:
    bars, feats = walk
    log_close = np.log(bars["close"].to_numpy())
    for horizon in (1, 5, 20):
        expected = np.full(len(log_close), np.nan)
        expected[horizon:] = log_close[horizon:] - log_close[:-horizon]
        np.testing.assert_allclose(feats[f"ret_{horizon}"], expected, rtol=1e-9, atol=1e-15)
    returns = np.diff(log_close)
    t = 250
    expected_rv = returns[t - 20 : t].std(ddof=1) * np.sqrt(252.0)
    assert feats["rv_20"].iloc[t] == pytest.approx(expected_rv, rel=1e-12)


def test_realised_volatility_annualises_by_timeframe_or_override(walk: Walk) -> None:
    bars, feats = walk
    hourly = compute_features(bars.assign(timeframe="1h"))
    ratio = hourly["rv_20"] / feats["rv_20"]
    np.testing.assert_allclose(ratio.dropna(), np.sqrt(24 * 260 / 252))
    assert BARS_PER_YEAR[Timeframe.H1] == 6240.0
    assert BARS_PER_YEAR[Timeframe.W1] == 52.0
    custom = compute_features(bars, bars_per_year=1638.0)
    np.testing.assert_allclose((custom["rv_20"] / feats["rv_20"]).dropna(), np.sqrt(1638 / 252))
    with pytest.raises(ValueError, match="bars_per_year"):
        compute_features(bars, bars_per_year=0.0)


def test_relative_volume_divides_by_the_mean_of_the_previous_20_bars_only() -> None:
    volume = np.full(60, 1_000.0)
    volume[30] = 5_000.0
    feats = compute_features(make_bars(np.linspace(10, 12, 60), volume=volume))
    relvol = feats["relvol_20"].to_numpy()
    assert np.isnan(relvol[:20]).all()
    assert relvol[20] == pytest.approx(1.0)
    assert relvol[30] == pytest.approx(5.0)  # 5000 / 1000: the spike is not in its own base
    assert relvol[31] == pytest.approx(1_000.0 / 1_200.0)
    assert relvol[50] == pytest.approx(1_000.0 / 1_200.0)
    assert relvol[51] == pytest.approx(1.0)


def test_zero_volume_gives_nan_not_infinity() -> None:
    volume = np.zeros(30)
    volume[25] = 100.0
    bars = make_bars(np.linspace(10, 12, 30), volume=volume)
    feats = compute_features(bars)
    assert not np.isinf(feats[list(FEATURE_COLUMNS)].to_numpy()).any()
    assert np.isnan(feats["relvol_20"].iloc[25])  # 100 over a base of zero volume
    assert np.isnan(feats["vwap_session"].iloc[24])
    assert feats["vwap_session"].iloc[25] == pytest.approx(bars["close"].iloc[25])


def test_daily_vwap_is_each_bars_typical_price(walk: Walk) -> None:
    bars, feats = walk
    typical = (bars["high"] + bars["low"] + bars["close"]) / 3.0
    np.testing.assert_allclose(feats["vwap_session"], typical, rtol=1e-12)


def test_intraday_vwap_accumulates_within_a_session_and_resets_at_the_next() -> None:
    ts = pd.DatetimeIndex(
        [
            "2024-03-04 14:30",
            "2024-03-04 15:30",
            "2024-03-04 16:30",
            "2024-03-05 14:30",
            "2024-03-05 15:30",
            "2024-03-05 16:30",
        ],
        tz="UTC",
    ).astype("datetime64[us, UTC]")
    session = pd.to_datetime(["2024-03-04"] * 3 + ["2024-03-05"] * 3).astype("datetime64[s]")
    high = np.array([11.0, 12.0, 13.0, 21.0, 22.0, 23.0])
    low = np.array([9.0, 10.0, 11.0, 19.0, 20.0, 21.0])
    close = np.array([10.0, 11.0, 12.0, 20.0, 21.0, 22.0])
    volume = np.array([100.0, 300.0, 100.0, 200.0, 200.0, 600.0])
    bars = pd.DataFrame(
        {
            "symbol": "TEST",
            "timeframe": "1h",
            "ts": ts,
            "ts_close": ts + pd.Timedelta(hours=1),
            "session": session,
            "open": close,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "adj_close": np.nan,
        }
    )
    feats = compute_features(bars)
    typical = (high + low + close) / 3.0  # 10, 11, 12, 20, 21, 22
    expected = [
        10.0,
        (10 * 100 + 11 * 300) / 400,
        (10 * 100 + 11 * 300 + 12 * 100) / 500,
        20.0,  # new session: yesterday's volume does not count
        (20 * 200 + 21 * 200) / 400,
        (20 * 200 + 21 * 200 + 22 * 600) / 1000,
    ]
    np.testing.assert_allclose(typical, [10, 11, 12, 20, 21, 22])
    np.testing.assert_allclose(feats["vwap_session"], expected, rtol=1e-12)


# --- splits ---------------------------------------------------------------------------------


def split_pair(
    ex_position: int, ratio: float, seed: int = 3, n: int = 300
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return (never-split bars, as-traded bars with a split at ex_position, splits frame)."""
    high, low, close, volume = random_walk(n, seed)
    unsplit = make_bars(close, high=high, low=low, volume=volume)
    post = np.arange(n) >= ex_position
    divisor = np.where(post, ratio, 1.0)
    traded = unsplit.assign(
        open=unsplit["open"] / divisor,
        high=high / divisor,
        low=low / divisor,
        close=close / divisor,
        volume=volume * divisor,
    )
    splits = pd.DataFrame(
        {
            "symbol": ["TEST"],
            "ex_date": [unsplit["session"].iloc[ex_position]],
            "action": ["split"],
            "ratio": [ratio],
            "source": ["synthetic"],
        }
    )
    return unsplit, traded, splits


@pytest.mark.parametrize("ratio", [2.0, 1.5, 7.0, 0.1])
def test_split_leaves_scale_free_features_as_if_never_split(ratio: float) -> None:
    ex = 150
    unsplit, traded, splits = split_pair(ex, ratio)
    expected = compute_features(unsplit)
    got = compute_features(traded, splits)
    for name in SCALE_FREE_FEATURES:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-9, atol=1e-12, err_msg=name)
    # without the split the artefact is there, so the test above can fail
    naive = compute_features(traded)
    assert naive["ret_1"].iloc[ex] == pytest.approx(
        expected["ret_1"].iloc[ex] - np.log(ratio), rel=1e-9
    )


@pytest.mark.parametrize("ratio", [2.0, 1.5])
def test_split_puts_price_features_in_each_bars_own_units(ratio: float) -> None:
    ex = 150
    unsplit, traded, splits = split_pair(ex, ratio)
    expected = compute_features(unsplit)
    got = compute_features(traded, splits)
    for name in PRICE_LEVEL_FEATURES:
        before, after = got[name].iloc[:ex], got[name].iloc[ex:]
        np.testing.assert_allclose(before, expected[name].iloc[:ex], rtol=1e-9, err_msg=name)
        np.testing.assert_allclose(
            after, expected[name].iloc[ex:] / ratio, rtol=1e-9, atol=1e-12, err_msg=name
        )
    # ATR the bar before is in pre-split dollars, at the ex-date in post-split dollars
    atr_before, atr_after = got["atr_14"].iloc[ex - 1], got["atr_14"].iloc[ex]
    assert atr_after / atr_before == pytest.approx(
        expected["atr_14"].iloc[ex] / expected["atr_14"].iloc[ex - 1] / ratio, rel=1e-9
    )


def test_split_with_ex_date_on_a_non_session_day_applies_from_the_next_session() -> None:
    unsplit, traded, splits = split_pair(150, 2.0)
    weekend = pd.Timestamp(traded["session"].iloc[150]) - pd.Timedelta(days=1)
    while weekend.weekday() < 5:
        weekend -= pd.Timedelta(days=1)
    assert weekend > traded["session"].iloc[149]
    got = compute_features(traded, splits.assign(ex_date=[weekend.date()]))
    np.testing.assert_allclose(got["ret_1"], compute_features(unsplit)["ret_1"], rtol=1e-9)


def test_splits_of_other_symbols_other_actions_or_before_the_data_are_ignored(walk: Walk) -> None:
    bars, feats = walk
    first = bars["session"].iloc[0]
    noise = pd.DataFrame(
        {
            "symbol": ["OTHER", "TEST", "TEST"],
            "ex_date": [bars["session"].iloc[100], bars["session"].iloc[100], first],
            "action": ["split", "dividend", "split"],
            "ratio": [2.0, 2.0, 4.0],
        }
    )
    got = compute_features(bars, noise)
    np.testing.assert_array_equal(got[list(FEATURE_COLUMNS)], feats[list(FEATURE_COLUMNS)])


def test_non_positive_split_ratio_is_rejected(walk: Walk) -> None:
    bars, _ = walk
    ex_date = bars["session"].iloc[5]
    splits = pd.DataFrame({"symbol": ["TEST"], "ex_date": [ex_date], "ratio": [0.0]})
    with pytest.raises(ValueError, match=r"splits\.ratio"):
        compute_features(bars, splits)
