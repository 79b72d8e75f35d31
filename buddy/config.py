"""One config base for the whole project: typed, ranged, validated once, hashed by content.

A config is a frozen keyword-only dataclass subclassing ``Config`` whose fields are declared
with ``param()`` (default, allowed range or choices, unit, meaning). It is validated once, at
construction: every error names the field, the allowed range and the value received, and a
rule across fields goes in ``check()``. ``from_mapping`` refuses unknown keys and suggests the
closest name (``did_you_mean``, the project's one copy of that hint); ``to_json`` and ``hash``
are written here once. ``ModuleConfig`` is the base of evaluator configs.

Every scoring config has an id: ``ScoringConfig.hash``, the SHA-256 of its RESOLVED identity
(every module's config with defaults filled in, each module's version, the store's schema
version and the bundle's weights and limits), stored with every evaluation and replay run.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ClassVar, Self

from buddy.errors import ConfigError, FieldError

#: 2: the score bands and the unknown-module score joined the settings (and the hash).
SCORING_SCHEMA_VERSION = 2
#: Schema versions ``ScoringConfig`` still reads (a version-1 file takes the default bands).
SCORING_SCHEMA_VERSIONS = (1, 2)
#: The bundle's scalar settings, as written (part of the identity).
SCORING_SCALARS: tuple[str, ...] = ("schema_version", "min_issues", "max_issues",
                                    "score_band_critical", "score_band_high",
                                    "score_band_medium", "unknown_module_score")


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """Return the hint for an unknown name: the closest choice, else the list of choices."""
    options = list(choices)
    match = difflib.get_close_matches(str(name), options, n=1, cutoff=0.5)
    if match:
        return f"did you mean {match[0]!r}?"
    return f"known: {', '.join(options)}" if options else "nothing is known"


def param(default: Any = dataclasses.MISSING, *, lo: float | None = None,
          hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
          choices: tuple[Any, ...] | None = None, min_items: int | None = None,
          factory: Any = dataclasses.MISSING, parse: Callable[[Any], Any] | None = None,
          unit: str = "", doc: str = "") -> Any:
    """Declare a config field: default (or ``factory``; neither: required), allowed range.

    ``lo``/``hi`` bound a number, inclusive unless ``lo_open``/``hi_open``; ``choices`` lists
    the allowed values (for a tuple field: of each item, with at least ``min_items`` items).
    An ``int`` field takes whole numbers only; a field typed ``X | None`` also takes None.
    ``parse`` turns a JSON value into the field's value in ``from_mapping``. ``unit`` and
    ``doc`` say what the number means (shown by ``describe``).
    """
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open, "choices": choices,
            "min_items": min_items, "parse": parse, "unit": unit, "doc": doc}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _range_text(meta: Mapping[str, Any]) -> str:
    lo, hi = meta.get("lo"), meta.get("hi")
    lo_open, hi_open = meta.get("lo_open", False), meta.get("hi_open", False)
    if lo is not None and hi is not None:
        if not (lo_open or hi_open):
            return f"must be between {lo:g} and {hi:g}"
        return f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"must be {'>' if lo_open else '>='} {lo:g}"
    return f"must be {'<' if hi_open else '<='} {hi:g}"


def _in_range(value: float, meta: Mapping[str, Any]) -> bool:
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value <= lo if meta.get("lo_open") else value < lo):
        return False
    return not (hi is not None and (value >= hi if meta.get("hi_open") else value > hi))


def _type_text(f: dataclasses.Field[Any]) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def _check_value(name: str, f: dataclasses.Field[Any], value: Any) -> FieldError | None:
    meta = f.metadata
    kind = _type_text(f).replace(" ", "")
    if value is None and (kind.endswith("|None") or kind.startswith("None|")):
        return None
    choices = meta.get("choices")
    if choices is not None and kind.startswith("tuple"):
        shown = ", ".join(map(repr, choices))
        least = meta.get("min_items") or 0
        if not isinstance(value, tuple) or len(value) < least or any(
                v not in choices for v in value):
            return FieldError(name, f"must be a tuple of at least {least} of {shown}", value)
        return None
    if choices is not None:
        if isinstance(value, bool) != any(isinstance(c, bool) for c in choices) \
                or value not in choices:
            return FieldError(name, f"must be one of {', '.join(map(str, choices))}", value)
        return None
    whole = kind in ("int", "int|None")
    if whole and (isinstance(value, bool) or not isinstance(value, int)):
        return FieldError(name, "must be a whole number" + (
            "" if meta.get("lo") is None and meta.get("hi") is None
            else f" {_range_text(meta).removeprefix('must be ')}"), value)
    if meta.get("lo") is None and meta.get("hi") is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
        value
    ):
        return FieldError(name, "must be a finite number "
                          + _range_text(meta).removeprefix("must be "), value)
    if not _in_range(value, meta):
        return FieldError(name, _range_text(meta), value)
    return None


def check_fields(obj: Any) -> list[FieldError]:
    """Return the range, choice and type violations of a dataclass of ``param()`` fields."""
    prefix = obj.field_prefix() if isinstance(obj, Config) else (
        getattr(obj, "config_name", "") or type(obj).__name__)
    errors: list[FieldError] = []
    for f in dataclasses.fields(obj):
        name = f"{prefix}.{f.name}" if prefix else f.name
        problem = _check_value(name, f, getattr(obj, f.name))
        if problem is not None:
            errors.append(problem)
    return errors


def _plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.as_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Base of every config: validated on construction, built from mappings, hashed by content.

    Subclasses declare fields with ``param()``, may name themselves with ``config_name`` (the
    prefix of error field names) and may add rules across fields in ``check()``.
    """

    config_name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        errors = check_fields(self)
        # a rule across fields only makes sense once each field is valid on its own
        if not errors:
            errors = list(self.check())
        if errors:
            raise ConfigError(errors)

    def check(self) -> Iterable[FieldError]:
        """Return the violations of rules across fields (none by default)."""
        return ()

    @classmethod
    def error_prefix(cls) -> str:
        """Return the prefix of the error field names of this class ('' for none)."""
        return cls.config_name

    def field_prefix(self) -> str:
        """Return the prefix of this config's error field names ('' for none)."""
        return type(self).error_prefix()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> Self:
        """Build the config from a mapping, refusing unknown keys with the closest valid name.

        Lists become tuples for tuple fields, and a mapping becomes the nested config of a
        field whose default is a config; missing keys keep their defaults.
        """
        values = dict(values or {})
        fields_by_name = {f.name: f for f in dataclasses.fields(cls)}
        prefix = cls.error_prefix()
        errors = [FieldError(f"{prefix}.{k}" if prefix else k,
                             "is not a known setting (" + did_you_mean(k, fields_by_name) + ")",
                             v) for k, v in values.items() if k not in fields_by_name]
        errors += [FieldError(f"{prefix}.{f.name}" if prefix else f.name, "is required", None)
                   for f in fields_by_name.values() if f.name not in values
                   and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            f = fields_by_name.get(key)
            if f is None:
                continue
            try:
                kwargs[key] = _parse(f, value)
            except ConfigError as exc:
                errors.extend(exc.errors)
        if errors:
            raise ConfigError(errors)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Build the config from JSON text."""
        return cls.from_mapping(json.loads(text))

    def as_dict(self) -> dict[str, Any]:
        """Return the settings as a dict (nested configs as dicts)."""
        return {f.name: _plain(v) if isinstance(v := getattr(self, f.name), Config)
                or (isinstance(v, tuple) and any(isinstance(i, Config) for i in v)) else v
                for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        """Return the settings as pretty JSON (the format ``from_json`` reads)."""
        return json.dumps(_plain(self.as_dict()), indent=2, sort_keys=True, default=str)

    @property
    def hash(self) -> str:
        """Return the content hash of the settings (``config_hash`` of ``as_dict``)."""
        return config_hash(self.as_dict())

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        """Return each setting's name, default, range, unit and meaning (for docs and UIs)."""
        return [{"name": f.name, "default": None if f.default is dataclasses.MISSING
                 else f.default, "lo": f.metadata.get("lo"), "hi": f.metadata.get("hi"),
                 "choices": f.metadata.get("choices"), "unit": f.metadata.get("unit", ""),
                 "doc": f.metadata.get("doc", "")} for f in dataclasses.fields(cls)]


def _parse(f: dataclasses.Field[Any], value: Any) -> Any:
    parse = f.metadata.get("parse")
    if parse is not None:
        return parse(value)
    default = f.default
    if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    if isinstance(default, Config) and isinstance(value, Mapping):
        return type(default).from_mapping(value)
    if isinstance(default, tuple) and default and isinstance(default[0], Config) and (
            isinstance(value, list | tuple)):
        return tuple(type(default[0]).from_mapping(v) if isinstance(v, Mapping) else v
                     for v in value)
    if isinstance(value, list) and (isinstance(default, tuple) or "tuple" in _type_text(f)):
        return tuple(value)
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleConfig(Config):
    """Base of every evaluator's config (``config_name`` is the module's name)."""

    @classmethod
    def error_prefix(cls) -> str:
        """Return the module's name, else the class name (error field names)."""
        return cls.config_name or cls.__name__


def canonical_json(obj: Any) -> str:
    """Return ``obj`` as JSON with sorted keys and no whitespace: the input to config hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(obj: Any) -> str:
    """Return the first 16 hex digits of SHA-256 over the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleSpec(Config):
    """One entry of the scoring bundle: which module, on or off, its weight and its settings."""

    config_name: ClassVar[str] = "modules"

    name: str = param(doc="the evaluator's registered name")
    enabled: bool = param(True, choices=(True, False), doc="whether the module runs")
    weight: float = param(1.0, lo=0.0, hi=100.0, unit="weight",
                          doc="the module's weight in the overall score")
    params: Mapping[str, Any] = param(factory=dict, doc="the module's settings as written; "
                                                        "missing ones keep its defaults")

    def field_prefix(self) -> str:
        """Return 'modules.<name>': errors say which module."""
        return f"modules.{self.name}"

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"name": self.name, "enabled": self.enabled, "weight": self.weight,
                "params": dict(sorted(self.params.items()))}


def _parse_modules(value: Any) -> tuple[ModuleSpec, ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError([FieldError("modules", "must be a list of module entries", value)])
    return tuple(m if isinstance(m, ModuleSpec) else ModuleSpec.from_mapping(m) for m in value)


def resolve_modules(modules: Iterable[ModuleSpec]) -> dict[str, dict[str, Any]]:
    """Return each module's resolved identity: its version and its full config.

    The config is the module's config class built from the params as written, so every
    default is filled in; a module not in the evaluator registry is marked unregistered and
    keeps its params as written (it cannot run, and loading it later changes the identity).
    """
    # the registry imports this module: resolved lazily, at hash time
    import buddy.evaluators  # noqa: F401  (registers the built-in modules)
    from buddy.evaluators import registry

    known = registry.available()
    resolved: dict[str, dict[str, Any]] = {}
    for spec in sorted(modules, key=lambda m: m.name):
        cls = known.get(spec.name)
        if cls is None:
            resolved[spec.name] = {"registered": False,
                                   "params": _plain(dict(sorted(spec.params.items())))}
            continue
        config = cls.config_cls.from_mapping(spec.params)
        resolved[spec.name] = {"version": str(cls.version), "params": _plain(config.as_dict())}
    return resolved


def store_schema_version() -> int:
    """Return the store's schema version: the highest packaged migration number."""
    from buddy.store.core import LATEST_SCHEMA_VERSION

    return LATEST_SCHEMA_VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoringConfig(Config):
    """The configured bundle: enabled modules, weights, thresholds, and ranking limits.

    ``max_issues``/``min_issues`` bound the report's top list (the seed's 3-6). ``name`` and
    ``version`` say where it came from (the packaged default, or a registered model version)
    and ``alias`` how it was asked for ('packaged', 'production'; '' for a direct version).
    None of the three is part of the hash.
    """

    name: str = param("default", doc="the config's name ('buddy-scoring' when registered)")
    version: str = param("packaged", doc="'packaged' or the registered model version")
    alias: str = param("", doc="what the config was resolved from: 'packaged', "
                               "'production', another registry alias, or '' (direct)")
    schema_version: int = param(SCORING_SCHEMA_VERSION, choices=SCORING_SCHEMA_VERSIONS,
                                doc="version of this JSON format")
    modules: tuple[ModuleSpec, ...] = param((), parse=_parse_modules,
                                            doc="the modules, each with switch, weight and "
                                                "settings")
    min_issues: int = param(3, lo=1, hi=20, unit="issues", doc="fewest top issues shown")
    max_issues: int = param(6, lo=1, hi=20, unit="issues", doc="most top issues shown")
    score_band_critical: float = param(
        25.0, lo=0.0, hi=100.0, unit="points",
        doc="highest score of a report whose worst issue is critical (verdict blocked); its "
            "band is [0, this]")
    score_band_high: float = param(
        50.0, lo=0.0, hi=100.0, unit="points",
        doc="highest score of a report whose worst issue is high (verdict fix first); its "
            "band is (score_band_critical, this]")
    score_band_medium: float = param(
        75.0, lo=0.0, hi=100.0, unit="points",
        doc="highest score of a report whose verdict is review; its band is "
            "(score_band_high, this], and a clear report scores above it, up to 100")
    unknown_module_score: float = param(
        50.0, lo=0.0, hi=100.0, unit="points",
        doc="the score a module that could not run (skipped for a missing piece, or failed) "
            "enters the weighted mean with: unknown is not good")

    def check(self) -> Iterable[FieldError]:
        """Return the bundle's cross-field violations: limits or bands out of order, a
        module twice."""
        errors: list[FieldError] = []
        if self.min_issues > self.max_issues:
            errors.append(FieldError("min_issues/max_issues",
                                     "must satisfy 1 <= min_issues <= max_issues <= 20",
                                     (self.min_issues, self.max_issues)))
        bands = (self.score_band_critical, self.score_band_high, self.score_band_medium)
        if not bands[0] < bands[1] < bands[2] < 100.0:
            errors.append(FieldError(
                "score_band_critical/score_band_high/score_band_medium",
                "must satisfy 0 <= critical < high < medium < 100", bands))
        seen: set[str] = set()
        for spec in self.modules:
            if spec.name in seen:
                errors.append(FieldError(f"modules.{spec.name}", "is listed twice", spec.name))
            seen.add(spec.name)
        return errors

    @property
    def hash(self) -> str:
        """Return the id of the config's RESOLVED identity (``identity()``).

        Name, version and alias are excluded: the same settings under another name score
        the same. A changed module default, module version or store schema changes it.
        """
        return config_hash(self.identity())

    def content(self) -> dict[str, Any]:
        """Return the settings as written (everything but name, version and alias)."""
        return {**{key: getattr(self, key) for key in SCORING_SCALARS},
                "modules": [m.as_dict() for m in sorted(self.modules, key=lambda m: m.name)]}

    def resolved(self) -> dict[str, Any]:
        """Return what the code adds to the written settings: the store's schema version and
        each module's version and full config (``resolve_modules``)."""
        return {"store_schema_version": store_schema_version(),
                "modules": resolve_modules(self.modules)}

    def identity(self) -> dict[str, Any]:
        """Return everything that determines results: the hash's input.

        The params as written are left out: their resolution (``resolved``) holds them with
        the defaults filled in, so writing a default out does not change the identity.
        """
        return _identity(self.content(), self.resolved())

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: name, version, alias, hash, settings and their
        resolution (``resolved``, kept so a later run can say what changed)."""
        resolved = self.resolved()
        content = self.content()
        return {"name": self.name, "version": self.version, "alias": self.alias,
                "hash": config_hash(_identity(content, resolved)), **content,
                "resolved": resolved}

    def label(self) -> str:
        """Return 'name@version (alias) #hash', the config as a report names it."""
        return config_label(self.name, self.version, self.alias, self.hash)

    def module(self, name: str) -> ModuleSpec | None:
        """Return the spec of module ``name``, if listed."""
        return next((m for m in self.modules if m.name == name), None)

    def with_modules_disabled(self, names: set[str]) -> ScoringConfig:
        """Return a copy with the named modules switched off (a user's opt-outs)."""
        modules = tuple(dataclasses.replace(m, enabled=m.enabled and m.name not in names)
                        for m in self.modules)
        return dataclasses.replace(self, modules=modules)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> Self:
        """Build from a parsed JSON mapping, refusing unknown keys (``hash`` and ``resolved``
        are recomputed, never read)."""
        values = {k: v for k, v in (values or {}).items() if k not in ("hash", "resolved")}
        return super(ScoringConfig, cls).from_mapping(values)

    def to_json(self) -> str:
        """Return pretty JSON (the artifact logged with every registered config)."""
        return json.dumps(self.as_dict(), indent=2, sort_keys=True, default=str)


def _identity(content: Mapping[str, Any], resolved: Mapping[str, Any]) -> dict[str, Any]:
    modules = [{k: v for k, v in m.items() if k != "params"} for m in content["modules"]]
    return {"scoring": {**content, "modules": modules}, **resolved}


def stored_identity(values: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the identity recorded in a stored ScoringConfig JSON mapping, or None when it
    was written before configs recorded their resolution."""
    if "resolved" not in values:
        return None
    content = {k: values.get(k) for k in SCORING_SCALARS if k in values}
    content["modules"] = list(values.get("modules", []))
    return _identity(content, values["resolved"])


def identity_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Return what differs between two identities, one line per change (module, param or
    version, store schema, weights and limits)."""
    changes: list[str] = []

    def changed(what: str, old: Any, new: Any) -> None:
        if old != new:
            changes.append(f"{what}: {old!r} -> {new!r}")

    changed("store schema version", before.get("store_schema_version"),
            after.get("store_schema_version"))
    old_scoring, new_scoring = before.get("scoring", {}), after.get("scoring", {})
    for key in SCORING_SCALARS:
        changed(key, old_scoring.get(key), new_scoring.get(key))
    old_specs = {m["name"]: m for m in old_scoring.get("modules", [])}
    new_specs = {m["name"]: m for m in new_scoring.get("modules", [])}
    old_mods, new_mods = before.get("modules", {}), after.get("modules", {})
    for name in sorted(set(old_specs) | set(new_specs) | set(old_mods) | set(new_mods)):
        if name not in old_specs or name not in new_specs:
            changes.append(f"module {name}: " + ("added" if name in new_specs else "removed"))
            continue
        for key in ("enabled", "weight"):
            changed(f"module {name} {key}", old_specs[name].get(key), new_specs[name].get(key))
        old, new = old_mods.get(name, {}), new_mods.get(name, {})
        changed(f"module {name} version", old.get("version"), new.get("version"))
        changed(f"module {name} registered", old.get("registered", True),
                new.get("registered", True))
        old_params, new_params = old.get("params", {}), new.get("params", {})
        for key in sorted(set(old_params) | set(new_params)):
            changed(f"module {name} param {key}", old_params.get(key, "(none)"),
                    new_params.get(key, "(none)"))
    return changes


def default_scoring_config() -> ScoringConfig:
    """Return the packaged default scoring configuration (buddy/defaults/scoring.json)."""
    text = resources.files("buddy.defaults").joinpath("scoring.json").read_text()
    config = ScoringConfig.from_json(text)
    return config if config.alias else dataclasses.replace(config, alias="packaged")


def config_label(name: str, version: str, alias: str, config_hash: str) -> str:
    """Return 'name@version (alias) #hash'; the alias is left out when there is none or it
    says what the version says (the packaged default is 'default@packaged')."""
    shown = f" ({alias})" if alias and alias != version else ""
    return f"{name}@{version}{shown} #{config_hash}"
