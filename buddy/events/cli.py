"""``buddy events-import PATH``: import a CSV of earnings and macro dates into the store.

Attached to the main command with ``cli.add_command(events_import)``, it uses the main
command's store (``buddy --db PATH``); used on its own, it opens $BUDDY_DB (else
data/buddy.duckdb). An invalid file exits with status 2, names every row, column, rule and
value, and writes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from buddy.errors import BuddyError
from buddy.events.store import import_events
from buddy.store import Store


def _store() -> Store:
    opener = getattr(click.get_current_context().find_root().obj, "store", None)
    return opener() if callable(opener) else Store()


@click.command("events-import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--announced-at", default=None, metavar="TIMESTAMP",
              help="When the dates became known (ISO with a zone), for rows without an "
                   "announced_at column; default: now, so replays before today do not see "
                   "them.")
def events_import(path: Path, announced_at: str | None) -> None:
    """Import earnings and macro dates (columns kind, ts, title[, symbol, announced_at,
    source, event_id]); market data shared by every user."""
    try:
        summary = import_events(_store(), path, announced_at=announced_at)
    except BuddyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(str(summary))
