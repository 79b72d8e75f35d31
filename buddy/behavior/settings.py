"""The trader's controls over behaviour nudges: sensitivity and opt-out per detector, a
frequency cap per day and a quiet window after a dismissal.

- ``user_preferences.nudge_sensitivity`` (low / medium / high, or off) is the user's default
  level; ``NudgeSettings.sensitivity`` overrides it per detector. 'off' switches every nudge
  off whatever the overrides say (the one switch a trader expects to mean "none").
- ``opted_out``: detectors the user switched off; ``opted_in``: detectors that are off by
  default (``buddy.behavior.params.DEFAULT_OFF_REASONS``: fatigue, which failed its
  validation) and that the user switched on. A stored row's ``opted_out`` says whether the
  detector is off by the user's choice: for a default-off detector False means opted in
  (a level set on it alone leaves it off).
- ``max_per_day``: at most this many nudges in the 24 hours before an evaluation (counted
  from the nudges the user's logged evaluations showed); 0 shows none. Acceptance of
  reminders falls with each repetition (clinical decision support overrides 49-96% of
  alerts), so the default is small.
- ``dismiss_quiet_hours``: a detector's nudge the user dismissed is not shown again until
  this many hours after the dismissal.

A write validates everything first (``NudgeSettingsError`` names the field, the rule and the
value, with a did-you-mean for a misspelt detector), then writes in ONE transaction and
touches the store's context stamp so cached packs see the change. The SQL is in
``buddy.store.nudges``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from buddy.behavior.params import DEFAULT_ENABLED, DEFAULT_OFF_REASONS, SENSITIVITIES
from buddy.behavior.params import DETECTORS as PARAM_DETECTORS
from buddy.config import did_you_mean
from buddy.errors import ConfigError, FieldError

if TYPE_CHECKING:
    from buddy.store import Store

__all__ = ["DEFAULT_DISMISS_QUIET_HOURS", "DEFAULT_ENABLED", "DEFAULT_MAX_PER_DAY",
           "DEFAULT_OFF_REASONS", "DETECTORS", "LEVELS",
           "NudgeSettings", "NudgeSettingsError", "dismiss_nudge", "nudge_settings",
           "set_nudge_settings"]

#: The detectors a user controls, and the levels of each (buddy.behavior.params maps every
#: level to its documented thresholds).
DETECTORS: tuple[str, ...] = PARAM_DETECTORS
LEVELS: tuple[str, ...] = SENSITIVITIES
#: Nudges shown at most per 24 hours, by default.
DEFAULT_MAX_PER_DAY = 3
#: Hours a dismissed detector's nudge stays quiet, by default (one week).
DEFAULT_DISMISS_QUIET_HOURS = 168.0
#: Upper bounds of the limits (nudges per day, hours).
MAX_PER_DAY_LIMIT = 50
MAX_QUIET_HOURS = 24.0 * 366


class NudgeSettingsError(ConfigError):
    """A nudge setting broke a rule; nothing was written."""

    what = "nudge settings"


@dataclass(frozen=True, slots=True, kw_only=True)
class NudgeSettings:
    """What a user chose about nudges (see the module docstring).

    ``default_level``: low / medium / high / off (``user_preferences.nudge_sensitivity``);
    ``sensitivity``: detector -> level where the user set one; ``opted_out``: detectors
    switched off; ``opted_in``: default-off detectors switched on; ``max_per_day``: nudges
    per 24 hours; ``dismiss_quiet_hours``: hours.
    """

    default_level: str = "medium"
    sensitivity: Mapping[str, str] = field(default_factory=dict)
    opted_out: frozenset[str] = frozenset()
    opted_in: frozenset[str] = frozenset()
    max_per_day: int = DEFAULT_MAX_PER_DAY
    dismiss_quiet_hours: float = DEFAULT_DISMISS_QUIET_HOURS

    def level_of(self, detector: str) -> str | None:
        """Return the level ``detector`` runs at, or None when it is switched off."""
        if self.default_level == "off" or detector in self.opted_out:
            return None
        if detector not in DEFAULT_ENABLED and detector not in self.opted_in:
            return None
        return self.sensitivity.get(detector, self.default_level)

    def levels(self) -> dict[str, str | None]:
        """Return every detector's level (None: off), in DETECTORS order."""
        return {d: self.level_of(d) for d in DETECTORS}

    def key(self) -> tuple[Any, ...]:
        """Return a hashable identity (for caches keyed by settings)."""
        return (self.default_level, tuple(sorted(self.sensitivity.items())),
                tuple(sorted(self.opted_out)), tuple(sorted(self.opted_in)), self.max_per_day,
                self.dismiss_quiet_hours)


# ---------------------------------------------------------------------------- reads
def nudge_settings(store: Store, user_id: str) -> NudgeSettings:
    """Return the nudge settings of ``user_id`` (the defaults where nothing is stored)."""
    from buddy.store.nudges import limits_row, setting_rows
    from buddy.store.users import preferences_row

    with store.connect(read_only=True) as con:
        prefs = preferences_row(con, user_id)
        rows = setting_rows(con, user_id)
        limits = limits_row(con, user_id)
    return NudgeSettings(
        default_level="medium" if prefs is None else str(prefs[3]),
        sensitivity={str(d): str(s) for d, s, _ in rows if s is not None},
        opted_out=frozenset(str(d) for d, _, out in rows if out and d in DEFAULT_ENABLED),
        opted_in=frozenset(str(d) for d, _, out in rows
                           if not out and d in DEFAULT_OFF_REASONS),
        max_per_day=DEFAULT_MAX_PER_DAY if limits is None else int(limits[0]),
        dismiss_quiet_hours=(DEFAULT_DISMISS_QUIET_HOURS if limits is None
                             else float(limits[1])))


# ---------------------------------------------------------------------------- writes
def set_nudge_settings(store: Store, user_id: str, *,
                       sensitivity: Mapping[str, str] | None = None,
                       opt_out: Iterable[str] = (), opt_in: Iterable[str] = (),
                       default: Iterable[str] = (), max_per_day: Any = None,
                       dismiss_quiet_hours: Any = None) -> NudgeSettings:
    """Change the nudge settings of ``user_id`` and return them as stored.

    ``sensitivity``: detector -> low / medium / high; ``opt_out`` / ``opt_in``: detectors to
    switch off / on (a default-off detector such as fatigue runs only once opted in);
    ``default``: detectors whose level goes back to the user's default
    level; ``max_per_day``: nudges per 24 hours (0-50); ``dismiss_quiet_hours``: hours
    (0-8784). Everything is checked first (NudgeSettingsError lists every problem, nothing is
    written), then written in one transaction. The default level itself is the user's
    ``nudge_sensitivity`` preference (``buddy user set --nudge-sensitivity``).
    """
    from buddy.store.nudges import write_limits, write_settings

    current = nudge_settings(store, user_id)
    proposed = proposed_settings(current, sensitivity=sensitivity, opt_out=opt_out,
                                 opt_in=opt_in, default=default, max_per_day=max_per_day,
                                 dismiss_quiet_hours=dismiss_quiet_hours)
    if proposed == current:
        return current
    rows = [(d, proposed.sensitivity.get(d),
             d in proposed.opted_out or (d in DEFAULT_OFF_REASONS and d not in proposed.opted_in))
            for d in DETECTORS
            if d in proposed.sensitivity or d in proposed.opted_out or d in proposed.opted_in]
    with store.transaction() as con:
        write_settings(con, user_id, rows)
        write_limits(con, user_id, proposed.max_per_day, proposed.dismiss_quiet_hours)
    store.touch_context_stamp()
    return proposed


def proposed_settings(current: NudgeSettings, *, sensitivity: Mapping[str, str] | None = None,
                      opt_out: Iterable[str] = (), opt_in: Iterable[str] = (),
                      default: Iterable[str] = (), max_per_day: Any = None,
                      dismiss_quiet_hours: Any = None) -> NudgeSettings:
    """Return ``current`` with the changes applied, or raise NudgeSettingsError naming every
    field, rule and value that is wrong."""
    errors: list[FieldError] = []
    levels = dict(current.sensitivity)
    for detector, level in (sensitivity or {}).items():
        if _detector_ok(detector, "sensitivity", errors):
            if level in LEVELS:
                levels[detector] = level
            else:
                errors.append(FieldError(f"sensitivity.{detector}",
                                         f"must be one of {', '.join(LEVELS)}", level))
    for detector in default:
        if _detector_ok(detector, "default", errors):
            levels.pop(detector, None)
    out, into = set(current.opted_out), set(current.opted_in)
    off, on = list(opt_out), list(opt_in)
    for detector in off:
        if _detector_ok(detector, "opt_out", errors):
            if detector in DEFAULT_OFF_REASONS:
                into.discard(detector)  # off by default: an opt-out only undoes the opt-in
            else:
                out.add(detector)
    for detector in on:
        if _detector_ok(detector, "opt_in", errors):
            if detector in off:
                errors.append(FieldError("opt_in", "must not name a detector also opted out "
                                         "in the same change", detector))
            out.discard(detector)
            if detector in DEFAULT_OFF_REASONS:
                into.add(detector)
    cap = current.max_per_day
    if max_per_day is not None:
        if (isinstance(max_per_day, int) and not isinstance(max_per_day, bool)
                and 0 <= max_per_day <= MAX_PER_DAY_LIMIT):
            cap = max_per_day
        else:
            errors.append(FieldError("max_per_day", f"must be a whole number from 0 to "
                                     f"{MAX_PER_DAY_LIMIT} (nudges per 24 hours)", max_per_day))
    quiet = current.dismiss_quiet_hours
    if dismiss_quiet_hours is not None:
        if (isinstance(dismiss_quiet_hours, int | float)
                and not isinstance(dismiss_quiet_hours, bool)
                and math.isfinite(dismiss_quiet_hours)
                and 0 <= dismiss_quiet_hours <= MAX_QUIET_HOURS):
            quiet = float(dismiss_quiet_hours)
        else:
            errors.append(FieldError("dismiss_quiet_hours", f"must be a finite number of "
                                     f"hours from 0 to {MAX_QUIET_HOURS:g}",
                                     dismiss_quiet_hours))
    if errors:
        raise NudgeSettingsError(errors)
    return replace(current, sensitivity=dict(sorted(levels.items())),
                   opted_out=frozenset(out), opted_in=frozenset(into), max_per_day=cap,
                   dismiss_quiet_hours=quiet)


def dismiss_nudge(store: Store, user_id: str, detector: str, at: datetime, *,
                  eval_id: str | None = None, intent_id: str | None = None) -> bool:
    """Record that ``user_id`` dismissed ``detector``'s nudge at ``at`` (tz-aware); return
    False when it was already recorded. The feedback capture calls this for a dismissed
    behaviour nudge."""
    from buddy.store.nudges import insert_dismissal

    errors: list[FieldError] = []
    _detector_ok(detector, "detector", errors)
    if not isinstance(at, datetime) or at.tzinfo is None:
        errors.append(FieldError("dismissed_at", "must be a timezone-aware datetime", at))
    if errors:
        raise NudgeSettingsError(errors)
    return insert_dismissal(store, user_id, detector, at, eval_id=eval_id, intent_id=intent_id)


def _detector_ok(detector: Any, name: str, errors: list[FieldError]) -> bool:
    if detector in DETECTORS:
        return True
    hint = did_you_mean(str(detector), DETECTORS)
    errors.append(FieldError(name, f"must name a behaviour detector; {hint}", detector))
    return False
