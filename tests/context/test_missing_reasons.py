"""A missing piece's reason is true (issue #12, section 8): it says what is not provided and
claims nothing a present piece contradicts. The HMM state comes with the regime piece, so a
pack whose regime carries one never says the HMM is unavailable; the pack and batch builders
give the same reasons."""

from __future__ import annotations

import pandas as pd

from buddy.api import default_providers
from buddy.batch.builder import build_batch_context
from buddy.context.builder import NOT_YET_PROVIDED, ContextPackBuilder
from buddy.context.pack import PIECES
from buddy.store import Store
from buddy.timeframes import Timeframe

from .test_last_closed_bar import intents

AS_OF = pd.Timestamp("2012-06-01T20:00Z")


def test_reasons_name_only_absent_pieces_and_never_deny_the_regimes_hmm(
        sample_store: Store) -> None:
    pack = ContextPackBuilder(sample_store, providers=default_providers()).build(
        "nobody", "AAPL", Timeframe.D1, AS_OF.to_pydatetime())
    assert pack.regime is not None and pack.regime.hmm_probs  # the HMM state is here
    for name in PIECES:
        assert (pack.piece(name) is None) == (name in pack.missing), name
    for reason in pack.missing.values():
        assert "not yet available" not in reason and "HMM provider" not in reason, reason
    assert pack.missing["state"] == NOT_YET_PROVIDED["state"]
    assert "part of the regime piece" in pack.missing["state"]
    # the strategy and portfolio providers did read the user's trades and fills
    assert "nobody has no closed trades" in pack.missing["strategy"]
    assert "nobody has no broker fills and no positions statement" in pack.missing["portfolio"]
    # the account provider did read the store: its reason is about this user
    assert "nobody" in pack.missing["account"]


def test_the_batch_builder_gives_the_packs_reasons(sample_store: Store) -> None:
    builder = ContextPackBuilder(sample_store, providers=default_providers())
    pack = builder.build("nobody", "AAPL", Timeframe.D1, AS_OF.to_pydatetime())
    frame = intents("AAPL", "1d", [AS_OF], 570.0).assign(user_id="nobody")
    ctx = build_batch_context(sample_store, frame, providers=default_providers())
    batch = {name: ctx.missing[name][0] for name in PIECES if ctx.missing[name][0] is not None}
    assert batch == dict(pack.missing)
