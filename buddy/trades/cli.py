"""``buddy trades``: the trader's own history. ``buddy trades import FILE --user U --format F``.

Attached to the main command with ``cli.add_command(trades)``, it uses the main command's
store (``buddy --db PATH``); used on its own, it opens $BUDDY_DB (else data/buddy.duckdb).
A bad file exits with status 2 and a message naming each row, column, rule and value; nothing
is written then.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from buddy.errors import BuddyError, FieldError
from buddy.trades.fills import FillsFileError

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

    from buddy.store import Store
    from buddy.trades.importer import OnWritten

FORMAT_NAMES = ("ibkr-csv", "ibkr-xml", "ibkr", "thinkorswim", "tradovate", "mt5", "generic")


def _store() -> Store:
    opener = getattr(click.get_current_context().find_root().obj, "store", None)
    if callable(opener):
        return opener()
    from buddy.store import Store

    return Store()


def _fail(exc: Exception | str) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def parse_map(text: str | None) -> dict[str, str] | None:
    """Return ``--map date=Time,price=Px`` as {'date': 'Time', 'price': 'Px'}."""
    if not text:
        return None
    mapping: dict[str, str] = {}
    errors = []
    for part in text.split(","):
        key, sep, column = part.partition("=")
        if not sep or not key.strip() or not column.strip():
            errors.append(FieldError("--map", "each item is field=column", part))
            continue
        mapping[key.strip()] = column.strip()
    if errors:
        raise FillsFileError(errors)
    return mapping


def _regroup(store: Store, done: list[Any]) -> OnWritten:
    """Return the trades grouping's rebuild, run in the import's transaction so fills and
    trades commit together; its summary is appended to ``done``."""
    from buddy.trades.service import rebuild_trades

    def regroup(con: DuckDBPyConnection, user_id: str, symbols: list[str]) -> None:
        done.append(rebuild_trades(store, user_id, symbols, con=con))

    return regroup


@click.group()
def trades() -> None:
    """The trader's own history: broker fills in, round-trip trades out."""


@trades.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--user", "user_id", required=True, help="User id.")
@click.option("--format", "fmt", required=True, type=click.Choice(FORMAT_NAMES),
              help="Export format (ibkr picks CSV or XML from the content).")
@click.option("--tz", default=None,
              help="IANA zone of times without an offset (overrides the format's convention).")
@click.option("--map", "column_map", default=None, metavar="FIELD=COLUMN,...",
              help="Generic CSV: canonical field per column, e.g. date=Time,price=Px.")
@click.option("--dry-run", is_flag=True, help="Read and count; write nothing.")
def trades_import(file: str, user_id: str, fmt: str, tz: str | None, column_map: str | None,
                  dry_run: bool) -> None:
    """Import a broker's fills (idempotent: a second import of a file changes nothing)."""
    from buddy.trades.importer import import_fills

    try:
        mapping = parse_map(column_map)
        store = _store()
        rebuilt: list[Any] = []
        summary = import_fills(store, file, user_id=user_id, fmt=fmt, tz=tz,
                               column_map=mapping, dry_run=dry_run,
                               on_written=None if dry_run else _regroup(store, rebuilt))
    except (BuddyError, ValueError) as exc:
        _fail(exc)
    click.echo(str(summary))
    for result in rebuilt:
        click.echo("\n".join(result.lines()))
