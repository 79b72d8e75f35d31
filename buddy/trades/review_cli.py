"""Command line: ``buddy review TRADE_ID``, ``buddy summary``, ``buddy journal add|list``."""

from __future__ import annotations

import json
import sys
import uuid
from datetime import date
from typing import Any

import click

from buddy.errors import BuddyError


def _store(ctx: click.Context) -> Any:
    return ctx.find_root().obj.store()


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.command()
@click.argument("trade_id")
@click.option("--stop", type=float, default=None,
              help="The stop you had (price): R is measured against it, trades are rebuilt.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored review row as JSON.")
@click.pass_context
def review(ctx: click.Context, trade_id: str, stop: float | None, as_json: bool) -> None:
    """Review one closed trade (again) and print the review."""
    from buddy.jobs.reviews import review_trade_ids
    from buddy.store.trades import find_trade, set_user_stop
    from buddy.trades.review import render_review
    from buddy.trades.service import rebuild_trades

    store = _store(ctx)
    trade = find_trade(store, trade_id)
    if trade is None:
        _fail(f"trade_id: no trade {trade_id!r}")
        return
    user_id = trade["user_id"]
    if stop is not None:
        set_user_stop(store, user_id, trade_id, stop)
        rebuild_trades(store, user_id, [trade["symbol"]], method=trade["match_method"])
        trade = find_trade(store, trade_id)
    if trade is None or trade["status"] != "closed":
        _fail(f"trade_id: {trade_id!r} is still open; reviews are of closed trades")
        return
    reviews = review_trade_ids(store, user_id, [trade_id])
    row = reviews.iloc[0].to_dict()
    if as_json:
        click.echo(json.dumps(row, default=str, indent=2))
    else:
        click.echo(render_review(trade, row))


@click.command()
@click.option("--user", "user_id", required=True)
@click.option("--period", type=click.Choice(["day", "week"]), default="week", show_default=True)
@click.option("--date", "day", default=None, help="A day in the period (YYYY-MM-DD); today "
              "(UTC) when omitted.")
@click.option("--n-boot", type=click.IntRange(100, 100_000), default=2000, show_default=True)
@click.pass_context
def summary(ctx: click.Context, user_id: str, period: str, day: str | None, n_boot: int) -> None:
    """Summarise a user's trades closed in a day or ISO week: R with intervals, process."""
    from buddy.trades.summary import load_summary, render_summary

    try:
        when = date.fromisoformat(day) if day else date.today()
    except ValueError:
        _fail(f"--date: must be YYYY-MM-DD (got {day!r})")
        return
    click.echo(render_summary(load_summary(_store(ctx), user_id, period, when, n_boot=n_boot)))


@click.group()
def journal() -> None:
    """Journal notes with tags on your trades and intents."""


@journal.command("add")
@click.option("--user", "user_id", required=True)
@click.option("--trade", "trade_id", default=None)
@click.option("--intent", "intent_id", default=None)
@click.option("--note", required=True)
@click.option("--tag", "tags", multiple=True, help="Repeat for several tags.")
@click.pass_context
def journal_add(ctx: click.Context, user_id: str, trade_id: str | None, intent_id: str | None,
                note: str, tags: tuple[str, ...]) -> None:
    """Add a note to one of your trades or intents."""
    from buddy.store.trades import add_journal_note

    if (trade_id is None) == (intent_id is None):
        _fail("--trade/--intent: give exactly one (got "
              f"{'both' if trade_id else 'neither'})")
    if not note.strip():
        _fail("--note: must not be empty (got '')")
    journal_id = uuid.uuid4().hex
    try:
        add_journal_note(_store(ctx), journal_id=journal_id, user_id=user_id,
                         trade_id=trade_id, intent_id=intent_id, note=note.strip(),
                         tags=[t.strip() for t in tags if t.strip()])
    except (KeyError, BuddyError) as exc:
        _fail(str(exc).strip('"'))
    click.echo(journal_id)


@journal.command("list")
@click.option("--user", "user_id", required=True)
@click.option("--trade", "trade_id", default=None)
@click.option("--intent", "intent_id", default=None)
@click.option("--tag", default=None)
@click.pass_context
def journal_list(ctx: click.Context, user_id: str, trade_id: str | None,
                 intent_id: str | None, tag: str | None) -> None:
    """List your journal notes, oldest first."""
    from buddy.store.trades import read_journal

    notes = read_journal(_store(ctx), user_id, trade_id=trade_id, intent_id=intent_id, tag=tag)
    if notes.empty:
        click.echo("no notes")
    for row in notes.to_dict("records"):
        on = (f"trade {row['trade_id_optional']}" if isinstance(row["trade_id_optional"], str)
              else f"intent {row['intent_id_optional']}")
        tags = ", ".join(json.loads(row["tags_json"] or "[]"))
        click.echo(f"{row['created_at']:%Y-%m-%d %H:%M} {on} [{tags}] {row['note_text']}")


@click.command()
@click.option("--user", "user_id", default=None, help="Only this user's trades.")
@click.pass_context
def jobs_reviews(ctx: click.Context, user_id: str | None) -> None:
    """Review every closed trade without a review of the current version."""
    from buddy.jobs.reviews import run_reviews_job

    done = run_reviews_job(_store(ctx), user_id)
    click.echo(f"reviews v{done.version}: {done.n_reviewed} written, {done.n_not_measured} "
               f"without MAE/MFE (bars do not cover), {done.n_not_graded} not graded")
