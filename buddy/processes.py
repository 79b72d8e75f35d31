"""Whether another process still runs (shared by the replay workers' parent watchdog and
the sweep of dead processes' shared-read directories)."""

from __future__ import annotations

import os


def running(pid: int) -> bool:
    """Return whether process ``pid`` exists (POSIX signal 0; elsewhere assumed running:
    ``os.kill`` would end it there)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
