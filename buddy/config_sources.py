"""Where a scoring config comes from: the packaged default, or a source a package declares.

``buddy`` never imports the packages that keep configs elsewhere (``experiments`` keeps them
in the MLflow registry). Such a package declares a source in the entry-point group
``trading_buddy.config_sources``; the edges (the ``buddy`` command line, ``Buddy.open``, the
widget workbench) resolve a reference here and hand the resolved ScoringConfig to ``Buddy``.

A source is a callable ``source(ref) -> ScoringConfig | None``: the config ``ref`` names, or
None when the source has nothing for it (not its kind of reference, or no production version
yet). Sources are asked in the order of their entry-point names; the first answer wins.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Protocol

from buddy.config import ScoringConfig, default_scoring_config
from buddy.errors import ConfigError, FieldError

#: The entry-point group config sources are declared in.
ENTRY_POINT_GROUP = "trading_buddy.config_sources"
#: The config production consumers evaluate with (the packaged default when no source has one).
PRODUCTION = "production"
#: References to the packaged default, whatever the sources hold.
PACKAGED = ("default", "packaged")


class ConfigSource(Protocol):
    """Return the ScoringConfig ``ref`` names, or None when this source has none for it."""

    def __call__(self, ref: str) -> ScoringConfig | None: ...


def config_sources() -> dict[str, ConfigSource]:
    """Return the installed config sources by entry-point name, in name order.

    A source whose module cannot be imported is skipped with a RuntimeWarning: a broken
    optional package must not stop evaluations, and every report names the config it used.
    """
    found: dict[str, ConfigSource] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            found[ep.name] = ep.load()
        except (ImportError, AttributeError) as exc:
            warnings.warn(f"config source {ep.name} ({ep.value}) cannot be loaded: {exc}",
                          RuntimeWarning, stacklevel=2)
    return found


def resolve_scoring_config(ref: str = PRODUCTION, *,
                           sources: Mapping[str, ConfigSource] | None = None) -> ScoringConfig:
    """Return the ScoringConfig that ``ref`` names.

    ``ref`` is 'default' or 'packaged' (the packaged default), 'production' (the first
    source's production config, else the packaged default) or a reference a source knows
    (e.g. 'models:/buddy-scoring@production'). ``sources`` defaults to the installed ones.
    Raises ConfigError when no source knows ``ref``.
    """
    if ref in PACKAGED:
        return default_scoring_config()
    sources = config_sources() if sources is None else sources
    for source in sources.values():
        config = source(ref)
        if config is not None:
            return config
    if ref == PRODUCTION:
        return default_scoring_config()
    installed = ", ".join(sources) or "none installed"
    raise ConfigError([FieldError("config", f"is not known to any config source "
                                  f"({ENTRY_POINT_GROUP}: {installed})", ref)])


def production_config() -> ScoringConfig:
    """Return the config production consumers evaluate with (``resolve_scoring_config()``)."""
    return resolve_scoring_config(PRODUCTION)
