"""Reads for replay: the replayed intents calibration needs beyond the results frame, the
newest finished run of a purpose, and the series the all-data corpus covers."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from buddy.store.core import Store


def replay_intents(store: Store, run_ids: Sequence[str]) -> pd.DataFrame:
    """Return the replayed intents of ``run_ids`` (``replay_intents`` rows with their run id),
    by run and intent id."""
    return store.query("SELECT * FROM replay_intents WHERE list_contains(?, run_id) "
                       "ORDER BY run_id, intent_id", [list(map(str, run_ids))])


def latest_finished_run(store: Store, purpose: str) -> str | None:
    """Return the newest finished replay run made for ``purpose``, None when there is none."""
    found = store.query("SELECT run_id FROM replay_runs WHERE status = 'done' AND purpose = ? "
                        "ORDER BY finished_at DESC, created_at DESC, run_id LIMIT 1",
                        [purpose])
    return None if found.empty else str(found["run_id"].iloc[0])


def bar_series(store: Store, symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """Return every (symbol, timeframe) that has bars (``symbols``: only these), ordered by
    timeframe then symbol."""
    if symbols is None:
        return store.query("SELECT DISTINCT symbol, timeframe FROM bars "
                           "ORDER BY timeframe, symbol")
    return store.query("SELECT DISTINCT symbol, timeframe FROM bars WHERE "
                       "list_contains(?, symbol) ORDER BY timeframe, symbol",
                       [[str(s) for s in symbols]])
