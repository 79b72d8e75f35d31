"""The profile tab without a browser: a store holding synthetic entry facts with a planted red
flag, the tables and flags shown, the user switch and the refresh."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from buddy.store import Store
from buddy.store.strategy import write_entry_facts
from buddy.widgets.profile_view import ProfileView
from tests.strategy.factories import synthetic_facts

USER = "u1"


def _facts(frame: pd.DataFrame, user: str) -> pd.DataFrame:
    return frame.assign(user_id=user, trade_id=[f"{user}-{t}" for t in frame["trade_id"]],
                        intent_id=None, facts_version="test", trade_built_at=None,
                        computed_at=datetime(2020, 1, 1, tzinfo=UTC))


@pytest.fixture
def store(empty_store: Store) -> Store:
    write_entry_facts(empty_store, _facts(synthetic_facts(), USER),
                      remove_missing_trades=False)
    return empty_store


def test_the_tab_shows_the_profile_tables_and_the_planted_red_flag(store: Store) -> None:
    view = ProfileView(store, USER)
    profile = view.model.profile
    assert profile is not None and profile.enough and profile.n_trades == 240
    body = view.body.value
    assert f"Strategy profile of {USER}" in body and "240 closed trades" in body
    assert "tb-profile-numeric" in body and "tb-profile-values" in body
    flag = next(f for f in profile.red_flags if f.key == "side=short&regime=uptrend")
    assert "short trades in the uptrend regime" in body
    assert f"(n={flag.n_in})" in body
    lo, hi, _ = profile.usual_range("stop_atr")
    assert f"{lo:.2f} to {hi:.2f} ATR" in body


def test_the_tab_follows_the_user_and_refreshes(store: Store) -> None:
    view = ProfileView(store, USER)
    view.set_user("nobody")
    assert "not enough trades: 0 closed" in view.body.value
    assert "tb-profile-empty" in view.body.value and "buddy " not in view.body.value
    view.set_user("")
    assert view.model.profile is None and "enter a user" in view.body.value
    write_entry_facts(store, _facts(synthetic_facts(30, seed=2), "later"),
                      remove_missing_trades=False)
    view.set_user("later")
    assert view.model.profile is not None and view.model.profile.n_trades == 30
    write_entry_facts(store, _facts(synthetic_facts(50, seed=2), "later"),
                      remove_missing_trades=False)
    view.refresh_button.click()
    assert view.model.profile is not None and view.model.profile.n_trades == 50
    assert "50 closed trades" in view.body.value
