"""Command line: ``buddy behavior scan --user U`` and ``buddy behavior validate``."""

from __future__ import annotations

import json
import sys

import click

from buddy.behavior.params import SENSITIVITIES
from buddy.errors import BuddyError
from buddy.strategy.cli import command_store, parse_as_of


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.group()
def behavior() -> None:
    """Behaviour detectors over a trader's own history: scan it, validate them on known truth."""


@behavior.command("scan")
@click.option("--user", "user_id", required=True, help="User id.")
@click.option("--as-of", "as_of", default=None,
              help="Only what was known then: YYYY-MM-DD (end of that UTC day) or ISO with "
                   "zone (default: everything stored).")
@click.option("--sensitivity", type=click.Choice(SENSITIVITIES), default="medium",
              show_default=True, help="Every detector's sensitivity.")
@click.option("--dry-run", is_flag=True, help="Print what was found; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON lines.")
@click.pass_context
def scan_cmd(ctx: click.Context, user_id: str, as_of: str | None, sensitivity: str,
             dry_run: bool, as_json: bool) -> None:
    """Run every detector over the user's trades and intents and store the events in
    behavior_events (replacing the user's earlier ones)."""
    from buddy.behavior.params import params_for
    from buddy.jobs.behavior import run_behavior_job

    try:
        result = run_behavior_job(command_store(ctx), user_id, params=params_for(sensitivity),
                                  as_of=parse_as_of(as_of), dry_run=dry_run)
    except (BuddyError, ValueError) as exc:
        _fail(exc)
        return
    if as_json:
        events = result.events.astype(object)
        for row in events.where(events.notna(), None).to_dict(orient="records"):
            click.echo(json.dumps(row, default=str, sort_keys=True))
        return
    click.echo(result.text())


@behavior.command("validate")
@click.option("--user", "user_id", default="demo", show_default=True,
              help="A demo trader with injected behaviours on record.")
@click.option("--clean-user", "clean_user_id", default="demo-clean", show_default=True,
              help="The clean trader (same generator, nothing injected).")
@click.option("--sensitivity", type=click.Choice(SENSITIVITIES), default="medium",
              show_default=True, help="Every detector's sensitivity.")
@click.option("--load-clean/--no-load-clean", default=True, show_default=True,
              help="Load the clean trader first when it has no trades (about 8 s; writes "
                   "its history into the database).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.pass_context
def validate_cmd(ctx: click.Context, user_id: str, clean_user_id: str, sensitivity: str,
                 load_clean: bool, as_json: bool) -> None:
    """Print each detector's precision and recall against the demo trader's injected
    behaviours and the clean trader's false alarms per 100 trades, each with n and a 95%
    interval."""
    from buddy.behavior.validation import ensure_clean_trader, validate

    try:
        store = command_store(ctx)
        if load_clean:
            loaded = ensure_clean_trader(store, clean_user_id)
            if loaded and not as_json:
                click.echo(loaded)
        result = validate(store, user_id=user_id, clean_user_id=clean_user_id,
                          sensitivity=sensitivity)
    except (BuddyError, ValueError) as exc:
        _fail(exc)
        return
    click.echo(json.dumps(result.as_dict(), indent=2) if as_json else result.text())
