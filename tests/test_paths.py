"""The project's files resolve to one place from any working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from buddy import paths
from buddy.store import resolve_db_path

CHECKOUT = Path(__file__).resolve().parents[1]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a folder outside the project with no path variables set."""
    for name in (paths.ROOT_ENV, paths.DB_ENV, paths.TRACKING_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_are_anchored_at_the_checkout_not_the_working_directory(elsewhere: Path) -> None:
    assert paths.project_root() == CHECKOUT
    assert resolve_db_path() == CHECKOUT / "data" / "buddy.duckdb"
    assert resolve_db_path().is_absolute()
    assert paths.tracking_uri() == f"sqlite:///{CHECKOUT}/mlruns/mlflow.db"
    assert paths.tracking_uri().startswith("sqlite:////")


def test_the_notebooks_folder_resolves_the_same_files(monkeypatch: pytest.MonkeyPatch,
                                                      elsewhere: Path) -> None:
    monkeypatch.chdir(CHECKOUT / "notebooks")
    assert resolve_db_path() == CHECKOUT / "data" / "buddy.duckdb"
    assert paths.default_tracking_uri() == f"sqlite:///{CHECKOUT}/mlruns/mlflow.db"


def test_explicit_values_win(monkeypatch: pytest.MonkeyPatch, elsewhere: Path) -> None:
    monkeypatch.setenv(paths.DB_ENV, str(elsewhere / "env.duckdb"))
    monkeypatch.setenv(paths.TRACKING_ENV, "sqlite:////x/y.db")
    assert resolve_db_path() == elsewhere / "env.duckdb"
    assert resolve_db_path(elsewhere / "arg.duckdb") == elsewhere / "arg.duckdb"
    assert paths.tracking_uri() == "sqlite:////x/y.db"
    # the default stays the project's, whatever the variables say
    assert paths.default_tracking_uri() == f"sqlite:///{CHECKOUT}/mlruns/mlflow.db"


def test_the_root_variable_moves_every_default(monkeypatch: pytest.MonkeyPatch,
                                               elsewhere: Path) -> None:
    monkeypatch.setenv(paths.ROOT_ENV, str(elsewhere))
    assert paths.project_root() == elsewhere.resolve()
    assert paths.db_path() == elsewhere.resolve() / "data" / "buddy.duckdb"
    assert paths.default_tracking_uri() == f"sqlite:///{elsewhere.resolve()}/mlruns/mlflow.db"


def test_an_empty_variable_is_unset(monkeypatch: pytest.MonkeyPatch, elsewhere: Path) -> None:
    monkeypatch.setenv(paths.DB_ENV, "  ")
    monkeypatch.setenv(paths.TRACKING_ENV, "")
    assert paths.db_path() == CHECKOUT / "data" / "buddy.duckdb"
    assert paths.tracking_uri() == paths.default_tracking_uri()
