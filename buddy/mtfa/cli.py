"""``buddy context-mtfa SYMBOL --tf TF [--as-of T]``: print the multi-timeframe read.

Attached to the main command with ``cli.add_command(context_mtfa)``, it uses the main
command's store (``buddy --db PATH``); used on its own, it opens $BUDDY_DB (else
data/buddy.duckdb). Exits with status 2 on bad input and 1 when the stack is incomplete.
"""

from __future__ import annotations

import sys

import click
import pandas as pd

from buddy.errors import BuddyError
from buddy.store import Store
from buddy.timeframes import Timeframe


def _store() -> Store:
    opener = getattr(click.get_current_context().find_root().obj, "store", None)
    return opener() if callable(opener) else Store()


@click.command("context-mtfa")
@click.argument("symbol")
@click.option("--tf", "timeframe", required=True,
              type=click.Choice([t.value for t in Timeframe]),
              help="The timeframe you trade (marked in the stack; the stack is fixed per "
                   "instrument: 1w/1d for stocks and indices, 1d/4h/1h for FX).")
@click.option("--as-of", "as_of", default=None,
              help="YYYY-MM-DD (end of that exchange day) or ISO with a zone; default: now.")
def context_mtfa(symbol: str, timeframe: str, as_of: str | None) -> None:
    """Print the trend of each stack timeframe from its last closed bar, the alignment score
    and the conflicts."""
    from buddy.api import resolve_as_of
    from buddy.context.pack import Instrument
    from buddy.mtfa.compute import stack_for
    from buddy.mtfa.provider import read_mtfa

    store = _store()
    symbol = symbol.strip().upper()
    row = store.instrument(symbol)
    if row is None:
        click.echo(f"error: symbol {symbol} is not in the tickers table", err=True)
        sys.exit(2)
    inst = Instrument.from_row(row)
    try:
        when = (resolve_as_of(as_of, inst.timezone, calendar=inst.trading_calendar)
                if as_of is not None
                else pd.Timestamp.now(tz="UTC").to_pydatetime())
    except BuddyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    stack = stack_for(inst.asset_class, inst.trading_calendar)
    snapshot, reason = read_mtfa(store, symbol, stack, when)
    click.echo(f"{symbol} at {pd.Timestamp(when).isoformat()}  stack "
               f"{'/'.join(str(tf) for tf in stack)}  trading {timeframe}")
    if snapshot is None:
        click.echo(f"not available: {reason}")
        sys.exit(1)
    for trend in snapshot.stack:
        mark = "*" if trend.timeframe == timeframe else " "
        click.echo(f" {mark}{trend.timeframe:<3} bar {pd.Timestamp(trend.bar_ts):%Y-%m-%d %H:%M}"
                   f"  {trend.direction:<5}  ADX {trend.strength:5.1f}  close-EMA50 "
                   f"{trend.close_vs_ema50_atr:+.2f} ATR")
    click.echo(f"alignment {snapshot.alignment_score:+.2f} (-1 all down .. +1 all up)")
    click.echo("conflicts: " + ("; ".join(snapshot.conflicts) or "none"))
