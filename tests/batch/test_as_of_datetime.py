"""``as_of_datetime`` gives the datetime pandas gives, for any microsecond instant."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from buddy.batch.pieces import as_of_datetime

# pandas' nanosecond range, floored to the microsecond like ``as_of_ns``
_MICROS = st.integers(min_value=-(2**63 - 1) // 1000 + 1, max_value=(2**63 - 1) // 1000)


@given(_MICROS)
def test_as_of_datetime_equals_the_pandas_conversion(micros: int) -> None:
    ns = micros * 1000
    expected = pd.Timestamp(ns, tz="UTC").to_pydatetime()
    got = as_of_datetime(ns)
    assert got == expected
    assert got.tzinfo is expected.tzinfo
    assert got.isoformat() == expected.isoformat()
