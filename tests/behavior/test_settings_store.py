"""Nudge settings through the store: defaults, per-detector levels and opt-outs, limits,
refusals that name field, rule and value and write nothing, dismissals read point-in-time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from buddy.behavior.settings import (
    DEFAULT_ENABLED,
    DEFAULT_MAX_PER_DAY,
    DETECTORS,
    NudgeSettings,
    NudgeSettingsError,
    dismiss_nudge,
    nudge_settings,
    set_nudge_settings,
)
from buddy.store import Store
from buddy.store.nudges import dismissal_rows
from buddy.users.store import set_user


def test_defaults_then_changes_round_trip(empty_store: Store) -> None:
    assert nudge_settings(empty_store, "u1") == NudgeSettings()
    stamp = empty_store.context_stamp()
    saved = set_nudge_settings(empty_store, "u1", sensitivity={"revenge": "high"},
                               opt_out=["fatigue"], max_per_day=1, dismiss_quiet_hours=24)
    assert saved == nudge_settings(empty_store, "u1")
    assert saved.level_of("revenge") == "high" and saved.level_of("fatigue") is None
    assert saved.level_of("overtrading") == "medium" and saved.max_per_day == 1
    assert empty_store.context_stamp() != stamp  # cached packs see the change
    again = set_nudge_settings(empty_store, "u1", opt_in=["fatigue"], default=["revenge"])
    assert again.level_of("fatigue") == "medium" and again.level_of("revenge") == "medium"
    assert again == nudge_settings(empty_store, "u1")
    assert again.max_per_day == 1  # untouched limits stay
    assert nudge_settings(empty_store, "u2").max_per_day == DEFAULT_MAX_PER_DAY  # per user


def test_fatigue_is_off_until_opted_in_and_every_other_detector_can_be_opted_out(
        empty_store: Store) -> None:
    off_by_default = ("fomo", "fatigue")  # failed, or cannot have, their validation
    assert tuple(d for d in DETECTORS if d not in off_by_default) == DEFAULT_ENABLED
    assert nudge_settings(empty_store, "u1").levels() == {
        d: (None if d in off_by_default else "medium") for d in DETECTORS}
    # a level set on fatigue alone leaves it off; the opt-in switches it on at that level
    leveled = set_nudge_settings(empty_store, "u1", sensitivity={"fatigue": "high"})
    assert leveled.level_of("fatigue") is None and leveled == nudge_settings(empty_store, "u1")
    on = set_nudge_settings(empty_store, "u1", opt_in=["fatigue"],
                            opt_out=list(DEFAULT_ENABLED))
    assert on == nudge_settings(empty_store, "u1")
    assert on.levels() == {d: ("high" if d == "fatigue" else None) for d in DETECTORS}
    off = set_nudge_settings(empty_store, "u1", opt_out=["fatigue"])
    assert off == nudge_settings(empty_store, "u1") and off.level_of("fatigue") is None


def test_the_users_off_preference_switches_every_detector_off(empty_store: Store) -> None:
    set_user(empty_store, "u1", equity=50_000.0, nudge_sensitivity="off")
    set_nudge_settings(empty_store, "u1", sensitivity={"revenge": "high"})
    settings = nudge_settings(empty_store, "u1")
    assert settings.default_level == "off"
    assert set(settings.levels().values()) == {None}


def test_bad_values_are_refused_whole(empty_store: Store) -> None:
    set_nudge_settings(empty_store, "u1", max_per_day=2)
    with pytest.raises(NudgeSettingsError) as caught:
        set_nudge_settings(empty_store, "u1", sensitivity={"revnge": "high",
                                                           "fomo": "extreme"},
                           opt_out=["fatigue"], max_per_day=-1, dismiss_quiet_hours=float("nan"))
    text = str(caught.value)
    assert "did you mean 'revenge'" in text and "sensitivity.fomo" in text
    assert "extreme" in text and "max_per_day" in text and "dismiss_quiet_hours" in text
    stored = nudge_settings(empty_store, "u1")
    assert stored.max_per_day == 2 and not stored.opted_out  # nothing partially written


def test_dismissals_are_idempotent_and_read_as_of(empty_store: Store) -> None:
    at = datetime(2012, 3, 1, 15, tzinfo=UTC)
    assert dismiss_nudge(empty_store, "u1", "revenge", at, eval_id="e1")
    assert not dismiss_nudge(empty_store, "u1", "revenge", at)
    assert dismissal_rows(empty_store, "u1", datetime(2012, 3, 1, 14, tzinfo=UTC)).empty
    rows = dismissal_rows(empty_store, "u1", at)
    assert rows["detector"].tolist() == ["revenge"]
    with pytest.raises(NudgeSettingsError, match="timezone-aware"):
        dismiss_nudge(empty_store, "u1", "revenge", datetime(2012, 3, 1))
