"""Notebook parameters are typed and described, read the project's database from any folder,
and the notebook and the command line speak one intent-source vocabulary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import papermill as pm
import pytest

from buddy import paths
from buddy.errors import FieldErrors
from buddy.store import Store
from replay.intents import GENERATORS
from replay.reports import as_of_bound, load_intents, scoring_config

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_parameter_has_a_type_and_a_help_text(path: Path) -> None:
    found = pm.inspect_notebook(str(path))
    assert found, f"{path.name} declares no parameters"
    for name, parameter in found.items():
        assert parameter["inferred_type_name"] not in ("None", None), (path.name, name)
        assert parameter["help"].strip(), (path.name, name)
    # the database comes from the project (or $BUDDY_DB), never from a path relative to
    # the folder the kernel happens to start in
    assert found["db_path"]["default"] == '""', path.name


def test_help_notebook_describes_the_replay_parameters() -> None:
    shown = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook",
                            str(ROOT / "notebooks" / "10_replay.ipynb")],
                           capture_output=True, text=True, check=True, timeout=120).stdout
    for line in ("intent_source: str", "symbols: list[str]", "n_boot: int",
                 "progress: bool", "csv:PATH"):
        assert line in shown, shown


def test_an_empty_db_path_is_the_project_database_from_any_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUDDY_DB", raising=False)
    monkeypatch.delenv(paths.ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    # a copy of the checkout's root marker: no database there yet
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    with pytest.raises(FieldErrors) as refused:
        paths.database_for("")
    assert refused.value.fields == ("db_path",) and "make demo" in str(refused.value)
    built = paths.database_for("", build=True)
    assert built == tmp_path / "data" / "buddy.duckdb" and built.parent.is_dir()
    assert not built.exists()  # the caller builds it (and says so)


def test_a_named_missing_database_is_refused_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "buddy.duckdb"
    for build in (False, True):
        with pytest.raises(FieldErrors) as refused:
            paths.database_for(missing, build=build)
        assert refused.value.fields == ("db_path",) and str(missing) in str(refused.value)
    assert not missing.parent.exists()


def test_a_named_relative_path_is_read_from_the_working_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Store(tmp_path / "mine.duckdb")
    monkeypatch.chdir(tmp_path)
    assert paths.database_for("mine.duckdb") == tmp_path / "mine.duckdb"
    assert os.path.isabs(paths.database_for("mine.duckdb"))


@pytest.mark.parametrize("source", ["import:trades.csv", "random_entry", "generator:nope",
                                    "csv:", "databases", ""])
def test_sources_outside_the_vocabulary_are_refused_naming_the_field(
        empty_store: Store, source: str) -> None:
    with pytest.raises(FieldErrors) as refused:
        load_intents(empty_store, source)
    assert refused.value.fields == ("intent_source",)
    text = str(refused.value)
    assert all(name in text for name in GENERATORS) and "csv:PATH" in text
    with pytest.raises(FieldErrors) as as_option:
        load_intents(empty_store, source, field="--source")
    assert as_option.value.fields == ("--source",)


def test_a_missing_csv_and_a_zoneless_time_are_refused(empty_store: Store,
                                                      tmp_path: Path) -> None:
    with pytest.raises(FieldErrors, match="existing CSV file"):
        load_intents(empty_store, f"csv:{tmp_path / 'none.csv'}")
    with pytest.raises(FieldErrors) as refused:
        load_intents(empty_store, "random", start="2011-01-01T10:00", field="--source")
    assert refused.value.fields == ("--start",)
    with pytest.raises(FieldErrors) as bad_date:
        as_of_bound("2011-13-01", "end")
    assert bad_date.value.fields == ("end",)


def test_dates_bound_whole_utc_days_and_empty_is_open() -> None:
    assert as_of_bound("", "start") is None and as_of_bound(None, "end") is None
    assert str(as_of_bound("2011-01-01", "start")) == "2011-01-01 00:00:00+00:00"
    assert str(as_of_bound("2011-01-01", "end")) == "2011-01-01 23:59:59.999999+00:00"
    assert str(as_of_bound("2011-01-01T10:00-05:00", "start")) == "2011-01-01 15:00:00+00:00"


def test_a_generator_by_name_or_prefix_gives_the_same_intents(sample_store: Store) -> None:
    window = dict(symbols=["ibm"], timeframe="1d", start="2010-01-01", end="2010-06-30")
    bare, trades = load_intents(sample_store, "random", **window)
    prefixed, _ = load_intents(sample_store, "generator:random", **window)
    assert trades is None and len(bare) > 0
    assert bare.equals(prefixed)
    assert set(bare["symbol"]) == {"IBM"} and set(bare["timeframe"]) == {"1d"}


def test_scoring_config_names_its_field(tmp_path: Path) -> None:
    assert scoring_config("default").name == "default"
    with pytest.raises(FieldErrors) as refused:
        scoring_config(str(tmp_path / "none.json"), field="--config")
    assert refused.value.fields == ("--config",)


def test_a_relative_buddy_db_that_is_missing_is_refused_not_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `BUDDY_DB=data/buddy.duckdb jupyter lab`: the kernel starts in notebooks/, where the
    # relative path names no file; building there would be a second, empty database
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BUDDY_DB", "data/buddy.duckdb")
    with pytest.raises(FieldErrors) as refused:
        paths.database_for("", build=True)
    assert refused.value.fields == ("db_path",)
    assert "BUDDY_DB" in str(refused.value) and "absolute" in str(refused.value)
    assert not (tmp_path / "data").exists()
    monkeypatch.setenv("BUDDY_DB", str(tmp_path / "abs" / "buddy.duckdb"))
    assert paths.database_for("", build=True) == tmp_path / "abs" / "buddy.duckdb"
