"""Configs: validated once, typos get the closest name, content-hashed."""

from __future__ import annotations

import dataclasses

import pytest

from buddy.config import ModuleSpec, ScoringConfig, default_scoring_config
from buddy.errors import ConfigError
from buddy.evaluators.data_quality import DataQualityConfig


def test_out_of_range_names_field_range_and_value() -> None:
    with pytest.raises(ConfigError) as err:
        DataQualityConfig(max_gap_pct=250.0)
    text = str(err.value)
    assert "data_quality.max_gap_pct" in text and "between 0 and 100" in text and "250" in text


def test_unknown_key_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'min_history_bars'"):
        DataQualityConfig.from_mapping({"min_histroy_bars": 10})


def test_hash_is_stable_and_tracks_content() -> None:
    base = default_scoring_config()
    assert base.hash == ScoringConfig.from_json(base.to_json()).hash
    renamed = dataclasses.replace(base, name="other", version="9")
    assert renamed.hash == base.hash  # name and version do not change results
    heavier = dataclasses.replace(base, modules=tuple(
        dataclasses.replace(m, weight=m.weight + 1) for m in base.modules))
    assert heavier.hash != base.hash


def test_scoring_config_refuses_bad_bundles() -> None:
    with pytest.raises(ConfigError, match="listed twice"):
        ScoringConfig(modules=(ModuleSpec(name="a"), ModuleSpec(name="a")))
    with pytest.raises(ConfigError, match="min_issues"):
        ScoringConfig(min_issues=7, max_issues=6)
    with pytest.raises(ConfigError, match="did you mean 'max_issues'"):
        ScoringConfig.from_mapping({"max_isues": 4})
