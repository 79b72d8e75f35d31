"""Errors a user can act on: each names the field, the rule it broke and the value received."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule: which field, which rule, what value."""

    field: str
    rule: str
    value: Any

    def __str__(self) -> str:
        return f"{self.field}: {self.rule} (got {self.value!r})"


class BuddyError(Exception):
    """Base class of errors the workbench raises on purpose."""


class FieldErrors(BuddyError, ValueError):
    """One or more FieldErrors, raised together so a user sees every problem at once."""

    what = "input"

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"invalid {self.what}:\n{lines}")

    @property
    def fields(self) -> tuple[str, ...]:
        """Return the names of the offending fields, in order."""
        return tuple(e.field for e in self.errors)


class IntentValidationError(FieldErrors):
    """A trade intent broke a validation rule; nothing was written."""

    what = "trade intent"


class ConfigError(FieldErrors):
    """A configuration broke a validation rule."""

    what = "configuration"


class SchemaVersionError(BuddyError):
    """The database file was written by a newer version of the workbench."""


class StoreLockedError(BuddyError):
    """Another process held the database file for longer than the retry window."""
