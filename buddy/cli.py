"""The ``buddy`` command line: data in, jobs, evaluation, and the demo."""

from __future__ import annotations

import json
import sys
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import click

from buddy.errors import BuddyError, FieldErrors
from buddy.timeframes import Timeframe

TIMEFRAMES = click.Choice([t.value for t in Timeframe])
#: The entry-point group through which other packages (replay, experiments) add commands.
COMMANDS_GROUP = "trading_buddy.commands"


class _Obj:
    def __init__(self, db: str | None) -> None:
        self.db = db

    def store(self) -> Any:
        from buddy.store import Store

        return Store(self.db)


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@cache
def _plugin_commands() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP)}


class _PluggableGroup(click.Group):
    """The root group: buddy's own commands plus those declared in COMMANDS_GROUP, each
    imported only when it is named or listed (buddy imports no higher layer by name)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_plugin_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _plugin_commands():
            command = _plugin_commands()[cmd_name].load()
        return command


@click.group(cls=_PluggableGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", envvar="BUDDY_DB", default=None, metavar="PATH",
              help="DuckDB file (default data/buddy.duckdb; env BUDDY_DB).")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """Trading Buddy: an honest second opinion on a trade, point-in-time."""
    ctx.obj = _Obj(db)


# ---------------------------------------------------------------------------- evaluate
@cli.command()
@click.option("--user", required=True, help="User id.")
@click.option("--symbol", required=True)
@click.option("--side", required=True, type=click.Choice(["long", "short"]))
@click.option("--timeframe", "--tf", "timeframe", required=True, type=TIMEFRAMES)
@click.option("--entry", required=True, type=float, help="Proposed entry price.")
@click.option("--stop", type=float, default=None, help="Proposed stop price.")
@click.option("--target", type=float, default=None, help="Proposed target price.")
@click.option("--size", required=True, type=float, help="Units (shares, FX units).")
@click.option("--as-of", "as_of", required=True,
              help="Decision time: YYYY-MM-DD (the close of that exchange session) or ISO "
                   "with zone.")
@click.option("--horizon", type=int, default=None, help="Holding horizon in bars.")
@click.option("--order-type", default="limit",
              type=click.Choice(["market", "limit", "stop", "stop_limit"]))
@click.option("--risk-amount", type=float, default=None, help="Planned risk in currency.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the JSON report (every ranked issue, with its rank).")
@click.option("--all", "show_all", is_flag=True,
              help="Print every ranked issue, not only the top ones.")
@click.option("--no-log", is_flag=True, help="Do not log this evaluation.")
@click.pass_obj
def evaluate(obj: _Obj, as_json: bool, show_all: bool, no_log: bool, **fields: Any) -> None:
    """Evaluate a trade idea and print the Buddy Report."""
    from buddy.api import Buddy
    from buddy.config_sources import production_config

    try:
        buddy = Buddy(obj.store(), production_config())
        report = buddy.evaluate(log=not no_log, **fields)
    except (FieldErrors, BuddyError) as exc:
        _fail(exc)
    click.echo(report.to_json() if as_json else report.text(show_all=show_all))


# ---------------------------------------------------------------------------- data
@cli.group()
def data() -> None:
    """Load market data into the store."""


@data.command("load-sample")
@click.pass_obj
def load_sample_cmd(obj: _Obj) -> None:
    """Load the real market data that ships inside installed packages (no network)."""
    from buddy.jobs.load import load_sample_into

    summary = load_sample_into(obj.store())
    click.echo(summary)


@data.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--symbol", required=True)
@click.option("--timeframe", "--tf", "timeframe", required=True, type=TIMEFRAMES)
@click.option("--tz", default=None, help="Zone of naive timestamps, e.g. America/New_York.")
@click.option("--calendar", default="XNYS", show_default=True,
              help="Trading calendar of a new symbol (exchange-calendars name or FX24x5).")
@click.option("--asset-class", default="equity", show_default=True)
@click.option("--currency", default="USD", show_default=True)
@click.option("--tick-size", type=float, default=0.01, show_default=True)
@click.option("--lot-size", type=float, default=1.0, show_default=True)
@click.pass_obj
def import_cmd(obj: _Obj, path: Path, **options: Any) -> None:
    """Import a user's own CSV or Parquet bars (validated whole; nothing written on error)."""
    from buddy.jobs.load import import_file_into

    try:
        click.echo(import_file_into(obj.store(), path, **options))
    except (ValueError, BuddyError) as exc:
        _fail(exc)


@data.command("synth")
@click.option("--symbols", "n_symbols", type=int, default=50, show_default=True)
@click.option("--years", type=float, default=5.0, show_default=True)
@click.option("--timeframe", "--tf", "timeframe", type=TIMEFRAMES, default="1d",
              show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.pass_obj
def synth_cmd(obj: _Obj, n_symbols: int, years: float, timeframe: str, seed: int) -> None:
    """Build a synthetic universe with known regimes (stored for detection tests)."""
    from buddy.jobs.load import synth_into

    click.echo(synth_into(obj.store(), n_symbols=n_symbols, years=years,
                          timeframe=Timeframe.parse(timeframe), seed=seed))


@data.command("info")
@click.pass_obj
def info_cmd(obj: _Obj) -> None:
    """Print what the store holds per symbol and timeframe."""
    store = obj.store()
    click.echo(f"{store.path} (schema v{store.schema_version()})")
    click.echo(store.bar_coverage().to_string(index=False))


# ---------------------------------------------------------------------------- jobs
@cli.group()
def jobs() -> None:
    """Compute reusable data products."""


@jobs.command("features")
@click.option("--symbols", default=None, help="Comma-separated symbols (default: all).")
@click.option("--timeframes", default=None, help="Comma-separated timeframes (default: all).")
@click.pass_obj
def features_cmd(obj: _Obj, symbols: str | None, timeframes: str | None) -> None:
    """Compute TA features for new bars (incremental, idempotent)."""
    from buddy.jobs.features import run_features_job

    result = run_features_job(obj.store(), symbols=_split(symbols), timeframes=_split(timeframes))
    click.echo(f"features: {result.series_updated} of {result.series} series updated, "
               f"{result.rows_written} rows written")


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


# ---------------------------------------------------------------------------- demo
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON reports.")
@click.pass_obj
def demo(obj: _Obj, as_json: bool) -> None:
    """Build the store from the bundled real data and evaluate the sample trade ideas."""
    from buddy.demo import run_demo

    for idea, report in run_demo(obj.store(), echo=click.echo):
        if as_json:
            click.echo(json.dumps(report.to_dict(), indent=2, default=str))
        else:
            click.echo(f"\n# {idea.symbol} {idea.timeframe}: {idea.note}\n{report}")


@cli.group()
def context() -> None:
    """Print the context pieces of a symbol as of a time (the seed's GET endpoints)."""


@cli.group()
def events() -> None:
    """Import scheduled events (earnings, macro dates) used by the missing-items scanner."""


def _attach_plugins() -> None:
    from buddy.events.cli import events_import
    from buddy.levels.cli import context_levels, jobs_levels
    from buddy.mtfa.cli import context_mtfa
    from buddy.regime.cli import context_regime, jobs_regime
    from buddy.strategy.cli import jobs_profiles, profile
    from buddy.strategy.playbooks_cli import playbooks
    from buddy.trades.cli import trades
    from buddy.trades.review_cli import jobs_reviews, journal, review, summary
    from buddy.users.cli import user

    cli.add_command(user)
    cli.add_command(trades)
    jobs.add_command(jobs_regime, name="regime")
    jobs.add_command(jobs_levels, name="levels")
    context.add_command(context_regime, name="regime")
    context.add_command(context_levels, name="levels")
    context.add_command(context_mtfa, name="mtfa")
    events.add_command(events_import, name="import")
    cli.add_command(review)
    cli.add_command(summary)
    cli.add_command(journal)
    jobs.add_command(jobs_reviews, name="reviews")
    cli.add_command(profile)
    cli.add_command(playbooks)
    jobs.add_command(jobs_profiles, name="profiles")


_attach_plugins()


def main() -> None:
    """Run the command line."""
    cli(prog_name="buddy")


if __name__ == "__main__":
    main()
