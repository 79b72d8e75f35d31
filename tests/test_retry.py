"""The one retry helper: calls again while busy, stops by count or time, raises the last error."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from buddy.retry import retry_while


class Busy(Exception):
    pass


class Flaky:
    """Raise ``Busy`` ``failures`` times, then return the number of calls."""

    def __init__(self, failures: int, error: type[Exception] = Busy) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"busy #{self.calls}")
        return self.calls


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, Busy)


def test_it_calls_again_while_busy_and_says_each_wait() -> None:
    action, waits = Flaky(3), []
    assert retry_while(action, busy=is_busy, first_s=0.001, max_s=0.002, attempts=10,
                       on_wait=lambda exc: waits.append(str(exc))) == 4
    assert action.calls == 4
    assert waits == ["busy #1", "busy #2", "busy #3"]


def test_an_error_that_is_not_busy_is_raised_at_once() -> None:
    action = Flaky(1, error=ValueError)
    with pytest.raises(ValueError, match="busy #1"):
        retry_while(action, busy=is_busy, first_s=0.001, max_s=0.002, attempts=10)
    assert action.calls == 1
    # busy first, then an error of another kind: that one is raised, not retried
    calls = iter([Busy("busy"), KeyError("gone")])

    def mixed() -> int:
        raise next(calls)

    with pytest.raises(KeyError):
        retry_while(mixed, busy=is_busy, first_s=0.001, max_s=0.002, attempts=10)


def test_it_stops_after_the_attempts_and_raises_the_last_error() -> None:
    action = Flaky(100)
    with pytest.raises(Busy, match="busy #3"):
        retry_while(action, busy=is_busy, first_s=0.001, max_s=0.002, attempts=3)
    assert action.calls == 3
    once = Flaky(100)
    with pytest.raises(Busy, match="busy #1"):
        retry_while(once, busy=is_busy, first_s=0.001, max_s=0.002, attempts=1)
    assert once.calls == 1


def test_it_stops_after_the_timeout() -> None:
    action = Flaky(10_000)
    started = time.monotonic()
    with pytest.raises(Busy):
        retry_while(action, busy=is_busy, first_s=0.01, max_s=0.02, timeout_s=0.2)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 5.0  # generous: the machine is shared
    assert 3 <= action.calls < 40  # it waited between calls, growing to max_s


def test_the_waits_grow_from_first_to_max() -> None:
    waits: list[float] = []
    with pytest.raises(Busy):
        retry_while(Flaky(100), busy=is_busy, first_s=0.02, max_s=0.08, attempts=6,
                    sleep=waits.append)
    assert len(waits) == 5
    assert 0.02 <= waits[0] <= 0.04  # first_s plus at most first_s of jitter
    assert 0.04 <= waits[1] <= 0.06
    assert waits[2:] == [0.08, 0.08, 0.08]  # capped at max_s


def test_a_stop_is_required() -> None:
    with pytest.raises(ValueError, match="timeout_s or attempts"):
        retry_while(lambda: 1, busy=is_busy, first_s=0.1, max_s=1.0)


def test_a_first_success_does_not_import_tenacity() -> None:
    code = ("import sys; from buddy.retry import retry_while; "
            "retry_while(lambda: 1, busy=lambda e: True, first_s=0.1, max_s=1, attempts=3); "
            "print('tenacity' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
