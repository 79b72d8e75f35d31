"""Call an action again while a shared resource is busy: the one retry loop of the project.

The store's connections (a DuckDB file another process holds) and the MLflow writes (SQLite's
"database is locked") retry through ``retry_while``; the back-off, stop and jitter come from
tenacity. The first call runs before tenacity is imported: almost every call succeeds at
once, and importing tenacity (asyncio, tornado) costs about 0.1 s of a command's start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def retry_while(action: Callable[[], T], *, busy: Callable[[Exception], bool],
                first_s: float, max_s: float, timeout_s: float | None = None,
                attempts: int | None = None,
                on_wait: Callable[[Exception], None] | None = None,
                catch: tuple[type[Exception], ...] = (Exception,),
                sleep: Callable[[float], None] = time.sleep) -> T:
    """Return ``action()``, calling it again while it raises an exception of ``catch`` that
    ``busy`` accepts.

    Waits between calls grow from ``first_s`` seconds, doubling up to ``max_s`` seconds,
    each plus a random jitter of up to ``first_s`` seconds (so waiting processes do not
    retry in step). Stops after ``attempts`` calls or ``timeout_s`` seconds from the first
    call (whichever comes first; at least one must be given) and raises the last exception
    as it was. ``on_wait(exc)`` runs before each wait; ``sleep(seconds)`` waits.
    """
    if timeout_s is None and attempts is None:
        raise ValueError("retry_while: give timeout_s or attempts (neither was given)")
    started = time.monotonic()
    try:
        return action()
    except catch as exc:
        if not busy(exc) or attempts == 1 or (
                timeout_s is not None and time.monotonic() - started >= timeout_s):
            raise
        first_failure = exc
    return _retry(action, first_failure, busy=busy, first_s=first_s, max_s=max_s,
                  deadline=None if timeout_s is None else started + timeout_s,
                  attempts=attempts, on_wait=on_wait, catch=catch, sleep=sleep)


def _retry(action: Callable[[], T], first_failure: Exception, *,
           busy: Callable[[Exception], bool], first_s: float, max_s: float,
           deadline: float | None, attempts: int | None,
           on_wait: Callable[[Exception], None] | None,
           catch: tuple[type[Exception], ...], sleep: Callable[[float], None]) -> T:
    import tenacity

    pending: list[Exception] = [first_failure]

    def call() -> T:
        # the first attempt already ran (and failed) before tenacity was imported
        if pending:
            raise pending.pop()
        return action()

    def stop(state: Any) -> bool:
        return ((attempts is not None and state.attempt_number >= attempts)
                or (deadline is not None and time.monotonic() >= deadline))

    def before_sleep(state: Any) -> None:
        if on_wait is not None and state.outcome is not None:
            on_wait(state.outcome.exception())

    retrying = tenacity.Retrying(
        sleep=sleep, stop=stop, reraise=True, before_sleep=before_sleep,
        wait=tenacity.wait_exponential_jitter(multiplier=first_s, max=max_s, jitter=first_s),
        retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, catch) and busy(exc)))
    return retrying(call)
