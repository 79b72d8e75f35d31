"""A disk cache of built exchange calendars, shared by the processes of one user.

Building an exchange calendar from exchange-calendars' holiday rules costs about 0.3-0.5 s
of CPU in every fresh process (a fifth of a fresh ``buddy evaluate``); loading the built one
back costs about 20 ms. The key holds everything the built calendar depends on: its name,
the day it is built (exchange-calendars ends a calendar a year after that day), the
versions of exchange-calendars, pandas, numpy and Python, and a digest of the module whose
class is stored (``buddy/data/calendars.py``, with its first session). A file that cannot be
read is ignored and the calendar built again; files are written atomically (a temporary
file renamed), so concurrent processes never read half of one.

The folder is $BUDDY_CACHE_DIR, else $XDG_CACHE_HOME/trading-buddy, else
~/.cache/trading-buddy; ``BUDDY_CACHE_DIR=off`` builds every time. Only this process's user
writes there: the files are the calendars this code built, nothing downloaded.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: The layout of a cache file's name and content (raise it when either changes).
CACHE_FORMAT = 1
_OFF = "off"


def cache_dir() -> Path | None:
    """Return the folder of cached calendars, or None when $BUDDY_CACHE_DIR is 'off'."""
    chosen = os.environ.get("BUDDY_CACHE_DIR")
    if chosen:
        return None if chosen.strip().lower() == _OFF else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trading-buddy"


def cache_key(name: str, source: Path, *, today: datetime | None = None) -> str:
    """Return the file name of calendar ``name`` built by the module at ``source`` today
    (UTC), under the installed versions."""
    import exchange_calendars
    import numpy
    import pandas

    versions = [f"{m.__name__}={m.__version__}" for m in (exchange_calendars, pandas, numpy)]
    digest = hashlib.sha256("|".join([
        str(CACHE_FORMAT), name, (today or datetime.now(UTC)).strftime("%Y-%m-%d"),
        *versions, sys.version, hashlib.sha256(source.read_bytes()).hexdigest()]).encode())
    safe = "".join(c if c.isalnum() else "_" for c in name)[:40]
    return f"calendar-{safe}-{digest.hexdigest()[:24]}.pickle"


def cached_calendar(name: str, build: Callable[[], T], *, kind: type[T], source: Path
                    ) -> T:
    """Return calendar ``name`` (a ``kind``) from the disk cache, else ``build()`` it and
    store it (a failed store only costs the next process a build)."""
    folder = cache_dir()
    if folder is None:
        return build()
    path = folder / cache_key(name, source)
    with suppress(OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError,
                  IndexError, TypeError, ValueError), open(path, "rb") as handle:
        found = pickle.load(handle)
        if isinstance(found, kind):
            return found
    built = build()
    with suppress(OSError, pickle.PicklingError, TypeError, AttributeError):
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(built, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, path)
        finally:
            with suppress(FileNotFoundError):
                os.unlink(temporary)
    return built
