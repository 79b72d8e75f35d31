"""Loading jobs: the bundled real data, a user's own file, and the synthetic universe.

Each job validates everything first (the bars' form, and the reasonability rules of
``buddy.data.reasonability`` on the base timeframe: derived bars are aggregates of checked
ones), derives higher timeframes, and then writes tickers, bars
and corporate actions in ONE transaction: a bad load writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from buddy.data.calendars import get_calendar
from buddy.data.frames import TICKERS_COLUMNS
from buddy.data.importer import BarFileError, read_bars_file
from buddy.data.reasonability import ReasonabilityConfig, check_reasonability
from buddy.data.resample import resample_bars
from buddy.data.sample import load_sample
from buddy.data.synth import synth_universe
from buddy.errors import FieldError
from buddy.store import Store
from buddy.timeframes import Timeframe
from buddy.validation import checked_symbol, symbol_errors

#: Higher timeframes derived from each stored base timeframe (session-aware resampling).
DERIVED_TIMEFRAMES: dict[Timeframe, tuple[Timeframe, ...]] = {
    Timeframe.H1: (Timeframe.H4, Timeframe.D1),
    Timeframe.D1: (Timeframe.W1,),
}


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """What a load wrote, and the gaps it found (reported, never filled)."""

    written: dict[str, int]
    coverage: pd.DataFrame
    gaps: pd.DataFrame

    def __str__(self) -> str:
        lines = ["wrote " + ", ".join(f"{n:,} {t}" for t, n in self.written.items())]
        lines.append(self.coverage.to_string(index=False))
        if len(self.gaps):
            per = self.gaps.groupby("symbol").size()
            lines.append("gaps against the trading calendar (reported, not filled): "
                         + ", ".join(f"{s} {n}" for s, n in per.items()))
        return "\n".join(lines)


def with_derived_timeframes(bars: pd.DataFrame, tickers: pd.DataFrame) -> pd.DataFrame:
    """Return ``bars`` plus the higher timeframes resampled from each series."""
    calendars = dict(zip(tickers["symbol"], tickers["trading_calendar"], strict=True))
    pieces = [bars]
    for (symbol, timeframe), series in bars.groupby(["symbol", "timeframe"], sort=True):
        for target in DERIVED_TIMEFRAMES.get(Timeframe.parse(timeframe), ()):
            pieces.append(resample_bars(series, target, get_calendar(calendars[symbol])))
    return pd.concat(pieces, ignore_index=True)


def load_sample_into(store: Store) -> LoadSummary:
    """Load the bundled real data (stocks, indices, EURUSD) with derived timeframes."""
    sample = load_sample()
    check_reasonability(sample.bars,
                        corporate_actions=sample.corporate_actions).raise_if_invalid()
    bars = with_derived_timeframes(sample.bars, sample.tickers)
    written = store.write_market_data(tickers=sample.tickers, bars=bars,
                                      corporate_actions=sample.corporate_actions)
    return LoadSummary(written=written, coverage=store.bar_coverage(), gaps=sample.gaps)


def instrument_size_errors(**sizes: Any) -> list[FieldError]:
    """Return the tick and lot sizes (by name) that are not finite numbers above 0."""
    errors: list[FieldError] = []
    for name, value in sizes.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not (math.isfinite(number) and number > 0):
            errors.append(FieldError(name, "must be a finite number above 0", value))
    return errors


def import_file_into(store: Store, path: Path, *, symbol: str, timeframe: str,
                     tz: str | None, calendar: str, asset_class: str, currency: str,
                     tick_size: float, lot_size: float,
                     allow_jumps: Collection[str] = ()) -> LoadSummary:
    """Import a user's CSV/Parquet bars; create the ticker if it is new.

    The symbol, tick and lot sizes are checked first; the bars must then pass validation and
    the reasonability rules on the split basis of the store's corporate actions for the
    symbol, the stored bars just before the file being the reference of its first bars
    (``allow_jumps``: ISO dates of real gaps). Nothing is written on any error.
    """
    errors = symbol_errors(symbol) + instrument_size_errors(tick_size=tick_size,
                                                            lot_size=lot_size)
    if errors:
        raise BarFileError(errors)
    symbol = checked_symbol(symbol)
    existing = store.instrument(symbol)
    cal_name = existing["trading_calendar"] if existing else calendar
    tf = Timeframe.parse(timeframe)
    def stored_before(first_open: pd.Timestamp) -> pd.DataFrame:
        # a span that holds far more than the reference window of bars, weekends included
        span = tf.nominal * 7 * ReasonabilityConfig().window + pd.Timedelta(days=7)
        return store.bars(symbol, tf.value, as_of=first_open.to_pydatetime(),
                          start=(first_open - span).to_pydatetime())

    bars = read_bars_file(path, symbol=symbol, timeframe=tf, tz=tz,
                          calendar=get_calendar(cal_name),
                          corporate_actions=store.corporate_actions(symbol),
                          allow=allow_jumps,
                          history=stored_before if existing is not None else None)
    tickers = None
    if existing is None:
        cal = get_calendar(cal_name)
        tickers = pd.DataFrame([{
            "symbol": symbol, "name": symbol, "asset_class": asset_class,
            "exchange": cal_name, "currency": currency, "sector": None,
            "tick_size": tick_size, "lot_size": lot_size, "contract_multiplier": 1.0,
            "trading_calendar": cal_name, "benchmark": None, "timezone": str(cal.tz),
            "source": f"user import {path.name}", "licence": "user-supplied"}],
            columns=list(TICKERS_COLUMNS))
    ticker_frame = tickers if tickers is not None else pd.DataFrame(
        [existing])[list(TICKERS_COLUMNS)]
    all_bars = with_derived_timeframes(bars, ticker_frame)
    written = store.write_market_data(tickers=tickers, bars=all_bars)
    coverage = store.bar_coverage()
    return LoadSummary(written=written, coverage=coverage[coverage["symbol"] == symbol],
                       gaps=pd.DataFrame(columns=["symbol"]))


def synth_into(store: Store, *, n_symbols: int, years: float, timeframe: Timeframe,
               seed: int) -> LoadSummary:
    """Generate and store the synthetic universe and its true regimes."""
    universe = synth_universe(n_symbols=n_symbols, years=years, timeframe=timeframe, seed=seed)
    check_reasonability(universe.bars).raise_if_invalid()
    written = store.write_market_data(tickers=universe.tickers, bars=universe.bars,
                                      synthetic_regimes=universe.true_regimes)
    coverage = store.bar_coverage()
    coverage = coverage[coverage["symbol"].isin(universe.tickers["symbol"])]
    return LoadSummary(written=written, coverage=coverage.head(10),
                       gaps=pd.DataFrame(columns=["symbol"]))
