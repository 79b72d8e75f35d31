"""EntryQuality: each check fires on its case with the right numbers, suggested prices sit on
the tick grid on the safe side, the wording passes the guardrails, and results are
point-in-time on the real data (levels provider included)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from buddy.context.builder import ContextPackBuilder
from buddy.context.pack import ContextPack, MarketData
from buddy.data.synth import synth_universe
from buddy.domain import EvaluationResult, Issue, Severity, Side, TradeIntent
from buddy.errors import ConfigError
from buddy.evaluators.entry_quality import EntryQualityConfig, EntryQualityEvaluator
from buddy.evidence import is_on_tick
from buddy.explain import render_issue
from buddy.guardrails import check_text
from buddy.levels.provider import levels_provider
from buddy.store import Store
from buddy.timeframes import Timeframe
from tests import factories

from .test_point_in_time_cases import PIT_POINTS

CLOSE, ATR = 100.0, 2.0


def flat_pack(*, levels: Any = None, ema: float = CLOSE, volume: float = 1e6,
              last_range: float = 3.6, **overrides: Any) -> ContextPack:
    """Daily bars closing at 100 with ATR 2, EMA(20) at ``ema``, the last bar ``last_range``
    wide (0.9 ATR either side by default); quiet default levels."""
    m = factories.market(n_bars=60)
    bars = m.bars.assign(open=CLOSE, high=CLOSE + 0.5, low=CLOSE - 0.5, close=CLOSE,
                         volume=1e6)
    last = bars.index[-1]
    bars.loc[last, ["high", "low", "volume"]] = [CLOSE + last_range / 2,
                                                 CLOSE - last_range / 2, volume]
    market = dataclasses.replace(m, bars=bars, features=m.features.assign(atr_14=ATR,
                                                                          ema_20=ema))
    return factories.pack(market=market, levels=levels or factories.levels(CLOSE),
                          missing={}, **overrides)


def intent(**overrides: Any) -> TradeIntent:
    values: dict[str, Any] = dict(proposed_entry=CLOSE, proposed_stop=CLOSE - 1.5 * ATR,
                                  proposed_target=CLOSE + 3 * ATR)
    values.update(overrides)
    return factories.intent(**values)


def run(intent_: TradeIntent, ctx: ContextPack, **config: Any) -> EvaluationResult:
    """Evaluate with every level counting on its own (``min_level_strength`` 1, no merging)
    unless told otherwise: these tests place single levels; consolidation and the strength
    filter have their own tests."""
    config.setdefault("min_level_strength", 1.0)
    config.setdefault("level_merge_atr", 0.0)
    return EntryQualityEvaluator(config).evaluate(intent_, ctx)


def codes(result: EvaluationResult) -> set[str]:
    return {i.code for i in result.issues}


def only(result: EvaluationResult, code: str) -> Issue:
    matches = [i for i in result.issues if i.code == code]
    assert len(matches) == 1, [i.code for i in result.issues]
    return matches[0]


def fact(issue: Issue, name: str) -> Any:
    found = issue.fact(name)
    if found is None:
        found = next(f for f in issue.mitigation.facts if f.name == name)
    return found.value


def test_a_clean_idea_trips_nothing() -> None:
    result = run(intent(), flat_pack())
    assert result.issues == () and result.score == 100.0
    facts = {f.name: f.value for f in result.explain_facts}
    assert facts["nearest_level_ahead_atr"] == 0.75  # prior-day high 1.5 above
    assert facts["ema_extension_atr"] == 0.0
    assert facts["vwap_extension_atr"] == pytest.approx(0.25)


def test_a_long_just_under_resistance() -> None:
    levels = factories.levels(CLOSE, prior_day_high=CLOSE + 0.4)
    issue = only(run(intent(), flat_pack(levels=levels)), "ENTRY_UNDER_RESISTANCE")
    assert issue.severity is Severity.MEDIUM
    assert (fact(issue, "level_name"), fact(issue, "level_price")) == ("prior-day high", 100.4)
    assert fact(issue, "distance_atr") == pytest.approx(0.2)
    confirm, pullback = fact(issue, "confirm_price"), fact(issue, "pullback_entry")
    assert confirm == 100.6 and pullback == 99.4  # level +0.1 ATR / -0.5 ATR, on the grid
    assert is_on_tick(confirm, 0.01) and is_on_tick(pullback, 0.01)
    # a level exactly at the threshold, or beyond it, is not flagged
    edge = factories.levels(CLOSE, prior_day_high=CLOSE + 1.0)
    assert "ENTRY_UNDER_RESISTANCE" not in codes(run(intent(), flat_pack(levels=edge)))


def test_a_short_just_over_a_support_cluster() -> None:
    from buddy.context.pieces import PriceLevel

    cluster = PriceLevel(price=99.7, kind="support", touches=4, last_touch=factories.AS_OF)
    levels = factories.levels(CLOSE, support_resistance=(cluster,))
    short = intent(side=Side.SHORT, proposed_stop=CLOSE + 3, proposed_target=CLOSE - 6)
    issue = only(run(short, flat_pack(levels=levels)), "ENTRY_OVER_SUPPORT")
    assert fact(issue, "touches") == 4 and "4 touches" in fact(issue, "level_name")
    assert fact(issue, "confirm_price") == 99.5 and fact(issue, "pullback_entry") == 100.7


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_a_stop_not_beyond_the_nearest_level(side: Side) -> None:
    sign = 1 if side is Side.LONG else -1
    # the prior-day level behind the entry sits 0.8 ATR away; the stop is 0.05 ATR inside it
    levels = factories.levels(CLOSE, prior_day_low=CLOSE - 1.6, prior_day_high=CLOSE + 1.6,
                              pivots={})
    stop = CLOSE - sign * 1.5
    trade = intent(side=side, proposed_stop=stop, proposed_target=CLOSE + sign * 6)
    issue = only(run(trade, flat_pack(levels=levels)), "STOP_NOT_BEYOND_LEVEL")
    assert fact(issue, "level_price") == CLOSE - sign * 1.6
    assert fact(issue, "stop_side") == "inside"
    assert fact(issue, "stop_beyond_level_atr") == pytest.approx(-0.05)
    suggested = fact(issue, "suggested_stop")
    assert suggested == pytest.approx(CLOSE - sign * 1.8) and is_on_tick(suggested, 0.01)
    beyond = intent(side=side, proposed_stop=CLOSE - sign * 1.9,
                    proposed_target=CLOSE + sign * 6)
    assert "STOP_NOT_BEYOND_LEVEL" not in codes(run(beyond, flat_pack(levels=levels)))


def test_extension_from_ema_and_vwap() -> None:
    stretched = flat_pack(ema=CLOSE - 6 * ATR)  # 6 ATR above EMA: more than 1.5 x 2.5
    issue = only(run(intent(), stretched), "EXTENDED_FROM_EMA")
    assert issue.severity is Severity.MEDIUM and fact(issue, "ema_extension_atr") == 6.0
    assert fact(issue, "suggested_entry") == 93.0  # EMA + 2.5 ATR
    mild = only(run(intent(), flat_pack(ema=CLOSE - 3 * ATR)), "EXTENDED_FROM_EMA")
    assert mild.severity is Severity.LOW
    far_vwap = factories.levels(CLOSE * 0.9)  # month VWAP at 89.55: 5.2 ATR below
    vwap_issue = only(run(intent(), flat_pack(levels=dataclasses.replace(
        factories.levels(CLOSE), anchored_vwaps=far_vwap.anchored_vwaps))),
        "EXTENDED_FROM_VWAP")
    assert fact(vwap_issue, "vwap_anchor") == "month"
    assert fact(vwap_issue, "vwap_extension_atr") == pytest.approx((CLOSE - 89.55) / ATR)
    assert fact(vwap_issue, "vwap_extension_sd") == pytest.approx((CLOSE - 89.55) / 0.9)
    assert fact(vwap_issue, "suggested_entry") == pytest.approx(93.55)
    # a short below the EMA is extended the other way; a long there is not
    short = intent(side=Side.SHORT, proposed_stop=CLOSE + 3, proposed_target=CLOSE - 6)
    assert "EXTENDED_FROM_EMA" in codes(run(short, flat_pack(ema=CLOSE + 6 * ATR)))
    assert "EXTENDED_FROM_EMA" not in codes(run(intent(), flat_pack(ema=CLOSE + 6 * ATR)))
    # the week VWAP when configured
    week = run(intent(), flat_pack(), vwap_anchor="week")
    assert {f.name: f.value for f in week.explain_facts}["vwap_extension_atr"] == (
        pytest.approx(0.1))


def test_wide_range_bar_and_thin_volume() -> None:
    result = run(intent(), flat_pack(last_range=5.0, volume=2e5))
    wide = only(result, "WIDE_RANGE_BAR")
    assert fact(wide, "last_bar_range_atr") == 2.5 and fact(wide, "suggested_entry") == 100.0
    thin = only(result, "LOW_RELATIVE_VOLUME")
    assert fact(thin, "relative_volume") == pytest.approx(0.2)
    assert (fact(thin, "reference_bars"), issue_unit(thin, "reference_bars")) == (20, "bars")


def issue_unit(issue: Issue, name: str) -> str:
    found = issue.fact(name)
    assert found is not None
    return found.unit


# ------------------------------------------------------------------------------ timing
def synth_market(timeframe: str, n_bars: int = 300, **features: float) -> MarketData:
    """The last ``n_bars`` of a synthetic universe's first symbol as a MarketData piece."""
    bars = synth_universe(1, years=1.0 if timeframe == "1d" else 0.1, timeframe=timeframe,
                          seed=5).bars.tail(n_bars).reset_index(drop=True)
    feats = pd.DataFrame({"symbol": bars["symbol"], "timeframe": timeframe, "ts": bars["ts"],
                          "atr_14": bars["close"] * 0.01, "ema_20": bars["close"]})
    for name, value in features.items():
        feats[name] = value
    return MarketData(bars=bars, features=feats,
                      last_bar_close=bars["ts_close"].iloc[-1].to_pydatetime(),
                      sessions_since_last_bar=0, missing_sessions=(), window_sessions=20,
                      bars_without_features=0)


def timing_case(timeframe: str, market: MarketData, as_of: pd.Timestamp
                ) -> tuple[TradeIntent, ContextPack]:
    close = round(market.last_close, 2)
    ctx = factories.pack(timeframe=Timeframe(timeframe), as_of=as_of.to_pydatetime(),
                         market=market, levels=factories.levels(close), missing={})
    trade = factories.intent(timeframe=Timeframe(timeframe), as_of=as_of.to_pydatetime(),
                             proposed_entry=close, proposed_stop=round(close * 0.97, 2),
                             proposed_target=round(close * 1.06, 2))
    return trade, ctx


def cut_at(market: MarketData, as_of: pd.Timestamp) -> MarketData:
    bars = market.bars[market.bars["ts_close"] <= as_of].reset_index(drop=True)
    return dataclasses.replace(market, bars=bars, features=market.features.iloc[:len(bars)],
                               last_bar_close=bars["ts_close"].iloc[-1].to_pydatetime())


def test_intraday_entries_at_the_session_open_and_close_and_mid_bar() -> None:
    full = synth_market("1h", n_bars=400)
    # FX sessions roll at 17:00 New York: pick a mid-week session from the bars themselves
    sessions = full.bars.groupby("session")["ts"].min()
    opened = pd.Timestamp(sessions.iloc[-3])
    at_open = opened + pd.Timedelta(minutes=10)  # no bar of the new session has closed yet
    result = run(*timing_case("1h", cut_at(full, at_open), at_open))
    edge = only(result, "ENTRY_AT_SESSION_EDGE")
    assert (fact(edge, "session_edge"), fact(edge, "minutes_from_edge")) == ("open", 10.0)
    mid_bar = only(result, "ENTRY_MID_BAR")
    assert fact(mid_bar, "bar_progress_pct") == pytest.approx(100 * 10 / 60, abs=0.01)
    assert fact(mid_bar, "minutes_to_bar_close") == 50.0
    before_close = opened + pd.Timedelta(hours=24) - pd.Timedelta(minutes=10)
    late = run(*timing_case("1h", cut_at(full, before_close), before_close))
    assert fact(only(late, "ENTRY_AT_SESSION_EDGE"), "session_edge") == "close"
    midday = opened + pd.Timedelta(hours=12)
    calm = run(*timing_case("1h", cut_at(full, midday), midday))
    assert not codes(calm) & {"ENTRY_AT_SESSION_EDGE", "ENTRY_MID_BAR"}
    # the weekend: shut, so an order fills at the open
    friday_close = pd.Timestamp(full.bars.loc[full.bars["ts_close"].dt.day_of_week == 4,
                                              "ts_close"].iloc[-1])
    saturday = friday_close + pd.Timedelta(hours=15)
    weekend = run(*timing_case("1h", cut_at(full, saturday), saturday))
    assert fact(only(weekend, "ENTRY_AT_SESSION_EDGE"), "minutes_from_edge") == 0.0
    assert "ENTRY_MID_BAR" not in codes(weekend)
    # stale data: no timing judgement
    stale = dataclasses.replace(cut_at(full, midday), sessions_since_last_bar=2)
    assert "ENTRY_AT_SESSION_EDGE" not in codes(run(*timing_case("1h", stale, at_open)))


def test_a_daily_entry_before_the_day_closes() -> None:
    market = synth_market("1d", n_bars=200)
    # cut after a Tuesday in October (no holiday in the following week)
    days = market.bars["session"]
    k = int(np.flatnonzero((days.dt.month == 10) & (days.dt.day_of_week == 1))[1])
    cut = dataclasses.replace(market, bars=market.bars.iloc[:k + 1].reset_index(drop=True),
                              features=market.features.iloc[:k + 1])
    nxt = market.bars.iloc[k + 1]
    as_of = pd.Timestamp(nxt["ts"]) + 0.4 * (pd.Timestamp(nxt["ts_close"])
                                             - pd.Timestamp(nxt["ts"]))
    issue = only(run(*timing_case("1d", cut, as_of)), "ENTRY_MID_BAR")
    assert fact(issue, "bar_progress_pct") == pytest.approx(40.0)
    assert fact(issue, "bar_open") == pd.Timestamp(nxt["ts"]).isoformat()
    after_close = pd.Timestamp(cut.bars["ts_close"].iloc[-1]) + pd.Timedelta(hours=2)
    assert "ENTRY_MID_BAR" not in codes(run(*timing_case("1d", cut, after_close)))


def test_intraday_relative_volume_compares_the_same_hour_of_earlier_sessions() -> None:
    market = synth_market("1h", n_bars=400)
    bars = market.bars.copy()
    hour = (bars["ts"] - bars.groupby("session")["ts"].transform("min"))
    # Asian hours trade a tenth of the London ones: a quiet Asian bar is normal for its hour
    bars["volume"] = np.where(hour < pd.Timedelta(hours=8), 1e5, 1e6)
    quiet = bars.index[(hour == pd.Timedelta(hours=3)).to_numpy()][-1]
    cut = dataclasses.replace(market, bars=bars.iloc[:quiet + 1].reset_index(drop=True))
    as_of = pd.Timestamp(bars["ts_close"].iloc[quiet])
    result = run(*timing_case("1h", cut, as_of))
    facts = {f.name: f.value for f in result.explain_facts}
    assert facts["relative_volume"] == pytest.approx(1.0)
    bars.loc[quiet, "volume"] = 2e4
    thin = dataclasses.replace(cut, bars=bars.iloc[:quiet + 1].reset_index(drop=True))
    issue = only(run(*timing_case("1h", thin, as_of)), "LOW_RELATIVE_VOLUME")
    assert fact(issue, "relative_volume") == pytest.approx(0.2)
    # one bar per earlier session (the same hour): a count of bars, as on daily bars
    assert issue_unit(issue, "reference_bars") == "bars"


# ------------------------------------------------------------------------------ wording
def test_every_code_renders_with_its_template_and_passes_the_guardrails() -> None:
    from buddy.context.pieces import PriceLevel

    cluster = PriceLevel(price=99.7, kind="support", touches=4, last_touch=factories.AS_OF)
    cases = [
        (intent(proposed_stop=97.9), flat_pack(
            levels=factories.levels(CLOSE, prior_day_high=100.4, prior_day_low=98.0,
                                    pivots={}),
            ema=88.0, last_range=5.0, volume=1e5)),
        (intent(side=Side.SHORT, proposed_stop=103, proposed_target=94),
         flat_pack(levels=dataclasses.replace(factories.levels(CLOSE),
                                              support_resistance=(cluster,),
                                              anchored_vwaps=factories.levels(
                                                  110.0).anchored_vwaps))),
    ]
    market = synth_market("1h", n_bars=400)
    opened = pd.Timestamp(market.bars.groupby("session")["ts"].min().iloc[-3])
    at_open = opened + pd.Timedelta(minutes=10)
    cases.append(timing_case("1h", cut_at(market, at_open), at_open))
    seen = set()
    for trade, ctx in cases:
        for issue in run(trade, ctx).issues:
            seen.add(issue.code)
            template = EntryQualityEvaluator.templates[issue.code]
            rendered = render_issue(issue, template)
            assert rendered.renderer == "template", (issue.code, rendered)
            facts = (*issue.evidence, *issue.mitigation.facts)
            for text in (rendered.explanation, rendered.mitigation, *rendered.evidence):
                verdict = check_text(text, facts, allowed=(template.explanation,
                                                           template.mitigation))
                assert verdict.ok, (issue.code, text, verdict.reasons)
    assert seen == set(EntryQualityEvaluator.templates), set(EntryQualityEvaluator.templates
                                                             ) - seen


def test_config_errors_name_the_field_the_range_and_the_value() -> None:
    with pytest.raises(ConfigError) as err:
        EntryQualityConfig(near_level_atr=-1.0)
    assert "entry_quality.near_level_atr" in str(err.value) and "-1.0" in str(err.value)
    with pytest.raises(ConfigError, match="did you mean 'near_level_atr'"):
        EntryQualityConfig.from_mapping({"near_levle_atr": 0.3})
    with pytest.raises(ConfigError, match="pivot_method"):
        EntryQualityConfig(pivot_method="woodie")


# ------------------------------------------------------------------------------ point in time
EXTRA_PIT_POINTS = [
    ("AAPL", "1d", "2005-02-28T15:00Z"),  # on the ex-date, before the close: mid-bar
    ("EURUSD", "1h", "2017-06-15T14:20Z"),  # mid-bar, mid-session
    ("EURUSD", "1h", "2017-03-05T22:05Z"),  # five minutes into the week's first session
]


def pit_intents(ctx: ContextPack, as_of: datetime) -> list[TradeIntent]:
    assert ctx.market is not None
    close = ctx.market.last_close
    atr = ctx.market.latest_features["atr_14"]
    base = dict(symbol=ctx.symbol, timeframe=ctx.timeframe, as_of=as_of,
                proposed_entry=round(close, 6))
    return [factories.intent(**base, proposed_stop=round(close - atr, 6),
                             proposed_target=round(close + 2 * atr, 6)),
            factories.intent(**base, side=Side.SHORT, proposed_stop=round(close + 0.6 * atr, 6),
                             proposed_target=round(close - 2 * atr, 6))]


@pytest.mark.parametrize(("symbol", "tf", "as_of"), PIT_POINTS + EXTRA_PIT_POINTS)
def test_point_in_time(sample_store: Store, truncated_store, symbol: str, tf: str,
                       as_of: str) -> None:
    t = pd.Timestamp(as_of).to_pydatetime()
    providers = {"levels": levels_provider}
    full = ContextPackBuilder(sample_store, providers=providers).build("u1", symbol,
                                                                       Timeframe(tf), t)
    cut = ContextPackBuilder(truncated_store(symbol, t), providers=providers).build(
        "u1", symbol, Timeframe(tf), t)
    assert full.levels is not None and full.levels == cut.levels
    # every consolidated level counts, so "levels were read" holds on each intent
    evaluator = EntryQualityEvaluator({"min_level_strength": 0.0})
    fired = set()
    for trade in pit_intents(full, t):
        result = evaluator.evaluate(trade, full)
        assert result == evaluator.evaluate(trade, cut)
        fired |= codes(result)
        facts = {f.name: f.value for f in result.explain_facts}
        assert facts["atr_source"] == "ta_features"
        assert facts["nearest_level_ahead_atr"] is not None  # levels were read
    # the short's stop 0.6 ATR above the close is inside some level on most days
    assert fired or symbol == "EURUSD"
