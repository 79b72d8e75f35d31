"""The bundled real data and the synthetic universe pass every reasonability rule: a real bar
that trips a rule means the rule is wrong (issue #16, section 3)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from buddy.data.importer import read_bars_file
from buddy.data.reasonability import REASONABILITY_RULES, check_reasonability
from buddy.data.sample import SAMPLE_SYMBOLS, load_sample
from buddy.data.synth import synth_universe
from buddy.jobs.load import synth_into
from buddy.store import Store
from buddy.timeframes import Timeframe


def test_every_sample_bar_is_examined_by_every_rule_and_none_refused() -> None:
    sample = load_sample()
    result = check_reasonability(sample.bars, corporate_actions=sample.corporate_actions)
    assert result.ok, str(result.report)
    assert set(result.examined) == set(REASONABILITY_RULES)
    assert all(n == len(sample.bars) for n in result.examined.values()), result.examined


def test_aapl_passes_even_on_the_traded_basis() -> None:
    # without its splits AAPL's 2000 and 2005 2:1 ex-dates are judged as traded, and still
    # pass: a 2:1 move on AAPL's ~3% daily range is about 23 ranges, under the 25 limit
    sample = load_sample()
    aapl = sample.bars[sample.bars["symbol"] == "AAPL"]
    assert len(sample.corporate_actions.query("symbol == 'AAPL'")) == 2
    assert check_reasonability(aapl).ok


@pytest.mark.parametrize("symbol", SAMPLE_SYMBOLS)
def test_each_sample_series_imports_from_a_file(symbol: str, tmp_path: Path) -> None:
    sample = load_sample()
    series = sample.bars[sample.bars["symbol"] == symbol]
    intraday = series["timeframe"].iloc[0] != "1d"
    table = pd.DataFrame({
        "timestamp" if intraday else "date":
            series["ts"] if intraday else pd.DatetimeIndex(series["session"]).strftime("%Y-%m-%d"),
        "open": series["open"], "high": series["high"], "low": series["low"],
        "close": series["close"], "volume": series["volume"], "adj close": series["adj_close"],
    })
    path = tmp_path / f"{symbol}.parquet"
    table.to_parquet(path, index=False)
    calendar = sample.tickers.set_index("symbol").loc[symbol, "trading_calendar"]
    bars = read_bars_file(path, symbol=symbol, timeframe=series["timeframe"].iloc[0], tz=None,
                          calendar=calendar)
    assert len(bars) == len(series)


@pytest.mark.parametrize("timeframe", [Timeframe.D1, Timeframe.H1])
def test_the_synthetic_universe_passes(timeframe: Timeframe) -> None:
    universe = synth_universe(n_symbols=8, years=2, timeframe=timeframe, seed=3)
    result = check_reasonability(universe.bars)
    assert result.ok, str(result.report)
    assert result.examined["PRICE_JUMP"] == len(universe.bars)


def test_synth_into_stores_a_checked_universe(tmp_path: Path) -> None:
    store = Store(tmp_path / "synth.duckdb")
    summary = synth_into(store, n_symbols=2, years=1, timeframe=Timeframe.D1, seed=11)
    assert summary.written["bars"] > 0
