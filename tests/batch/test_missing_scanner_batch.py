"""MissingScanner over columns: a batch of N says what N batches of one say, and both say
what the plain-loop oracle (tests/evaluators/oracles/missing_scanner.py) says, on the real
cases and the contract cases, with the default thresholds and with ones under which more
items fire, and on edge cases the real data lacks (weekly and intraday horizons, an as_of
inside a session, schedules with no or few sessions, tied levels, odd optional pieces,
intraday and weekly stock bars, a schedule read in New York time, earnings of another symbol,
bar windows whose sessions are missing or out of order)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from buddy.batch.context import from_packs
from buddy.context.pack import ContextPack, MarketData
from buddy.context.pieces import KeyLevelsSnapshot
from buddy.domain import Side, TradeIntent
from buddy.evaluators.missing_scanner import MissingScannerEvaluator
from buddy.testing import assert_value, runnable
from buddy.timeframes import Timeframe
from tests import factories
from tests.evaluators.oracles.missing_scanner import scan

Case = tuple[TradeIntent, ContextPack]

#: Thresholds under which most items fire on the real cases: every stock is thin, every
#: consolidated level counts (strength 1), one level is medium, a long default horizon.
EAGER: dict[str, Any] = dict(
    min_session_value=1e12, default_horizon_bars=60, levels_medium_count=1,
    min_level_strength=1.0, liquidity_sessions=7)
#: Both liquidity severities (a one-session median), moderately strong levels merged wider,
#: another pivot family, low-severity levels, a horizon longer than the known sessions.
MIXED: dict[str, Any] = dict(
    min_session_value=3e9, liquidity_sessions=1, min_level_strength=2.0,
    level_merge_atr=0.5, level_pivot_method="camarilla", levels_medium_count=5,
    default_horizon_bars=400)
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
    """Bars with a missing session or sessions out of order: liquidity is not checked."""
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
        # a schedule read in New York time, one whose earnings belong to another symbol than
        # the intent's, bars with a missing or unordered session
        factories.pack(schedule=factories.schedule(
            as_of=as_of.astimezone(ZoneInfo("America/New_York")))),
        factories.pack(schedule=factories.schedule(events=news, symbol="OTHR")),
        factories.pack(market=_odd_market("missing")),
        factories.pack(market=_odd_market("unordered")),
    ]
    stop, target = round(close * 0.95, 2), round(close * 1.08, 2)
    intents: list[dict[str, Any]] = [
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


def assert_matches_oracle(evaluator: MissingScannerEvaluator, cases: list[Case]) -> None:
    """Assert the column form on a batch of ``cases`` says, row by row, what the oracle
    says: the codes and severities in order, every fact's value and unit, the explain
    facts."""
    cases = runnable(evaluator, cases)
    batch = evaluator.evaluate_batch(from_packs([i for i, _ in cases], [p for _, p in cases]))
    for row, (intent, pack) in enumerate(cases):
        got = batch.row(row)
        issues, explain = scan(intent, pack, evaluator.config)
        label = intent.intent_id
        assert [(i.code, i.severity) for i in got.issues] == [(c, s) for c, s, _ in issues], (
            label)
        for issue, (code, _, facts) in zip(got.issues, issues, strict=True):
            assert [f.name for f in issue.evidence] == list(facts), f"{label} {code}"
            for fact in issue.evidence:
                value, unit = facts[fact.name]
                assert fact.unit == unit, f"{label} {code} {fact.name}"
                assert_value(fact.value, value, f"{label} {code} {fact.name}")
        assert {f.name: f.value for f in got.explain_facts} == explain, label


def assert_batch_equals_batches_of_one(evaluator: MissingScannerEvaluator, cases: list[Case]
                                       ) -> None:
    """Assert a batch of ``cases`` says, row by row, what each case alone says (scores,
    codes, severities, evidence, mitigations, explain facts)."""
    cases = runnable(evaluator, cases)
    batch = evaluator.evaluate_batch(from_packs([i for i, _ in cases], [p for _, p in cases]))
    for row, (intent, pack) in enumerate(cases):
        got, want = batch.row(row), evaluator.evaluate(intent, pack)
        label = intent.intent_id
        assert (got.score, got.severity) == (want.score, want.severity), label
        assert [i.code for i in got.issues] == [i.code for i in want.issues], label
        for g, w in zip(got.issues, want.issues, strict=True):
            assert (g.severity, g.mitigation.action) == (w.severity, w.mitigation.action)
            for a, b in zip((*g.evidence, *g.mitigation.facts),
                            (*w.evidence, *w.mitigation.facts), strict=True):
                assert (a.name, a.unit) == (b.name, b.unit), f"{label} {w.code}"
                assert_value(a.value, b.value, f"{label} {w.code} {a.name}")
        assert got.explain_facts == want.explain_facts, label


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_the_column_form_follows_the_oracle(config: str, all_cases: list[Case]) -> None:
    evaluator = MissingScannerEvaluator(CONFIGS[config])
    assert_matches_oracle(evaluator, [*all_cases, *edge_cases()])


def test_a_batch_equals_batches_of_one(all_cases: list[Case]) -> None:
    # the thresholds under which most items fire; the oracle test covers the others
    assert_batch_equals_batches_of_one(MissingScannerEvaluator(EAGER),
                                       [*all_cases, *edge_cases()])


def test_edge_cases_reach_every_code_and_odd_inputs() -> None:
    cases = edge_cases()
    ctx = from_packs([i for i, _ in cases], [p for _, p in cases])
    result = MissingScannerEvaluator().evaluate_batch(ctx)
    codes = set(result.issues["code"]) | set(
        MissingScannerEvaluator(MIXED).evaluate_batch(ctx).issues["code"])
    assert codes == set(MissingScannerEvaluator.codes)
    checked = {cases[i][0].intent_id.rsplit("-", 1)[0] for i in range(len(cases))
               if result.row(i).explain_facts[-1].value}
    # stocks with ordered bars: not the index, the fx pack, nor the odd bars
    assert checked == {"edge-0", "edge-1", "edge-3", "edge-4", "edge-6", "edge-7"}
    # the schedule read in New York time: its horizon end is written in UTC
    new_york = next(i for i, (intent, _) in enumerate(cases) if intent.intent_id == "edge-6-0")
    end = next(f.value for f in result.row(new_york).explain_facts if f.name == "horizon_end")
    assert isinstance(end, str) and end.endswith("+00:00")


def test_a_schedule_out_of_order_is_refused() -> None:
    intent = factories.intent()
    schedule = factories.schedule()
    backwards = dataclasses.replace(schedule, sessions=schedule.sessions[::-1])
    with pytest.raises(ValueError, match=r"schedule\.sessions"):
        MissingScannerEvaluator().evaluate(intent, factories.pack(schedule=backwards))


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


# The real cases (~440 packs built one by one) are a session fixture: one worker builds them.
pytestmark = pytest.mark.xdist_group("batch_cases")
