"""The MLflow registry as a config source of ``buddy`` (entry-point group
``trading_buddy.config_sources``, declared in pyproject.toml).

``buddy.config_sources.resolve_scoring_config`` calls ``registry_config_source`` at the edges
(``buddy evaluate``, ``Buddy.open``, the widgets, ``buddy replay --config models:/...``), so
``buddy`` evaluates with the production config without importing this package by name.
'production' is answered from the pointer a promotion, rollback or registry read wrote next
to a SQLite store while that store is unchanged since (``buddy.config_sources.ConfigPointer``):
no mlflow import. Otherwise the registry is read (mlflow imported only when the store exists)
and the pointer rewritten.
"""

from __future__ import annotations

import os
from pathlib import Path

from buddy.config import ScoringConfig
from buddy.config_sources import current_pointer
from buddy.errors import ConfigError
from experiments.tracking import sqlite_path, tracking_uri

#: The registered model of scoring configs, and the alias production consumers load.
SCORING_MODEL = "buddy-scoring"
PRODUCTION = "production"
#: What production consumers load: a models:/ URI, or 'packaged' for the packaged default.
MODEL_ENV = "BUDDY_SCORING_MODEL"


def pointer_path(name: str = SCORING_MODEL, uri: str | None = None) -> Path | None:
    """Return the production pointer file of model ``name`` next to the SQLite store at
    ``uri`` (default ``tracking_uri()``), or None for a store that is not a SQLite file."""
    db = sqlite_path(uri)
    return None if db is None else db.parent / f"{name}.{PRODUCTION}.pointer.json"


def pointed_production_config(name: str = SCORING_MODEL) -> tuple[bool, ScoringConfig | None]:
    """Return (True, production config or None) when a current pointer answers for ``name``;
    (False, None) when the registry must be read (no pointer, another store, a store written
    since, $BUDDY_SCORING_MODEL set, a pointed config that no longer hashes as written)."""
    if os.environ.get(MODEL_ENV, "").strip():
        return False, None
    uri = tracking_uri()
    db = sqlite_path(uri)
    if db is None or not db.is_file():
        return False, None
    path = pointer_path(name, uri)
    pointer = None if path is None else current_pointer(path, db, model=name,
                                                         alias=PRODUCTION)
    if pointer is None:
        return False, None
    try:
        return True, pointer.config()
    except ConfigError:
        return False, None


def registry_config_source(ref: str) -> ScoringConfig | None:
    """Return the registered config ``ref`` names, or None when the registry has none for it.

    'production': the current pointer's config, else ``load_production_config()`` (None
    without a production version, or when $BUDDY_SCORING_MODEL is 'packaged');
    'models:/NAME@ALIAS' or 'models:/NAME/VERSION': that version (RegistryError when it does
    not exist); any other reference: None.
    """
    if ref == PRODUCTION:
        answered, config = pointed_production_config()
        if answered:
            return config
        from experiments.registry import load_production_config

        return load_production_config()
    if ref.startswith("models:/"):
        from experiments.registry import load_scoring_config

        return load_scoring_config(ref)
    return None
