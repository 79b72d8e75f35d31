"""EntryQuality over columns: a batch of N says what N batches of one say, and the column form
says what the plain rules (tests/evaluators/oracles/entry_quality.py) say.

Cases: the real and contract cases, timing cases (the real packs with as_of moved into
forming bars, later sessions and weekends; synthetic FX, stock and daily windows), cut-short
windows, NaN volumes, a levels piece of the wrong kind, and windows out of time order or
with a missing session (their timing is not checked); with the default and two other
configs."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest

from buddy.batch.context import from_packs
from buddy.context.pack import ContextPack, MarketData
from buddy.domain import Fact, TradeIntent
from buddy.evaluators.entry_quality import EntryQualityConfig, EntryQualityEvaluator
from buddy.testing import assert_rows_match_batches_of_one, runnable
from tests.evaluators.oracles.entry_quality import scan
from tests.evaluators.test_entry_quality import cut_at, synth_market, timing_case

Case = tuple[TradeIntent, ContextPack]

#: More codes fire: tight limits, every session edge, any forming bar, thin volume vs 5 bars.
LOOSE: dict[str, Any] = dict(
    near_level_atr=1.5, stop_buffer_atr=0.8, max_ema_extension_atr=0.3,
    max_vwap_extension_atr=0.3, session_edge_minutes=720.0, mid_bar_min_pct=0.0,
    wide_range_atr=0.5, min_relative_volume=1.2, relvol_lookback=5, pivot_method="camarilla",
    vwap_anchor="week")
#: No pivots, the session VWAP on daily bars too, a long volume lookback, stops far out.
OTHER: dict[str, Any] = dict(
    near_level_atr=0.0, stop_buffer_atr=5.0, stop_level_search_atr=50.0, pivot_method="none",
    vwap_anchor="session", session_edge_minutes=90.0, mid_bar_min_pct=40.0,
    min_relative_volume=0.9, relvol_lookback=250)

#: How far past the last bar's close the moved as_of lies, by timeframe.
INTRADAY_SHIFTS = ("5min", "20min 1.5s 7us", "50min", "90min", "7h", "20h", "2D", "2D12h",
                   "6D")
DAILY_SHIFTS = ("1h", "6h", "20h", "1D3h", "3D", "6D2h")


def moved(case: Case, delta: pd.Timedelta) -> Case:
    """Return ``case`` decided ``delta`` later on the same bars."""
    intent, pack = case
    as_of = (pd.Timestamp(intent.as_of) + delta).to_pydatetime()
    return (dataclasses.replace(intent, as_of=as_of), dataclasses.replace(pack, as_of=as_of))


def with_bars(case: Case, bars: pd.DataFrame, features: pd.DataFrame | None = None) -> Case:
    """Return ``case`` with its market window replaced."""
    intent, pack = case
    assert pack.market is not None
    market = dataclasses.replace(pack.market, bars=bars.reset_index(drop=True),
                                 features=(pack.market.features if features is None
                                           else features).reset_index(drop=True))
    return intent, dataclasses.replace(pack, market=market)


@pytest.fixture(scope="module")
def timing_cases(real_cases: list[Case]) -> list[Case]:
    """The real cases, a sample of them with as_of moved past the last close."""
    hourly = [c for c in real_cases if c[0].timeframe.is_intraday][::6]
    daily = [c for c in real_cases if not c[0].timeframe.is_intraday][::20]
    return ([moved(c, pd.Timedelta(d)) for c in hourly for d in INTRADAY_SHIFTS]
            + [moved(c, pd.Timedelta(d)) for c in daily for d in DAILY_SHIFTS])


@pytest.fixture(scope="module")
def odd_cases(real_cases: list[Case]) -> list[Case]:
    """Windows cut short (features too, or none: ATR from the bars), NaN volumes, session
    closes a few microseconds apart (medians between two microseconds), a levels piece of
    the wrong kind, windows out of time order or with a missing session; on an hourly and a
    daily real case, each also decided 40 minutes and a day later."""
    out: list[Case] = []
    hourly = next(c for c in real_cases if c[0].timeframe.is_intraday)
    daily = next(c for c in real_cases if not c[0].timeframe.is_intraday)
    for case in (hourly, daily):
        market = case[1].market
        assert market is not None
        bars, features = market.bars, market.features
        variants = [with_bars(case, bars.tail(k), f)
                    for k in (1, 2, 3, 12, 30, 75) for f in (features.tail(k), features[:0])]
        thin = bars.copy()
        thin.loc[thin.index[-6:-1], "volume"] = np.nan
        empty = bars.copy()
        empty.loc[empty.index[:-1], "volume"] = np.nan
        jitter = bars.copy()
        closing = (jitter.groupby("session").cumcount(ascending=False) == 0).to_numpy()
        jitter.loc[closing, "ts_close"] += pd.to_timedelta(np.arange(closing.sum()), "us")
        no_session = bars.copy()
        no_session.loc[no_session.index[-30], "session"] = pd.NaT
        variants += [with_bars(case, thin), with_bars(case, empty), with_bars(case, jitter),
                     with_bars(case, jitter.tail(100)),
                     (case[0], dataclasses.replace(case[1], levels="levels unknown")),
                     with_bars(case, bars.iloc[::-1]),  # out of time order: evaluate decides
                     with_bars(case, no_session)]
        out += [moved(c, pd.Timedelta(d)) for c in variants for d in ("0s", "40min", "1D")]
    return out


def equity_hourly(days: int = 60, seed: int = 2) -> MarketData:
    """Hourly bars of a stock: seven a day from 9:30 New York, four on an early-close day
    every 17th, the opening bar missing every 11th day (sessions of uneven length, bars at
    uneven offsets)."""
    rng = np.random.default_rng(seed)
    opens, sessions = [], []
    for i, day in enumerate(pd.bdate_range("2016-02-01", periods=days)):
        first = pd.Timestamp(day).tz_localize("America/New_York") + pd.Timedelta("9h30min")
        for hour in range(7 if i % 17 else 4):
            if not (i % 11 == 5 and hour == 0):
                opens.append((first + pd.Timedelta(hours=hour)).tz_convert("UTC"))
                sessions.append(day)
    ts = pd.DatetimeIndex(opens).as_unit("us")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.003, len(ts))))
    bars = pd.DataFrame({"symbol": "TEST", "timeframe": "1h", "ts": ts,
                         "ts_close": ts + pd.Timedelta(hours=1),
                         "session": pd.DatetimeIndex(sessions).as_unit("us"), "open": close,
                         "high": close * 1.002, "low": close * 0.998, "close": close,
                         "volume": rng.integers(100_000, 1_000_000, len(ts)).astype(float),
                         "adj_close": np.nan})
    features = pd.DataFrame({"symbol": "TEST", "timeframe": "1h", "ts": ts,
                             "atr_14": close * 0.004, "ema_20": close})
    return MarketData(bars=bars, features=features,
                      last_bar_close=bars["ts_close"].iloc[-1].to_pydatetime(),
                      sessions_since_last_bar=0, missing_sessions=(), window_sessions=days,
                      bars_without_features=0)


@pytest.fixture(scope="module")
def synthetic_cases() -> list[Case]:
    """Synthetic FX hourly windows decided around session opens, closes and a weekend;
    daily windows decided inside the next day; stock hourly windows decided through the
    session, overnight and over weekends."""
    cases = []
    fx = synth_market("1h", n_bars=400)
    opens = fx.bars.groupby("session")["ts"].min()
    for k in range(-8, -1):
        for delta in ("10min", "50min", "3h", "12h", "23h50min", "24h10min", "2D"):
            as_of = pd.Timestamp(opens.iloc[k]) + pd.Timedelta(delta)
            if as_of <= fx.bars["ts_close"].iloc[-1]:
                cases.append(timing_case("1h", cut_at(fx, as_of), as_of))
    closes = fx.bars["ts_close"]
    friday = pd.Timestamp(closes[closes.dt.day_of_week == 4].iloc[-1])
    for hours in (1, 15, 40, 48, 49, 50):
        cases.append(timing_case("1h", cut_at(fx, friday), friday + pd.Timedelta(hours=hours)))
    daily = synth_market("1d", n_bars=200)
    for k in range(150, 200, 7):
        cut = dataclasses.replace(daily, bars=daily.bars.iloc[:k].reset_index(drop=True),
                                  features=daily.features.iloc[:k])
        for delta in ("1h", "13h", "20h", "1D2h", "3D"):
            cases.append(timing_case("1d", cut, pd.Timestamp(
                cut.bars["ts_close"].iloc[-1]) + pd.Timedelta(delta)))
    stock = equity_hourly()
    for end in stock.bars["ts_close"].iloc[50::13]:
        for delta in ("0s", "10min", "45min", "3h", "17h", "20h", "2D", "3D"):
            cases.append(timing_case("1h", cut_at(stock, end), end + pd.Timedelta(delta)))
    return cases


def test_a_batch_equals_its_batches_of_one(all_cases: list[Case], timing_cases: list[Case],
                                          odd_cases: list[Case],
                                          synthetic_cases: list[Case]) -> None:
    fired: set[str] = set()
    # every odd case with the defaults; a sample of the others (the oracle checks them all)
    for config, step in (({}, 3), (LOOSE, 8), (OTHER, 8)):
        for cases in (all_cases, timing_cases, odd_cases, synthetic_cases):
            evaluator = EntryQualityEvaluator(config)
            batch = assert_rows_match_batches_of_one(
                evaluator, cases[::1 if cases is odd_cases and not config else step])
            fired |= set(batch.issues["code"])
    assert fired == set(EntryQualityEvaluator.codes), set(EntryQualityEvaluator.codes) - fired


def test_the_column_form_says_what_the_plain_rules_say(
        real_cases: list[Case], timing_cases: list[Case], synthetic_cases: list[Case]) -> None:
    digits = {e.name: e.digits for spec in EntryQualityEvaluator.codes.values()
              for e in (*spec.evidence, *spec.action_facts)}
    digits.update({e.name: e.digits for e in EntryQualityEvaluator.explain})
    fired: set[str] = set()
    for config, step in (({}, 1), (LOOSE, 4), (OTHER, 4)):
        evaluator = EntryQualityEvaluator(config)
        cfg = EntryQualityConfig.from_mapping(config)
        moved = [*timing_cases, *synthetic_cases][::2 * step]
        cases = runnable(evaluator, [*real_cases[::step], *moved])
        batch = evaluator.evaluate_batch(from_packs([i for i, _ in cases],
                                                    [p for _, p in cases]))
        for row, (intent, pack) in enumerate(cases):
            got = batch.row(row)
            want, explain = scan(intent, pack, cfg)
            label = f"{config} {intent.intent_id}"
            assert [(i.code, i.severity) for i in got.issues] == [(c, s) for c, s, _ in want], (
                label)
            for issue, (code, _, facts) in zip(got.issues, want, strict=True):
                have = {f.name: f for f in (*issue.evidence, *issue.mitigation.facts)}
                assert set(have) == set(facts), (label, code)
                for name, (value, unit) in facts.items():
                    assert have[name].unit == unit, (label, code, name)
                    assert_close(have[name], value, digits.get(name), f"{label} {code}")
                fired.add(code)
            for fact in got.explain_facts:
                assert_close(fact, explain.get(fact.name), digits.get(fact.name), label)
    assert fired == set(EntryQualityEvaluator.codes), set(EntryQualityEvaluator.codes) - fired


def assert_close(fact: Fact, want: Any, digits: int | None, label: str) -> None:
    """Assert ``fact`` holds ``want`` rounded to the declared ``digits``."""
    if isinstance(want, float):
        assert isinstance(fact.value, float), (label, fact, want)
        rounding = 0.5 * 10.0 ** -digits if digits is not None else 0.0
        assert abs(fact.value - want) <= rounding + 1e-9 * max(1.0, abs(want)), (
            label, fact, want)
    else:
        assert fact.value == want, (label, fact, want)


# The real cases (~440 packs built one by one) are a session fixture: one worker builds them.
pytestmark = pytest.mark.xdist_group("batch_cases")
