"""Entry facts: the demo trader's trades against its known setups, point-in-time, trades and
intents through one rule, the closed_by read and the incremental job."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from buddy.batch.builder import build_batch_context
from buddy.context.providers import ProviderSource
from buddy.levels.provider import levels_provider
from buddy.mtfa.provider import mtfa_provider
from buddy.store import Store
from buddy.store.demo_truth import demo_setups
from buddy.store.strategy import (
    entry_facts_key,
    read_entry_facts,
    trades_for_facts,
)
from buddy.strategy.facts import (
    CONTEXT_FACTS,
    EMBEDDING_FEATURES,
    FACTS_VERSION,
    entry_facts,
    trades_as_intents,
)

PROVIDERS: dict[str, ProviderSource] = {"levels": levels_provider, "mtfa": mtfa_provider}
FINEST = {"AAPL": "1d", "MSFT": "1d", "IBM": "1d", "GOOG": "1d", "EURUSD": "1h"}


def _trade_rows(store: Store, trade_ids: list[str]) -> pd.DataFrame:
    """Return the trades rows of ``trade_ids`` with their linked intent's timeframe and
    target, as the job reads them (every trade, whatever its stored facts)."""
    rows = trades_for_facts(store, "demo", "no-such-version")
    return rows.set_index("trade_id").loc[trade_ids].reset_index()


def _facts_of(store: Store, intents: pd.DataFrame) -> pd.DataFrame:
    return entry_facts(build_batch_context(store, intents, providers=PROVIDERS))


def _assert_same_facts(left: pd.DataFrame, right: pd.DataFrame) -> None:
    for column in (*EMBEDDING_FEATURES, "alignment", "level_ahead_atr"):
        np.testing.assert_allclose(left[column].to_numpy(np.float64),
                                   right[column].to_numpy(np.float64), rtol=1e-9, atol=1e-9,
                                   equal_nan=True, err_msg=column)
    for column in ("symbol", "timeframe", "side", "hour_local", "weekday", "regime"):
        assert left[column].tolist() == right[column].tolist(), column


# ---------------------------------------------------------------------------- known truth
def test_every_demo_trade_has_its_facts_and_planned_ones_a_full_embedding(
        demo_facts: pd.DataFrame, demo_store: Store) -> None:
    assert len(demo_facts) == 881
    assert set(EMBEDDING_FEATURES + CONTEXT_FACTS) <= set(demo_facts.columns)
    assert (demo_facts["facts_version"] == FACTS_VERSION).all()
    planned = demo_facts["intent_id"].notna()
    assert planned.sum() == 776
    assert demo_facts.loc[planned, list(EMBEDDING_FEATURES)].notna().all().all()
    # no intent: no planned stop or target, never imputed
    assert demo_facts.loc[~planned, ["stop_atr", "reward_risk"]].isna().all().all()
    setups = demo_setups(demo_store, "demo")
    assert setups["setup"].value_counts().to_dict() == {
        "pullback_long": 296, "mean_reversion_short": 258, "breakout_long": 254,
        "reversal": 37, "impulse": 36}
    # times in the exchange's zone: the stocks enter at the 16:00 New York close (13:00 on
    # the early closes before holidays)
    hours = demo_facts.loc[demo_facts["timeframe"] == "1d", "hour_local"].value_counts()
    assert set(hours.index) == {13, 16} and hours[16] > 50 * hours[13]
    assert demo_facts["weekday"].between(0, 6).all()
    closed = demo_facts["close_ts"].notna()
    assert closed.sum() == 879
    assert (demo_facts.loc[closed, "win"] == (demo_facts.loc[closed, "pnl"] > 0)).all()
    assert demo_facts.loc[~closed, ["win", "pnl", "holding_hours"]].isna().all().all()


def test_the_facts_restate_each_injected_setup_rule(demo_facts: pd.DataFrame,
                                                    demo_store: Store) -> None:
    """The generator's rules (buddy/trades/demo_history.py), read back from the facts."""
    facts = demo_facts.merge(demo_setups(demo_store, "demo")[["trade_id", "setup"]],
                             on="trade_id")
    by = {name: group for name, group in facts.groupby("setup")}
    for setup, stop_atr, reward_risk in (("breakout_long", 1.0, 2.0),
                                         ("pullback_long", 1.5, 2.0),
                                         ("mean_reversion_short", 1.5, 1.5),
                                         ("reversal", 1.0, 1.5)):
        planned = by[setup][by[setup]["intent_id"].notna()]
        # stops and targets are rounded to the tick: within 3% of the rule
        np.testing.assert_allclose(planned["stop_atr"], stop_atr, rtol=0.03, err_msg=setup)
        np.testing.assert_allclose(planned["reward_risk"], reward_risk, rtol=0.03,
                                   err_msg=setup)
    # the first close above the highest high of the 20 bars before
    assert (by["breakout_long"]["high20_atr"] > 0).all()
    # the close 2 standard deviations or more above its SMA(20)
    assert (by["mean_reversion_short"]["bb_z"] >= 2.0 - 1e-9).all()
    # an up-trend (EMA20 > EMA50) closing above the EMA20
    assert (by["pullback_long"]["trend_atr"] > 0).all()
    assert (by["pullback_long"]["close_ema20_atr"] > 0).all()
    assert (by["pullback_long"]["high20_atr"] < 0).all()
    assert set(by["mean_reversion_short"]["side_sign"]) == {-1.0}


# ---------------------------------------------------------------------------- one rule
def test_a_trade_has_the_facts_of_its_own_plan_as_an_intent(demo_store: Store,
                                                            demo_facts: pd.DataFrame) -> None:
    linked = demo_facts[demo_facts["intent_id"].notna()].iloc[::16]
    intents = demo_store.query("SELECT * FROM trade_intents WHERE list_contains(?, intent_id)",
                               [linked["intent_id"].tolist()]).set_index("intent_id").loc[
        linked["intent_id"].tolist()].reset_index()
    from_intents = _facts_of(demo_store, intents)
    assert len(from_intents) == len(linked) >= 40
    _assert_same_facts(from_intents, linked.reset_index(drop=True))


def test_the_regime_fact_is_the_regime_piece_trend_label(demo_store: Store,
                                                         demo_facts: pd.DataFrame) -> None:
    """The regime piece's trend_state is ``regime_rules`` over the series on its continuous
    basis (``compute_series``); the facts compute it from each row's window instead."""
    from buddy.regime.rules import RegimeRulesConfig, regime_rules
    from buddy.regime.snapshots import series_inputs

    checked = 0
    # AAPL (its bars span two splits) and EURUSD (hourly)
    for (symbol, timeframe), rows in demo_facts[demo_facts["symbol"].isin(
            ["AAPL", "EURUSD"])].groupby(["symbol", "timeframe"]):
        with demo_store.reading():
            bars = demo_store.bars(symbol, timeframe)
            inputs = series_inputs(bars, demo_store.features(symbol, timeframe),
                                   demo_store.corporate_actions(symbol))
        labels = regime_rules(inputs, RegimeRulesConfig())["trend_state"].to_numpy(object)
        closes = pd.DatetimeIndex(bars["ts_close"]).tz_convert("UTC")
        last = closes.searchsorted(pd.DatetimeIndex(rows["open_ts"]), side="right") - 1
        assert rows["regime"].tolist() == [None if pd.isna(v) else v for v in labels[last]]
        checked += len(rows)
    assert checked == int(demo_facts["symbol"].isin(["AAPL", "EURUSD"]).sum()) > 300


def test_truncating_the_bars_at_the_entry_changes_none_of_a_trades_facts(
        demo_store: Store, demo_facts: pd.DataFrame,
        truncated_store: Callable[[str, datetime], Store]) -> None:
    # an AAPL trade after its 2005 split (the bars then apply it) and an EURUSD hourly one
    aapl = demo_facts[(demo_facts["symbol"] == "AAPL") & demo_facts["intent_id"].notna()
                      & (demo_facts["open_ts"] > pd.Timestamp("2005-03-15", tz="UTC"))].iloc[0]
    fx = demo_facts[(demo_facts["symbol"] == "EURUSD") & demo_facts["intent_id"].notna()
                    & demo_facts["level_ahead_atr"].notna()].iloc[0]
    for row in (aapl, fx):
        trade = _trade_rows(demo_store, [row["trade_id"]])
        as_of = pd.Timestamp(row["open_ts"]).to_pydatetime()
        short = _facts_of(truncated_store(row["symbol"], as_of), trades_as_intents(trade,
                                                                                    FINEST))
        _assert_same_facts(short, demo_facts[demo_facts["trade_id"] == row["trade_id"]
                                             ].reset_index(drop=True))
        assert short[list(EMBEDDING_FEATURES)].notna().all().all()


def test_a_missing_input_is_not_checked_never_guessed(demo_store: Store) -> None:
    """No bars by the entry: every market fact is NaN/None; no stop: no stop_atr."""
    intents = pd.DataFrame({
        "intent_id": ["early", "no-stop"], "user_id": "demo", "symbol": ["MSFT", "MSFT"],
        "side": ["long", "short"], "timeframe": "1d",
        "as_of": pd.to_datetime(["1980-01-02T21:00:00Z", "2010-06-01T20:00:00Z"]),
        "proposed_entry": [10.0, 26.0], "proposed_stop": [9.0, np.nan],
        "proposed_target": [12.0, 25.0], "proposed_size": 100.0, "holding_horizon": 10,
        "order_type": "market"})
    facts = _facts_of(demo_store, intents)
    market = [c for c in EMBEDDING_FEATURES if c not in ("side_sign", "reward_risk")]
    assert facts.loc[0, market].isna().all()
    assert facts.loc[0, "reward_risk"] == pytest.approx(2.0)  # the plan alone says it
    assert facts.loc[0, "regime"] is None and np.isnan(facts.loc[0, "alignment"])
    assert np.isnan(facts.loc[1, "stop_atr"]) and np.isnan(facts.loc[1, "reward_risk"])
    assert np.isfinite(facts.loc[1, "close_ema20_atr"]) and facts.loc[1, "side_sign"] == -1


# ---------------------------------------------------------------------------- reads
def test_closed_by_reads_only_trades_closed_by_then(demo_store: Store,
                                                    demo_facts: pd.DataFrame) -> None:
    t = pd.Timestamp("2008-06-30T00:00:00Z")
    early = read_entry_facts(demo_store, "demo", closed_by=t.to_pydatetime())
    expected = demo_facts[demo_facts["close_ts"] <= t]
    assert 0 < len(early) < len(demo_facts) and len(early) == len(expected)
    assert early["trade_id"].tolist() == expected["trade_id"].tolist()
    assert (early["close_ts"] <= t).all()
    last = read_entry_facts(demo_store, "demo", closed_by=datetime.fromisoformat(
        "2030-01-01T00:00:00+00:00"))
    assert len(last) == 879  # the two open trades are never "closed by" any time
    n, key = entry_facts_key(demo_store, "demo", t.to_pydatetime())
    assert n == len(early) and key.startswith(expected["close_ts"].max().isoformat())
    assert entry_facts_key(demo_store, "demo", None)[0] == 881
    assert entry_facts_key(demo_store, "nobody", None) == (0, "|")
    with pytest.raises(ValueError, match="closed_by: must be timezone-aware"):
        read_entry_facts(demo_store, "demo", closed_by=datetime(2008, 6, 30))


# ---------------------------------------------------------------------------- the job
def test_the_job_refreshes_only_new_or_rebuilt_trades_and_drops_gone_ones(
        demo_store_copy: Callable[[], Store]) -> None:
    from buddy.jobs.strategy import refresh_entry_facts

    store = demo_store_copy()
    again = refresh_entry_facts(store, "demo")
    assert again.trades_refreshed == 0 and again.rows_removed == 0
    before = read_entry_facts(store, "demo").set_index("trade_id")
    rebuilt, gone = before.index[10], before.index[11]
    with store.transaction() as con:
        con.execute("UPDATE trades SET built_at = built_at + INTERVAL 1 SECOND, "
                    "initial_stop = NULL WHERE trade_id = ?", [rebuilt])
        con.execute("DELETE FROM trades WHERE trade_id = ?", [gone])
    key = entry_facts_key(store, "demo", None)
    done = refresh_entry_facts(store)
    assert (done.users, done.trades_refreshed, done.rows_removed, done.incomplete) == (
        1, 1, 1, 1)
    after = read_entry_facts(store, "demo").set_index("trade_id")
    assert gone not in after.index and len(after) == 880
    assert np.isnan(after.loc[rebuilt, "stop_atr"]) and np.isfinite(before.loc[rebuilt,
                                                                               "stop_atr"])
    assert after.loc[rebuilt, "close_ema20_atr"] == pytest.approx(
        before.loc[rebuilt, "close_ema20_atr"], rel=1e-12)
    assert entry_facts_key(store, "demo", None) != key


def test_an_interactive_pack_gives_the_batch_facts(demo_store: Store,
                                                   demo_facts: pd.DataFrame) -> None:
    """The evaluator's path: one intent's ContextPack (``from_pack``) through the same rule."""
    from buddy.batch.context import from_pack
    from buddy.context.builder import ContextPackBuilder

    row = demo_facts[(demo_facts["symbol"] == "EURUSD") & demo_facts["intent_id"].notna()
                     & demo_facts["level_ahead_atr"].notna()].iloc[-1]
    intents = demo_store.query("SELECT * FROM trade_intents WHERE intent_id = ?",
                               [row["intent_id"]])
    ctx = build_batch_context(demo_store, intents, providers=PROVIDERS)
    intent = ctx.intent(0)
    pack = ContextPackBuilder(demo_store, providers=PROVIDERS).build(
        "demo", intent.symbol, intent.timeframe, intent.as_of)
    one = entry_facts(from_pack(intent, pack))
    _assert_same_facts(one, entry_facts(ctx))
    _assert_same_facts(one, demo_facts[demo_facts["trade_id"] == row["trade_id"]
                                       ].reset_index(drop=True))
