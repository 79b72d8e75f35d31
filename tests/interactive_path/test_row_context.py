"""Re-evaluating against the last pack rebuilds only the intent's columns
(``Orchestrator.row_context``): the row context and the report equal a fresh build's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from buddy.api import Buddy
from buddy.batch.context import BatchContext, from_pack
from buddy.orchestrator import Orchestrator
from tests.interactive_path.conftest import CountingStore

IDEA = dict(user="row-context", symbol="AAPL", side="long", timeframe="1d", entry=560.99,
            stop=540.0, target=600.0, size=10, as_of="2012-06-01")
#: the workbench's next tries on the same pack: a tight stop, a short, a far target
TRIES = (dict(stop=559.0), dict(side="short", stop=580.0, target=520.0), dict(target=900.0))


def _assert_same_context(got: BatchContext, want: BatchContext) -> None:
    for name in ("intents", "instrument", "market", "latest"):
        pd.testing.assert_frame_equal(getattr(got, name), getattr(want, name))
    for name in ("bars", "features"):
        pd.testing.assert_frame_equal(getattr(got, name).data, getattr(want, name).data)
    for name in ("missing_sessions", "splits_applied"):
        assert list(getattr(got, name)) == list(getattr(want, name))
    assert {k: list(v) for k, v in got.missing.items()} == {
        k: list(v) for k, v in want.missing.items()}
    assert {k: [id(p) for p in v] for k, v in got.pieces.items()} == {
        k: [id(p) for p in v] for k, v in want.pieces.items()}


def _comparable(report: object) -> dict[str, object]:
    values = dataclasses.asdict(report)  # type: ignore[call-overload]
    values.pop("eval_id")
    return values


def test_a_second_intent_on_the_same_pack_gets_what_a_fresh_build_gives(
        store_copy: CountingStore) -> None:
    buddy = Buddy(store_copy)
    first = buddy.make_intent(**IDEA)
    pack = buddy.builder.build(first.user_id, first.symbol, first.timeframe, first.as_of)
    orchestrator = buddy.orchestrator
    orchestrator.run(first, pack)
    for change in TRIES:
        intent = buddy.make_intent(**{**IDEA, **change})
        reused = orchestrator.row_context(intent, pack)
        _assert_same_context(reused, from_pack(intent, pack))
        assert reused.bars is orchestrator.row_context(first, pack).bars  # built once
        fresh = Orchestrator(buddy.config).run(intent, pack)
        assert _comparable(orchestrator.run(intent, pack)) == _comparable(fresh)


def test_another_pack_is_built_afresh(store_copy: CountingStore) -> None:
    buddy = Buddy(store_copy)
    intent = buddy.make_intent(**IDEA)
    later = buddy.make_intent(**{**IDEA, "as_of": "2012-07-02"})
    pack = buddy.builder.build(intent.user_id, intent.symbol, intent.timeframe, intent.as_of)
    other = buddy.builder.build(later.user_id, later.symbol, later.timeframe, later.as_of)
    orchestrator = buddy.orchestrator
    orchestrator.row_context(intent, pack)
    row = orchestrator.row_context(later, other)
    _assert_same_context(row, from_pack(later, other))
    assert not np.array_equal(row.market["last_close"], from_pack(intent, pack).market[
        "last_close"])
