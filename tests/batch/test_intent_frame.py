"""The one-row intents frame of an interactive evaluation holds what pandas infers from the
intent's values (texts as its text dtype, a missing one as an object column), however it is
built, and labels its columns with Python objects."""

from __future__ import annotations

import pandas as pd

from buddy.batch.context import intent_frame
from tests import factories


def test_the_intent_frame_is_what_pandas_infers_from_the_values() -> None:
    for intent in (factories.intent(), factories.intent(exit_template="scale_out_half")):
        frame = intent_frame(intent)
        inferred = pd.DataFrame({c: frame[c].astype(object).to_numpy() for c in frame.columns})
        text = [c for c in frame.columns if frame[c].dtype == object or c in (
            "intent_id", "user_id", "symbol", "side", "timeframe", "order_type", "status")]
        assert [frame[c].dtype for c in text] == [inferred[c].dtype for c in text]
        assert [type(frame[c].array) for c in text] == [type(inferred[c].array) for c in text]
        assert frame.astype(object).equals(inferred.astype(object))
        assert frame.columns.dtype == object
        row = intent.as_row()
        assert frame["symbol"].iloc[0] == row["symbol"] and frame["side"].iloc[0] == "long"
        exit_template = frame["exit_template"].iloc[0]
        assert exit_template == row["exit_template"] or (
            exit_template is None and row["exit_template"] is None)
