"""``buddy jobs levels`` and ``buddy context levels SYMBOL --tf TF [--as-of T]``.

Both are plain click commands attached to the main command's ``jobs`` and ``context`` groups;
they use the main command's store (``buddy --db PATH``) and, used on their own, open $BUDDY_DB
(else data/buddy.duckdb). Bad input exits with status 2 and a message naming the field.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import datetime
from typing import Any, NoReturn

import click
import pandas as pd

from buddy.context.pieces import KeyLevelsSnapshot
from buddy.errors import BuddyError
from buddy.store import Store
from buddy.store.bars import last_close
from buddy.timeframes import Timeframe

TIMEFRAMES = click.Choice([t.value for t in Timeframe])


def _store() -> Store:
    opener = getattr(click.get_current_context().find_root().obj, "store", None)
    return opener() if callable(opener) else Store()


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


@click.command("levels")
@click.option("--symbols", default=None, help="Comma-separated symbols (default: all).")
@click.option("--timeframes", default=None, help="Comma-separated timeframes (default: all).")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Processes computing symbols in parallel.")
def jobs_levels(symbols: str | None, timeframes: str | None, workers: int) -> None:
    """Compute key levels for new bars (incremental, idempotent)."""
    from buddy.jobs.levels import run_levels_job

    result = run_levels_job(_store(), symbols=_split(symbols), timeframes=_split(timeframes),
                            workers=workers)
    click.echo(f"levels: {result.series_updated} of {result.series} series updated, "
               f"{result.rows_written} rows written")


@click.command("levels")
@click.argument("symbol")
@click.option("--tf", "--timeframe", "timeframe", required=True, type=TIMEFRAMES)
@click.option("--as-of", "as_of", default=None,
              help="YYYY-MM-DD (end of that exchange day) or ISO time with zone; "
                   "default: the close of the last stored bar.")
@click.option("--user", default=None, help="Add this user's anchored VWAPs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def context_levels(symbol: str, timeframe: str, as_of: str | None, user: str | None,
                   as_json: bool) -> None:
    """Print the key levels of SYMBOL's last closed bar at the as-of time."""
    from buddy.api import resolve_as_of
    from buddy.levels.provider import key_levels_at

    store = _store()
    symbol = symbol.strip().upper()
    instrument = store.instrument(symbol)
    if instrument is None:
        _fail(f"symbol: {symbol} is not in the tickers table")
    if as_of is None:
        last = last_close(store, symbol, timeframe)
        if pd.isna(last):
            _fail(f"timeframe: no {timeframe} bars of {symbol} are stored")
        when = pd.Timestamp(last).to_pydatetime()
    else:
        try:
            when = resolve_as_of(as_of, instrument["timezone"],
                                 calendar=instrument.get("trading_calendar"))
        except BuddyError:
            _fail(f"as_of: must be YYYY-MM-DD or an ISO time with a zone (got {as_of!r})")
    snapshot = key_levels_at(store, symbol, timeframe, when, user_id=user)
    if snapshot is None:
        _fail(f"as_of: no {timeframe} bar of {symbol} closed at or before "
              f"{pd.Timestamp(when).isoformat()}")
    if as_json:
        click.echo(json.dumps({"as_of": pd.Timestamp(when).isoformat(), **asdict(snapshot)},
                              indent=2, default=_json_default))
    else:
        click.echo(format_levels(snapshot, when, tick=float(instrument["tick_size"])))


def format_levels(snapshot: KeyLevelsSnapshot, as_of: datetime, *, tick: float = 0.01) -> str:
    """Return the snapshot as the text ``buddy context levels`` prints."""
    decimals = max(0, -int(f"{tick:e}".split("e")[1])) + 1

    def price(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.{decimals}f}"

    lines = [f"{snapshot.symbol} {snapshot.timeframe} key levels at the bar opened "
             f"{pd.Timestamp(snapshot.ts).isoformat()} (as of {pd.Timestamp(as_of).isoformat()}; "
             f"prices on the as-of basis; v{snapshot.version})",
             f"  prior day     high {price(snapshot.prior_day_high)}  low "
             f"{price(snapshot.prior_day_low)}  close {price(snapshot.prior_day_close)}",
             f"  rolling range high {price(snapshot.rolling_range_high)}  low "
             f"{price(snapshot.rolling_range_low)}"]
    for method, levels in snapshot.pivots.items():
        lines.append(f"  pivots {method:<10} " + "  ".join(
            f"{name} {price(value)}" for name, value in levels.items()))
    for vwap in snapshot.anchored_vwaps:
        lines.append(f"  avwap {vwap.anchor:<16} {price(vwap.vwap)}  +-1sd "
                     f"{price(vwap.lower_1)}..{price(vwap.upper_1)}  +-2sd "
                     f"{price(vwap.lower_2)}..{price(vwap.upper_2)}  from "
                     f"{pd.Timestamp(vwap.anchor_ts).isoformat()}")
    for level in snapshot.support_resistance:
        lines.append(f"  {level.kind:<10} {price(level.price)}  {level.touches} touches, last "
                     f"{pd.Timestamp(level.last_touch).date().isoformat()}")
    if not snapshot.support_resistance:
        lines.append("  support/resistance: no cluster of confirmed swing points yet")
    return "\n".join(lines)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return pd.Timestamp(value).isoformat()
    return str(value)
