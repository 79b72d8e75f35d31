"""Replay validation runs its rules column-wise and words errors through Buddy.validate:
the column-wise rules must flag every row Buddy.validate rejects (and no valid row)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from buddy.api import Buddy
from buddy.config import default_scoring_config
from buddy.errors import IntentValidationError
from buddy.store import Store
from replay.engine import _flagged_rows, intent_from_row, validate_intents

DEFECTS = [
    {"proposed_entry": 0.0}, {"proposed_entry": np.nan}, {"proposed_size": -1.0},
    {"proposed_size": 0.5}, {"proposed_stop": "entry"}, {"proposed_target": "entry"},
    {"proposed_entry_offset": 0.003},  # off the tick grid
    {"holding_horizon": 0}, {"holding_horizon": 10**6}, {"symbol": "NOPE"},
    {"timeframe": "5m"}, {"as_of": pd.Timestamp("1990-01-01", tz="UTC")},
    {"as_of": pd.Timestamp("2030-01-01", tz="UTC")}, {"side": "sideways"},
    {"user_id": " "},
]


def _scalar_rejects(buddy: Buddy, row: dict) -> bool:
    try:
        buddy.validate(intent_from_row(row))
    except (IntentValidationError, ValueError):
        return True
    return False


def test_valid_intents_are_not_flagged(batch_store: Store, batch_intents: pd.DataFrame
                                       ) -> None:
    buddy = Buddy(batch_store, default_scoring_config())
    assert len(_flagged_rows(buddy, batch_intents)) == 0
    validate_intents(batch_store, batch_intents, default_scoring_config())


@pytest.mark.parametrize("defect", DEFECTS, ids=lambda d: next(iter(d)))
def test_every_rejected_row_is_flagged(batch_store: Store, batch_intents: pd.DataFrame,
                                       defect: dict) -> None:
    buddy = Buddy(batch_store, default_scoring_config())
    frame = batch_intents.head(6).copy()
    for column, value in defect.items():
        if column == "proposed_entry_offset":
            frame.loc[2, "proposed_entry"] = frame.loc[2, "proposed_entry"] + value
        elif value == "entry":  # on the entry: the wrong side for a long and for a short
            frame.loc[2, column] = frame.loc[2, "proposed_entry"]
        else:
            frame[column] = frame[column].astype(object) if isinstance(value, str) else (
                frame[column])
            frame.loc[2, column] = value
    rejected = [i for i, row in enumerate(frame.to_dict("records"))
                if _scalar_rejects(buddy, row)]
    assert rejected == [2]
    assert set(rejected) <= set(_flagged_rows(buddy, frame).tolist())
    with pytest.raises(IntentValidationError) as caught:
        validate_intents(batch_store, frame, default_scoring_config())
    assert frame.loc[2, "intent_id"] in str(caught.value)
