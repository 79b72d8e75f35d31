"""``buddy jobs regime`` and ``buddy context regime``.

``jobs_regime`` and ``context_regime`` are attached to the main command's ``jobs`` and
``context`` groups; they use its store (``buddy --db PATH``), or $BUDDY_DB (else
data/buddy.duckdb) when run on their own.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import Any, NoReturn

import click
import pandas as pd

from buddy.errors import BuddyError
from buddy.store import Store
from buddy.timeframes import Timeframe

TIMEFRAMES = click.Choice([t.value for t in Timeframe])
#: Horizons the context command prints the transition risk for.
RISK_HORIZONS = (1, 5, 10, 20)


def _store() -> Store:
    opener = getattr(click.get_current_context().find_root().obj, "store", None)
    return opener() if callable(opener) else Store()


def _fail(exc: Exception) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


@click.command("regime")
@click.option("--symbols", default=None, help="Comma-separated symbols (default: all).")
@click.option("--timeframes", default=None, help="Comma-separated timeframes (default: all).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Processes sharing the series (1: in this process).")
@click.option("--full", is_flag=True, help="Recompute every bar, ignoring stored snapshots.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def jobs_regime(symbols: str | None, timeframes: str | None, workers: int, full: bool,
                quiet: bool) -> None:
    """Compute regime snapshots and walk-forward HMM fits for new bars (incremental)."""
    from buddy.jobs.regime import run_regime_job

    started = time.perf_counter()
    try:
        result = run_regime_job(_store(), symbols=_split(symbols),
                                timeframes=_split(timeframes), workers=workers,
                                progress=not quiet, full=full)
    except (ValueError, BuddyError) as exc:
        _fail(exc)
    click.echo(f"regime: {result.series_updated} of {result.series} series updated, "
               f"{result.snapshot_rows} snapshot rows and {result.model_rows} model fits "
               f"written in {time.perf_counter() - started:.1f} s")


@click.command("regime")
@click.argument("symbol")
@click.option("--tf", "timeframe", required=True, type=TIMEFRAMES, help="Bar timeframe.")
@click.option("--as-of", "as_of", default=None,
              help="YYYY-MM-DD (end of that exchange day) or ISO with zone (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def context_regime(symbol: str, timeframe: str, as_of: str | None, as_json: bool) -> None:
    """Print the regime of SYMBOL's last bar closed at the as-of time."""
    from buddy.api import resolve_as_of
    from buddy.regime.provider import regime_at

    store = _store()
    symbol = symbol.strip().upper()
    instrument = store.instrument(symbol)
    if instrument is None:
        _fail(ValueError(f"symbol {symbol!r} is not in the tickers table"))
    try:
        when = (resolve_as_of(as_of, instrument["timezone"],
                               calendar=instrument.get("trading_calendar")) if as_of
                else pd.Timestamp.now(tz="UTC").to_pydatetime())
    except BuddyError as exc:
        _fail(exc)
    snapshot, reason = regime_at(store, symbol, timeframe, when)
    if snapshot is None:
        _fail(ValueError(f"no regime for {symbol} {timeframe} at {when.isoformat()}: "
                         f"{reason}"))
    if as_json:
        payload: dict[str, Any] = asdict(snapshot)
        payload["hmm_state_label"] = snapshot.hmm_state_label
        payload["transition_risk"] = {str(h): snapshot.transition_risk(h)
                                      for h in RISK_HORIZONS}
        click.echo(json.dumps(payload, indent=2, default=str))
        return
    click.echo(format_regime(snapshot))


def format_regime(snapshot: Any) -> str:
    """Return a RegimeSnapshot as a few readable lines."""
    s = snapshot
    lines = [f"{s.symbol} {s.timeframe} regime at the bar opened {s.ts.isoformat()}",
             f"  trend      {s.trend_state:<9} ADX {s.trend_strength:.1f}",
             f"  volatility {s.vol_state:<9} vol z {s.vol_z:+.2f}"
             f"{'  (expanding)' if s.vol_expansion_flag else ''}",
             f"  liquidity  {s.liquidity_state:<9} relative volume {s.relvol:.2f}x, "
             f"spread proxy {100 * s.spread_proxy:.3f}%"]
    if s.hmm_state_id is None:
        lines.append("  HMM        not fitted yet (too little history at this bar)")
        return "\n".join(lines)
    probs = ", ".join(f"{name} {p:.2f}" for name, p in zip(s.hmm_state_labels, s.hmm_probs,
                                                            strict=True))
    risks = ", ".join(f"{h} bars {100 * (s.transition_risk(h) or 0.0):.0f}%"
                      for h in RISK_HORIZONS)
    fitted = s.fitted_through.isoformat() if s.fitted_through else "n/a"
    lines += [f"  HMM        {s.hmm_state_label:<9} filtered P: {probs}",
              f"  P(leaving the state within) {risks}",
              f"  model      {s.model_version}, fitted through the bar opened {fitted}"]
    return "\n".join(lines)
