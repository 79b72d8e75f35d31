"""Trading Buddy: an honest second opinion on a trade, computed point-in-time.

``from buddy import Buddy; Buddy.open().evaluate(...)`` is the entry point. Heavy modules are
imported lazily so ``import buddy`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Buddy", "__version__"]

if TYPE_CHECKING:
    from buddy.api import Buddy


def __getattr__(name: str) -> Any:
    if name == "Buddy":
        from buddy.api import Buddy

        return Buddy
    raise AttributeError(f"module 'buddy' has no attribute {name!r}")
