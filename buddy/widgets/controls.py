"""User controls: strictness, nudge sensitivity, module opt-outs and disclosure toggles.

Preferences are saved per user through ``buddy.users.store`` (the ``user_preferences``
table), and only through ``load_preferences``/``save_preferences`` here. The app applies them
at once: opted-out modules and the strictness profile shape the scoring configuration of the
next report, and switched-off disclosures reach the report through the ``account`` piece.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import ipywidgets as w

from buddy.config import ScoringConfig
from buddy.disclosures import DISCLOSURES
from buddy.store import Store
from buddy.users.store import (
    NUDGE_SENSITIVITY,
    STRICTNESS,
    UserPreferences,
    get_user,
    set_user,
)

__all__ = [
    "NUDGE_SENSITIVITY",
    "STRICTNESS",
    "STRICTNESS_PROFILES",
    "ControlsView",
    "StrictnessProfile",
    "UserPreferences",
    "load_preferences",
    "save_preferences",
    "scoring_config_for",
]


@dataclass(frozen=True, slots=True)
class StrictnessProfile:
    """How much of what the checks found the report lists.

    The top list holds at most ``max_issues`` findings of medium severity or worse; findings
    below medium fill it up to ``min_issues``. None keeps the scoring configuration's own.
    """

    min_issues: int | None
    max_issues: int | None


#: The threshold profile of each strictness: lenient lists only the few most serious
#: findings, strict lists minor ones too.
STRICTNESS_PROFILES: dict[str, StrictnessProfile] = {
    "lenient": StrictnessProfile(min_issues=1, max_issues=3),
    "standard": StrictnessProfile(min_issues=None, max_issues=None),
    "strict": StrictnessProfile(min_issues=6, max_issues=10),
}


def load_preferences(store: Store, user_id: str) -> UserPreferences:
    """Return the saved preferences of ``user_id`` (the defaults for an unknown user)."""
    state = get_user(store, user_id)
    return UserPreferences() if state is None else state.preferences


def save_preferences(store: Store, user_id: str, **changes: Any) -> UserPreferences:
    """Save the changed preferences of ``user_id`` and return them all.

    ``changes`` are any of disabled_modules, disclosures_off, strictness, nudge_sensitivity.
    Raises UserSettingsError naming each bad value; nothing is written then.
    """
    return set_user(store, user_id, **changes).preferences


def scoring_config_for(config: ScoringConfig, preferences: UserPreferences) -> ScoringConfig:
    """Return ``config`` with the user's opted-out modules off and their strictness profile."""
    adjusted = config.with_modules_disabled(set(preferences.disabled_modules))
    profile = STRICTNESS_PROFILES.get(preferences.strictness, STRICTNESS_PROFILES["standard"])
    if profile.min_issues is None and profile.max_issues is None:
        return adjusted
    # one replace: the pair is validated together (min <= max)
    return dataclasses.replace(
        adjusted,
        min_issues=adjusted.min_issues if profile.min_issues is None else profile.min_issues,
        max_issues=adjusted.max_issues if profile.max_issues is None else profile.max_issues)


def optional_disclosures() -> tuple[str, ...]:
    """Return the disclosures a trader may switch off (the mandatory ones stay on)."""
    return tuple(name for name, d in DISCLOSURES.items() if not d.mandatory)


class ControlsView:
    """The controls panel: one widget per preference, saved and applied on every change."""

    def __init__(self, modules: Iterable[str],
                 on_change: Callable[[dict[str, Any]], None]) -> None:
        self._on_change = on_change
        self._quiet = False
        self.strictness = w.Dropdown(options=STRICTNESS, description="Strictness",
                                     value="standard")
        self.nudge_sensitivity = w.Dropdown(options=NUDGE_SENSITIVITY, value="medium",
                                            description="Nudges")
        self.modules = {name: w.Checkbox(value=True, description=name, indent=False)
                        for name in modules}
        self.disclosures = {name: w.Checkbox(value=True, description=DISCLOSURES[name].title,
                                             indent=False)
                            for name in optional_disclosures()}
        for box in self.modules.values():
            box.add_class("tb-module-toggle")
        self.status = w.HTML()
        self.status.add_class("tb-controls-status")
        self.strictness.observe(self._changed, names="value")
        self.nudge_sensitivity.observe(self._changed, names="value")
        for box in (*self.modules.values(), *self.disclosures.values()):
            box.observe(self._changed, names="value")
        self.widget = w.VBox([
            w.HTML("<b>Your settings</b> <small>(saved per user, applied at once)</small>"),
            self.strictness, self.nudge_sensitivity,
            w.HTML("<small>Checks to run</small>"), w.VBox(list(self.modules.values())),
            w.HTML("<small>Disclosures shown</small>"),
            w.VBox(list(self.disclosures.values())), self.status,
        ])
        self.widget.add_class("tb-controls")

    def show(self, preferences: UserPreferences) -> None:
        """Show ``preferences`` without saving them again."""
        self._quiet = True
        try:
            self.strictness.value = preferences.strictness
            self.nudge_sensitivity.value = preferences.nudge_sensitivity
            for name, box in self.modules.items():
                box.value = name not in preferences.disabled_modules
            for name, box in self.disclosures.items():
                box.value = name not in preferences.disclosures_off
        finally:
            self._quiet = False

    def show_error(self, message: str | None) -> None:
        """Show why the last change was not saved (None clears it)."""
        self.status.value = "" if not message else (
            f"<span style='color:#b71c1c'>{_escape(message)}</span>")

    def values(self) -> dict[str, Any]:
        """Return the preferences the widgets show, as save_preferences arguments."""
        return {
            "strictness": self.strictness.value,
            "nudge_sensitivity": self.nudge_sensitivity.value,
            "disabled_modules": sorted(n for n, box in self.modules.items() if not box.value),
            "disclosures_off": sorted(n for n, box in self.disclosures.items()
                                      if not box.value),
        }

    def _changed(self, _change: dict[str, Any]) -> None:
        if not self._quiet:
            self._on_change(self.values())


def _escape(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")
