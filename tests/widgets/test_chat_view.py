"""The chat panel without a browser: type, click, read the slots, messages and report.

The panel talks to the real brainstorm engine (router, parser, Buddy) over a copy of the
sample database, as the page does.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from buddy.api import Buddy
from buddy.assistant.draft import TradeIdeaDraft
from buddy.assistant.session import Brainstorm
from buddy.store import Store
from buddy.store.assistant import read_messages, read_sessions
from buddy.store.portfolio import record_equity
from buddy.store.trades import read_journal
from buddy.users.store import set_user
from buddy.widgets.chat_view import (
    ChatMessage,
    ChatModel,
    ChatPanel,
    ReportKeepingBuddy,
    messages_html,
    slot_rows,
    slots_html,
)

USER = "chat-user"
EQUITY = 100_000.0  # USD, known from 2000 on: "risk half a percent" sizes from it
IDEA = "long AAPL on a pullback to 555, stop under 540, target 600, risk half a percent"


@pytest.fixture(scope="module")
def db(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a copy of the sample database with the chat user's account and equity."""
    path = tmp_path_factory.mktemp("chat") / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    store = Store(path)
    set_user(store, USER, equity=EQUITY)
    record_equity(store, USER, pd.Timestamp("2000-01-01T00:00Z").to_pydatetime(), EQUITY,
                  "USD", "test")
    return path


@pytest.fixture(scope="module")
def keeper(db: Path) -> ReportKeepingBuddy:
    return ReportKeepingBuddy(Buddy.open(db))


@pytest.fixture
def panel(keeper: ReportKeepingBuddy) -> ChatPanel:
    symbols = {s: inst.name for s, inst in keeper.catalogue().instruments.items()}
    model = ChatModel(Brainstorm(keeper), user=USER, symbols=symbols, keeper=keeper)
    return ChatPanel(model)


def _states(panel: ChatPanel) -> dict[str, str]:
    return {row.slot: row.state for row in panel.model.rows()}


def _values(panel: ChatPanel) -> dict[str, str]:
    return {row.slot: row.value for row in panel.model.rows()}


def _sessions(keeper: ReportKeepingBuddy, user: str = USER) -> int:
    return len(read_sessions(keeper.store, user))


def test_the_slots_fill_as_the_user_types_and_nothing_is_sent(
        panel: ChatPanel, keeper: ReportKeepingBuddy) -> None:
    before = _sessions(keeper)
    panel.text.value = "long apple on a pullback to 555, stop under 540"
    states, values = _states(panel), _values(panel)
    assert {states[s] for s in ("symbol", "side", "entry", "stop")} == {"typing"}
    assert values["symbol"] == "AAPL" and values["entry"].startswith("555")
    assert values["stop"] == "540"
    assert states["target"] == "missing" and states["size"] == "missing"
    assert states["horizon"] == "optional"
    assert "tb-slot-entry tb-slot-typing" in panel.slots.value
    assert panel.model.messages == [] and _sessions(keeper) == before  # nothing sent
    panel.text.value = ""  # cleared: back to the (empty) draft
    assert set(_states(panel).values()) <= {"missing", "optional"}


def test_send_asks_for_what_is_missing_and_stores_the_turn(
        panel: ChatPanel, keeper: ReportKeepingBuddy) -> None:
    panel.text.value = "long AAPL on a pullback to 555, stop under 540"
    panel.send_button.click()
    assert panel.text.value == ""
    turn = panel.model.last_turn
    assert turn is not None and turn.questions and turn.eval_id is None
    assert [m.role for m in panel.model.messages] == ["user", "assistant"]
    assert panel.model.messages[1].text == turn.reply
    assert "target" in turn.questions[0]
    assert _states(panel)["entry"] == "filled" and _states(panel)["target"] == "missing"
    assert len(read_messages(keeper.store, USER, turn.session_id)) == 2
    # a later turn's words change a filled slot: shown as 'changed' while typed
    panel.text.value = "actually entry 556"
    assert _states(panel)["entry"] == "changed"
    assert _values(panel)["entry"].startswith("556")


def test_a_contradiction_is_shown_under_the_slots(panel: ChatPanel) -> None:
    panel.text.value = "long AAPL entry 555 stop 560"
    assert any(p.field == "stop" for p in panel.model.problems())
    assert "tb-chat-problem" in panel.slots.value


def test_evaluate_shows_the_logged_report_and_save_links_the_journal(
        panel: ChatPanel, keeper: ReportKeepingBuddy) -> None:
    panel.text.value = IDEA + ", as of 2012-06-01"
    panel.send()
    assert panel.model.draft is not None and panel.model.draft.is_complete()
    assert panel.model.last_turn is not None and panel.model.last_turn.eval_id is None
    panel.evaluate_button.click()
    turn = panel.model.last_turn
    assert turn is not None and turn.eval_id is not None and turn.route == "evaluate"
    # half a percent of 100,000 over the 15-point stop distance: 33 shares, said in the reply
    assert "Size 33 units" in turn.reply
    shown = panel.report_view.model
    assert shown is not None and shown.eval_id == turn.eval_id
    assert re.fullmatch(r"\d+/100", shown.score_text)
    assert turn.report is not None and shown.score == turn.report["overall_score"]
    assert "size 33" in shown.headline and "tb-score-value" in panel.report_view.header.value
    assert panel.chart is not None and panel.chart.model is not None
    report = keeper.reports[turn.eval_id]
    panel.note.value = "waiting for the pullback"
    saved = panel.save_journal()
    assert saved is not None and saved.journal_id is not None
    assert saved.journal_id in panel.status.value and panel.note.value == ""
    notes = read_journal(keeper.store, USER, intent_id=report.intent.intent_id)
    assert list(notes["journal_id"]) == [saved.journal_id]
    assert "waiting for the pullback" in notes["note_text"].iloc[0]


def test_evaluate_or_save_before_a_conversation_sends_nothing(
        panel: ChatPanel, keeper: ReportKeepingBuddy) -> None:
    before = _sessions(keeper)
    assert panel.evaluate() is None
    assert "no draft to evaluate" in panel.status.value
    assert panel.save_journal() is None
    assert "no conversation" in panel.status.value
    assert panel.send() is None  # an empty text box
    assert "type a message first" in panel.status.value
    assert _sessions(keeper) == before and panel.report_view.model is None


def test_a_blank_user_is_asked_for_and_another_users_session_is_refused(
        panel: ChatPanel, keeper: ReportKeepingBuddy) -> None:
    panel.text.value = "long AAPL"
    panel.send()
    session = panel.model.session_id
    assert session is not None
    panel.set_user("  ")
    assert panel.model.messages == [] and panel.model.session_id is None
    panel.text.value = "short MSFT"
    assert panel.send() is None
    assert "enter your user id" in panel.status.value
    # the engine refuses another user's session: the panel says so and writes nothing
    panel.set_user("someone-else")
    panel.model.session_id = session
    assert panel.send() is None
    assert "session_id" in panel.status.value
    assert panel.model.messages == [] and panel.text.value == "short MSFT"  # kept to retry
    assert _sessions(keeper, "someone-else") == 0
    assert len(read_messages(keeper.store, USER, session)) == 2  # the first turn only


def test_a_message_the_engine_refuses_is_named_and_nothing_is_stored(
        panel: ChatPanel, keeper: ReportKeepingBuddy) -> None:
    before = _sessions(keeper)
    panel.text.value = "long AAPL " * 500  # 5,000 characters
    assert panel.send() is None
    assert "text: must be at most 4000 characters" in panel.status.value
    assert panel.model.messages == [] and _sessions(keeper) == before


def test_messages_and_slots_are_escaped() -> None:
    page = messages_html([ChatMessage(role="user", text="<script>x</script>")])
    assert "<script>" not in page and "&lt;script&gt;" in page
    rows = slot_rows(TradeIdeaDraft(thesis="<b>bold</b>"))
    assert "<b>bold" not in slots_html(rows) and "&lt;b&gt;bold" in slots_html(rows)


def test_the_workbench_shows_the_chat_beside_the_form(db: Path) -> None:
    from buddy.widgets import WorkbenchApp

    app = WorkbenchApp.open(db, USER)
    tab = app.widget.children[-1].children[0]  # "Evaluate an idea": the form, then the rest
    assert app.chat.widget in tab.children[1].children
    assert app.chat.report_view is app.report_view and app.chat.chart is app.chart
    assert app.chat.model.user == USER
    app.chat.text.value = "long AAPL, stop under 540"
    app.fields["user"].value = "another-user"  # the form's user talks from now on
    assert app.chat.model.user == "another-user" and app.chat.model.session_id is None
