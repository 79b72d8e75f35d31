"""The erroneous-bar corpus: each bad file is refused whole, naming its row, ts, rule and
value, and the database is left exactly as it was (issue #16, section 3)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from buddy.data.importer import read_bars_file
from buddy.data.validation import BarValidationError
from buddy.jobs.load import import_file_into
from buddy.store import Store
from tests.data_hygiene.conftest import import_options, write_csv

PRICES = ["Open", "High", "Low", "Close"]
Edit = Callable[[pd.DataFrame], None]


def _scaled(row: int, columns: list[str], factor: float) -> Edit:
    def edit(table: pd.DataFrame) -> None:
        table.loc[row, columns] = table.loc[row, columns] * factor
    return edit


def _set(row: int, columns: list[str], value: float) -> Edit:
    def edit(table: pd.DataFrame) -> None:
        table.loc[row, columns] = value
    return edit


# name: (edit, row, rule, column, value as the error prints it ('' when computed))
CORPUS: dict[str, tuple[Edit, int, str, str, str]] = {
    "high 1e308": (_set(14, ["High"], 1e308), 14, "PRICE_OUTSIDE_BOUNDS", "high", "1e+308"),
    "prices 1e-15": (_set(33, PRICES, 1e-15), 33, "PRICE_OUTSIDE_BOUNDS", "close", "1e-15"),
    "prices keyed x100": (_scaled(40, PRICES, 100.0), 40, "PRICE_JUMP", "high", ""),
    "low keyed /100": (_scaled(30, ["Low"], 0.01), 30, "PRICE_FAR_FROM_SERIES", "low", ""),
    "first bar x50": (_scaled(0, PRICES, 50.0), 0, "PRICE_FAR_FROM_SERIES", "high", ""),
    "last bar /20": (_scaled(99, PRICES, 1 / 20), 99, "PRICE_JUMP", "low", ""),
    "volume x1000": (_scaled(50, ["Volume"], 1000.0), 50, "VOLUME_OUTLIER", "volume", ""),
    "volume 1e300": (_set(61, ["Volume"], 1e300), 61, "VOLUME_OUTSIDE_BOUNDS", "volume",
                     "1e+300"),
    "volume negative": (_set(62, ["Volume"], -5.0), 62, "NEGATIVE_VOLUME", "volume", "-5.0"),
    "volume inf": (_set(63, ["Volume"], np.inf), 63, "NON_FINITE_VOLUME", "volume", "inf"),
    "close zero": (_set(70, ["Close", "Low"], 0.0), 70, "NON_POSITIVE_PRICE", "close", "0.0"),
    "close missing": (_set(71, ["Close"], np.nan), 71, "NON_FINITE_PRICE", "close", ""),
    "high inf": (_set(72, ["High"], np.inf), 72, "NON_FINITE_PRICE", "high", "inf"),
}


@pytest.fixture(scope="module")
def clean_bars(clean_table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
               ) -> pd.DataFrame:
    path = write_csv(clean_table, tmp_path_factory.mktemp("clean") / "clean.csv")
    return read_bars_file(path, symbol="NEWCO", timeframe="1d", tz=None, calendar="XNYS")


def test_the_clean_real_series_imports(clean_bars: pd.DataFrame) -> None:
    # it holds IBM's real -8% gap of 2005-04-15: a real move is not an error
    assert len(clean_bars) == 100
    assert pd.Timestamp("2005-04-15") in set(clean_bars["session"])


@pytest.mark.parametrize("name", list(CORPUS))
def test_an_erroneous_bar_is_refused_whole_naming_row_rule_and_value(
        name: str, clean_table: pd.DataFrame, clean_bars: pd.DataFrame, store: Store,
        tmp_path: Path, refused_leaves_store_unchanged: Callable[..., Exception]) -> None:
    edit, row, rule, column, value = CORPUS[name]
    table = clean_table.copy()
    edit(table)
    path = write_csv(table, tmp_path / "bad.csv")
    error = refused_leaves_store_unchanged(
        lambda: import_file_into(store, path, **import_options()))  # type: ignore[arg-type]
    assert isinstance(error, BarValidationError)
    found = error.report.violations
    hit = found[(found["row"] == row) & (found["rule"] == rule)]
    assert len(hit) >= 1, str(error)
    assert column in set(hit["column"])
    if value:
        assert value in set(hit["value"])
    text = str(error)
    stamp = clean_bars["ts"].iloc[row].isoformat()
    assert f"row {row} ts={stamp}: {rule} [{hit['column'].iloc[0]}=" in text
    # the refusal names only the broken bar, not its clean neighbours
    assert set(found["row"].astype(int)) == {row}
    assert store.instrument("NEWCO") is None


def test_the_jump_multiple_is_configurable(clean_table: pd.DataFrame, tmp_path: Path) -> None:
    from buddy.data.reasonability import ReasonabilityConfig

    table = clean_table.copy()
    _scaled(40, PRICES, 1.6)(table)  # a +60% bar on a ~1.5% daily range: about 30 ranges
    path = write_csv(table, tmp_path / "jump.csv")
    options = {"symbol": "NEWCO", "timeframe": "1d", "tz": None, "calendar": "XNYS"}
    with pytest.raises(BarValidationError) as caught:
        read_bars_file(path, **options)  # type: ignore[arg-type]
    found = caught.value.report.violations
    # the move back on the next bar is the end of the same error, not a second one
    assert found[["row", "rule"]].astype(str).values.tolist() == [["40", "PRICE_JUMP"]]
    bars = read_bars_file(path, **options,  # type: ignore[arg-type]
                          reasonability=ReasonabilityConfig(jump_multiple=100.0))
    assert len(bars) == 100


def test_reasonability_limits_are_validated() -> None:
    from buddy.data.reasonability import ReasonabilityConfig
    from buddy.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        ReasonabilityConfig(jump_multiple=0.0, window=1)
    assert set(caught.value.fields) == {"reasonability.jump_multiple", "reasonability.window"}
