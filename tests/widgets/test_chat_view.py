"""The chat panel without a browser: type, click, read the slots, messages and report."""

from __future__ import annotations

import dataclasses
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from buddy.api import Buddy
from buddy.errors import FieldError
from buddy.store import Store
from buddy.users.store import set_user
from buddy.widgets.chat_view import (
    ChatModel,
    ChatPanel,
    ReportKeepingBuddy,
    messages_html,
    slot_rows,
    slots_html,
)

USER = "chat-user"
REQUIRED = ("symbol", "side", "entry", "stop", "size")


# ---------------------------------------------------------------- a stand-in engine
# The simplest engine honouring the contract of buddy.assistant.session.Brainstorm, until
# the real one lands: "slot=value" words fill the draft; evaluate runs the real Buddy.
@dataclass(frozen=True)
class Draft:
    symbol: str | None = None
    side: str | None = None
    thesis: str | None = None
    entry: float | None = None
    stop: float | None = None
    target: float | None = None
    size: float | None = None
    risk_pct: float | None = None
    risk_amount: float | None = None
    horizon: int | None = None
    timeframe: str | None = None
    order_type: str | None = None
    as_of: str | None = None

    def missing(self) -> tuple[str, ...]:
        return tuple(s for s in REQUIRED if getattr(self, s) is None)

    def problems(self) -> tuple[FieldError, ...]:
        if (self.side == "long" and self.entry is not None and self.stop is not None
                and self.stop >= self.entry):
            return (FieldError("stop", "must be below the entry of a long", self.stop),)
        return ()


def read_words(text: str, draft: Draft, symbols: dict[str, str]) -> Draft:
    numbers = {"entry", "stop", "target", "size", "risk_pct"}
    values: dict[str, Any] = {}
    for key, value in re.findall(r"(\w+)=(\S+)", text):
        if key == "horizon":
            values[key] = int(value)
        elif key in numbers:
            values[key] = float(value)
        elif key == "symbol" and value.upper() not in symbols:
            raise ValueError(f"symbol: unknown {value!r}")
        else:
            values[key] = value.upper() if key == "symbol" else value
    return dataclasses.replace(draft, **values)


@dataclass(frozen=True)
class Turn:
    session_id: str
    reply: str
    route: str
    draft: Draft
    questions: tuple[str, ...] = ()
    report: dict[str, Any] | None = None
    eval_id: str | None = None
    journal_id: str | None = None
    renderer: str = "template"


@dataclass
class StandInEngine:
    buddy: Buddy
    symbols: dict[str, str]
    sessions: dict[str, tuple[str, Draft]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def _draft(self, user_id: str, session_id: str) -> Draft:
        owner, draft = self.sessions.get(session_id, (None, Draft()))
        if owner != user_id:
            raise KeyError(f"session_id: no session {session_id!r} of user {user_id!r}")
        return draft

    def turn(self, user_id: str, session_id: str | None, text: str) -> Turn:
        self.calls.append("turn")
        if session_id is None:
            session_id = uuid.uuid4().hex
            self.sessions[session_id] = (user_id, Draft())
        draft = read_words(text, self._draft(user_id, session_id), self.symbols)
        self.sessions[session_id] = (user_id, draft)
        missing = draft.missing()
        question = f"What is your {missing[0]}?" if missing else "Press Evaluate."
        return Turn(session_id, question, "brainstorm", draft, (question,))

    def evaluate(self, user_id: str, session_id: str) -> Turn:
        self.calls.append("evaluate")
        d = self._draft(user_id, session_id)
        report = self.buddy.evaluate(
            user=user_id, symbol=d.symbol or "", side=d.side or "", timeframe="1d",
            entry=d.entry or 0.0, stop=d.stop, target=d.target, size=d.size or 0.0,
            as_of=d.as_of or "2012-06-01", horizon=d.horizon)
        return Turn(session_id, f"Score {report.overall_score:.0f}/100.", "evaluate", d,
                    report=report.to_dict(), eval_id=report.eval_id)

    def save_journal(self, user_id: str, session_id: str, note: str | None = None) -> Turn:
        self.calls.append("save_journal")
        d = self._draft(user_id, session_id)
        return Turn(session_id, "Saved.", "save_journal", d, journal_id=uuid.uuid4().hex)


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def db(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a copy of the sample database with the chat user's account."""
    path = tmp_path_factory.mktemp("chat") / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    set_user(Store(path), USER, equity=100_000.0)
    return path


@pytest.fixture(scope="module")
def keeper(db: Path) -> ReportKeepingBuddy:
    return ReportKeepingBuddy(Buddy.open(db))


def _symbols(buddy: Buddy) -> dict[str, str]:
    return {str(r.symbol): str(r.name) for r in buddy.store.tickers().itertuples()}


@pytest.fixture
def panel(keeper: ReportKeepingBuddy) -> ChatPanel:
    symbols = _symbols(keeper)
    engine = StandInEngine(keeper, symbols)
    model = ChatModel(engine, user=USER, symbols=symbols, keeper=keeper,
                      preview=read_words, new_draft=Draft)  # type: ignore[arg-type]
    return ChatPanel(model)


def _states(panel: ChatPanel) -> dict[str, str]:
    return {row.slot: row.state for row in panel.model.rows()}


def _engine(panel: ChatPanel) -> StandInEngine:
    engine = panel.model.engine
    assert isinstance(engine, StandInEngine)
    return engine


IDEA = "symbol=AAPL side=long entry=555 stop=540 target=600 size=100 horizon=10"


# ---------------------------------------------------------------- tests
def test_the_slots_fill_as_the_user_types_and_nothing_is_sent(panel: ChatPanel) -> None:
    panel.text.value = "symbol=aapl side=long entry=555"
    states = _states(panel)
    assert states["symbol"] == states["side"] == states["entry"] == "typing"
    assert states["stop"] == "missing" and states["target"] == "optional"
    assert "tb-slot-entry tb-slot-typing" in panel.slots.value
    assert ">555 <" not in panel.slots.value and ">555<" in panel.slots.value
    assert _engine(panel).calls == [] and panel.model.messages == []
    panel.text.value = ""  # cleared: back to the (empty) draft
    assert set(_states(panel).values()) <= {"missing", "optional"}


def test_send_asks_for_what_is_missing_and_keeps_the_draft(panel: ChatPanel) -> None:
    panel.text.value = "symbol=AAPL side=long entry=555"
    panel.send_button.click()
    assert panel.text.value == ""
    assert [m.role for m in panel.model.messages] == ["user", "assistant"]
    assert panel.model.messages[1].text == "What is your stop?"
    assert "What is your stop?" in panel.messages.value
    states = _states(panel)
    assert states["entry"] == "filled" and states["stop"] == "missing"
    # a later turn changes a filled slot: shown as 'changed' while typed
    panel.text.value = "entry=556"
    assert _states(panel)["entry"] == "changed"
    assert panel.model.session_id is not None


def test_a_contradiction_is_shown_under_the_slots(panel: ChatPanel) -> None:
    panel.text.value = "symbol=AAPL side=long entry=555 stop=560"
    assert "tb-chat-problem" in panel.slots.value
    assert "must be below the entry of a long" in panel.slots.value


def test_evaluate_shows_the_report_in_the_report_view(panel: ChatPanel, db: Path) -> None:
    panel.text.value = IDEA
    panel.send()
    assert _states(panel)["stop"] == "filled"
    turn = panel.evaluate()
    assert turn is not None and turn.eval_id is not None
    shown = panel.report_view.model
    assert shown is not None and shown.eval_id == turn.eval_id
    assert re.fullmatch(r"\d+/100", shown.score_text)
    assert "tb-score-value" in panel.report_view.header.value
    assert panel.chart is not None and panel.chart.model is not None
    logged = Store(db).query("SELECT count(*) AS n FROM trade_evaluations WHERE eval_id = ?",
                             [turn.eval_id])
    assert int(logged.iloc[0, 0]) == 1
    assert panel.model.messages[-1].route == "evaluate"


def test_save_to_journal_says_where_it_went(panel: ChatPanel) -> None:
    panel.text.value = IDEA
    panel.send()
    panel.note.value = "waiting for the pullback"
    turn = panel.save_journal()
    assert turn is not None and turn.journal_id is not None
    assert turn.journal_id[:8] in panel.status.value
    assert panel.note.value == ""


def test_evaluate_or_save_before_a_conversation_sends_nothing(panel: ChatPanel) -> None:
    assert panel.evaluate() is None
    assert "no draft to evaluate" in panel.status.value
    assert panel.save_journal() is None
    assert "no conversation" in panel.status.value
    panel.send()  # an empty text box
    assert "type a message first" in panel.status.value
    assert _engine(panel).calls == []


def test_a_blank_user_is_asked_for_and_another_user_starts_afresh(panel: ChatPanel) -> None:
    panel.text.value = "symbol=AAPL"
    panel.send()
    session = panel.model.session_id
    panel.set_user("  ")
    assert panel.model.messages == [] and panel.model.session_id is None
    panel.text.value = "side=long"
    assert panel.send() is None
    assert "enter your user id" in panel.status.value
    # the engine refuses a session of another user: the panel says so, keeps its state
    panel.set_user("someone-else")
    panel.model.session_id = session
    assert panel.send() is None
    assert "session_id" in panel.status.value


def test_words_the_preview_cannot_read_leave_the_draft_as_it_is(panel: ChatPanel) -> None:
    panel.text.value = "symbol=NOPE"  # the stand-in parser raises ValueError
    assert panel.model.typed is None
    assert set(_states(panel).values()) <= {"missing", "optional"}


def test_messages_and_slots_are_escaped() -> None:
    from buddy.widgets.chat_view import ChatMessage

    page = messages_html([ChatMessage(role="user", text="<script>x</script>")])
    assert "<script>" not in page and "&lt;script&gt;" in page
    rows = slot_rows(Draft(thesis="<b>bold</b>"))
    assert "<b>bold" not in slots_html(rows)
