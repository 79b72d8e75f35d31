"""Intent sources: the rule-based generators (point-in-time, deterministic, on the tick and lot
grid), the database's intents and the CSV importer of past trades."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from buddy.errors import ConfigError
from buddy.evidence import is_on_tick, round_to_tick
from buddy.store import Store
from replay.intents import (
    DOC_SECTIONS,
    GENERATORS,
    TRADE_COLUMNS,
    IntentGenerator,
    LimitPullbackConfig,
    MaCrossConfig,
    PriceSeries,
    RandomEntryConfig,
    TradesFileError,
    VwapPullbackConfig,
    database_intents,
    database_trades,
    generate_intents,
    import_trades_csv,
    register,
    size_to_lot,
    to_tick,
)
from replay.intents import _load_series as load_series
from replay.model import INTENT_COLUMNS

RISK = 1_000.0
# (symbol, timeframe, cut): AAPL daily a week after its 2005-02-28 2:1 split (the history holds
# two splits), and EURUSD hourly mid-year (intraday sessions, session VWAP).
CUTS = (("AAPL", "1d", "2005-03-09T21:00Z"), ("EURUSD", "1h", "2017-06-15T12:00Z"))


@pytest.fixture(scope="module")
def daily(sample_store: Store) -> dict[str, pd.DataFrame]:
    """Return every generator's daily intents over the whole sample."""
    return {name: generate_intents(sample_store, name, timeframe="1d", risk_per_trade=RISK)
            for name in GENERATORS}


# ---------------------------------------------------------------------------- registry
def test_every_generator_documents_signal_entry_stop_target_size_horizon() -> None:
    assert set(GENERATORS) == {"ma_cross", "prior_high_breakout", "vwap_pullback", "random",
                               "limit_pullback"}
    for generator in GENERATORS.values():
        for section in DOC_SECTIONS:
            assert f"\n{section}: " in generator.doc, (generator.name, section)


def test_register_refuses_an_undocumented_or_duplicate_generator() -> None:
    def undocumented(series, config, seed):  # type: ignore[no-untyped-def]
        """Signal: only this."""

    with pytest.raises(ValueError, match="Entry, Stop, Target, Size, Horizon"):
        register(IntentGenerator("undocumented", MaCrossConfig, undocumented))
    with pytest.raises(ValueError, match="already registered"):
        register(GENERATORS["ma_cross"])
    with pytest.raises(ValueError, match=r"order_type must be one of .* \(got 'iceberg'\)"):
        register(IntentGenerator("iceberg", MaCrossConfig, ma_doc_signals(),
                                 order_type="iceberg"))
    assert "undocumented" not in GENERATORS and "iceberg" not in GENERATORS


def ma_doc_signals():  # type: ignore[no-untyped-def]
    """Return a signal function with ma_cross's documentation (a valid docstring)."""
    def signals(series, config, seed):  # type: ignore[no-untyped-def]
        return GENERATORS["ma_cross"].signals(series, config, seed)

    signals.__doc__ = GENERATORS["ma_cross"].doc
    return signals


def test_config_errors_name_the_field_the_rule_and_a_close_name(sample_store: Store) -> None:
    with pytest.raises(ConfigError) as typo:
        generate_intents(sample_store, "ma_cross", symbols=["IBM"], stop_atrr=2.0)
    assert typo.value.fields == ("ma_cross.stop_atrr",)
    assert "did you mean 'stop_atr'" in str(typo.value)
    with pytest.raises(ConfigError) as bad:
        generate_intents(sample_store, "random", symbols=["IBM"], entry_probability=1.5,
                         holding_horizon=0)
    assert set(bad.value.fields) == {"random.entry_probability", "random.holding_horizon"}
    assert "(0, 1]" in str(bad.value) and "1.5" in str(bad.value)
    with pytest.raises(ConfigError, match="did you mean 'ma_cross'"):
        generate_intents(sample_store, "ma_cros")


def test_generator_configs_keep_their_ranges_on_the_one_config_base() -> None:
    assert MaCrossConfig(target_r=None).target_r is None  # None: no target
    assert MaCrossConfig.from_mapping({"sides": ["long"]}).sides == ("long",)
    for bad in ({"sides": ()}, {"sides": ("long", "flat")}, {"stop_atr": 0.0},
                {"holding_horizon": 2.5}, {"holding_horizon": 100_001}, {"target_r": -1.0}):
        with pytest.raises(ConfigError) as caught:
            MaCrossConfig.from_mapping(bad)
        assert caught.value.fields == (f"ma_cross.{next(iter(bad))}",)
    assert RandomEntryConfig(long_probability=0.0).long_probability == 0.0
    with pytest.raises(ConfigError, match="must be in \\(0, 1\\]"):
        RandomEntryConfig(entry_probability=0.0)
    with pytest.raises(ConfigError, match="between 2 and 100000"):
        VwapPullbackConfig(vwap_window=1)
    with pytest.raises(ConfigError, match="one of auto, session, rolling"):
        VwapPullbackConfig(vwap="weekly")
    with pytest.raises(ConfigError) as order:
        LimitPullbackConfig(min_distance_atr=2.0, max_distance_atr=1.0)
    assert order.value.fields == ("limit_pullback.min_distance_atr/max_distance_atr",)
    assert "(2.0, 1.0)" in str(order.value)
    with pytest.raises(ConfigError) as far:
        LimitPullbackConfig.from_mapping({"far_min_pct": 7.0})  # above the 6% default top
    assert far.value.fields == ("limit_pullback.far_min_pct/far_max_pct",)
    assert LimitPullbackConfig(far_probability=0.0).far_probability == 0.0


# ---------------------------------------------------------------------------- shape and grids
@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generated_intents_are_tradeable_on_the_instrument_grid(
        name: str, daily: dict[str, pd.DataFrame], sample_store: Store) -> None:
    intents = daily[name]
    assert tuple(intents.columns) == INTENT_COLUMNS
    assert len(intents) > 20 and intents["intent_id"].is_unique
    assert set(intents["symbol"]) >= {"AAPL", "IBM", "MSFT", "SP500"}
    assert (intents["source"] == f"generator:{name}").all()
    assert (intents["order_type"] == GENERATORS[name].order_type).all()
    assert intents["linked_trade_id"].isna().all()
    tickers = sample_store.tickers().set_index("symbol")
    tick = intents["symbol"].map(tickers["tick_size"]).to_numpy()
    lot = intents["symbol"].map(tickers["lot_size"]).to_numpy()
    for column in ("proposed_entry", "proposed_stop", "proposed_target"):
        values = intents[column].to_numpy()
        assert all(is_on_tick(v, t) for v, t in zip(values, tick, strict=True)), column
    size = intents["proposed_size"].to_numpy()
    assert np.allclose(size / lot, np.round(size / lot)) and (size >= lot).all()
    sign = np.where(intents["side"] == "long", 1.0, -1.0)
    risk = sign * (intents["proposed_entry"] - intents["proposed_stop"]).to_numpy()
    assert (risk > 0).all()
    assert (sign * (intents["proposed_target"] - intents["proposed_entry"]) > 0).all()
    # size: the most whole lots the fixed budget buys at this stop distance
    assert (size * risk <= RISK + 1e-6).all() and ((size + lot) * risk > RISK).all()


MARKET_GENERATORS = sorted(n for n, g in GENERATORS.items() if g.order_type == "market")


@pytest.mark.parametrize("name", MARKET_GENERATORS)
def test_entry_is_the_signal_bar_close_at_its_ts_close(
        name: str, daily: dict[str, pd.DataFrame], sample_store: Store) -> None:
    bars = sample_store.query("SELECT symbol, ts_close AS as_of, close, tick_size FROM bars "
                              "JOIN tickers USING (symbol) WHERE timeframe = '1d'")
    joined = daily[name].merge(bars, on=["symbol", "as_of"], how="left")
    assert joined["close"].notna().all()
    expected = [round_to_tick(c, t) for c, t in zip(joined["close"], joined["tick_size"],
                                                    strict=True)]
    assert np.allclose(joined["proposed_entry"], expected, rtol=0, atol=1e-9)


def test_a_twenty_day_breakout_closes_above_the_twenty_prior_sessions_highs(
        sample_store: Store) -> None:
    # IBM has no split in the sample, so the stored highs are on one basis
    bars = sample_store.query("SELECT ts_close AS as_of, high, close FROM bars WHERE symbol = "
                              "'IBM' AND timeframe = '1d' ORDER BY ts_close")
    bars["prior_20"] = bars["high"].rolling(20).max().shift(1)
    above = bars["close"] > bars["prior_20"]
    one = generate_intents(sample_store, "prior_high_breakout", symbols=["IBM"],
                           timeframe="1d")
    twenty = generate_intents(sample_store, "prior_high_breakout", symbols=["IBM"],
                              timeframe="1d", lookback_sessions=20)
    signals = set(bars.loc[above, "as_of"])
    assert 0 < len(twenty) < len(one) / 2
    assert set(twenty["as_of"]) <= signals and set(twenty["as_of"]) <= set(one["as_of"])
    # a bar yesterday's-high breakout trades that also clears the 20-session high is one
    assert signals & set(one["as_of"]) == set(twenty["as_of"])


# ---------------------------------------------------------------------------- limit entries
def _at_signal_bar(intents: pd.DataFrame, store: Store, timeframe: str) -> pd.DataFrame:
    """Return ``intents`` with their signal bar's close, atr_14, ema_20, ema_50 and tick."""
    bars = store.query(
        "SELECT symbol, b.ts_close AS as_of, b.close, f.atr_14, f.ema_20, f.ema_50, tick_size "
        "FROM bars b JOIN ta_features f USING (symbol, timeframe, ts) JOIN tickers "
        "USING (symbol) WHERE timeframe = ?", [timeframe])
    joined = intents.merge(bars, on=["symbol", "as_of"], how="left")
    assert joined["close"].notna().all() and len(joined) == len(intents)
    return joined


@pytest.mark.parametrize("timeframe", ["1d", "1h"])
def test_limit_pullback_rests_a_limit_away_from_the_close_with_the_trend(
        timeframe: str, sample_store: Store) -> None:
    config = LimitPullbackConfig()
    intents = generate_intents(sample_store, "limit_pullback", timeframe=timeframe,
                               risk_per_trade=RISK)
    assert len(intents) > 50 and (intents["order_type"] == "limit").all()
    t = _at_signal_bar(intents, sample_store, timeframe)
    sign = np.where(t["side"] == "long", 1.0, -1.0)
    # with the trend: long while ema_20 is above ema_50, short while below
    assert (sign == np.sign(t["ema_20"] - t["ema_50"])).all()
    # a long's limit below the close, a short's above, by a distance from one of the ranges
    distance = sign * (t["close"] - t["proposed_entry"])
    tick = t["tick_size"]
    assert (distance > 0).all()
    atr, pct = distance / t["atr_14"], 100 * distance / t["close"]
    half_tick_atr, half_tick_pct = tick / 2 / t["atr_14"], 100 * tick / 2 / t["close"]
    in_atr = ((atr >= config.min_distance_atr - half_tick_atr - 1e-9)
              & (atr <= config.max_distance_atr + half_tick_atr + 1e-9))
    in_pct = ((pct >= config.far_min_pct - half_tick_pct - 1e-9)
              & (pct <= config.far_max_pct + half_tick_pct + 1e-9))
    assert (in_atr | in_pct).all()
    only_far = in_pct & ~in_atr
    # about far_probability of them are drawn far; some lie outside the ATR range
    assert only_far.sum() >= 3 and only_far.mean() < 2 * config.far_probability
    # stop: stop_atr ATR beyond the limit, rounded away from it; target: 2R from the limit
    stop = t["proposed_entry"] - sign * config.stop_atr * t["atr_14"]
    assert (sign * (stop - t["proposed_stop"]) >= -tick / 2 - 1e-9).all()
    assert (np.abs(stop - t["proposed_stop"]) <= 1.5 * tick + 1e-9).all()
    risk = sign * (t["proposed_entry"] - t["proposed_stop"])
    target = t["proposed_entry"] + sign * config.target_r * risk
    assert np.allclose(t["proposed_target"], target, rtol=0, atol=0.5001 * tick.max())


def test_limit_pullback_passes_the_validator_and_far_limits_often_never_fill(
        sample_store: Store) -> None:
    from buddy.config import default_scoring_config
    from replay.engine import validate_intents
    from replay.intents import load_outcome_inputs
    from replay.model import DEFAULT_FILL_WINDOW
    from replay.outcomes import label_outcomes

    intents = pd.concat([generate_intents(sample_store, "limit_pullback", timeframe=tf)
                         for tf in ("1d", "1h")], ignore_index=True)
    validate_intents(sample_store, intents, default_scoring_config())  # raises when invalid
    bars_by_key, actions = load_outcome_inputs(sample_store, intents)
    outcomes = intents.merge(label_outcomes(intents, bars_by_key, actions), on="intent_id")
    not_filled = outcomes["exit_reason"] == "not_filled"
    assert 20 <= not_filled.sum() < len(outcomes) - 20
    assert not outcomes.loc[not_filled, "filled"].any()
    assert outcomes.loc[outcomes["exit_reason"].isin(["stop", "target", "time"]), "filled"].all()
    assert outcomes.loc[not_filled, "realized_r"].isna().all()
    # checked against the bars themselves, on the symbols that never split (bars as traded):
    # a filled limit traded through on its fill bar, the first to, within the window; a
    # not_filled one on none of the window's bars
    split = set(sample_store.corporate_actions()["symbol"])
    checked = 0
    for row in outcomes[~outcomes["symbol"].isin(split)].itertuples():
        if row.exit_reason == "open":
            continue
        bars = bars_by_key[(row.symbol, row.timeframe)]
        window = bars[bars["ts_close"] > row.as_of].head(DEFAULT_FILL_WINDOW)
        through = (window["low"] <= row.proposed_entry if row.side == "long"
                   else window["high"] >= row.proposed_entry).to_numpy()
        if row.exit_reason == "not_filled":
            assert len(window) == DEFAULT_FILL_WINDOW and not through.any(), row.intent_id
        else:
            assert through.any(), row.intent_id
            assert row.fill_ts == window["ts_close"].iloc[int(np.argmax(through))]
        checked += 1
    assert checked > 300
    # far limits (3-6% away) go unfilled more often than near ones (0.25-3 ATR)
    t = _at_signal_bar(outcomes[outcomes["timeframe"] == "1d"], sample_store, "1d")
    far = (np.abs(t["close"] - t["proposed_entry"]) / t["close"] >= 0.03) & (
        np.abs(t["close"] - t["proposed_entry"]) / t["atr_14"] > 3.0)
    unfilled = t["exit_reason"] == "not_filled"
    assert far.sum() >= 5 and unfilled[far].mean() > unfilled[~far].mean()


def test_limit_pullback_is_deterministic_and_draws_apart_from_the_random_baseline(
        sample_store: Store) -> None:
    first = generate_intents(sample_store, "limit_pullback", seed=5, timeframe="1d")
    pd.testing.assert_frame_equal(first, generate_intents(sample_store, "limit_pullback",
                                                          seed=5, timeframe="1d"))
    other = generate_intents(sample_store, "limit_pullback", seed=6, timeframe="1d")
    assert not first[["symbol", "as_of"]].equals(other[["symbol", "as_of"]])
    # the generator's name salts its draws: its bars are not a subset of the baseline's
    baseline = generate_intents(sample_store, "random", seed=5, timeframe="1d")
    ours = set(zip(first["symbol"], first["as_of"], strict=True))
    theirs = set(zip(baseline["symbol"], baseline["as_of"], strict=True))
    assert len(ours - theirs) > 0.8 * len(ours)


def test_tick_and_lot_rounding_match_the_scalar_helpers() -> None:
    rng = np.random.default_rng(7)
    prices = rng.uniform(0.5, 500, 2_000)
    for tick in (0.01, 0.05, 0.00001, 0.25):
        for direction in ("nearest", "down", "up"):
            expected = [round_to_tick(p, tick, direction=direction) for p in prices]
            assert np.array_equal(to_tick(prices, tick, direction), expected)
    sizes = size_to_lot(1_000.0, np.array([3.0, 0.0021, 2_000.0, 0.0]), 1_000.0)
    assert sizes.tolist() == [0.0, 476_000.0, 0.0, 0.0]
    assert size_to_lot(1_000.0, np.array([3.0]), 1.0).tolist() == [333.0]


# ---------------------------------------------------------------------------- point in time
def prefix(series: PriceSeries, end: int) -> PriceSeries:
    """Return the series known at bar ``end`` (bars 0..end)."""
    cut = slice(0, end + 1)
    return PriceSeries(symbol=series.symbol, timeframe=series.timeframe,
                       ts_close=series.ts_close[cut], session=series.session[cut],
                       open=series.open[cut], high=series.high[cut], low=series.low[cut],
                       close=series.close[cut], volume=series.volume[cut],
                       basis=series.basis[cut],
                       features={k: v[cut] for k, v in series.features.items()})


@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize(("symbol", "timeframe"), [("AAPL", "1d"), ("EURUSD", "1h"),
                                                   ("AAPL", "1w")])
def test_signals_at_t_are_the_same_when_the_future_is_cut_off(
        name: str, symbol: str, timeframe: str, sample_store: Store) -> None:
    from buddy.timeframes import Timeframe

    _, (series,) = load_series(sample_store, [symbol], Timeframe(timeframe), None)
    generator = GENERATORS[name]
    config = generator.config()
    full = generator.signals(series, config, 3)
    rng = np.random.default_rng(11)
    cuts = set(rng.choice(len(series), 25, replace=False).tolist()) | set(
        full.bar[:5].tolist()) | {len(series) - 1}
    for end in sorted(cuts):
        seen = generator.signals(prefix(series, end), config, 3)
        known = full.bar <= end
        assert np.array_equal(seen.bar, full.bar[known]), end
        assert np.array_equal(seen.direction, full.direction[known]), end
        assert np.array_equal(seen.stop, full.stop[known]), end
        if full.entry is not None:
            assert np.array_equal(seen.entry, full.entry[known]), end


@pytest.mark.parametrize(("symbol", "timeframe", "cut"), CUTS)
def test_intents_from_a_store_truncated_at_t_equal_the_full_runs_up_to_t(
        symbol: str, timeframe: str, cut: str, sample_store: Store, truncated_store) -> None:
    as_of = pd.Timestamp(cut).to_pydatetime()
    truncated = truncated_store(symbol, as_of)
    for name in GENERATORS:
        full = generate_intents(sample_store, name, symbols=[symbol], timeframe=timeframe)
        expected = full[full["as_of"] <= as_of].reset_index(drop=True)
        seen = generate_intents(truncated, name, symbols=[symbol], timeframe=timeframe)
        assert len(expected) > 0, name
        pd.testing.assert_frame_equal(seen, expected, check_exact=True, obj=name)


def test_prior_high_uses_the_pre_split_high_on_the_post_split_basis(
        sample_store: Store) -> None:
    from buddy.timeframes import Timeframe
    from replay.intents import _prior_session_high

    _, (series,) = load_series(sample_store, ["AAPL"], Timeframe.D1, None)
    first_after = int(np.searchsorted(series.session, np.datetime64("2005-02-28", "D")
                                      .astype(np.int64)))
    prior_high = _prior_session_high(series)
    # 2005-02-25 traded up to 89.91 before the 2:1 split: 44.955 on the new basis
    assert prior_high[first_after] == pytest.approx(89.91 / 2)
    assert prior_high[first_after + 1] == pytest.approx(series.high[first_after])


# ---------------------------------------------------------------------------- determinism
def test_the_same_seed_gives_the_same_intents_and_ids(sample_store: Store) -> None:
    first = generate_intents(sample_store, "random", seed=5, timeframe="1d")
    again = generate_intents(sample_store, "random", seed=5, timeframe="1d")
    other = generate_intents(sample_store, "random", seed=6, timeframe="1d")
    pd.testing.assert_frame_equal(first, again)
    assert not first[["symbol", "as_of"]].equals(other[["symbol", "as_of"]])
    rules = generate_intents(sample_store, "ma_cross", seed=1, timeframe="1d")
    pd.testing.assert_frame_equal(rules, generate_intents(sample_store, "ma_cross", seed=99,
                                                          timeframe="1d"))


def test_a_date_range_and_a_symbol_list_select_from_the_same_intents(
        sample_store: Store) -> None:
    full = generate_intents(sample_store, "random", seed=5, timeframe="1d")
    start, end = datetime.fromisoformat("2006-01-01T00:00+00:00"), datetime.fromisoformat(
        "2008-06-30T23:00+00:00")
    part = generate_intents(sample_store, "random", seed=5, timeframe="1d",
                            symbols=["MSFT", "IBM"], start=start, end=end)
    expected = full[full["symbol"].isin(["MSFT", "IBM"]) & (full["as_of"] >= start)
                    & (full["as_of"] <= end)].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, expected)


def test_random_baseline_draws_at_the_stated_rates(sample_store: Store) -> None:
    intents = generate_intents(sample_store, "random", seed=1, timeframe="1d",
                               symbols=["SP500", "NASDAQ"], entry_probability=0.1,
                               long_probability=0.7)
    n_bars = int(sample_store.query(
        "SELECT count(*) FROM ta_features WHERE symbol IN ('SP500', 'NASDAQ') AND "
        "timeframe = '1d' AND atr_14 IS NOT NULL").iloc[0, 0])
    rate = len(intents) / n_bars
    assert abs(rate - 0.1) < 4 * math.sqrt(0.1 * 0.9 / n_bars)
    longs = (intents["side"] == "long").mean()
    assert abs(longs - 0.7) < 4 * math.sqrt(0.7 * 0.3 / len(intents))


def test_ma_cross_fires_on_crosses_only(sample_store: Store) -> None:
    intents = generate_intents(sample_store, "ma_cross", symbols=["IBM"], timeframe="1d")
    features = sample_store.query(
        "SELECT b.ts_close AS as_of, f.ema_20, f.ema_50 FROM ta_features f JOIN bars b "
        "USING (symbol, timeframe, ts) WHERE symbol = 'IBM' AND timeframe = '1d' ORDER BY ts")
    spread = np.sign(features["ema_20"] - features["ema_50"])
    crossed = features[(spread != spread.shift()) & spread.shift().notna() & (spread != 0)]
    expected_side = np.where(spread[crossed.index] > 0, "long", "short")
    got = intents.set_index("as_of")["side"]
    assert list(got.index) == list(crossed["as_of"])
    assert list(got) == list(expected_side)


# ---------------------------------------------------------------------------- database
def test_database_intents_carry_their_linked_trade(empty_store: Store) -> None:
    as_of = pd.Timestamp("2012-06-01T20:00Z")
    intents = pd.DataFrame({
        "intent_id": ["i1", "i2", "i3"], "user_id": ["u1", "u1", "u2"],
        "symbol": "IBM", "side": ["long", "short", "long"], "timeframe": "1d",
        "proposed_entry": 100.0, "proposed_stop": [95.0, 104.0, None],
        "proposed_target": [110.0, None, None], "proposed_size": 10.0,
        "holding_horizon": [5, None, 3], "order_type": "limit", "as_of": as_of,
        "created_at": as_of, "status": "draft"})
    trades = pd.DataFrame({
        "trade_id": ["t1", "t0"], "user_id": "u1", "symbol": "IBM", "side": "long",
        "open_ts": [as_of + pd.Timedelta(hours=1), as_of + pd.Timedelta(hours=2)],
        "close_ts": as_of + pd.Timedelta(days=3), "avg_entry": 100.0, "avg_exit": 107.5,
        "qty": 10.0, "pnl": 75.0, "pnl_r": 1.5, "linked_intent_id": "i1"})
    with empty_store.transaction() as con:
        con.register("incoming_intents", intents)
        con.execute("INSERT INTO trade_intents BY NAME SELECT * FROM incoming_intents")
        con.register("incoming_trades", trades)
        con.execute("INSERT INTO trades BY NAME SELECT * FROM incoming_trades")
    found = database_intents(empty_store, default_horizon=12)
    assert tuple(found.columns) == INTENT_COLUMNS
    assert list(found["intent_id"]) == ["i1", "i2"]  # i3 has no stop
    assert list(found["linked_trade_id"]) == ["t1", None]  # the first trade by open_ts
    assert list(found["holding_horizon"]) == [5, 12]
    assert (found["source"] == "database").all() and np.isnan(found["proposed_target"][1])
    assert list(database_intents(empty_store, "u2")["intent_id"]) == []
    assert list(database_trades(empty_store, "u1").columns) == list(TRADE_COLUMNS)


# ---------------------------------------------------------------------------- CSV importer
GOOD_CSV = """Entry_Time, EXIT_TIME, entry_price, exit_price, Side, size, stop, target, symbol, timeframe, fees
2012-06-01T15:00:00-04:00, 2012-06-05T15:30:00-04:00, 100.00, 107.50, long, 10, 95.00, 110.00, ibm, 1d, 1.0
2012-06-04 10:00, , 50.00, , SELL, 200, 52.00, , MSFT, 1D,
2012-06-06T14:00Z, 2012-06-06T18:00Z, 25.00, 24.00, buy, 100, 24.50, 26.00, AAPL, 1h,
"""  # noqa: E501


def write(tmp_path: Path, text: str, name: str = "trades.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_import_reads_trades_and_links_intents(tmp_path: Path) -> None:
    intents, trades = import_trades_csv(write(tmp_path, GOOD_CSV), tz="America/New_York",
                                        user_id="me")
    assert tuple(intents.columns) == INTENT_COLUMNS and tuple(trades.columns) == TRADE_COLUMNS
    assert list(intents["symbol"]) == ["IBM", "MSFT", "AAPL"]
    assert list(intents["side"]) == ["long", "short", "long"]
    assert list(intents["timeframe"]) == ["1d", "1d", "1h"]
    assert list(intents["as_of"]) == [pd.Timestamp("2012-06-01T19:00Z"),
                                      pd.Timestamp("2012-06-04T14:00Z"),
                                      pd.Timestamp("2012-06-06T14:00Z")]
    assert (intents["source"] == "import:trades.csv").all() and (intents["user_id"] == "me").all()
    assert list(intents["linked_trade_id"]) == list(trades["trade_id"])
    assert list(trades["linked_intent_id"]) == list(intents["intent_id"])
    first, still_open, loser = (trades.iloc[i] for i in range(3))
    assert first["pnl"] == pytest.approx(74.0) and first["pnl_r"] == pytest.approx(1.5)
    assert first["outcome_label"] == "win"
    assert still_open["outcome_label"] == "open" and pd.isna(still_open["close_ts"])
    assert loser["pnl_r"] == pytest.approx(-2.0) and loser["outcome_label"] == "loss"
    again, _ = import_trades_csv(write(tmp_path, GOOD_CSV, "copy.csv"), tz="America/New_York")
    assert list(again["intent_id"]) == list(intents["intent_id"])  # ids follow the content


def test_import_round_trips_through_a_written_file(tmp_path: Path) -> None:
    intents, trades = import_trades_csv(write(tmp_path, GOOD_CSV), tz="America/New_York")
    written = pd.DataFrame({
        "entry_time": trades["open_ts"].map(lambda t: t.isoformat()),
        "exit_time": trades["close_ts"].map(lambda t: "" if pd.isna(t) else t.isoformat()),
        "entry_price": trades["avg_entry"], "exit_price": trades["avg_exit"],
        "side": trades["side"], "size": trades["qty"], "stop": intents["proposed_stop"],
        "target": intents["proposed_target"], "symbol": trades["symbol"],
        "timeframe": intents["timeframe"], "fees": trades["fees"]})
    path = tmp_path / "round.csv"
    written.to_csv(path, index=False)
    intents_again, trades_again = import_trades_csv(path)
    pd.testing.assert_frame_equal(intents_again.drop(columns="source"),
                                  intents.drop(columns="source"))
    pd.testing.assert_frame_equal(trades_again, trades)


def test_a_bad_file_names_every_row_column_rule_and_value(tmp_path: Path) -> None:
    text = """entry_time,exit_time,entry_price,exit_price,side,size,stop,target,symbol,timeframe
2012-06-01T15:00Z,2012-05-01T15:00Z,100,107.5,long,10,101,110,IBM,1d
2012-06-01 15:00,,abc,,sideways,-5,95,90,IBM,2d
"""
    with pytest.raises(TradesFileError) as caught:
        import_trades_csv(write(tmp_path, text))
    problems = {(e.field, e.rule.split(" ")[0] + " " + e.rule.split(" ")[1], e.value)
                for e in caught.value.errors}
    assert problems == {
        ("row 1, exit_time", "must not", "2012-05-01T15:00Z"),
        ("row 1, stop", "must be", "101"),
        ("row 2, entry_time", "must carry", "2012-06-01 15:00"),
        ("row 2, entry_price", "must be", "abc"),
        ("row 2, side", "must be", "sideways"),
        ("row 2, size", "must be", "-5"),
        ("row 2, timeframe", "must be", "2d"),
    }
    message = str(caught.value)
    assert "row 1, stop: must be on the losing side of entry_price" in message
    assert "row 2, size: must be positive (got '-5')" in message


def test_a_file_with_missing_or_misspelt_columns_is_refused_whole(tmp_path: Path) -> None:
    text = "entry_time,entry_price,side,size,stpo,symbol,timeframe\n"
    with pytest.raises(TradesFileError) as caught:
        import_trades_csv(write(tmp_path, text))
    assert caught.value.fields == ("column stpo", "column stop")
    assert "did you mean 'stop'" in str(caught.value)
