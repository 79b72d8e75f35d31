"""Key levels: prior-day levels, pivots, ranges, anchored VWAPs and support/resistance."""

from __future__ import annotations

from buddy.levels.compute import (
    LEVELS_VERSION,
    LevelAnchor,
    compute_key_levels,
    compute_key_levels_naive,
)

__all__ = ["LEVELS_VERSION", "LevelAnchor", "compute_key_levels", "compute_key_levels_naive"]
