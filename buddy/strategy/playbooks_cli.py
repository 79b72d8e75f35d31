"""Command line: ``buddy playbooks fit|show|validate --user U [--as-of T]``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from buddy.errors import BuddyError
from buddy.strategy.cli import command_store, parse_as_of

_AS_OF_HELP = ("Only trades closed by then: YYYY-MM-DD (end of that UTC day) or ISO with zone "
               "(default: every closed trade).")


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.group()
def playbooks() -> None:
    """Discover a trader's playbooks from their own trades, show them, validate them."""


@playbooks.command("fit")
@click.option("--user", "user_id", required=True, help="User id.")
@click.option("--as-of", "as_of", default=None, help=_AS_OF_HELP)
@click.option("--publish", is_flag=True,
              help="Also register the fit as a new version of buddy-playbooks-<user> and "
                   "promote it to production if the playbook gate passes (stability, later "
                   "holdout coverage).")
@click.pass_context
def fit_cmd(ctx: click.Context, user_id: str, as_of: str | None, publish: bool) -> None:
    """Fit the playbooks on the trades closed by --as-of and store them (replacing the
    user's playbooks and playbook_members); --publish sends them through the gate."""
    from buddy.jobs.playbooks import run_playbook_job
    from buddy.strategy.sources import publish_playbooks

    store = command_store(ctx)
    try:
        result = run_playbook_job(store, user_id, as_of=parse_as_of(as_of))
    except (BuddyError, ValueError) as exc:
        _fail(exc)
        return
    click.echo(result.text())
    if publish:
        for line in publish_playbooks(store, result.fit):
            click.echo(line)


@playbooks.command("show")
@click.option("--user", "user_id", required=True, help="User id.")
@click.option("--as-of", "as_of", default=None,
              help="Fit as of then and print without storing (default: print the stored "
                   "playbooks). " + _AS_OF_HELP)
@click.pass_context
def show_cmd(ctx: click.Context, user_id: str, as_of: str | None) -> None:
    """Print the user's stored playbooks, or the playbooks as of --as-of (nothing written)."""
    from buddy.jobs.playbooks import closed_facts
    from buddy.store.strategy import read_playbooks
    from buddy.strategy.playbooks import fit_playbooks

    try:
        store = command_store(ctx)
        when = parse_as_of(as_of)
        if when is not None:
            fit = fit_playbooks(closed_facts(store, user_id, when), user_id=user_id,
                                fitted_until=when)
            click.echo(fit.text())
            return
        books, members = read_playbooks(store, user_id)
    except (BuddyError, ValueError) as exc:
        _fail(exc)
        return
    if books.empty:
        click.echo(f"{user_id}: no stored playbooks (run `buddy playbooks fit --user "
                   f"{user_id}`)")
        return
    click.echo(f"{user_id}: {len(books)} stored playbook(s), {len(members)} member trades")
    books = books.assign(number=[d.get("number") for d in books["dispersion_metrics_json"]])
    for row in books.sort_values("number").itertuples():
        stats, disp = row.stats_json, row.dispersion_metrics_json
        win, mean_r = stats["win_rate"], stats["mean_r"]
        click.echo(f"  #{row.number} {row.name}: n={stats['n']}, win rate "
                   f"{_stat(win)}, mean R {_stat(mean_r)}, stability "
                   f"{disp['stability']:.2f} ({row.playbook_id})")


def _stat(d: dict[str, Any]) -> str:
    if d.get("value") is None:
        return f"n/a (n={d.get('n', 0)})"
    interval = "" if d.get("low") is None else f" [{d['low']:.2f}, {d['high']:.2f}]"
    return f"{d['value']:.2f}{interval}"


@playbooks.command("validate")
@click.option("--user", "user_id", required=True, help="User id (with injected setups on "
              "record: the demo trader).")
@click.option("--split", type=click.FloatRange(0.1, 0.95), default=0.7, show_default=True,
              help="Share of the trades (by entry time) before the split.")
@click.option("--alpha", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
              default=0.05, show_default=True, help="Novelty p-value below which an intent "
              "is out of pattern.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.pass_context
def validate_cmd(ctx: click.Context, user_id: str, split: float, alpha: float,
                 as_json: bool) -> None:
    """Measure the playbooks against the injected setups: ARI, later intents matched to
    their setup's playbook, false out-of-pattern rate (nothing written)."""
    from buddy.strategy.validation import validate_playbooks

    try:
        result = validate_playbooks(command_store(ctx), user_id, split=split, alpha=alpha)
    except (BuddyError, ValueError) as exc:
        _fail(exc)
        return
    click.echo(json.dumps(result.to_dict(), indent=2, default=str) if as_json
               else result.text())
