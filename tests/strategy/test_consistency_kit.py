"""StrategyConsistencyEvaluator through the contract kit on the demo trader's real history, and
its point-in-time check: a store cut at t (bars, features, levels, trades and their facts of
nothing after t) gives the same result at t as the whole history.

The kit's own sample store holds no trades, so it can never hand this module its strategy
piece (tests/evaluators/test_contract.py lists it in KIT_CANNOT_REACH): its cases are here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from buddy.api import Buddy, default_providers
from buddy.batch.context import from_packs
from buddy.context.builder import ContextPackBuilder
from buddy.context.providers import ProviderSource
from buddy.demo import SampleIdea, place_idea
from buddy.domain import TradeIntent
from buddy.evaluators.strategy_consistency import StrategyConsistencyEvaluator
from buddy.jobs.strategy import refresh_entry_facts
from buddy.store import Store
from buddy.testing import PointInTimeCase, assert_row_matches, check_evaluator
from buddy.users.store import set_user

from .conftest import DEMO_USER

#: Ideas as of two dates inside the demo history: the trader's own kinds of trade, an
#: out-of-pattern one (4 ATR stop, target nearer than the stop), one without a target (not
#: checked) and one on a timeframe the trader's rules leave out (see ``rules_store``).
IDEAS: tuple[SampleIdea, ...] = (
    SampleIdea("AAPL", "long", "1d", "2010-06-15", 1.5, 3.0, 50, 10, "pullback-like"),
    SampleIdea("MSFT", "long", "1d", "2010-06-15", 1.0, 2.0, 300, 10, "breakout-like"),
    SampleIdea("IBM", "short", "1d", "2010-06-15", 1.5, 2.25, 60, 5, "mean-reversion-like"),
    SampleIdea("GOOG", "long", "1d", "2010-06-15", 4.0, 2.0, 10, 10, "out of pattern"),
    SampleIdea("AAPL", "long", "1d", "2012-03-01", 1.5, 3.0, 20, 10, "pullback-like"),
    SampleIdea("AAPL", "short", "1d", "2012-03-01", 5.0, 1.0, 20, 10, "out of pattern"),
)
T = "2010-06-15"


def providers() -> dict[str, ProviderSource]:
    """Return the standard providers of the pieces the module reads (the regime piece's
    on-demand HMM fits would only cost time here)."""
    standard = default_providers()
    return {name: standard[name] for name in ("strategy", "mtfa", "levels", "account")}


def intent_of(buddy: Buddy, idea: SampleIdea, *, target: bool = True) -> TradeIntent:
    """Return ``idea`` placed at its as_of as a validated intent of the demo trader."""
    placed: dict[str, Any] = dict(place_idea(buddy, idea))
    if not target:
        placed["target"] = None
    return buddy.make_intent(**placed)


@pytest.fixture(scope="module")
def rules_store(demo_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A copy of the demo store whose trader allows the daily and hourly timeframes only."""
    import shutil

    path = tmp_path_factory.mktemp("kit") / "buddy.duckdb"
    shutil.copy(demo_store.path, path)
    store = Store(path)
    set_user(store, DEMO_USER, rules={"allowed_timeframes": ["1d", "1h"]})
    return store


def cut_at(store: Store, t: datetime) -> Store:
    """Delete from ``store`` everything that had not closed by ``t`` (bars and their
    features, levels and regime snapshots, trades still open or closed later and every
    entry fact), then rebuild the entry facts from what is left."""
    with store.transaction() as con:
        con.execute("DELETE FROM ta_features f USING bars b WHERE f.symbol = b.symbol AND "
                    "f.timeframe = b.timeframe AND f.ts = b.ts AND b.ts_close > ?", [t])
        con.execute("DELETE FROM bars WHERE ts_close > ?", [t])
        con.execute("DELETE FROM key_levels WHERE ts > ?", [t])
        con.execute("DELETE FROM regime_snapshots WHERE ts > ?", [t])
        con.execute("DELETE FROM trade_entry_facts WHERE user_id = ?", [DEMO_USER])
        con.execute("DELETE FROM trades WHERE user_id = ? AND (close_ts IS NULL OR "
                    "close_ts > ?)", [DEMO_USER, t])
    refresh_entry_facts(store, DEMO_USER)
    return store


def test_the_kit_passes_on_the_demo_trader_and_truncating_at_t_changes_nothing(
        rules_store: Store, demo_store_copy: Callable[[], Store]) -> None:
    buddy = Buddy(rules_store, builder=ContextPackBuilder(rules_store,
                                                          providers=providers()))
    intents = [intent_of(buddy, idea) for idea in IDEAS]
    intents.append(intent_of(buddy, IDEAS[0], target=False))
    weekly = place_idea(buddy, SampleIdea("AAPL", "long", "1w", T, 1.5, 3.0, 50, 4, "weekly"))
    intents.append(buddy.make_intent(**weekly))

    def pack(b: ContextPackBuilder, i: TradeIntent):  # type: ignore[no-untyped-def]
        return b.build(i.user_id, i.symbol, i.timeframe, i.as_of)

    cases = [(i, pack(buddy.builder, i)) for i in intents]
    assert all(p.strategy is not None for _, p in cases), [p.missing for _, p in cases]

    at_t = [i for i in intents if i.as_of == intents[0].as_of]
    cut = cut_at(demo_store_copy(), at_t[0].as_of)
    set_user(cut, DEMO_USER, rules={"allowed_timeframes": ["1d", "1h"]})
    cut_builder = ContextPackBuilder(cut, providers=providers())
    pit = [PointInTimeCase(i, pack(buddy.builder, i), pack(cut_builder, i)) for i in at_t]

    report = check_evaluator(StrategyConsistencyEvaluator, cases=cases, point_in_time=pit)
    # a BatchContext loses nothing the module reads: row i rebuilt as a pack says the same
    evaluator = StrategyConsistencyEvaluator()
    ctx = from_packs([i for i, _ in cases], [p for _, p in cases])
    batch = evaluator.evaluate_batch(ctx)
    for row in range(ctx.n):
        assert_row_matches(batch, row, evaluator.evaluate(ctx.intent(row), ctx.pack(row)),
                           label=f"row {row}")
    assert report.point_in_time_rows == len(at_t) >= 5
    # the out-of-pattern ideas, the missing target and the weekly timeframe each say so
    assert {"OUT_OF_PATTERN", "PATTERN_NOT_CHECKED", "RULE_BREAK"} <= set(report.issues)
    # the strategy at t came from the trades closed by t alone, in both stores
    full, short = pit[0].full.strategy, pit[0].cut.strategy
    assert full is not None and short is not None
    assert full.n_closed == short.n_closed < full_history_trades(rules_store)


def full_history_trades(store: Store) -> int:
    """Return how many of the demo trader's trades have closed at all."""
    from buddy.store.strategy import entry_facts_key

    return entry_facts_key(store, DEMO_USER, None)[0]


def test_a_facts_refresh_invalidates_the_cached_strategy_piece(
        demo_store_copy: Callable[[], Store]) -> None:
    store = demo_store_copy()
    builder = ContextPackBuilder(store, providers=providers())
    buddy = Buddy(store, builder=builder)
    intent = intent_of(buddy, IDEAS[4])  # 2012-03-01
    before = builder.build(intent.user_id, intent.symbol, intent.timeframe, intent.as_of)
    assert before.strategy is not None
    with store.transaction() as con:  # the trader's newest trades before t are rebuilt away
        con.execute("DELETE FROM trades WHERE trade_id IN (SELECT trade_id FROM trades WHERE "
                    "user_id = ? AND close_ts <= ? ORDER BY close_ts DESC LIMIT 10)",
                    [DEMO_USER, intent.as_of])
    refresh_entry_facts(store, DEMO_USER)
    after = builder.build(intent.user_id, intent.symbol, intent.timeframe, intent.as_of)
    assert after.strategy is not None
    assert after.strategy.n_closed == before.strategy.n_closed - 10
