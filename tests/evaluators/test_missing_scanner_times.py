"""The scanner's datetimes as UTC nanoseconds: a few plain datetimes (an interactive batch of
one) are converted one by one, many through pandas; both give the same numbers, and a naive
datetime is refused naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

import buddy.evaluators.missing_scanner as scanner
from buddy.errors import FieldErrors

NEW_YORK = ZoneInfo("America/New_York")
TIMES = [datetime(2024, 3, 10, 1, 59, 59, 999_999, tzinfo=NEW_YORK),  # before a DST jump
         datetime(2024, 11, 3, 1, 30, tzinfo=NEW_YORK),  # the hour that repeats, first
         datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NEW_YORK),  # and second time
         datetime(1960, 1, 1, tzinfo=UTC),  # before the epoch
         datetime(2030, 6, 1, 12, tzinfo=timezone(timedelta(hours=5, minutes=30))),
         pd.Timestamp("2024-05-01 13:30:00.000001", tz="UTC")]  # a datetime subclass


def test_few_times_one_by_one_are_the_pandas_conversion(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    few = scanner._ns_array(TIMES[:5], "schedule.as_of")
    mixed = scanner._ns_array(TIMES, "schedule.as_of")  # (a Timestamp: through pandas)
    monkeypatch.setattr(scanner, "_FEW_TIMES", 0)
    assert np.array_equal(few, scanner._ns_array(TIMES[:5], "schedule.as_of"))
    assert np.array_equal(mixed, scanner._ns_array(TIMES, "schedule.as_of"))
    assert few[3] == -315_619_200 * 10**9 and few[2] - few[1] == 3600 * 10**9


def test_a_naive_time_is_refused_naming_the_field() -> None:
    with pytest.raises(FieldErrors, match=r"schedule\.window_end"):
        scanner._ns_array([datetime(2024, 1, 2)], "schedule.window_end")
