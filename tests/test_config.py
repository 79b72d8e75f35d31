"""Configs: validated once, typos get the closest name, content-hashed."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from buddy.config import (
    Config,
    ModuleSpec,
    ScoringConfig,
    default_scoring_config,
    did_you_mean,
    identity_changes,
    param,
    store_schema_version,
    stored_identity,
)
from buddy.errors import ConfigError, FieldError
from buddy.evaluators import registry
from buddy.evaluators.data_quality import DataQualityConfig

from .config_identity import swapped_evaluator


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


# ---------------------------------------------------------------------------- identity
def test_explicit_defaults_hash_the_same_as_omitted_ones() -> None:
    base = default_scoring_config()
    spelled = dataclasses.replace(base, modules=tuple(
        dataclasses.replace(m, params=registry.get(m.name).config_cls().as_dict())
        for m in base.modules))
    assert spelled.content() != base.content()  # the JSON differs ...
    assert spelled.hash == base.hash  # ... the resolved config does not
    one_changed = dataclasses.replace(base, modules=tuple(
        dataclasses.replace(m, params={"max_gap_pct": 5.0}) if m.name == "data_quality" else m
        for m in base.modules))
    assert one_changed.hash != base.hash


def test_a_module_version_or_a_changed_default_changes_the_hash() -> None:
    base = default_scoring_config()
    before = base.hash
    with swapped_evaluator("risk_reward", version="9.9.9"):
        bumped = base.hash
        changes = identity_changes(stored_identity(json.loads(base.to_json())) or {},
                                   base.identity())
    assert bumped != before
    assert changes == []  # to_json inside the block records the bumped identity
    with swapped_evaluator("data_quality", defaults={"max_gap_pct": 5.0}):
        loosened = base.hash
        explicit = dataclasses.replace(base, modules=tuple(
            dataclasses.replace(m, params={"max_gap_pct": 2.0}) if m.name == "data_quality"
            else m for m in base.modules))
        assert explicit.hash != loosened  # a written param still wins over the default
    assert loosened != before and base.hash == before  # restored


def test_identity_changes_name_the_module_the_param_and_the_version() -> None:
    base = default_scoring_config()
    stored = stored_identity(json.loads(base.to_json()))
    assert stored is not None and identity_changes(stored, base.identity()) == []
    with swapped_evaluator("data_quality", version="2.0.0", defaults={"max_gap_pct": 5.0}):
        changes = identity_changes(stored, base.identity())
    version = registry.get("data_quality").version
    assert changes == [f"module data_quality version: {version!r} -> '2.0.0'",
                       "module data_quality param max_gap_pct: 2.0 -> 5.0"]
    heavier = dataclasses.replace(base, min_issues=4, modules=base.modules[1:])
    assert identity_changes(stored, heavier.identity()) == [
        "min_issues: 3 -> 4", f"module {base.modules[0].name}: removed"]
    assert stored_identity({"name": "old", "modules": []}) is None  # written before identities


def test_the_json_form_records_the_resolution_and_reloads_to_the_same_hash() -> None:
    base = default_scoring_config()
    data = json.loads(base.to_json())
    assert data["alias"] == "packaged" and data["hash"] == base.hash
    assert data["resolved"]["store_schema_version"] == store_schema_version()
    assert data["resolved"]["modules"]["data_quality"]["params"]["max_gap_pct"] == 2.0
    assert data["resolved"]["modules"]["risk_reward"]["version"] == registry.get(
        "risk_reward").version
    again = ScoringConfig.from_json(base.to_json())  # modules come back sorted by name
    assert again.hash == base.hash and again.alias == base.alias
    assert base.label() == f"default@packaged #{base.hash}"
    unregistered = ScoringConfig(modules=(ModuleSpec(name="not_installed", params={"x": 1}),))
    assert unregistered.resolved()["modules"] == {
        "not_installed": {"registered": False, "params": {"x": 1}}}


# ---------------------------------------------------------------------------- the base
@dataclass(frozen=True, slots=True, kw_only=True)
class _Example(Config):
    config_name: ClassVar[str] = "example"

    bars: int = param(20, lo=1, hi=100, unit="bars")
    share: float = param(0.5, lo=0.0, hi=1.0, lo_open=True, unit="fraction")
    target: float | None = param(2.0, lo=0.0, lo_open=True, unit="R")
    sides: tuple[str, ...] = param(("long",), choices=("long", "short"), min_items=1)
    mode: str = param("a", choices=("a", "b"))
    inner: DataQualityConfig = param(factory=DataQualityConfig)  # noqa: RUF009

    def check(self) -> list[FieldError]:
        if self.mode == "b" and self.target is None:
            return [FieldError("example.target", "is required in mode b", None)]
        return []


@pytest.mark.parametrize(("values", "field", "rule"), [
    ({"bars": 0}, "example.bars", "must be between 1 and 100"),
    ({"bars": 2.5}, "example.bars", "must be a whole number between 1 and 100"),
    ({"bars": True}, "example.bars", "must be a whole number"),
    ({"share": 0.0}, "example.share", "must be in (0, 1]"),
    ({"share": float("nan")}, "example.share", "must be a finite number"),
    ({"target": 0.0}, "example.target", "must be > 0"),
    ({"sides": ()}, "example.sides", "must be a tuple of at least 1 of 'long', 'short'"),
    ({"sides": ("flat",)}, "example.sides", "must be a tuple of at least 1"),
    ({"mode": "c"}, "example.mode", "must be one of a, b"),
    ({"mode": "b", "target": None}, "example.target", "is required in mode b"),
    ({"inner": {"max_gap_pct": 101}}, "data_quality.max_gap_pct", "between 0 and 100"),
    ({"modes": "a"}, "example.modes", "did you mean 'mode'?"),
])
def test_the_base_names_the_field_the_rule_and_the_value(values: dict[str, Any], field: str,
                                                         rule: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _Example.from_mapping(values)
    (error,) = caught.value.errors
    assert error.field == field and rule in error.rule
    assert f"(got {error.value!r})" in str(caught.value)


def test_the_base_round_trips_json_and_hashes_by_content() -> None:
    example = _Example.from_mapping({"sides": ["long", "short"], "target": None,
                                     "inner": {"min_history_bars": 50}})
    assert example.sides == ("long", "short") and example.inner.min_history_bars == 50
    again = _Example.from_json(example.to_json())
    assert again == example and again.hash == example.hash
    assert _Example().hash != example.hash
    assert [d["name"] for d in _Example.describe()][:2] == ["bars", "share"]


def test_did_you_mean_offers_the_closest_name_or_the_known_ones() -> None:
    assert did_you_mean("max_isues", ["min_issues", "max_issues"]) == "did you mean 'max_issues'?"
    assert did_you_mean("zzz", ["a", "b"]) == "known: a, b"
