"""MissingScanner's batch form equals its scalar form: on the real cases and the contract
cases, with the default thresholds and with ones under which more items fire, and on edge
cases the real data lacks (weekly and intraday horizons, an as_of inside a session, schedules
with no or few sessions, tied levels, odd optional pieces, intraday and weekly stock bars,
and the rows the batch form hands to the scalar form)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from buddy.batch.context import from_packs
from buddy.batch.result import BatchResult
from buddy.context.pack import ContextPack, MarketData
from buddy.context.pieces import KeyLevelsSnapshot
from buddy.domain import Side, TradeIntent
from buddy.evaluators.base import Evaluator
from buddy.evaluators.missing_scanner import MissingScannerEvaluator, _BatchScan
from buddy.timeframes import Timeframe
from tests import factories
from tests.batch.parity import assert_batch_matches_scalar, runnable

Case = tuple[TradeIntent, ContextPack]

#: Thresholds under which most items fire on the real cases: every stock is thin, every
#: regime risky, one level is medium, a long default horizon.
EAGER: dict[str, Any] = dict(
    min_session_value=1e12, default_horizon_bars=60, levels_medium_count=1,
    transition_risk_low_pct=0.0, transition_risk_medium_pct=10.0, liquidity_sessions=7)
#: Both liquidity severities (a one-session median), both regime severities, low-severity
#: levels, a horizon longer than the known sessions.
MIXED: dict[str, Any] = dict(
    min_session_value=3e9, liquidity_sessions=1, transition_risk_low_pct=5.0,
    transition_risk_medium_pct=20.0, levels_medium_count=5, default_horizon_bars=400)
CONFIGS = {"default": {}, "eager": EAGER, "mixed": MIXED}


def _hourly_market() -> MarketData:
    """Hourly stock bars, 7 per session over 12 sessions, the window starting mid-session
    (a partial first session) and some volumes missing."""
    days = pd.bdate_range("2012-05-15", periods=12)
    ts = pd.DatetimeIndex([d + pd.Timedelta(hours=13, minutes=30) + pd.Timedelta(hours=h)
                           for d in days for h in range(7)], tz="UTC")[3:]
    rng = np.random.default_rng(3)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.005, len(ts))))
    volume = rng.uniform(200, 2_000, len(ts))
    volume[[4, 20]] = np.nan
    bars = pd.DataFrame({"symbol": "TEST", "timeframe": "1h", "ts": ts, "ts_close": ts,
                         "session": ts.tz_localize(None).normalize(), "open": close,
                         "high": close * 1.01, "low": close * 0.99, "close": close,
                         "volume": volume, "adj_close": np.nan})
    return dataclasses.replace(factories.market(), bars=bars)


def _weekly_market() -> MarketData:
    """Weekly stock bars (one session key per week) of a thin stock."""
    base = factories.market(n_bars=40)
    bars = base.bars.iloc[::5].reset_index(drop=True).assign(volume=2_000.0)
    return dataclasses.replace(base, bars=bars)


def _odd_market(kind: str) -> MarketData:
    """Bars whose sessions pandas' groupby would drop (a missing one) or regroup (out of
    order): the batch form hands such rows to the scalar form."""
    bars = factories.thin_market().bars.copy()
    if kind == "missing":
        bars["session"] = bars["session"].astype("datetime64[us]")
        bars.loc[bars.index[-3], "session"] = pd.NaT
    else:
        bars.loc[bars.index[-4:], "session"] = bars["session"].iloc[-4:].to_numpy()[::-1]
    return dataclasses.replace(factories.thin_market(), bars=bars)


def _tied_levels(close: float) -> KeyLevelsSnapshot:
    """Levels with prices shared by several names (the nearest is the first name among
    them), some above and some below ``close``, one NaN."""
    up, down = round(close * 1.02, 2), round(close * 0.98, 2)
    return KeyLevelsSnapshot(
        symbol="TEST", timeframe="1d", ts=factories.AS_OF, prior_day_high=up,
        prior_day_low=down, prior_day_close=float("nan"), rolling_range_high=up,
        rolling_range_low=round(close * 0.9, 2),
        pivots={"classic": {"R1": up, "S1": down, "P": close, "R2": round(close * 1.04, 2)},
                "camarilla": {"H3": round(close * 1.04, 2), "L3": down}})


def edge_cases() -> list[Case]:
    """Every (intent, pack) pairing of a few intents (each timeframe, both sides, with and
    without target, stop and horizon) and packs chosen for what the real data lacks."""
    close = round(factories.market().last_close, 2)
    as_of = factories.AS_OF
    news = (factories.event("macro", "2012-06-05T12:30Z", "US payrolls", None),
            factories.event("other", "2012-06-06T14:00Z", "Investor day", None),
            factories.event("earnings", "2012-06-06T20:30Z", "OTHR Q2 earnings", "OTHR"))
    three_states = factories.regime(
        timeframe="1h", hmm_state_labels=("calm", "normal", "stormy"), hmm_state_id=2,
        hmm_probs=(0.2, 0.3, 0.5), transition_matrix=((0.99, 0.01, 0.0), (0.02, 0.97, 0.01),
                                                      (0.0, 0.05, 0.95)))
    packs = [
        factories.pack(schedule=factories.schedule(events=news), levels=_tied_levels(close),
                       regime=three_states, portfolio=factories.ExposureStub(TEST=-50.0),
                       market=_hourly_market(), missing={}),
        factories.pack(
            schedule=factories.schedule(as_of=datetime(2012, 6, 1, 15, 0, tzinfo=UTC)),
            levels="levels unknown", regime="calm", portfolio=object(),
            market=_weekly_market(), missing={},
            instrument=factories.instrument(asset_class="etf", currency="EUR",
                                            timezone="Europe/London")),
        factories.pack(schedule=factories.schedule(sessions=(), events=()),
                       market=factories.thin_market(),
                       missing={"levels": "no levels job run", "regime": "no fit yet",
                                "portfolio": "no broker link"},
                       instrument=factories.instrument(asset_class="fx", currency="JPY")),
        factories.pack(schedule=factories.schedule(lookahead_days=10),
                       levels=factories.levels(close), regime=factories.regime(hmm_probs=()),
                       portfolio=factories.ExposureStub(TEST=0.0), missing={}),
        factories.pack(schedule=factories.schedule(lookahead_days=60),
                       levels=_tied_levels(close),
                       regime=factories.regime(timeframe="3d", hmm_state_id=None),
                       portfolio=factories.ExposureStub(TEST=25.0, OTHR=1.0),
                       market=factories.thin_market(volume=50_000.0), missing={},
                       instrument=factories.instrument(contract_multiplier=3)),
        factories.pack(instrument=factories.instrument(asset_class="index")),
        # handed to the scalar form: a schedule read in New York time, one whose earnings
        # belong to another symbol than the intent's, bars with a missing or unordered session
        factories.pack(schedule=factories.schedule(
            as_of=as_of.astimezone(ZoneInfo("America/New_York")))),
        factories.pack(schedule=factories.schedule(events=news, symbol="OTHR")),
        factories.pack(market=_odd_market("missing")),
        factories.pack(market=_odd_market("unordered")),
    ]
    stop, target = round(close * 0.95, 2), round(close * 1.08, 2)
    intents = [
        dict(proposed_entry=close, proposed_stop=stop, proposed_target=target,
             holding_horizon=30),
        dict(side=Side.SHORT, proposed_entry=close, proposed_stop=round(close * 1.05, 2),
             proposed_target=round(close * 0.92, 2), holding_horizon=5),
        dict(proposed_entry=close, proposed_stop=stop, proposed_target=None,
             holding_horizon=None),
        dict(timeframe=Timeframe.W1, proposed_entry=close, proposed_stop=stop,
             proposed_target=target, holding_horizon=3),
        dict(timeframe=Timeframe.W1, proposed_entry=close, proposed_stop=stop,
             proposed_target=target, holding_horizon=80),
        dict(timeframe=Timeframe.H1, proposed_entry=close, proposed_stop=stop,
             proposed_target=target, holding_horizon=200),
        dict(timeframe=Timeframe.H4, side=Side.SHORT, proposed_entry=close, proposed_stop=None,
             proposed_target=round(close * 0.97, 2), holding_horizon=12),
        dict(timeframe=Timeframe.M15, proposed_entry=close, proposed_stop=stop,
             proposed_target=target, holding_horizon=7),
        dict(timeframe=Timeframe.M1, proposed_entry=close, proposed_stop=stop,
             proposed_target=target, holding_horizon=5000, proposed_size=1_000.0),
    ]
    cases = []
    for k, pack in enumerate(packs):
        for j, overrides in enumerate(intents):
            intent = factories.intent(intent_id=f"edge-{k}-{j}", **overrides)
            cases.append((intent, dataclasses.replace(pack, timeframe=intent.timeframe)))
    return cases


def _codes(evaluator: Evaluator, cases: list[Case]) -> Counter:
    return Counter(issue.code for intent, pack in runnable(evaluator, cases)
                   for issue in evaluator.evaluate(intent, pack).issues)


def test_the_module_has_its_own_batch_form() -> None:
    assert MissingScannerEvaluator.evaluate_batch is not Evaluator.evaluate_batch
    assert "evaluate_batch" in MissingScannerEvaluator.__dict__


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_batch_equals_scalar_on_the_real_and_contract_cases(config: str,
                                                           all_cases: list[Case]) -> None:
    evaluator = MissingScannerEvaluator(CONFIGS[config])
    result = assert_batch_matches_scalar(evaluator, all_cases)
    assert isinstance(result, BatchResult) and len(result) == len(runnable(evaluator,
                                                                           all_cases))
    want = _codes(evaluator, all_cases)
    got = Counter(result.issues["code"])
    assert set(want) <= set(got), f"codes the batch form never gave: {set(want) - set(got)}"
    assert got == want


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_batch_equals_scalar_on_edge_cases(config: str) -> None:
    evaluator = MissingScannerEvaluator(CONFIGS[config])
    cases = edge_cases()
    result = assert_batch_matches_scalar(evaluator, cases)
    want = _codes(evaluator, cases)
    assert Counter(result.issues["code"]) == want


def test_edge_cases_reach_every_code_and_the_scalar_hand_off() -> None:
    cases = edge_cases()
    evaluator = MissingScannerEvaluator(MIXED)
    codes = set(_codes(evaluator, cases)) | set(_codes(MissingScannerEvaluator(), cases))
    assert codes == set(MissingScannerEvaluator.templates)
    ctx = from_packs([i for i, _ in cases], [p for _, p in cases])
    odd = {cases[i][0].intent_id.rsplit("-", 1)[0]
           for i in np.flatnonzero(~_BatchScan(evaluator, ctx).ok)}
    assert odd == {"edge-6", "edge-7", "edge-8", "edge-9"}


def test_rows_sharing_pieces_equal_the_rows_alone(all_cases: list[Case]) -> None:
    """Rows repeated and reordered (as ``take`` makes them, sharing piece objects) give
    what their source rows give."""
    evaluator = MissingScannerEvaluator(EAGER)
    cases = runnable(evaluator, [*all_cases, *edge_cases()])
    ctx = from_packs([i for i, _ in cases], [p for _, p in cases])
    rows = np.resize(np.arange(ctx.n), 3 * ctx.n)[::-1]
    whole = evaluator.evaluate_batch(ctx)
    repeated = evaluator.evaluate_batch(ctx.take(rows))
    assert np.array_equal(whole.score[rows], repeated.score)
    assert list(whole.severity[rows]) == list(repeated.severity)
    source = pd.DataFrame({"row": np.arange(len(rows)), "source": rows})
    want = source.merge(whole.issues.rename(columns={"row": "source"}), on="source",
                        sort=False).drop(columns="source")
    want = want.sort_values("row", kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(want, repeated.issues.reset_index(drop=True),
                                  check_dtype=False)
