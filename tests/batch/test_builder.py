"""The fast builder gives, row by row, the ContextPack the ContextPackBuilder builds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from buddy.batch.builder import build_batch_context
from buddy.batch.context import MARKET_COLUMNS, OTHER_PIECES, BatchContext, from_packs
from buddy.store import Store
from replay.engine import standard_providers


@pytest.fixture(scope="session")
def reference(real_cases: list) -> BatchContext:
    return from_packs([i for i, _ in real_cases], [p for _, p in real_cases])


@pytest.fixture(scope="session")
def fast(batch_store: Store, batch_intents: pd.DataFrame) -> BatchContext:
    return build_batch_context(batch_store, batch_intents, providers=standard_providers())


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


def test_rows_line_up(fast: BatchContext, reference: BatchContext) -> None:
    assert fast.n == reference.n > 300
    assert fast.intents["intent_id"].tolist() == reference.intents["intent_id"].tolist()


@pytest.mark.parametrize("column", MARKET_COLUMNS)
def test_market_columns_equal(fast: BatchContext, reference: BatchContext, column: str
                              ) -> None:
    got, want = fast.market[column], reference.market[column]
    if column == "last_close":
        np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    else:
        assert got.tolist() == want.tolist()


def test_windows_equal_the_packs(fast: BatchContext, reference: BatchContext) -> None:
    for i in range(fast.n):
        pd.testing.assert_frame_equal(fast.bars.frame(i), reference.bars.frame(i),
                                      check_exact=True, obj=f"bars of row {i}")
        pd.testing.assert_frame_equal(fast.features.frame(i), reference.features.frame(i),
                                      check_exact=True, obj=f"features of row {i}")


def test_latest_features_and_calendar_facts_equal(fast: BatchContext,
                                                  reference: BatchContext) -> None:
    columns = sorted(reference.latest.columns)
    np.testing.assert_array_equal(fast.latest[columns].to_numpy(),
                                  reference.latest[columns].to_numpy())
    assert fast.missing_sessions.tolist() == reference.missing_sessions.tolist()
    assert fast.splits_applied.tolist() == reference.splits_applied.tolist()
    # the split and the gaps are really exercised
    assert any(fast.splits_applied.tolist()) and not all(fast.splits_applied.tolist())


def test_pieces_and_reasons_equal(fast: BatchContext, reference: BatchContext) -> None:
    for name in OTHER_PIECES:
        assert fast.missing[name].tolist() == reference.missing[name].tolist(), name
        for i, (a, b) in enumerate(zip(fast.pieces[name], reference.pieces[name],
                                       strict=True)):
            assert (a is None) == (b is None), (name, i)
    assert fast.missing["market"].tolist() == reference.missing["market"].tolist()


def test_rebuilt_packs_equal_the_builder_packs(fast: BatchContext, real_cases: list) -> None:
    for i, (_, pack) in enumerate(real_cases):
        rebuilt = fast.pack(i)
        assert rebuilt.market is not None and pack.market is not None
        assert rebuilt.market.last_close == pack.market.last_close
        assert rebuilt.market.missing_sessions == pack.market.missing_sessions
        assert rebuilt.market.sessions_since_last_bar == pack.market.sessions_since_last_bar
        assert rebuilt.market.window_sessions == pack.market.window_sessions
        assert rebuilt.market.bars_without_features == pack.market.bars_without_features
        assert dict(rebuilt.market.latest_features).keys() == dict(
            pack.market.latest_features).keys()
        assert all(_same(rebuilt.market.latest_features[k], v)
                   for k, v in pack.market.latest_features.items())
        assert rebuilt.instrument == pack.instrument
        assert dict(rebuilt.missing) == dict(pack.missing)


# The real cases (~440 packs built one by one) are a session fixture: one worker builds them.
pytestmark = pytest.mark.xdist_group("batch_cases")
