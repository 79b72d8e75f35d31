"""The module registry: explicit registration, validated on entry.

Built-in evaluators register themselves when ``buddy.evaluators`` is imported. Third-party
evaluators may be published under the entry-point group ``trading_buddy.evaluators`` and are
loaded only when ``load_entry_points()`` is called.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TypeVar

from buddy.evaluators.base import Evaluator, check_evaluator_class

ENTRY_POINT_GROUP = "trading_buddy.evaluators"

_REGISTRY: dict[str, type[Evaluator]] = {}

E = TypeVar("E", bound=type[Evaluator])


def register(cls: E) -> E:
    """Register an evaluator class (usable as a decorator); refuse an invalid one."""
    problems = check_evaluator_class(cls)
    if problems:
        raise TypeError(f"cannot register {getattr(cls, '__name__', cls)!r}: "
                        + "; ".join(problems))
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"an evaluator named {cls.name!r} is already registered "
                         f"({existing.__module__}.{existing.__qualname__})")
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove an evaluator (tests and plug-in reloads)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> type[Evaluator]:
    """Return the evaluator class called ``name``; the error lists the registered names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        names = sorted(_REGISTRY)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"no evaluator named {name!r}{hint} (registered: {', '.join(names)})"
                       ) from None


def available() -> dict[str, type[Evaluator]]:
    """Return a copy of the registry."""
    return dict(sorted(_REGISTRY.items()))


def load_entry_points() -> list[str]:
    """Load and register third-party evaluators; return the names loaded."""
    loaded = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = register(ep.load())
        loaded.append(cls.name)
    return loaded
