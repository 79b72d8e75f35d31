"""The served page: Voila's command line, the user a page opens with, the page's own words."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from buddy.store import Store
from buddy.users.store import set_user
from buddy.widgets import serve
from buddy.widgets.app import DEFAULT_USER, INTRO, USER_ENV, WorkbenchApp, page_user

#: Words a trader has no use for on the page: commands, parameters, paths, variables.
DEVELOPER_TEXT = re.compile(r"make |db_path|papermill|\$BUDDY|BUDDY_DB|\.duckdb|\.ipynb|"
                            r"Traceback|voila", re.IGNORECASE)


@pytest.fixture(scope="module")
def db(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("page") / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    return path


def test_voila_shows_neither_tracebacks_nor_the_notebooks_text() -> None:
    command = serve.voila_command(8866)
    assert "--show_tracebacks=False" in command
    assert "--VoilaExporter.exclude_markdown=True" in command
    assert "--strip_sources=True" in command
    assert "--Voila.ip=127.0.0.1" in command
    assert "--show_tracebacks=True" in serve.voila_command(8866, debug=True)


def test_the_server_command_is_click_with_the_shared_options() -> None:
    result = CliRunner().invoke(serve.main, ["-h"])
    assert result.exit_code == 0, result.output
    for option in ("--port", "--db", "--user", "--no-prepare", "--debug"):
        assert option in result.output
    bad = CliRunner().invoke(serve.main, ["--port", "eighty"])
    assert bad.exit_code == 2
    assert "'--port'" in bad.output and "eighty" in bad.output


def test_a_page_opens_with_a_user_who_has_an_account(db: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(USER_ENV, raising=False)
    store = Store(db)
    assert page_user(store) == ""  # nobody has an account yet: the page asks
    set_user(store, "first", equity=50_000.0)
    set_user(store, "second", equity=80_000.0)
    assert page_user(store) == "second"  # the most recently updated account
    assert page_user(store, "named-user") == "named-user"  # a named user is kept
    set_user(store, DEFAULT_USER, equity=10_000.0)
    assert page_user(store) == DEFAULT_USER  # the placeholder when it has an account
    monkeypatch.setenv(USER_ENV, "from-serve")
    assert page_user(store) == "from-serve"  # `serve --user` wins


def test_without_an_account_the_page_asks_for_a_user(tmp_path: Path, db: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(USER_ENV, raising=False)
    fresh = tmp_path / "fresh.duckdb"
    shutil.copy(db, fresh)
    store = Store(fresh)
    with store.connect() as con:
        con.execute("DELETE FROM user_accounts")
    app = WorkbenchApp.open(fresh)
    assert app.fields["user"].value == ""
    assert "enter your user id" in app.hints["user"].value
    assert app.fields["user"].placeholder == "your user id"
    app.fields["user"].value = "newcomer"
    assert app.hints["user"].value == ""


def test_the_pages_own_words_hold_no_developer_text() -> None:
    assert "Trading Buddy" in INTRO
    assert not DEVELOPER_TEXT.search(INTRO)
