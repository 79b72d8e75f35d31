"""A series read as a selection of the whole tables (closes not ascending with ts) gives what
the same series read as a slice gives: the windows, the latest features and the calendar
counts do not depend on which of the two the builder had."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from buddy.batch import builder
from buddy.batch.builder import SeriesData, build_batch_context
from buddy.batch.context import MARKET_COLUMNS
from buddy.store import Store


def test_selections_build_what_slices_build(gapped: Store, batch_intents: pd.DataFrame,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    sliced = build_batch_context(gapped, batch_intents, providers={})
    read = SeriesData.read.__func__  # type: ignore[attr-defined]
    selections: list[str] = []

    def as_selection(cls: type[SeriesData], *args: object, **kwargs: object) -> SeriesData:
        data = read(cls, *args, **kwargs)
        assert data.bar_row >= 0  # the loaders' bars: closes ascend with ts
        selections.append(data.symbol)
        return dataclasses.replace(data, bar_row=-1, feature_row=-1)

    monkeypatch.setattr(SeriesData, "read", classmethod(as_selection))
    selected = build_batch_context(gapped, batch_intents, providers={})
    assert "AAPL" in selections
    for column in MARKET_COLUMNS:
        assert selected.market[column].tolist() == sliced.market[column].tolist() or (
            column == "last_close" and np.array_equal(selected.market[column].to_numpy(),
                                                      sliced.market[column].to_numpy(),
                                                      equal_nan=True)), column
    assert selected.missing_sessions.tolist() == sliced.missing_sessions.tolist()
    assert int(sliced.market["n_missing_sessions"].sum()) > 0  # the counts are exercised
    np.testing.assert_array_equal(selected.latest.to_numpy(), sliced.latest.to_numpy())
    assert list(selected.latest.columns) == list(sliced.latest.columns)
    for i in range(0, sliced.n, 7):
        pd.testing.assert_frame_equal(selected.bars.frame(i), sliced.bars.frame(i),
                                      check_exact=True)
        pd.testing.assert_frame_equal(selected.features.frame(i), sliced.features.frame(i),
                                      check_exact=True)
    assert builder._TABLE_RUNS  # the sliced build counted on the whole table's runs
