"""``from_pack`` (the interactive row context) equals ``from_packs`` of one pack."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from buddy.batch.context import BatchContext, from_pack, from_packs
from buddy.context.pack import PIECES
from tests.batch.conftest import Case


def _same(got: pd.DataFrame, want: pd.DataFrame, label: str) -> None:
    assert list(got.columns) == list(want.columns), label
    assert len(got) == len(want) == 1, label
    for column in want.columns:
        a, b = got[column].iloc[0], want[column].iloc[0]
        both_missing = (a is None or (isinstance(a, float) and np.isnan(a)) or a is pd.NaT) and (
            b is None or (isinstance(b, float) and np.isnan(b)) or b is pd.NaT)
        assert both_missing or a == b, f"{label}.{column}: {a!r} != {b!r}"
        assert got[column].dtype.kind == want[column].dtype.kind or (
            got[column].dtype.kind in "OU" and want[column].dtype.kind in "OU"
        ) or str(want[column].dtype) == "str", f"{label}.{column}: {got[column].dtype} " \
                                                f"!= {want[column].dtype}"


def test_from_pack_equals_from_packs_of_one(all_cases: list[Case]) -> None:
    intent, pack = all_cases[0]
    no_market = (intent, dataclasses.replace(pack, market=None,
                                             missing={**pack.missing, "market": "no bar"}))
    cases = [*all_cases[::7], no_market]
    for intent, pack in cases:
        got: BatchContext = from_pack(intent, pack)
        want = from_packs([intent], [pack])
        label = intent.intent_id
        for frame in ("intents", "instrument", "market"):
            _same(getattr(got, frame), getattr(want, frame), f"{label} {frame}")
        assert sorted(got.latest.columns) == sorted(want.latest.columns), label
        for column in want.latest.columns:
            np.testing.assert_array_equal(got.latest[column].to_numpy(np.float64),
                                          want.latest[column].to_numpy(np.float64))
        for windows in ("bars", "features"):
            g, w = getattr(got, windows), getattr(want, windows)
            assert g.lengths.tolist() == w.lengths.tolist(), label
            if w.lengths[0]:
                pd.testing.assert_frame_equal(g.frame(0), w.frame(0))
        assert got.missing_sessions[0] == want.missing_sessions[0]
        assert got.splits_applied[0] == want.splits_applied[0]
        for name in PIECES:
            assert got.missing[name][0] == want.missing[name][0], (label, name)
        for name in got.pieces:
            assert got.pieces[name][0] is want.pieces[name][0], (label, name)


# The real cases (~440 packs built one by one) are a session fixture: one worker builds them.
pytestmark = pytest.mark.xdist_group("batch_cases")
