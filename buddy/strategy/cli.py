"""Command line: ``buddy profile --user U [--as-of T] [--json]`` (prints, writes nothing) and
``buddy jobs profiles [--user U] [--as-of T]`` (refreshes the entry facts, stores profiles)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click

from buddy.errors import BuddyError, FieldErrors


def command_store(ctx: click.Context) -> Any:
    """Return the store of the root command (``buddy --db``), for the strategy commands."""
    return ctx.find_root().obj.store()


def parse_as_of(text: str | None) -> datetime | None:
    """Return an ``--as-of`` option as UTC (None stays None): a bare date is the end of that
    UTC day. The strategy commands (``buddy profile``, ``buddy playbooks``) share it."""
    if text is None:
        return None
    from buddy.api import resolve_as_of

    try:
        return resolve_as_of(text, "UTC")
    except FieldErrors as exc:  # not an intent's field here: say "invalid input"
        raise FieldErrors(exc.errors) from None


@click.command()
@click.option("--user", "user_id", required=True, help="User id.")
@click.option("--as-of", "as_of", default=None,
              help="Only trades closed by then: YYYY-MM-DD (end of that UTC day) or ISO with "
                   "zone (default: the user's newest close).")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON.")
@click.pass_context
def profile(ctx: click.Context, user_id: str, as_of: str | None, as_json: bool) -> None:
    """Print a trader's strategy profile from their closed trades (nothing is written)."""
    from buddy.jobs.profiles import profile_as_of

    try:
        result = profile_as_of(command_store(ctx), user_id, parse_as_of(as_of))
    except BuddyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else result.text())


@click.command()
@click.option("--user", "user_id", default=None, help="One user (default: every user).")
@click.option("--as-of", "as_of", default=None,
              help="YYYY-MM-DD (end of that UTC day) or ISO with zone (default: each user's "
                   "newest close).")
@click.pass_context
def jobs_profiles(ctx: click.Context, user_id: str | None, as_of: str | None) -> None:
    """Refresh the entry facts of new or rebuilt trades, then build and store strategy
    profiles (strategy_profiles, one new version per user)."""
    from buddy.jobs.profiles import run_profile_job
    from buddy.jobs.strategy import refresh_entry_facts

    store = command_store(ctx)
    try:
        when = parse_as_of(as_of)
        click.echo(str(refresh_entry_facts(store, user_id)))
        result = run_profile_job(store, user_id, as_of=when)
    except BuddyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    for row in result.profiles:
        state = "" if row.enough else " (not enough trades)"
        click.echo(f"{row.user_id}: version {row.version}, as of {row.as_of:%Y-%m-%d %H:%M} "
                   f"UTC, {row.n_trades} closed trades{state}")
