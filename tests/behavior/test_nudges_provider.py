"""The behavior piece: None with the reason for a user without trades (no history read), the
history cut at t (nothing after it), one stored history shared by every t of a batch, and a
newly logged intent seen by the next request although logging does not touch the stamp."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd

from buddy.behavior.provider import BehaviorProvider, BehaviorState
from buddy.store import Store

T = datetime(2012, 3, 1, 21, tzinfo=UTC)


def test_no_trades_no_history_read(demo_store: Store) -> None:
    provider = BehaviorProvider()
    piece, reason = provider.state_at(demo_store, "nobody", T)
    assert piece is None and reason is not None and "nobody has no trades" in reason
    assert provider.cached() == 0  # the cost claim: no history was read


def test_the_piece_is_cut_at_t_and_shares_the_stored_history(demo_store: Store) -> None:
    provider = BehaviorProvider()
    a, _ = provider.state_at(demo_store, "demo", T)
    b, _ = provider.state_at(demo_store, "demo", datetime(2013, 1, 2, 21, tzinfo=UTC))
    assert isinstance(a, BehaviorState) and isinstance(b, BehaviorState)
    assert a.stored is b.stored  # read once
    cut = a.history
    assert (pd.to_datetime(cut.trades["open_ts"], utc=True) <= T).all()
    closed = pd.to_datetime(cut.trades["close_ts"], utc=True)
    assert (closed.dropna() <= T).all()  # outcomes after t are not known at t
    assert (cut.intents["as_of"] < T).all()
    assert a.n_trades == len(cut.trades) < b.n_trades
    assert a.currency is None or len(a.currency) == 3


def test_a_logged_intent_is_seen_without_a_stamp_change(
        demo_store_copy: Callable[[], Store]) -> None:
    store = demo_store_copy()
    provider = BehaviorProvider()
    before = provider.history(store, "demo")
    stamp = store.context_stamp()
    with store.transaction() as con:
        con.execute("INSERT INTO trade_intents (intent_id, user_id, symbol, side, timeframe, "
                    "proposed_entry, proposed_size, order_type, as_of, created_at, status) "
                    "VALUES ('new-one', 'demo', 'AAPL', 'long', '1d', 100.0, 10.0, 'limit', "
                    "TIMESTAMPTZ '2012-03-01 21:00:00+00', now(), 'draft')")
    assert store.context_stamp() == stamp
    after = provider.history(store, "demo")
    assert "new-one" in set(after.intents["intent_id"])
    assert "new-one" not in set(before.intents["intent_id"])
    assert after.trades is before.trades  # the trades were not read again
