"""Swap a registered evaluator for a subclass with another version or other defaults, to
prove that a config's identity follows the code (tests/test_config.py, replay resume)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from buddy.config import ModuleConfig, param
from buddy.evaluators import registry


@contextmanager
def swapped_evaluator(name: str, *, version: str | None = None,
                      defaults: dict[str, Any] | None = None) -> Iterator[type]:
    """Register, for the block, a subclass of evaluator ``name`` with ``version`` and/or a
    config whose ``defaults`` differ (same ranges); restore the original afterwards."""
    original = registry.get(name)
    attrs: dict[str, Any] = {"version": version or original.version}
    if defaults:
        base = original.config_cls
        fields = {f.name: f for f in dataclasses.fields(base)}
        namespace: dict[str, Any] = {"__annotations__": {}}
        for key, value in defaults.items():
            meta = dict(fields[key].metadata)
            namespace["__annotations__"][key] = fields[key].type
            namespace[key] = param(value, **{k: meta[k] for k in (
                "lo", "hi", "lo_open", "hi_open", "choices", "min_items", "unit", "doc")
                if k in meta})
        config_cls = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(
            type(f"Changed{base.__name__}", (base,), namespace))
        assert issubclass(config_cls, ModuleConfig)
        attrs["config_cls"] = config_cls
    changed = type(f"Changed{original.__name__}", (original,), attrs)
    registry.unregister(name)
    try:
        registry.register(changed)
        yield changed
    finally:
        registry.unregister(name)
        registry.register(original)
