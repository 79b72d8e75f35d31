"""Typed, validated, hashed configuration: module configs and the scoring configuration.

A module config is a frozen dataclass subclassing ``ModuleConfig`` whose fields are declared
with ``param()`` (default, allowed range, unit, meaning). It is validated once, at construction;
``from_mapping`` also refuses unknown keys and suggests the closest name for a typo.

Every config has an id: the SHA-256 of its canonical JSON (``config_hash``), stored with every
evaluation so any number traces to the exact settings that produced it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ClassVar, Self

from buddy.errors import ConfigError, FieldError

SCORING_SCHEMA_VERSION = 1


def param(default: Any, *, lo: float | None = None, hi: float | None = None, unit: str = "",
          doc: str = "", choices: tuple[Any, ...] | None = None) -> Any:
    """Declare a config field with its default, allowed range [lo, hi], unit and meaning."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "unit": unit, "doc": doc,
                                            "choices": choices})


def _closest(name: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else f"; allowed keys: {', '.join(choices)}"


def _range_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"must be between {lo:g} and {hi:g}"
    if lo is not None:
        return f"must be >= {lo:g}"
    return f"must be <= {hi:g}"


def check_fields(obj: Any) -> list[FieldError]:
    """Return the range and type violations of a dataclass built from ``param()`` fields."""
    errors: list[FieldError] = []
    prefix = getattr(obj, "config_name", "") or type(obj).__name__
    for f in dataclasses.fields(obj):
        meta = f.metadata
        value = getattr(obj, f.name)
        name = f"{prefix}.{f.name}"
        if meta.get("choices") is not None and value not in meta["choices"]:
            errors.append(FieldError(name, f"must be one of {', '.join(map(str, meta['choices']))}",
                                     value))
            continue
        lo, hi = meta.get("lo"), meta.get("hi")
        if lo is None and hi is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value
        ):
            errors.append(FieldError(name, "must be a finite number", value))
            continue
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            errors.append(FieldError(name, _range_text(lo, hi), value))
    return errors


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleConfig:
    """Base of every evaluator's config: validated on construction, hashable by content."""

    config_name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        errors = check_fields(self)
        if errors:
            raise ConfigError(errors)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> Self:
        """Build the config from a mapping, refusing unknown keys with the closest valid name."""
        values = dict(values or {})
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in values if k not in names]
        if unknown:
            prefix = cls.config_name or cls.__name__
            raise ConfigError([FieldError(f"{prefix}.{k}", "is not a known setting"
                                          + _closest(k, names), values[k]) for k in unknown])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """Return the settings as a plain dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        """Return each setting's name, default, range, unit and meaning (for docs and UIs)."""
        return [{"name": f.name, "default": f.default, "lo": f.metadata.get("lo"),
                 "hi": f.metadata.get("hi"), "unit": f.metadata.get("unit", ""),
                 "doc": f.metadata.get("doc", "")} for f in dataclasses.fields(cls)]


def canonical_json(obj: Any) -> str:
    """Return ``obj`` as JSON with sorted keys and no whitespace: the input to config hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(obj: Any) -> str:
    """Return the first 16 hex digits of SHA-256 over the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleSpec:
    """One entry of the scoring bundle: which module, on or off, its weight and its settings."""

    name: str
    enabled: bool = True
    weight: float = 1.0
    params: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"name": self.name, "enabled": self.enabled, "weight": self.weight,
                "params": dict(sorted(self.params.items()))}


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoringConfig:
    """The configured bundle: enabled modules, weights, thresholds, and ranking limits.

    ``max_issues``/``min_issues`` bound the report's top list (the seed's 3-6). ``name`` and
    ``version`` say where it came from (the packaged default, or a registered model version).
    """

    name: str = "default"
    version: str = "packaged"
    schema_version: int = SCORING_SCHEMA_VERSION
    modules: tuple[ModuleSpec, ...] = ()
    min_issues: int = 3
    max_issues: int = 6

    def __post_init__(self) -> None:
        errors: list[FieldError] = []
        if not 1 <= self.min_issues <= self.max_issues <= 20:
            errors.append(FieldError("min_issues/max_issues",
                                     "must satisfy 1 <= min_issues <= max_issues <= 20",
                                     (self.min_issues, self.max_issues)))
        seen: set[str] = set()
        for spec in self.modules:
            if spec.name in seen:
                errors.append(FieldError(f"modules.{spec.name}", "is listed twice", spec.name))
            seen.add(spec.name)
            if isinstance(spec.weight, bool) or not isinstance(spec.weight, int | float) or not (
                math.isfinite(spec.weight) and 0 <= spec.weight <= 100
            ):
                errors.append(FieldError(f"modules.{spec.name}.weight",
                                         "must be between 0 and 100", spec.weight))
        if self.schema_version != SCORING_SCHEMA_VERSION:
            errors.append(FieldError("schema_version", f"must be {SCORING_SCHEMA_VERSION}",
                                     self.schema_version))
        if errors:
            raise ConfigError(errors)

    @property
    def hash(self) -> str:
        """Return the content hash (name and version excluded: same settings, same hash)."""
        return config_hash(self.content())

    def content(self) -> dict[str, Any]:
        """Return the settings that determine results (everything but name and version)."""
        return {"schema_version": self.schema_version, "min_issues": self.min_issues,
                "max_issues": self.max_issues,
                "modules": [m.as_dict() for m in sorted(self.modules, key=lambda m: m.name)]}

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict, including name, version and hash."""
        return {"name": self.name, "version": self.version, "hash": self.hash, **self.content()}

    def module(self, name: str) -> ModuleSpec | None:
        """Return the spec of module ``name``, if listed."""
        return next((m for m in self.modules if m.name == name), None)

    def with_modules_disabled(self, names: set[str]) -> ScoringConfig:
        """Return a copy with the named modules switched off (a user's opt-outs)."""
        modules = tuple(dataclasses.replace(m, enabled=m.enabled and m.name not in names)
                        for m in self.modules)
        return dataclasses.replace(self, modules=modules)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ScoringConfig:
        """Build from a parsed JSON mapping, refusing unknown keys."""
        values = dict(values)
        values.pop("hash", None)
        top = ["name", "version", "schema_version", "modules", "min_issues", "max_issues"]
        unknown = [k for k in values if k not in top]
        errors = [FieldError(k, "is not a scoring setting" + _closest(k, top), values[k])
                  for k in unknown]
        modules = []
        for raw in values.get("modules", []):
            raw = dict(raw)
            allowed = ["name", "enabled", "weight", "params"]
            for k in [k for k in raw if k not in allowed]:
                errors.append(FieldError(f"modules.{raw.get('name', '?')}.{k}",
                                         "is not a module setting" + _closest(k, allowed), raw[k]))
                raw.pop(k)
            if "name" not in raw:
                errors.append(FieldError("modules[].name", "is required", raw))
                continue
            modules.append(ModuleSpec(**raw))
        if errors:
            raise ConfigError(errors)
        values["modules"] = tuple(modules)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> ScoringConfig:
        """Build from JSON text."""
        return cls.from_mapping(json.loads(text))

    def to_json(self) -> str:
        """Return pretty JSON (the artifact logged with every registered config)."""
        return json.dumps(self.as_dict(), indent=2, sort_keys=True)


def default_scoring_config() -> ScoringConfig:
    """Return the packaged default scoring configuration (buddy/defaults/scoring.json)."""
    text = resources.files("buddy.defaults").joinpath("scoring.json").read_text()
    return ScoringConfig.from_json(text)
