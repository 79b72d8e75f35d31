"""The MTFA batch form when a stack timeframe has no bar at all: every row gets the reason
the scalar provider gives (each problem worded once per cause, each reason once per
distinct as_of and problems), and the as_of text matches pandas' isoformat."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from buddy.batch.pieces import as_of_datetime, as_of_ns
from buddy.mtfa.provider import as_of_texts
from buddy.store import Store
from tests.batch.test_pieces import assert_matches_scalar, synthetic_request

#: IBM daily as_of points: before the data, in the warm-up, around a gap in the features,
#: at and a microsecond before a close, twice the same moment, and long after the data.
AS_OF = ["1990-01-02T21:00Z", "2000-03-10T21:00Z", "2000-06-15T21:00Z",
         "2008-03-03T21:00Z", "2008-03-05T21:00Z", "2008-03-05T21:00Z",
         "2008-03-11T20:59:59.999999Z", "2008-03-11T21:00Z", "2008-03-20T21:00Z",
         "2012-06-06T12:00Z", "2030-01-01T00:00Z", "2030-01-01T00:00Z"]


@pytest.fixture(scope="module")
def no_weekly_store(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A copy of the sample store where IBM has no weekly bars and no daily feature rows
    in early March 2008."""
    path = tmp_path_factory.mktemp("mtfa_reasons") / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    store = Store(path)
    with store.transaction() as con:
        con.execute("DELETE FROM bars WHERE symbol = 'IBM' AND timeframe = '1w'")
        con.execute("DELETE FROM ta_features WHERE symbol = 'IBM' AND timeframe = '1w'")
        con.execute("DELETE FROM ta_features WHERE symbol = 'IBM' AND timeframe = '1d' "
                    "AND ts BETWEEN '2008-03-01' AND '2008-03-12'")
    return store


def test_rows_without_a_stack_timeframe_get_the_scalar_reasons(no_weekly_store: Store) -> None:
    rows = [("u1", "IBM", "1d", t) for t in AS_OF]
    rows += [("u1", "AAPL", "1d", "2008-03-05T21:00Z")]  # a full stack beside them
    pieces, reasons = assert_matches_scalar("mtfa", synthetic_request(no_weekly_store, rows))
    ibm = reasons[:len(AS_OF)]
    assert all("1w: no bar closed at or before as_of" in r for r in ibm)
    assert "1d: no bar closed" in ibm[0]
    assert any("1d: no feature row for the last closed bar (2008-03" in r for r in ibm)
    assert any("undefined" in r for r in ibm)  # the warm-up
    assert "(stale)" in ibm[-1] and ibm[-1] is ibm[-2]  # one reason per distinct as_of
    assert "20:59:59.999999+00:00" in ibm[6]
    assert pieces[-1] is not None


def test_as_of_texts_match_pandas_isoformat() -> None:
    stamps = pd.to_datetime(["1970-01-01T00:00Z", "2008-03-11T20:59:59.999999Z",
                             "2008-03-11T21:00Z", "1999-12-31T23:59:59.5Z",
                             "2261-12-31T00:00:01Z", "1969-07-20T20:17:40Z"], utc=True,
                            format="ISO8601")
    ns = as_of_ns(stamps)
    assert as_of_texts(ns) == [pd.Timestamp(as_of_datetime(int(v))).isoformat() for v in ns]
    assert as_of_texts(np.zeros(0, np.int64)) == []
