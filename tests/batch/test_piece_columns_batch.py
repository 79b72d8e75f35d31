"""Pieces kept as columns (``buddy.context.piece_columns.PieceColumn``): the regime and schedule
providers' batch forms hand back columns and build objects only when asked.

On the real cases: every object built on demand equals the piece the scalar path builds,
and the modules that read the columns (regime_fit, missing_scanner) give, row by row, what
they give over the packs' objects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from buddy.batch.builder import build_batch_context
from buddy.batch.context import BatchContext, from_packs
from buddy.context.piece_columns import PieceColumn
from buddy.evaluators.missing_scanner import MissingScannerEvaluator
from buddy.evaluators.regime_fit import RegimeFitEvaluator
from buddy.events.provider import ScheduleColumns
from buddy.regime.columns import StoredRegimes, regime_columns, snapshot_columns
from buddy.store import Store
from buddy.testing import assert_row_matches
from replay.engine import standard_providers

COLUMN_PIECES = ("regime", "schedule")


@pytest.fixture(scope="module")
def built(batch_store: Store, batch_intents: pd.DataFrame) -> BatchContext:
    return build_batch_context(batch_store, batch_intents, providers=standard_providers())


@pytest.fixture(scope="module")
def reference(real_cases: list) -> BatchContext:
    return from_packs([i for i, _ in real_cases], [p for _, p in real_cases])


def test_the_providers_hand_back_columns(built: BatchContext) -> None:
    assert isinstance(built.piece("regime"), PieceColumn)
    assert isinstance(built.piece("regime").columns, StoredRegimes)
    assert isinstance(built.piece("schedule"), PieceColumn)
    assert isinstance(built.piece("schedule").columns, ScheduleColumns)


@pytest.mark.parametrize("name", COLUMN_PIECES)
def test_objects_built_on_demand_equal_the_scalar_pieces(built: BatchContext,
                                                         reference: BatchContext,
                                                         name: str) -> None:
    pieces = built.piece(name)
    assert pieces.present().tolist() == reference.present(name).tolist()
    assert built.missing[name].tolist() == reference.missing[name].tolist()
    present = 0
    for i, want in enumerate(reference.piece(name)):
        assert pieces[i] == want, (name, i)
        present += want is not None
    assert present > 10
    # rows on the same snapshot share one object
    _, first = built.piece_codes(name)
    assert len(first) < built.n or name == "schedule"


@pytest.mark.parametrize("name", COLUMN_PIECES)
def test_taking_rows_keeps_the_columns(built: BatchContext, name: str) -> None:
    rows = np.arange(built.n)[::3]
    taken = built.take(rows)
    assert isinstance(taken.piece(name), PieceColumn)
    assert [taken.piece(name)[k] for k in range(len(rows))] == [
        built.piece(name)[int(i)] for i in rows]


def test_regime_columns_equal_the_objects_columns(built: BatchContext) -> None:
    code, per = regime_columns(built)
    at = np.flatnonzero(code >= 0)
    snapshots = [built.piece("regime")[int(i)] for i in at]
    want = snapshot_columns(snapshots)
    assert want["has_hmm"].any()
    for key, values in want.items():
        got = per[key][code[at]]
        if values.ndim == 2:  # zero-padded to the widest: compare the states both have
            k = min(values.shape[1], got.shape[1])
            assert np.array_equal(got[:, :k], values[:, :k], equal_nan=True), key
            assert not got[:, k:].any() and not values[:, k:].any(), key
        elif values.dtype == object:
            assert got.tolist() == values.tolist(), key
        else:
            assert np.array_equal(got, values, equal_nan=True), key


@pytest.mark.parametrize("evaluator", [RegimeFitEvaluator(), MissingScannerEvaluator()],
                         ids=lambda e: e.name)
def test_modules_read_the_columns_as_the_objects(built: BatchContext, reference: BatchContext,
                                                 real_cases: list, evaluator) -> None:
    ready = np.flatnonzero(np.logical_and.reduce(
        [built.present(p) for p in sorted(evaluator.requires)]))
    assert len(ready) > 10
    on_columns = evaluator.evaluate_batch(built.take(ready))
    on_objects = evaluator.evaluate_batch(reference.take(ready))
    for k, i in enumerate(ready.tolist()):
        intent, pack = real_cases[i]
        expected = evaluator.evaluate(intent, pack)
        assert_row_matches(on_columns, k, expected, label=f"{evaluator.name} row {i}")
        assert_row_matches(on_objects, k, expected, label=f"{evaluator.name} row {i}")


# The real cases (~440 packs built one by one) are a session fixture: one worker builds them.
pytestmark = pytest.mark.xdist_group("batch_cases")
