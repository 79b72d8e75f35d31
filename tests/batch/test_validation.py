"""One validator: buddy.validation's rules over a whole intents frame name exactly the rows
that fail one at a time (Buddy.validate, a batch of one), with the same errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from buddy.api import Buddy
from buddy.config import default_scoring_config
from buddy.errors import IntentValidationError
from buddy.store import Store
from buddy.validation import IntentColumns, validate_columns
from replay.engine import intent_from_row, validate_intents

DEFECTS = [
    {"proposed_entry": 0.0}, {"proposed_entry": np.nan}, {"proposed_size": -1.0},
    {"proposed_size": 0.5}, {"proposed_stop": "entry"}, {"proposed_target": "entry"},
    {"proposed_entry_offset": 0.003},  # off the tick grid
    {"holding_horizon": 0}, {"holding_horizon": 10**6}, {"symbol": "NOPE"},
    {"timeframe": "5m"}, {"as_of": pd.Timestamp("1990-01-01", tz="UTC")},
    {"as_of": pd.Timestamp("2030-01-01", tz="UTC")}, {"side": "sideways"},
    {"user_id": " "},
]


def _one_at_a_time(buddy: Buddy, row: dict) -> list[tuple[str, str]]:
    """Return the (field, rule) pairs one intent breaks when built and validated alone."""
    try:
        buddy.validate(intent_from_row(row))
    except IntentValidationError as exc:
        return [(e.field, e.rule) for e in exc.errors]
    except ValueError as exc:  # no TradeIntent for an unknown side
        return [("side", str(exc))]
    return []


def test_valid_intents_are_not_flagged(batch_store: Store, batch_intents: pd.DataFrame
                                       ) -> None:
    buddy = Buddy(batch_store, default_scoring_config())
    assert validate_columns(IntentColumns.from_frame(batch_intents), buddy.catalogue()) == {}
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
    alone = {i: _one_at_a_time(buddy, row) for i, row in enumerate(frame.to_dict("records"))}
    assert [i for i, errors in alone.items() if errors] == [2]
    together = validate_columns(IntentColumns.from_frame(frame), buddy.catalogue())
    assert list(together) == [2]
    if defect.get("side") != "sideways":  # alone, an unknown side cannot become an intent
        assert [(e.field, e.rule) for e in together[2]] == alone[2]
    with pytest.raises(IntentValidationError) as caught:
        validate_intents(batch_store, frame, default_scoring_config())
    assert frame.loc[2, "intent_id"] in str(caught.value)
