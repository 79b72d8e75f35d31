"""Accounts and versioned rules: validation before any write, one version per change."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from buddy.context.builder import ContextPackBuilder, PieceRequest
from buddy.errors import BuddyError, ConfigError
from buddy.store import Store
from buddy.timeframes import Timeframe
from buddy.users import store as users_store
from buddy.users.model import AccountContext, ExitTemplate, PartialExit, RiskRules
from buddy.users.provider import account_provider
from buddy.users.store import (
    UserSettingsError,
    exit_templates,
    get_account_context,
    get_user,
    parse_rule_value,
    rules_at_version,
    rules_history,
    save_exit_template,
    set_user,
)
from tests.factories import instrument

USER_TABLES = ("user_accounts", "user_rules", "user_rules_history", "exit_templates",
               "user_preferences")
SWING = ExitTemplate(name="swing", target_r=2.0, time_stop_bars=5, breakeven_at_r=1.0,
                     partials=(PartialExit(at_r=1.0, fraction=0.5),))


@pytest.fixture
def store(empty_store: Store) -> Store:
    return empty_store


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Return a store where alice has an account, rules v1 and a template (shared: the tests
    using it only attempt bad updates, and each checks that nothing was written)."""
    store = Store(tmp_path_factory.mktemp("prepared") / "buddy.duckdb")
    set_user(store, "alice", equity=10_000, rules={"max_risk_per_trade_pct": 0.5})
    save_exit_template(store, "alice", SWING)
    return store


def _snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of every user table (one connection: opening one costs ~0.1 s)."""
    with store.connect(read_only=True) as con:
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in USER_TABLES}


# ---------------------------------------------------------------------------- schema
def test_migration_adds_the_user_tables_and_rules_version(store: Store) -> None:
    tables = store.tables()
    assert tables["user_rules_history"] == ["user_id", "version", "rules_json", "created_at"]
    assert tables["exit_templates"] == ["user_id", "name", "template_json", "updated_at"]
    assert tables["user_preferences"] == ["user_id", "disabled_modules_json",
                                          "disclosures_off_json", "strictness",
                                          "nudge_sensitivity", "updated_at"]
    assert "rules_version" in tables["trade_evaluations"]
    assert tables["user_rules"] == ["user_id", "rules_json", "version", "updated_at"]


# ---------------------------------------------------------------------------- versioning
def test_a_new_user_gets_version_1_merged_over_the_defaults(store: Store) -> None:
    state = set_user(store, "alice", base_currency="eur", equity=25_000,
                     rules={"max_risk_per_trade_pct": 0.5})
    assert state.rules_version == 1 and state.rules_changed
    assert state.account.base_currency == "EUR"
    assert state.account.equity_snapshot == 25_000.0
    assert state.rules == RiskRules(max_risk_per_trade_pct=0.5)
    assert get_user(store, "alice") == dataclasses.replace(state, rules_changed=False)
    assert [v.version for v in rules_history(store, "alice")] == [1]


def test_a_change_writes_version_n_plus_1_and_keeps_every_version(store: Store) -> None:
    set_user(store, "alice", rules={"max_risk_per_trade_pct": 0.5})
    second = set_user(store, "alice", rules={"min_reward_risk": 2})
    third = set_user(store, "alice", rules={"max_risk_per_trade_pct": 1.0})
    assert (second.rules_version, third.rules_version) == (2, 3)
    assert third.rules == RiskRules(max_risk_per_trade_pct=1.0, min_reward_risk=2.0)
    history = rules_history(store, "alice")
    assert [v.version for v in history] == [1, 2, 3]
    assert history[0].rules == RiskRules(max_risk_per_trade_pct=0.5)
    assert history[1].rules == RiskRules(max_risk_per_trade_pct=0.5, min_reward_risk=2.0)
    assert all(v.created_at.tzinfo is not None for v in history)
    assert rules_at_version(store, "alice", 1) == history[0].rules
    assert rules_at_version(store, "alice", 4) is None
    current = store.query("SELECT version, rules_json FROM user_rules WHERE user_id = 'alice'")
    assert list(current["version"]) == [3]
    mirror = store.query("SELECT risk_defaults_json FROM user_accounts")
    assert mirror.iloc[0, 0] == current.iloc[0, 1]


@pytest.mark.parametrize("same", [
    {},
    {"max_risk_per_trade_pct": 0.5},
    {"max_risk_per_trade_pct": 0.5, "allowed_symbols": ["msft", "AAPL"]},
    {"allowed_symbols": "AAPL, MSFT, aapl", "allowed_timeframes": ("1D", "1h")},
    RiskRules(max_risk_per_trade_pct=0.5, allowed_symbols=("AAPL", "MSFT"),
              allowed_timeframes=("1h", "1d")),
])
def test_an_identical_rule_set_does_not_bump_the_version(store: Store, same: Any) -> None:
    set_user(store, "alice", rules={"max_risk_per_trade_pct": 0.5,
                                    "allowed_symbols": ("AAPL", "MSFT"),
                                    "allowed_timeframes": ["1h", "1d"]})
    before, stamp = _snapshot(store), store.context_stamp()
    state = set_user(store, "alice", rules=same)
    assert state.rules_version == 1 and not state.rules_changed
    assert _snapshot(store) == before
    assert store.context_stamp() == stamp


def test_account_only_changes_keep_the_version_and_touch_the_stamp(store: Store) -> None:
    set_user(store, "alice", equity=10_000)
    stamp = store.context_stamp()
    state = set_user(store, "alice", equity=12_500, buying_power=20_000)
    assert state.rules_version == 1 and not state.rules_changed
    assert state.account.buying_power_snapshot == 20_000.0
    assert store.context_stamp() != stamp
    assert get_user(store, "alice").account == state.account


def test_a_change_made_meanwhile_by_another_process_is_not_overwritten(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_user(store, "alice", equity=1_000)
    seen = get_user(store, "alice")  # what this process validated against
    set_user(store, "alice", rules={"min_reward_risk": 2})  # another process, meanwhile
    with monkeypatch.context() as patched:
        patched.setattr(users_store, "get_user", lambda _store, _user: seen)
        with pytest.raises(BuddyError, match="changed by another process"):
            set_user(store, "alice", equity=2_000)
    state = get_user(store, "alice")
    assert state.account.equity_snapshot == 1_000.0 and state.rules_version == 2


# ---------------------------------------------------------------------------- refusals
def test_a_typo_names_the_key_and_suggests_the_closest(store: Store) -> None:
    with pytest.raises(UserSettingsError) as err:
        set_user(store, "alice", rules={"max_risk_per_trade_pc": 2})
    assert err.value.fields == ("rules.max_risk_per_trade_pc",)
    assert "did you mean 'max_risk_per_trade_pct'" in str(err.value)
    assert isinstance(err.value, ConfigError)


def test_an_out_of_range_value_names_the_key_the_range_and_the_value(store: Store) -> None:
    with pytest.raises(UserSettingsError) as err:
        set_user(store, "alice", rules={"max_risk_per_trade_pct": 25})
    message = str(err.value)
    assert "rules.max_risk_per_trade_pct" in message
    assert "between 0.01 and 10" in message and "25" in message


def test_every_problem_is_reported_at_once(store: Store) -> None:
    with pytest.raises(UserSettingsError) as err:
        set_user(store, "alice", base_currency="dollars", equity=-5, buying_power=float("nan"),
                 rules={"min_reward_risk": 0, "stop_requird": False,
                        "allowed_timeframes": ["1d", "2d"], "trading_windows": ["25:00-26:00"]},
                 disabled_modules=["data_qualty"], disclosures_off=["data_source"],
                 strictness="harsh")
    fields = set(err.value.fields)
    assert {"account.base_currency", "account.equity_snapshot",
            "account.buying_power_snapshot", "rules.stop_requird",
            "rules.allowed_timeframes", "rules.trading_windows",
            "preferences.disabled_modules", "preferences.disclosures_off",
            "preferences.strictness"} <= fields
    message = str(err.value)
    assert "did you mean 'data_quality'" in message
    assert "did you mean 'data_sources'" in message
    assert "did you mean 'stop_required'" in message


@pytest.mark.parametrize(("bad", "field"), [
    ({"rules": {"max_daily_loss_pct": 80}}, "rules.max_daily_loss_pct"),
    ({"rules": {"max_open_heat_pct": float("inf")}}, "rules.max_open_heat_pct"),
    ({"rules": {"min_reward_risk": True}}, "rules.min_reward_risk"),
    ({"rules": {"min_reward_risk": 10**400}}, "rules.min_reward_risk"),
    ({"rules": {"stop_required": "yes"}}, "rules.stop_required"),
    ({"rules": {"allowed_symbols": [1, 2]}}, "rules.allowed_symbols"),
    ({"rules": {"trading_windows": "10:00-10:00"}}, "rules.trading_windows"),
    ({"rules": {"default_exit_template": "swnig"}}, "rules.default_exit_template"),
    ({"rules": ["max_risk_per_trade_pct"]}, "rules"),
    ({"equity": 0}, "account.equity_snapshot"),
    ({"equity": True}, "account.equity_snapshot"),
    ({"buying_power": -1}, "account.buying_power_snapshot"),
    ({"base_currency": "US"}, "account.base_currency"),
    ({"disabled_modules": [3]}, "preferences.disabled_modules"),
    ({"nudge_sensitivity": "loud"}, "preferences.nudge_sensitivity"),
])
def test_a_bad_update_writes_nothing(prepared: Store, bad: dict[str, Any], field: str) -> None:
    before, stamp = _snapshot(prepared), prepared.context_stamp()
    assert before["user_rules_history"] and before["exit_templates"]
    # a valid change rides along with the bad one: it must not be written either
    with pytest.raises(UserSettingsError) as err:
        set_user(prepared, "alice", **{"base_currency": "EUR", "strictness": "strict", **bad})
    assert field in err.value.fields
    assert _snapshot(prepared) == before
    assert prepared.context_stamp() == stamp


def test_a_bad_new_user_writes_nothing(store: Store) -> None:
    with pytest.raises(UserSettingsError):
        set_user(store, "bob", equity=5_000, rules={"min_reward_risk": 100})
    assert all(not rows for rows in _snapshot(store).values())
    assert get_user(store, "bob") is None


@pytest.mark.parametrize("user_id", ["", "  ", " alice", None, 7])
def test_a_bad_user_id_is_refused(store: Store, user_id: Any) -> None:
    with pytest.raises(UserSettingsError, match="user_id"):
        set_user(store, user_id)


def test_rules_keep_canonical_types(store: Store) -> None:
    state = set_user(store, "alice", rules={
        "allowed_symbols": "msft, aapl,", "allowed_timeframes": ["1D", "1h", "1d"],
        "trading_windows": ["14:00-16:00", "09:30-11:30"], "max_daily_loss_pct": 2})
    rules = state.rules
    assert rules.allowed_symbols == ("AAPL", "MSFT")
    assert rules.allowed_timeframes == ("1h", "1d")
    assert rules.trading_windows == ("09:30-11:30", "14:00-16:00")
    assert isinstance(rules.max_daily_loss_pct, float)
    assert get_user(store, "alice").rules == rules


@pytest.mark.parametrize(("key", "text", "value"), [
    ("max_risk_per_trade_pct", " 0.5 ", 0.5),
    ("max_risk_per_trade_pct", "abc", "abc"),
    ("stop_required", "no", False),
    ("stop_required", "Yes", True),
    ("stop_required", "maybe", "maybe"),
    ("allowed_symbols", "aapl, msft", ("aapl", "msft")),
    ("allowed_symbols", "", ()),
    ("default_exit_template", "none", None),
    ("default_exit_template", "swing", "swing"),
    ("not_a_rule", "5", "5"),
])
def test_parse_rule_value(key: str, text: str, value: Any) -> None:
    assert parse_rule_value(key, text) == value


# ---------------------------------------------------------------------------- preferences
def test_opt_outs_round_trip_and_reach_the_account_context(store: Store) -> None:
    set_user(store, "alice", disabled_modules=["data_quality"],
             disclosures_off=("data_sources", "hypothetical"), nudge_sensitivity="low")
    context = get_account_context(store, "alice")
    assert context.disabled_modules == ("data_quality",)
    assert context.disclosures_off == ("data_sources", "hypothetical")
    assert get_user(store, "alice").preferences.nudge_sensitivity == "low"
    state = set_user(store, "alice", disabled_modules=[])
    assert state.preferences.disabled_modules == ()
    assert state.preferences.disclosures_off == ("data_sources", "hypothetical")


def test_the_no_prediction_disclosure_cannot_be_switched_off(store: Store) -> None:
    with pytest.raises(UserSettingsError, match=r"no_prediction.*cannot be switched off"):
        set_user(store, "alice", disclosures_off=["no_prediction", "data_sources"])
    assert get_user(store, "alice") is None


# ---------------------------------------------------------------------------- exit templates
def test_exit_templates_round_trip_and_replace_by_name(store: Store) -> None:
    set_user(store, "alice")
    stamp = store.context_stamp()
    save_exit_template(store, "alice", SWING)
    assert store.context_stamp() != stamp
    scalp = ExitTemplate(name="scalp", target_r=1, trailing_atr=1.5)
    save_exit_template(store, "alice", scalp)
    assert exit_templates(store, "alice") == (scalp, SWING)
    tighter = ExitTemplate(name="swing", target_r=3.0, time_stop_bars=10)
    save_exit_template(store, "alice", tighter)
    assert exit_templates(store, "alice") == (scalp, tighter)


def test_the_default_exit_template_must_be_saved_first(store: Store) -> None:
    set_user(store, "alice")
    with pytest.raises(UserSettingsError, match="must name a saved exit template"):
        set_user(store, "alice", rules={"default_exit_template": "swing"})
    save_exit_template(store, "alice", SWING)
    state = set_user(store, "alice", rules={"default_exit_template": "swing"})
    assert state.rules_version == 2
    assert state.context.exit_template(None) == SWING


@pytest.mark.parametrize(("template", "field"), [
    (ExitTemplate(name=""), "exit_template.name"),
    (ExitTemplate(name="x", target_r=0.0), "exit_template.target_r"),
    (ExitTemplate(name="x", target_r=float("nan")), "exit_template.target_r"),
    (ExitTemplate(name="x", breakeven_at_r=-1.0), "exit_template.breakeven_at_r"),
    (ExitTemplate(name="x", trailing_atr=100.0), "exit_template.trailing_atr"),
    (ExitTemplate(name="x", time_stop_bars=0), "exit_template.time_stop_bars"),
    (ExitTemplate(name="x", time_stop_bars=2.5), "exit_template.time_stop_bars"),
    (ExitTemplate(name="x", partials=(PartialExit(at_r=1, fraction=1.5),)),
     "exit_template.partials.fraction"),
    (ExitTemplate(name="x", partials=(PartialExit(at_r=1, fraction=0.6),
                                      PartialExit(at_r=2, fraction=0.6))),
     "exit_template.partials"),
    (ExitTemplate(name="x", partials=({"at_r": 1, "fraction": 0.5},)), "exit_template.partials"),
])
def test_a_bad_exit_template_writes_nothing(prepared: Store, template: ExitTemplate,
                                             field: str) -> None:
    before, stamp = _snapshot(prepared), prepared.context_stamp()
    with pytest.raises(UserSettingsError) as err:
        save_exit_template(prepared, "alice", template)
    assert field in err.value.fields
    assert _snapshot(prepared) == before
    assert prepared.context_stamp() == stamp


def test_an_exit_template_needs_an_account(store: Store) -> None:
    with pytest.raises(UserSettingsError, match="has no account"):
        save_exit_template(store, "ghost", SWING)
    assert exit_templates(store, "ghost") == ()


# ---------------------------------------------------------------------------- provider
def _request(store: Store, user_id: str) -> PieceRequest:
    return PieceRequest(store=store, user_id=user_id, instrument=instrument(),
                        timeframe=Timeframe.D1, as_of=datetime(2012, 6, 1, 20, tzinfo=UTC),
                        market=None)


def test_the_provider_explains_an_unknown_user(store: Store) -> None:
    piece, reason = account_provider(_request(store, "ghost"))
    assert piece is None
    assert reason == "user ghost has no account; run `buddy user set --user ghost ...`"


def test_the_provider_returns_the_current_account_context(store: Store) -> None:
    set_user(store, "alice", equity=50_000, rules={"min_reward_risk": 2})
    save_exit_template(store, "alice", SWING)
    piece, reason = account_provider(_request(store, "alice"))
    assert reason is None and isinstance(piece, AccountContext)
    assert piece.account.equity_snapshot == 50_000.0
    assert piece.rules.min_reward_risk == 2.0 and piece.rules_version == 1
    assert piece.exit_templates == (SWING,)


def test_a_rules_change_reaches_a_cached_context_pack(store: Store) -> None:
    ticker = pd.DataFrame([{"symbol": "TEST", "name": "Test", "asset_class": "equity",
                            "exchange": "XNYS", "currency": "USD", "sector": None,
                            "tick_size": 0.01, "lot_size": 1.0, "contract_multiplier": 1.0,
                            "trading_calendar": "XNYS", "benchmark": None,
                            "timezone": "America/New_York", "source": "t", "licence": "t"}])
    store.write_market_data(tickers=ticker)
    builder = ContextPackBuilder(store)
    builder.register("account", account_provider)
    as_of = datetime(2012, 6, 1, 20, tzinfo=UTC)
    pack = builder.build("alice", "TEST", "1d", as_of)
    assert pack.account is None and "buddy user set --user alice" in pack.missing["account"]
    set_user(store, "alice", rules={"min_reward_risk": 2})
    pack = builder.build("alice", "TEST", "1d", as_of)
    assert pack.account.rules_version == 1 and "account" not in pack.missing
    set_user(store, "alice", rules={"min_reward_risk": 3})
    pack = builder.build("alice", "TEST", "1d", as_of)
    assert pack.account.rules_version == 2 and pack.account.rules.min_reward_risk == 3.0
