"""Command line: ``buddy portfolio --user U [--as-of T] [--json]`` (prints the exposure
snapshot as of T, writes nothing), ``buddy positions import FILE --user U`` (a positions
statement) and ``buddy jobs portfolio --user U [--start D] [--end D]`` (writes snapshots)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from buddy.errors import BuddyError, FieldErrors


def _store(ctx: click.Context) -> Any:
    return ctx.find_root().obj.store()


def _as_of(text: str | None, option: str = "--as-of") -> Any:
    """Return a time option as UTC: a bare date is the end of that UTC day; None is now."""
    import pandas as pd

    from buddy.errors import FieldError
    from buddy.strategy.cli import parse_as_of

    if text is None:
        return pd.Timestamp.now(tz="UTC")  # the edge: "now" for a command without --as-of
    try:
        return parse_as_of(text)
    except FieldErrors as exc:
        raise FieldErrors([FieldError(option, e.rule, e.value) for e in exc.errors]) from None


@click.command()
@click.option("--user", "user_id", required=True, help="User id.")
@click.option("--as-of", "as_of", default=None,
              help="YYYY-MM-DD (end of that UTC day) or ISO with zone (default: now).")
@click.option("--beta-window", type=click.Choice(["weekly-2y", "daily-1y"]),
              default="weekly-2y", show_default=True,
              help="Returns the betas are estimated on.")
@click.option("--blume", is_flag=True, help="Blume-adjusted betas (0.67 b + 0.33).")
@click.option("--var-level", type=float, default=0.95, show_default=True,
              help="VaR confidence level.")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
@click.pass_context
def portfolio(ctx: click.Context, user_id: str, as_of: str | None, beta_window: str,
              blume: bool, var_level: float, as_json: bool) -> None:
    """Print a trader's exposure as of a time: heat, clusters, risk contributions, betas
    (with n and intervals) and VaR (nothing is written)."""
    from buddy.portfolio.snapshot import SnapshotConfig, exposure_snapshot

    try:
        frequency, years = ("weekly", 2.0) if beta_window == "weekly-2y" else ("daily", 1.0)
        config = SnapshotConfig(beta_frequency=frequency, beta_years=years, blume=blume,
                                var_level=var_level)
        snapshot, reason = exposure_snapshot(_store(ctx), user_id, _as_of(as_of), config)
    except BuddyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if snapshot is None:
        click.echo(f"portfolio not checked: {reason}", err=True)
        sys.exit(1)
    click.echo(json.dumps(snapshot.as_dict(), indent=2) if as_json else snapshot.text())


@click.group()
def positions() -> None:
    """Positions from a statement, for a trader without broker fills."""


@positions.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--user", "user_id", required=True, help="User id.")
@click.pass_context
def positions_import(ctx: click.Context, path: Path, user_id: str) -> None:
    """Import a positions statement CSV: symbol, qty (signed), avg_price, as_of (ISO with
    offset), optional stop and equity. Validated whole; nothing is written on an error;
    importing the same file twice writes the same rows."""
    from buddy.portfolio.positions import import_positions

    try:
        click.echo(str(import_positions(_store(ctx), path, user_id=user_id)))
    except BuddyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@click.command()
@click.option("--user", "user_id", required=True, help="User id.")
@click.option("--start", default=None,
              help="YYYY-MM-DD (end of that UTC day) or ISO (default: the first fill).")
@click.option("--end", default=None,
              help="YYYY-MM-DD (end of that UTC day) or ISO (default: the last daily bar).")
@click.pass_context
def jobs_portfolio(ctx: click.Context, user_id: str, start: str | None, end: str | None
                   ) -> None:
    """Write a trader's exposure snapshots at each session close and position change."""
    from buddy.jobs.portfolio import run_portfolio_job

    try:
        first = None if start is None else _as_of(start, "--start")
        last = None if end is None else _as_of(end, "--end")
        click.echo(str(run_portfolio_job(_store(ctx), user_id, start=first, end=last,
                                         echo=click.echo)))
    except BuddyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
