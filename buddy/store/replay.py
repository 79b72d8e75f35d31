"""Reads of the replay tables that calibration needs beyond the results frame."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from buddy.store.core import Store


def replay_intents(store: Store, run_ids: Sequence[str]) -> pd.DataFrame:
    """Return the replayed intents of ``run_ids`` (``replay_intents`` rows with their run id),
    by run and intent id."""
    return store.query("SELECT * FROM replay_intents WHERE list_contains(?, run_id) "
                       "ORDER BY run_id, intent_id", [list(map(str, run_ids))])
