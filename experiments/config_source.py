"""The MLflow registry as a config source of ``buddy`` (entry-point group
``trading_buddy.config_sources``, declared in pyproject.toml).

``buddy.config_sources.resolve_scoring_config`` calls ``registry_config_source`` at the edges
(``buddy evaluate``, ``Buddy.open``, the widgets, ``buddy replay --config models:/...``), so
``buddy`` evaluates with the production config without importing this package by name.
mlflow is imported only when the experiment store exists.
"""

from __future__ import annotations

from buddy.config import ScoringConfig
from experiments.registry import PRODUCTION, load_production_config, load_scoring_config


def registry_config_source(ref: str) -> ScoringConfig | None:
    """Return the registered config ``ref`` names, or None when the registry has none for it.

    'production': ``load_production_config()`` (None without a production version, or when
    $BUDDY_SCORING_MODEL is 'packaged'); 'models:/NAME@ALIAS' or 'models:/NAME/VERSION': that
    version (RegistryError when it does not exist); any other reference: None.
    """
    if ref == PRODUCTION:
        return load_production_config()
    if ref.startswith("models:/"):
        return load_scoring_config(ref)
    return None
