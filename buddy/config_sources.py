"""Where a scoring config comes from: the packaged default, or a source a package declares.

``buddy`` never imports the packages that keep configs elsewhere (``experiments`` keeps them
in the MLflow registry). Such a package declares a source in the entry-point group
``trading_buddy.config_sources``; the edges (the ``buddy`` command line, ``Buddy.open``, the
widget workbench) resolve a reference here and hand the resolved ScoringConfig to ``Buddy``.

A source is a callable ``source(ref) -> ScoringConfig | None``: the config ``ref`` names, or
None when the source has nothing for it (not its kind of reference, or no production version
yet). Sources are asked in the order of their entry-point names; the first answer wins.

A source whose store is slow to open (MLflow: about 2 s to import) may keep a ConfigPointer:
a small JSON file naming the production version, its config and a ``file_stamp`` of the
store taken BEFORE the store was read. The pointer answers only while the store's stamp is
unchanged; any write to the store (an alias moved by a promotion, a rollback, anything) makes
the source read the store again and rewrite the pointer, so a pointer is never used against a
store that may say otherwise.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

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


# ---------------------------------------------------------------------------- pointers
#: The version of the pointer file's JSON layout.
POINTER_FORMAT = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigPointer:
    """Which config an alias of a model named when the store had stamp ``store_stamp``.

    ``version`` None records that the alias was unset (consumers use the packaged default);
    ``config_json`` is then ''. ``config_hash`` is the config's hash when written: a pointer
    whose config hashes otherwise under the running code is not used.
    """

    store: str  # the store the pointer describes (e.g. the SQLite file, absolute)
    store_stamp: str  # file_stamp() of the store taken before it was read
    model: str
    alias: str
    version: str | None
    config_hash: str
    config_json: str
    format: int = POINTER_FORMAT

    def config(self) -> ScoringConfig | None:
        """Return the config pointed at, named model@version resolved from the alias; None
        for an unset alias. Raises ConfigError when the stored config no longer hashes as
        written (changed code: the store must be read again)."""
        if self.version is None:
            return None
        config = ScoringConfig.from_json(self.config_json)
        if config.hash != self.config_hash:
            raise ConfigError([FieldError("config_hash", "differs from the pointed config's "
                                          f"hash {config.hash}", self.config_hash)])
        return replace(config, name=self.model, version=self.version, alias=self.alias)


def file_stamp(path: Path) -> str:
    """Return a stamp of a store file and its SQLite journals: device, inode, size and
    mtime (ns) of each; any write or replacement of the file changes it."""
    parts = []
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-journal")):
        try:
            st = candidate.stat()
        except FileNotFoundError:
            parts.append("-")
            continue
        parts.append(f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def write_config_pointer(path: Path, pointer: ConfigPointer) -> None:
    """Write ``pointer`` to ``path`` atomically (a reader sees the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(pointer), out, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_config_pointer(path: Path) -> ConfigPointer | None:
    """Return the pointer at ``path``, or None when there is none or it cannot be read (the
    caller then reads the store itself: an unreadable pointer is never guessed at)."""
    try:
        values: Any = json.loads(path.read_text(encoding="utf-8"))
        pointer = ConfigPointer(**values)
    except (OSError, ValueError, TypeError):
        return None
    if pointer.format != POINTER_FORMAT:
        return None
    return pointer


def current_pointer(path: Path, store: Path, *, model: str, alias: str
                    ) -> ConfigPointer | None:
    """Return the pointer at ``path`` if it describes ``store`` as it is now (same path and
    stamp) for ``model``@``alias``; None otherwise (read the store instead)."""
    pointer = read_config_pointer(path)
    if pointer is None or (pointer.store, pointer.model, pointer.alias) != (
            str(store), model, alias):
        return None
    return pointer if pointer.store_stamp == file_stamp(store) else None
