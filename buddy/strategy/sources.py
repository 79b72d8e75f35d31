"""Where a user's production playbooks come from, and where a new fit is published.

``buddy`` never imports the package that versions playbook models (``experiments`` keeps them
in the MLflow registry as ``buddy-playbooks-<user>``). That package declares

- a source in the entry-point group ``trading_buddy.playbook_sources``: a callable
  ``source(user_id) -> PlaybookFit | None`` (the user's production fit, or None when it has
  none);
- a publisher in the group ``trading_buddy.playbook_publishers``: a callable
  ``publisher(store, fit) -> list[str]`` (register, gate, promote; the sentences to print).

Both are asked in the order of their entry-point names, as config sources are
(``buddy.config_sources``); a source or publisher whose module cannot be imported is skipped
with a RuntimeWarning, because a broken optional package must not stop evaluations.
No installed source means "no production model": the strategy piece then fits the default
recipe (``buddy.strategy.provider``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from buddy.store import Store
    from buddy.strategy.playbooks import PlaybookFit

#: The entry-point group production playbook sources are declared in.
SOURCES_GROUP = "trading_buddy.playbook_sources"
#: The entry-point group playbook publishers are declared in.
PUBLISHERS_GROUP = "trading_buddy.playbook_publishers"


class PlaybookSource(Protocol):
    """Return the production PlaybookFit of ``user_id``, or None when there is none."""

    def __call__(self, user_id: str) -> PlaybookFit | None: ...


class PlaybookPublisher(Protocol):
    """Register, gate and promote ``fit``; return the sentences that say what happened."""

    def __call__(self, store: Store, fit: PlaybookFit) -> list[str]: ...


def _load(group: str, what: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            found[ep.name] = ep.load()
        except (ImportError, AttributeError) as exc:
            warnings.warn(f"{what} {ep.name} ({ep.value}) cannot be loaded: {exc}",
                          RuntimeWarning, stacklevel=3)
    return found


def playbook_sources() -> dict[str, PlaybookSource]:
    """Return the installed playbook sources by entry-point name, in name order."""
    return _load(SOURCES_GROUP, "playbook source")


def playbook_publishers() -> dict[str, PlaybookPublisher]:
    """Return the installed playbook publishers by entry-point name, in name order."""
    return _load(PUBLISHERS_GROUP, "playbook publisher")


def production_playbooks(user_id: str, *,
                         sources: Mapping[str, PlaybookSource] | None = None
                         ) -> PlaybookFit | None:
    """Return the production PlaybookFit of ``user_id`` from the first source that has one
    (``sources`` defaults to the installed ones), or None."""
    sources = playbook_sources() if sources is None else sources
    for source in sources.values():
        fit = source(user_id)
        if fit is not None:
            return fit
    return None


def publish_playbooks(store: Store, fit: PlaybookFit, *,
                      publishers: Mapping[str, PlaybookPublisher] | None = None) -> list[str]:
    """Hand ``fit`` to every installed publisher (``publishers`` defaults to the installed
    ones); return their sentences, or one saying no publisher is installed."""
    publishers = playbook_publishers() if publishers is None else publishers
    if not publishers:
        return [f"playbooks of {fit.user_id} not published: no playbook publisher is "
                f"installed ({PUBLISHERS_GROUP})"]
    lines: list[str] = []
    for publisher in publishers.values():
        lines += publisher(store, fit)
    return lines
