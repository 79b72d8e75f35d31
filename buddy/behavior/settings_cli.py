"""Command line: ``buddy nudges show --user U`` and ``buddy nudges set --user U ...``, the
trader's controls over behaviour nudges (``buddy.behavior.settings``)."""

from __future__ import annotations

import json
import sys

import click

from buddy.errors import BuddyError
from buddy.strategy.cli import command_store


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def nudges() -> None:
    """Behaviour nudges: sensitivity and opt-in/out per detector, daily cap, quiet window.

    Fatigue and FOMO are off by default (one failed its validation, the other cannot be
    validated yet): `--opt-in fatigue` or `--opt-in fomo` switches one on."""


@nudges.command("show")
@click.option("--user", "user_id", required=True, help="User id.")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@click.pass_context
def show_cmd(ctx: click.Context, user_id: str, as_json: bool) -> None:
    """Print each detector's level (or off), the daily cap and the quiet window."""
    from buddy.behavior.settings import nudge_settings

    try:
        settings = nudge_settings(command_store(ctx), user_id)
    except BuddyError as exc:
        _fail(exc)
        return
    click.echo(render_settings(user_id, settings, as_json=as_json))


@nudges.command("set")
@click.option("--user", "user_id", required=True, help="User id.")
@click.option("--sensitivity", "levels", multiple=True, metavar="DETECTOR=LEVEL",
              help="A detector's level: low, medium or high (repeatable).")
@click.option("--default", "defaults", multiple=True, metavar="DETECTOR",
              help="A detector back to your default level (repeatable).")
@click.option("--opt-out", "opt_out", multiple=True, metavar="DETECTOR",
              help="Switch a detector's nudges off (repeatable).")
@click.option("--opt-in", "opt_in", multiple=True, metavar="DETECTOR",
              help="Switch a detector's nudges on (again), or a detector that is off by "
                   "default (fatigue) on (repeatable).")
@click.option("--max-per-day", type=int, default=None,
              help="At most this many nudges in 24 hours (0-50).")
@click.option("--quiet-hours", type=float, default=None,
              help="Hours a dismissed detector stays quiet (0-8784).")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@click.pass_context
def set_cmd(ctx: click.Context, user_id: str, levels: tuple[str, ...],
            defaults: tuple[str, ...], opt_out: tuple[str, ...], opt_in: tuple[str, ...],
            max_per_day: int | None, quiet_hours: float | None, as_json: bool) -> None:
    """Change the nudge settings (checked whole: nothing is written when one is wrong). The
    default level for every detector is `buddy user set --nudge-sensitivity`."""
    from buddy.behavior.settings import NudgeSettingsError, set_nudge_settings
    from buddy.errors import FieldError

    sensitivity: dict[str, str] = {}
    bad = [FieldError("sensitivity", "must be DETECTOR=LEVEL", item)
           for item in levels if "=" not in item]
    if bad:
        _fail(NudgeSettingsError(bad))
        return
    for item in levels:
        detector, level = item.split("=", 1)
        sensitivity[detector.strip()] = level.strip()
    try:
        saved = set_nudge_settings(command_store(ctx), user_id, sensitivity=sensitivity,
                                   opt_out=opt_out, opt_in=opt_in, default=defaults,
                                   max_per_day=max_per_day, dismiss_quiet_hours=quiet_hours)
    except BuddyError as exc:
        _fail(exc)
        return
    click.echo(render_settings(user_id, saved, as_json=as_json))


def render_settings(user_id: str, settings: object, *, as_json: bool = False) -> str:
    """Return the settings as text (one line per detector; a detector off by default says
    why) or JSON."""
    from buddy.behavior.settings import DEFAULT_OFF_REASONS, NudgeSettings

    assert isinstance(settings, NudgeSettings)
    levels = settings.levels()
    if as_json:
        return json.dumps({"user_id": user_id, "default_level": settings.default_level,
                           "levels": levels, "opted_out": sorted(settings.opted_out),
                           "opted_in": sorted(settings.opted_in),
                           "off_by_default": dict(DEFAULT_OFF_REASONS),
                           "max_per_day": settings.max_per_day,
                           "dismiss_quiet_hours": settings.dismiss_quiet_hours},
                          sort_keys=True)
    lines = [f"nudges of {user_id}: default level {settings.default_level}, at most "
             f"{settings.max_per_day} a day, a dismissed one quiet for "
             f"{settings.dismiss_quiet_hours:g} hours"]
    for detector, level in levels.items():
        how = ("off (opted out)" if detector in settings.opted_out
               else "off" if level is None else level)
        own = " (set)" if detector in settings.sensitivity else ""
        if detector in DEFAULT_OFF_REASONS:
            why = DEFAULT_OFF_REASONS[detector]
            own += (f" (opted in; off by default: {why})" if detector in settings.opted_in
                    else f" (off by default: {why}; --opt-in {detector} to switch it on)")
        lines.append(f"  {detector:12s} {how}{own}")
    return "\n".join(lines)
