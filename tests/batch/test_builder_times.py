"""The builder's per-process shortcuts change no value: the calendar span held per calendar
(any span covering the rows gives the same counts) and the whole tables' time columns
converted once per read (a batch cut into chunks gives what one batch gives)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from buddy.batch import builder
from buddy.batch.builder import build_batch_context
from buddy.batch.context import MARKET_COLUMNS, BatchContext
from buddy.store import Store

_DAY_NS = 86_400_000_000_000


def _market(ctx: BatchContext) -> dict[str, list[object]]:
    return {**{c: ctx.market[c].tolist() for c in MARKET_COLUMNS},
            "missing_sessions": list(ctx.missing_sessions),
            "splits_applied": list(ctx.splits_applied)}


def test_calendar_counts_do_not_depend_on_the_held_span(gapped: Store,
                                                        batch_intents: pd.DataFrame) -> None:
    builder._HELD_SESSIONS.clear()
    narrow = build_batch_context(gapped, batch_intents, providers={})
    # hold every calendar over decades more than any row needs, then build again
    first = int(pd.Timestamp("1995-01-03").value // _DAY_NS)
    last = int(pd.Timestamp("2020-12-31").value // _DAY_NS)
    calendars = sorted(set(narrow.instrument["trading_calendar"].astype(str)))
    for name in calendars:
        builder._HELD_SESSIONS.pop(name, None)
        builder._sessions_covering(name, first, last)
        assert builder._HELD_SESSIONS[name][:2] == (first, last)
    wide = build_batch_context(gapped, batch_intents, providers={})
    assert _market(wide) == _market(narrow)
    assert int(narrow.market["n_missing_sessions"].sum()) > 0  # the counts are exercised


def test_chunks_give_what_one_batch_gives(batch_store: Store,
                                          batch_intents: pd.DataFrame) -> None:
    whole = build_batch_context(batch_store, batch_intents, providers={})
    order = np.random.default_rng(3).permutation(len(batch_intents))
    parts = [build_batch_context(batch_store, batch_intents.iloc[rows].reset_index(drop=True),
                                 providers={}) for rows in np.array_split(order, 3)]
    got: dict[str, list[object]] = {key: [None] * whole.n for key in _market(whole)}
    for rows, part in zip(np.array_split(order, 3), parts, strict=True):
        for key, values in _market(part).items():
            for i, value in zip(rows.tolist(), values, strict=True):
                got[key][i] = value
        for j, i in enumerate(rows.tolist()):
            pd.testing.assert_frame_equal(part.bars.frame(j), whole.bars.frame(i),
                                          check_exact=True)
            pd.testing.assert_frame_equal(part.features.frame(j), whole.features.frame(i),
                                          check_exact=True)
    want = _market(whole)
    for key in want:  # NaN-safe: compare as text
        assert [repr(v) for v in got[key]] == [repr(v) for v in want[key]], key
    pd.testing.assert_frame_equal(
        pd.concat([p.instrument for p in parts], ignore_index=True),
        whole.instrument.iloc[np.concatenate(np.array_split(order, 3))].reset_index(drop=True))
