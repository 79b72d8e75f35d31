"""The MTFA batch form when a stack timeframe has no bar at all: every row gets the reason
the scalar provider gives (each problem worded once per cause, each reason once per
distinct set of problems: the as_of is the intent's own, not in the words)."""

from __future__ import annotations

import shutil

import pytest

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
    assert "(stale)" in ibm[-1] and ibm[-1] is ibm[-2]  # one reason per distinct problems
    assert all(r.startswith("MTFA stack 1w/1d of IBM incomplete: 1w: no bar") for r in ibm)
    assert not any("+00:00" in r for r in ibm)  # no as_of in the words
    assert pieces[-1] is not None
