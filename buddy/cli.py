"""The ``buddy`` command line: data in, jobs, evaluation, and the demo."""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import json
import os
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

import click

from buddy.errors import BuddyError, FieldError, FieldErrors

# The values of buddy.timeframes.Timeframe, spelled out because that module imports pandas and
# `buddy --help` must not (tests/test_cli_startup.py checks the two agree).
TIMEFRAME_VALUES = ("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w")
TIMEFRAMES = click.Choice(TIMEFRAME_VALUES)
#: The entry-point group through which other packages (replay, experiments) add commands.
COMMANDS_GROUP = "trading_buddy.commands"


#: The commands that may start a new database file (they write what the others read): every
#: other command refuses a --db that names no file, rather than create an empty one.
CREATING_COMMANDS = frozenset({
    ("data", "import"), ("data", "load-sample"), ("data", "synth"), ("demo",),
    ("events", "import"), ("trades", "import"), ("user", "set"),
    ("user", "exit-template", "save")})


class MissingStoreError(click.ClickException):
    """A command that reads was pointed at a database file that does not exist."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        """Print the error as every buddy error is printed."""
        click.echo(f"error: {self.format_message()}", err=True)


def open_store(db: str | None, *, create: bool = False) -> Any:
    """Return the Store at ``db`` (else $BUDDY_DB, else data/buddy.duckdb); unless ``create``,
    refuse a path with no file (a mistyped --db must not start an empty database)."""
    from buddy.store import Store
    from buddy.store.core import resolve_db_path

    path = resolve_db_path(db)
    if not create and not path.is_file():
        command = " ".join(_command_path(click.get_current_context(silent=True)))
        raise MissingStoreError(str(FieldError(
            "--db", f"must name an existing database file (`{command or 'this command'}` "
                    "reads it; `buddy data load-sample` or `buddy data import` starts one)",
            str(path))))
    return Store(path)


def _command_path(ctx: click.Context | None) -> tuple[str, ...]:
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:  # the root's name is the program's
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return tuple(reversed(names))


class _Obj:
    def __init__(self, db: str | None) -> None:
        self.db = db

    def store(self) -> Any:
        ctx = click.get_current_context(silent=True)
        return open_store(self.db, create=_command_path(ctx) in CREATING_COMMANDS)


def _take_db(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # a --db given after a subcommand's name: every command object up the chain (the root's,
    # and a group's own such as replay's) opens that file
    while value is not None and ctx is not None:
        if hasattr(ctx.obj, "db"):
            ctx.obj.db = value
        ctx = ctx.parent  # type: ignore[assignment]


def accept_db(command: click.Command) -> click.Command:
    """Give ``command`` and every subcommand it holds a ``--db PATH`` option (unless it has
    its own), so `buddy evaluate --db X` means `buddy --db X evaluate`."""
    if not any(param.name == "db" for param in command.params):
        command.params.append(click.Option(
            ["--db"], metavar="PATH", default=None, expose_value=False, callback=_take_db,
            help="DuckDB file (the same as `buddy --db PATH`)."))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            accept_db(sub)
    return command


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@cache
def _plugin_commands() -> dict[str, str]:
    return installed_entry_points(COMMANDS_GROUP)


def installed_entry_points(group: str) -> dict[str, str]:
    """Return the entry points of ``group`` the installed distributions declare, as
    name -> 'module:attr', as ``importlib.metadata.entry_points(group=...)`` finds them.

    Read straight from each distribution's entry_points.txt: importing importlib.metadata
    (~30 ms, it pulls in email) and letting it parse every distribution's file doubled the
    time of `buddy --help` (tests/test_cli_startup.py checks both agree).
    """
    header = f"[{group}]"
    found: dict[str, str] = {}
    seen: set[str] = set()
    for folder in sys.path:
        try:
            names = sorted(os.listdir(folder or "."))
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            # a distribution earlier on sys.path shadows a later one of the same name
            dist = re.sub(r"[-_.]+", "_", name.rpartition(".")[0].split("-")[0]).lower()
            if dist in seen:
                continue
            seen.add(dist)
            try:
                text = Path(folder or ".", name, "entry_points.txt").read_text("utf-8")
            except OSError:
                continue
            if header in text:
                found.update(_entry_point_section(text, header))
    return found


def _entry_point_section(text: str, header: str) -> dict[str, str]:
    entries: dict[str, str] = {}
    inside = False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            inside = line == header
        elif inside and "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            entries[key.strip()] = value.strip()
    return entries


def _load(target: str) -> click.Command:
    module, _, attr = target.partition(":")
    command = getattr(importlib.import_module(module), attr)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


@cache
def _declared_help(target: str) -> str:
    """Return the help a command at 'module:attr' declares, read from its source (no import).

    That is the ``help=``/``short_help=`` of its click decorator, else its docstring; '' when
    the source cannot be read (the command is then listed without help).
    """
    module, _, attr = target.partition(":")
    try:
        source = _module_source(module)
    except (ImportError, OSError, ValueError):
        return ""
    if not source:
        return ""
    for node in _parse_function(source, attr).body:
        if isinstance(node, ast.FunctionDef) and node.name == attr:
            for decorator in node.decorator_list:
                # only the command's own decorator: an option's help= is not the command's
                if not (isinstance(decorator, ast.Call) and getattr(
                        decorator.func, "attr", getattr(decorator.func, "id", "")) in (
                        "command", "group")):
                    continue
                for keyword in decorator.keywords:
                    if keyword.arg in ("short_help", "help") and isinstance(
                            keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
                        return keyword.value.value
            return ast.get_docstring(node) or ""
    return ""


def _parse_function(source: str, name: str) -> ast.Module:
    # parsing a whole module costs ~3 ms: parse only the top-level function and its
    # decorators (the lines from the blank line above it to the next top-level line), and
    # the whole module when that slice is not valid on its own
    found = re.search(rf"^def {re.escape(name)}\(", source, re.MULTILINE)
    if found is not None:
        start = source.rfind("\n\n", 0, found.start()) + 2
        body = source.find("\n", found.end()) + 1
        after = re.search(r"^\S", source[body:], re.MULTILINE) if body else None
        end = body + after.start() if after is not None else len(source)
        try:
            return ast.parse(source[start:end])
        except SyntaxError:
            pass
    return ast.parse(source)


def _module_source(module: str) -> str | None:
    # find_spec('a.b.c') would import the packages a and a.b, whose __init__ may be heavy:
    # walk their search paths instead, executing nothing
    top, *parts = module.split(".")
    spec = importlib.util.find_spec(top)
    name = top
    for part in parts:
        if spec is None or spec.submodule_search_locations is None:
            return None
        name = f"{name}.{part}"
        spec = importlib.machinery.PathFinder.find_spec(name, spec.submodule_search_locations)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin).read_text(encoding="utf-8")


class _LazyGroup(click.Group):
    """A group whose commands named in ``lazy`` ('name' -> 'module:attr') are imported only
    when invoked: its help lists them from their declared help, so `buddy --help` imports
    none of the modules (and none of their pandas, numpy, duckdb) behind them."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def lazy_commands(self) -> dict[str, str]:
        """Return the not-yet-imported commands: name -> 'module:attr'."""
        return {n: t for n, t in self.lazy.items() if n not in self.commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        target = self.lazy_commands().get(cmd_name)
        if command is None and target is not None:
            command = accept_db(_load(target))
            self.add_command(command, name=cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        lazy = self.lazy_commands()
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in lazy:
                # a stand-in with the same help shortens it exactly as the command would
                stand_in = click.Command(name, help=_declared_help(lazy[name]))
                rows.append((name, stand_in.get_short_help_str(limit)))
            else:
                command = self.commands[name]
                if not command.hidden:
                    rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class _PluggableGroup(_LazyGroup):
    """The root group: buddy's own commands plus those declared in COMMANDS_GROUP, each
    imported only when it is invoked (buddy imports no higher layer by name)."""

    def lazy_commands(self) -> dict[str, str]:
        plugins = {n: t for n, t in _plugin_commands().items() if n not in self.commands}
        return {**plugins, **super().lazy_commands()}


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
    if report.logging.text():  # the report stands; say where its log went
        click.echo(report.logging.text(), err=True)


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
@click.option("--allow-jump", "allow_jumps", multiple=True, metavar="DATE",
              help="Session (YYYY-MM-DD) of a real gap or unlisted split the reasonability "
                   "checks must accept; repeatable.")
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
    from buddy.timeframes import Timeframe

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
@cli.group(cls=_LazyGroup, lazy={
    "regime": "buddy.regime.cli:jobs_regime", "levels": "buddy.levels.cli:jobs_levels",
    "reviews": "buddy.trades.review_cli:jobs_reviews",
    "profiles": "buddy.strategy.cli:jobs_profiles"})
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


@cli.group(cls=_LazyGroup, lazy={
    "regime": "buddy.regime.cli:context_regime", "levels": "buddy.levels.cli:context_levels",
    "mtfa": "buddy.mtfa.cli:context_mtfa"})
def context() -> None:
    """Print the context pieces of a symbol as of a time (the seed's GET endpoints)."""


@cli.group(cls=_LazyGroup, lazy={"import": "buddy.events.cli:events_import"})
def events() -> None:
    """Import scheduled events (earnings, macro dates) used by the missing-items scanner."""


# Commands other buddy packages define, imported when invoked (see _LazyGroup).
cli.lazy.update({
    "user": "buddy.users.cli:user", "trades": "buddy.trades.cli:trades",
    "review": "buddy.trades.review_cli:review", "summary": "buddy.trades.review_cli:summary",
    "journal": "buddy.trades.review_cli:journal", "profile": "buddy.strategy.cli:profile",
    "playbooks": "buddy.strategy.playbooks_cli:playbooks",
    "portfolio": "buddy.portfolio.cli:portfolio", "positions": "buddy.portfolio.cli:positions",
    "behavior": "buddy.behavior.cli:behavior", "nudges": "buddy.behavior.settings_cli:nudges",
    "feedback": "buddy.behavior.experiments_cli:feedback",
    "ab-test": "buddy.behavior.experiments_cli:ab_test",
    "service": "buddy.service.cli:service", "brainstorm": "buddy.assistant.cli:brainstorm"})
if isinstance(jobs, _LazyGroup):  # always: declared with cls=_LazyGroup (narrows the type)
    jobs.lazy["portfolio"] = "buddy.portfolio.cli:jobs_portfolio"


# every command defined here takes --db too (loaded ones get it in _LazyGroup.get_command)
for _command in cli.commands.values():
    accept_db(_command)


def main() -> None:
    """Run the command line."""
    cli(prog_name="buddy")


if __name__ == "__main__":
    main()
