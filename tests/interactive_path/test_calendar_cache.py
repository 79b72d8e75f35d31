"""The disk cache of built exchange calendars (``buddy.data.calendar_cache``): a real XNYS
calendar built, stored, loaded back equal; bad files rebuilt; the key follows its inputs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

import buddy.data.calendars as calendars
from buddy.data.calendar_cache import cache_dir, cache_key, cached_calendar
from buddy.data.calendars import ExchangeCalendar

SOURCE = Path(calendars.__file__)


@pytest.fixture(scope="module")
def xnys() -> ExchangeCalendar:
    return ExchangeCalendar("XNYS")


def _refuse() -> ExchangeCalendar:
    raise AssertionError("built again although a cached calendar was stored")


def test_a_stored_calendar_loads_back_equal(xnys: ExchangeCalendar, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUDDY_CACHE_DIR", str(tmp_path))
    first = cached_calendar("XNYS", lambda: xnys, kind=ExchangeCalendar, source=SOURCE)
    assert first is xnys
    assert len(list(tmp_path.glob("calendar-XNYS-*.pickle"))) == 1
    loaded = cached_calendar("XNYS", _refuse, kind=ExchangeCalendar, source=SOURCE)
    assert loaded is not xnys
    days = [datetime(2012, 10, 29).date(), datetime(2012, 11, 23).date(),
            datetime(2024, 7, 3).date()]
    np.testing.assert_array_equal(loaded.sessions(days[0], days[2]),
                                  xnys.sessions(days[0], days[2]))
    assert loaded.session_open_close(days).equals(xnys.session_open_close(days))
    assert loaded.holidays_and_early_closes(days[0], days[2]).equals(
        xnys.holidays_and_early_closes(days[0], days[2]))
    assert loaded.exchange.name == "XNYS"


def test_an_unreadable_or_foreign_file_is_rebuilt(xnys: ExchangeCalendar, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUDDY_CACHE_DIR", str(tmp_path))
    path = tmp_path / cache_key("XNYS", SOURCE)
    built: list[ExchangeCalendar] = []

    def build() -> ExchangeCalendar:
        built.append(xnys)
        return xnys

    for content in (b"not a pickle", b"\x80\x05\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x07."):
        path.write_bytes(content)  # garbage, then a valid pickle of the int 7
        builds = len(built)
        got = cached_calendar("XNYS", build, kind=ExchangeCalendar, source=SOURCE)
        assert got is xnys and len(built) == builds + 1
        assert path.read_bytes() != content  # replaced by the built one
        assert cached_calendar("XNYS", _refuse, kind=ExchangeCalendar,
                               source=SOURCE).name == "XNYS"


def test_the_key_follows_name_day_and_code(tmp_path: Path) -> None:
    day = datetime(2026, 1, 5, tzinfo=UTC)
    key = cache_key("XNYS", SOURCE, today=day)
    assert key == cache_key("XNYS", SOURCE, today=day)
    assert key != cache_key("XLON", SOURCE, today=day)
    assert key != cache_key("XNYS", SOURCE, today=datetime(2026, 1, 6, tzinfo=UTC))
    changed = tmp_path / "calendars.py"
    changed.write_bytes(SOURCE.read_bytes() + b"\n# changed\n")
    assert key != cache_key("XNYS", changed, today=day)


def test_off_builds_every_time(xnys: ExchangeCalendar, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUDDY_CACHE_DIR", "off")
    assert cache_dir() is None
    calls: list[int] = []
    for _ in range(2):
        cached_calendar("XNYS", lambda: calls.append(1) or xnys, kind=ExchangeCalendar,
                        source=SOURCE)
    assert len(calls) == 2
    monkeypatch.delenv("BUDDY_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "trading-buddy"
