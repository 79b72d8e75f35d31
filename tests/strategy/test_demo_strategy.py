"""``make demo``'s personalization part on the real demo trader: its profile and playbooks are
built and stored, the playbooks published to MLflow with a production alias, and the two
sample ideas about them say which playbook they resemble, or that they are out of pattern."""

from __future__ import annotations

from collections.abc import Callable

from buddy.api import Buddy
from buddy.context.builder import ContextPackBuilder
from buddy.demo import DEMO_USER, SAMPLE_IDEAS, build_demo_strategy, ensure_demo_user, place_idea
from buddy.store import Store
from tests.experiments.conftest import (  # noqa: F401 (fixtures used by name)
    mlflow_template,
    new_tracking_store,
    tracking_store,
)

IN_PATTERN = next(i for i in SAMPLE_IDEAS if "(in pattern)" in i.note)
OUT_OF_PATTERN = next(i for i in SAMPLE_IDEAS if "(out of pattern)" in i.note)


def test_the_demo_publishes_playbooks_and_reports_place_ideas_among_them(
        demo_store_copy: Callable[[], Store], tracking_store: str) -> None:  # noqa: F811
    from buddy.store.strategy import read_playbooks, read_profile
    from experiments.playbooks import load_playbooks

    store = demo_store_copy()
    ensure_demo_user(store)
    said: list[str] = []
    build_demo_strategy(store, echo=said.append)
    text = "\n".join(said)
    assert "strategy profile" in text and "playbook(s) from" in text
    assert "buddy-playbooks-demo: registered v1" in text
    assert "buddy-playbooks-demo: production (none) -> v1 (promoted" in text
    stored, (books, members) = read_profile(store, DEMO_USER), read_playbooks(store, DEMO_USER)
    assert stored is not None and len(books) >= 3 and len(members) > 500
    production = load_playbooks(DEMO_USER)
    assert production is not None and production.mean_stability >= 0.75
    assert set(books["playbook_id"]) == {production.playbook_id(p.number)
                                         for p in production.playbooks}

    # the command a trader runs after new trades: the same fit again changes nothing
    from click.testing import CliRunner

    from buddy.cli import cli

    again = CliRunner().invoke(cli, ["--db", str(store.path), "playbooks", "fit", "--user",
                                     DEMO_USER, "--publish"])
    assert again.exit_code == 0, again.output
    assert "playbook(s) from" in again.output and "already holds production" in again.output

    buddy = Buddy(store, builder=ContextPackBuilder(store))
    inside = buddy.evaluate(**place_idea(buddy, IN_PATTERN), log=False)
    assert "Resembles your playbook #" in str(inside)
    assert "OUT_OF_PATTERN" not in str(inside)
    outside = buddy.evaluate(**place_idea(buddy, OUT_OF_PATTERN), log=False)
    assert "strategy_consistency/OUT_OF_PATTERN" in str(outside)
    assert "No playbook of yours fits this idea" in str(outside)
