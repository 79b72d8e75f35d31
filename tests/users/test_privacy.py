"""Privacy: every per-user query returns that user's rows only.

Two users on a copy of the bundled real data, each with accounts, several rules versions,
exit templates, opt-outs, intents and logged evaluations.
"""

from __future__ import annotations

import inspect
import shutil
from datetime import UTC, datetime
from typing import Any

import pytest

from buddy.api import Buddy
from buddy.config import ModuleSpec, ScoringConfig
from buddy.context.builder import ContextPackBuilder
from buddy.report import BuddyReport
from buddy.store import Store
from buddy.users import store as users_store
from buddy.users.model import ExitTemplate
from buddy.users.provider import account_provider
from buddy.users.store import (
    exit_templates,
    get_account_context,
    get_user,
    rules_at_version,
    rules_history,
    save_exit_template,
    set_user,
)

ALICE, BOB, CAROL = "alice", "bob", "carol"
#: Strings only the named user's rows contain.
MARKERS = {ALICE: ("alice", "alice-swing", "AAPL"), BOB: ("bob", "bob-scalp", "MSFT")}
AS_OF = datetime(2012, 6, 1, 21, tzinfo=UTC)
DATA_QUALITY_ONLY = ScoringConfig(name="privacy", modules=(ModuleSpec(name="data_quality"),))


def _evaluate(buddy: Buddy, user: str, **trade: Any) -> BuddyReport:
    """Evaluate and log as Buddy will once it records the rules version it used."""
    intent = buddy.make_intent(user=user, **trade)
    ctx = buddy.builder.build(intent.user_id, intent.symbol, intent.timeframe, intent.as_of)
    report = buddy.evaluate_intent(intent, log=False)
    buddy.store.log_evaluation(intent.as_row(), {**report.evaluation_row(),
                                                 "rules_version": ctx.account.rules_version},
                               report.item_rows())
    return report


@pytest.fixture(scope="module")
def store(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    path = tmp_path_factory.mktemp("privacy") / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    store = Store(path)
    set_user(store, ALICE, equity=25_000, rules={"allowed_symbols": ["AAPL"],
                                                 "max_risk_per_trade_pct": 0.5})
    save_exit_template(store, ALICE, ExitTemplate(name="alice-swing", target_r=2.0))
    set_user(store, ALICE, rules={"min_reward_risk": 2.5, "default_exit_template": "alice-swing"},
             disclosures_off=["hypothetical"])
    set_user(store, BOB, base_currency="EUR", equity=9_000,
             rules={"allowed_symbols": ["MSFT"]}, disabled_modules=["data_quality"])
    save_exit_template(store, BOB, ExitTemplate(name="bob-scalp", target_r=1.0))

    builder = ContextPackBuilder(store)
    builder.register("account", account_provider)
    buddy = Buddy(store, DATA_QUALITY_ONLY, builder=builder)
    aapl = dict(symbol="AAPL", side="long", timeframe="1d", entry=560.0, stop=540.0,
                target=600.0, size=10)
    _evaluate(buddy, ALICE, as_of="2012-06-01", **aapl)
    _evaluate(buddy, ALICE, as_of="2012-07-02", **aapl)
    _evaluate(buddy, BOB, symbol="MSFT", side="short", timeframe="1d", entry=29.0, stop=30.0,
              target=27.0, size=100, as_of="2012-06-01")
    return store


def _per_user_reads() -> list[Any]:
    """Return every public function of buddy.users.store called as f(store, user_id)."""
    found = []
    for name, func in inspect.getmembers(users_store, inspect.isfunction):
        if name.startswith("_") or func.__module__ != users_store.__name__:
            continue
        params = list(inspect.signature(func).parameters.values())
        required = [p.name for p in params if p.default is inspect.Parameter.empty
                    and p.kind is not p.VAR_KEYWORD]
        if required == ["store", "user_id"] and not name.startswith(("set_", "save_")):
            found.append(func)
    return found


def test_the_leak_scan_covers_every_per_user_read() -> None:
    names = {f.__name__ for f in _per_user_reads()}
    assert {"get_user", "get_account_context", "rules_history", "exit_templates"} <= names


@pytest.mark.parametrize("user", [ALICE, BOB])
def test_no_read_of_one_user_carries_the_other_users_rows(store: Store, user: str) -> None:
    other = BOB if user == ALICE else ALICE
    results = {f.__name__: f(store, user) for f in _per_user_reads()}
    results["evaluations"] = store.evaluations(user).to_dict("records")
    for name, result in results.items():
        text = repr(result)
        assert any(m in text for m in MARKERS[user]), f"{name}({user}) found nothing"
        leaked = [m for m in MARKERS[other] if m in text]
        assert not leaked, f"{name}({user}) shows {other}'s {leaked}"


def test_each_user_reads_back_exactly_their_own_state(store: Store) -> None:
    alice, bob = get_user(store, ALICE), get_user(store, BOB)
    assert (alice.account.user_id, bob.account.user_id) == (ALICE, BOB)
    assert (alice.account.base_currency, bob.account.base_currency) == ("USD", "EUR")
    assert alice.rules.allowed_symbols == ("AAPL",) and bob.rules.allowed_symbols == ("MSFT",)
    assert (alice.rules_version, bob.rules_version) == (2, 1)
    assert [t.name for t in exit_templates(store, ALICE)] == ["alice-swing"]
    assert [t.name for t in exit_templates(store, BOB)] == ["bob-scalp"]
    assert alice.preferences.disclosures_off == ("hypothetical",)
    assert alice.preferences.disabled_modules == ()
    assert bob.preferences.disabled_modules == ("data_quality",)
    assert get_account_context(store, BOB).rules.default_exit_template is None


def test_rules_history_and_versions_are_per_user(store: Store) -> None:
    assert [v.version for v in rules_history(store, ALICE)] == [1, 2]
    assert [v.version for v in rules_history(store, BOB)] == [1]
    assert rules_at_version(store, ALICE, 2).min_reward_risk == 2.5
    assert rules_at_version(store, BOB, 2) is None  # alice's v2 is not bob's
    assert rules_at_version(store, BOB, 1).allowed_symbols == ("MSFT",)


def test_evaluations_and_intents_are_per_user(store: Store) -> None:
    alice, bob = store.evaluations(ALICE), store.evaluations(BOB)
    assert len(alice) == 2 and set(alice["user_id"]) == {ALICE}
    assert len(bob) == 1 and set(bob["user_id"]) == {BOB}
    intents = store.query("SELECT user_id FROM trade_intents WHERE intent_id IN "
                          "(SELECT intent_id FROM trade_evaluations WHERE user_id = ?)",
                          [ALICE])
    assert set(intents["user_id"]) == {ALICE}
    for eval_id in alice["eval_id"]:
        assert store.evaluation_items(eval_id, BOB).empty
    for eval_id in bob["eval_id"]:
        assert store.evaluation_items(eval_id, ALICE).empty


def test_each_evaluation_records_the_rules_version_its_user_had(store: Store) -> None:
    for user, version in ((ALICE, 2), (BOB, 1)):
        rows = store.evaluations(user)
        assert set(rows["rules_version"]) == {version}
        assert rules_at_version(store, user, version) == get_user(store, user).rules


def test_a_user_without_an_account_sees_nothing(store: Store) -> None:
    assert get_user(store, CAROL) is None
    assert get_account_context(store, CAROL) is None
    assert rules_history(store, CAROL) == ()
    assert exit_templates(store, CAROL) == ()
    assert store.evaluations(CAROL).empty


def test_context_packs_carry_their_own_users_account(store: Store) -> None:
    builder = ContextPackBuilder(store)
    builder.register("account", account_provider)
    pack_a = builder.build(ALICE, "AAPL", "1d", AS_OF)
    pack_b = builder.build(BOB, "AAPL", "1d", AS_OF)
    assert pack_a.account.account.user_id == ALICE
    assert pack_b.account.account.user_id == BOB
    assert pack_b.account.exit_templates[0].name == "bob-scalp"

