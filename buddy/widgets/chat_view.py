"""The brainstorm chat panel: talk a trade idea into shape, evaluate it, save it to the journal.

Two layers, as in ``buddy.widgets.app``. ``ChatModel`` is the view-model over a brainstorm
engine (``buddy.assistant.session.Brainstorm``: every turn is persisted there): the messages,
the draft as the engine last returned it, the draft as it would be with the words being typed
(read by ``buddy.assistant.parse``, nothing sent or stored), and the last evaluation.
``ChatPanel`` builds the ipywidgets: the message list, the draft's slots, a text box with
Send, Evaluate (the one-click evaluation of the draft) and Save to journal. An evaluation is
shown with the workbench's own report view (``ReportView``) and chart.

The engine hands back the report as JSON (``Turn.report``); the view needs the BuddyReport
itself, so the engine evaluates through a ``ReportKeepingBuddy`` that keeps the last reports
it produced, by eval_id.
"""

from __future__ import annotations

import html
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from buddy.api import Buddy
from buddy.assistant.draft import TradeIdeaDraft
from buddy.assistant.llm import AssistantLLM
from buddy.assistant.parse import apply_updates, parse_utterance
from buddy.assistant.session import Brainstorm, Turn
from buddy.context.pack import ContextPack
from buddy.domain import TradeIntent
from buddy.errors import BuddyError, FieldError
from buddy.report import BuddyReport
from buddy.widgets.chart import ChartView, chart_model
from buddy.widgets.report_view import ReportModel, ReportView

if TYPE_CHECKING:
    from buddy.widgets.app import WorkbenchApp

#: The draft's slots in display order, with their labels (``buddy.assistant.draft.SLOTS``).
SLOT_LABELS: Mapping[str, str] = {
    "symbol": "Symbol", "side": "Side", "thesis": "Thesis", "entry": "Entry",
    "stop": "Stop", "target": "Target", "size": "Size", "horizon": "Horizon",
}
#: What the text box suggests: the issue's example sentence.
PLACEHOLDER = "e.g. long AAPL on a pullback to 555, stop under 540, target 600, risk half a percent"
#: How many evaluations a ReportKeepingBuddy keeps (the panel shows the last one).
KEEP_REPORTS = 8
#: A slot's state in the table: set by the engine, set by the words being typed (not sent
#: yet), changed by them, required and still empty, optional and empty, or declined by the
#: trader ("no target").
SLOT_STATES = ("filled", "typing", "changed", "missing", "optional", "declined")
_STATE_COLOURS: Mapping[str, str] = {
    "filled": "#263238", "typing": "#1565c0", "changed": "#6a1b9a", "missing": "#b71c1c",
    "optional": "#90a4ae", "declined": "#90a4ae",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessage:
    """One line of the conversation as shown."""

    role: str  # 'user' or 'assistant' (or 'error': what went wrong, never sent)
    text: str
    route: str | None = None  # the assistant's route: brainstorm, evaluate, review, ...
    renderer: str | None = None  # 'template' or 'llm'


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotRow:
    """One slot of the draft as the table shows it."""

    slot: str
    label: str
    value: str  # '' when empty
    state: str  # one of SLOT_STATES


class ReportKeepingBuddy(Buddy):
    """A Buddy over another's store, config and context builder (so its pack cache) that
    keeps the BuddyReport of each of its last KEEP_REPORTS evaluations by eval_id."""

    def __init__(self, buddy: Buddy) -> None:
        super().__init__(buddy.store, buddy.config, builder=buddy.builder)
        self.reports: OrderedDict[str, BuddyReport] = OrderedDict()

    def evaluate_intent(self, intent: TradeIntent, *, log: bool = True) -> BuddyReport:
        """Evaluate ``intent`` (as Buddy does) and keep its report."""
        return self._keep(super().evaluate_intent(intent, log=log))

    def evaluate(self, **arguments: Any) -> BuddyReport:
        """Validate, evaluate and log an idea (as Buddy does) and keep its report."""
        return self._keep(super().evaluate(**arguments))

    def _keep(self, report: BuddyReport) -> BuddyReport:
        self.reports[report.eval_id] = report
        while len(self.reports) > KEEP_REPORTS:
            self.reports.popitem(last=False)
        return report


def slot_text(draft: TradeIdeaDraft | None, slot: str) -> str:
    """Return ``slot`` of ``draft`` as the table shows it, with its unit ('' when empty):
    size reads '100 units', 'risk 0.5% of equity' or 'risk 500' as it was given."""
    if draft is None:
        return ""
    if slot == "size":
        if draft.size is not None:
            return f"{draft.size:g} units"
        if draft.risk_pct is not None:
            return f"risk {draft.risk_pct:g}% of equity"
        if draft.risk_amount is not None:
            return f"risk {draft.risk_amount:,.2f}"
        return ""
    value = getattr(draft, slot)
    if slot == "target" and value is None and draft.target_r is not None:
        return f"{draft.target_r:g}R"
    if value is None:
        return ""
    if slot == "entry" and draft.order_type:
        return f"{value:g} ({draft.order_type})"
    if slot == "horizon":
        return f"{value} bars" + (f" of {draft.timeframe}" if draft.timeframe else "")
    return f"{value:g}" if isinstance(value, float) else str(value)


def slot_rows(draft: TradeIdeaDraft | None, typed: TradeIdeaDraft | None = None
              ) -> tuple[SlotRow, ...]:
    """Return the table of ``draft``'s slots; with ``typed`` (the draft with the words being
    typed applied) the slots those words fill or change are marked 'typing' / 'changed'."""
    shown = typed if typed is not None else draft
    missing = set(shown.missing()) if shown is not None else set(SLOT_LABELS)
    rows = []
    for slot, label in SLOT_LABELS.items():
        before, after = slot_text(draft, slot), slot_text(shown, slot)
        if typed is not None and after != before:
            state = "typing" if not before else "changed"
        elif after:
            state = "filled"
        elif shown is not None and slot in shown.declined:
            state = "declined"
        else:
            state = "missing" if slot in missing else "optional"
        rows.append(SlotRow(slot=slot, label=label, value=after, state=state))
    return tuple(rows)


class ChatModel:
    """The view-model of the chat panel: the conversation of one user with the engine."""

    def __init__(self, engine: Brainstorm, *, user: str, symbols: Mapping[str, str],
                 keeper: ReportKeepingBuddy | None = None) -> None:
        self.engine = engine
        self.symbols = dict(symbols)  # ticker -> company name, for reading symbol names
        self.keeper = keeper
        self.user = user.strip()
        self.session_id: str | None = None
        self.messages: list[ChatMessage] = []
        self.draft: TradeIdeaDraft | None = None
        # the draft with the words being typed applied (not sent)
        self.typed: TradeIdeaDraft | None = None
        self.last_turn: Turn | None = None
        self.error: str | None = None

    def set_user(self, user: str) -> None:
        """Talk as ``user`` from now on: a new conversation (sessions belong to one user)."""
        user = user.strip()
        if user == self.user:
            return
        self.user = user
        self.session_id = None
        self.messages = []
        self.draft = self.typed = self.last_turn = None
        self.error = None

    def preview(self, text: str) -> tuple[SlotRow, ...]:
        """Return the slot table with ``text`` (being typed, not sent) applied to the draft.

        Nothing is sent or stored. Words the parser cannot read yet leave the draft as it is.
        """
        self.typed = None
        if text.strip():
            draft = self.draft if self.draft is not None else TradeIdeaDraft()
            try:
                self.typed = apply_updates(draft, parse_utterance(text, draft, self.symbols))
            except (BuddyError, ValueError, TypeError, KeyError):
                # a half-typed sentence is not an error: Send's reply says what was read
                self.typed = None
        return self.rows()

    def rows(self) -> tuple[SlotRow, ...]:
        """Return the slot table of the draft (with the typed words, when previewed)."""
        return slot_rows(self.draft, self.typed)

    def problems(self) -> tuple[FieldError, ...]:
        """Return the contradictions of the draft shown (with the typed words, if any)."""
        shown = self.typed if self.typed is not None else self.draft
        return tuple(shown.problems()) if shown is not None else ()

    def send(self, text: str) -> Turn | None:
        """Send ``text`` as one turn; return the turn, or None with ``error`` saying why."""
        if not text.strip():
            return self._fail("type a message first")
        if not self.user:
            return self._fail("enter your user id in the form first")
        return self._run(lambda: self.engine.turn(self.user, self.session_id, text.strip()),
                         said=text.strip())

    def evaluate(self) -> Turn | None:
        """Evaluate the draft (the one-click Evaluate); return the turn, or None with
        ``error``."""
        if not self.user:
            return self._fail("enter your user id in the form first")
        if self.session_id is None:
            return self._fail("describe the idea first: there is no draft to evaluate")
        session_id = self.session_id
        return self._run(lambda: self.engine.evaluate(self.user, session_id))

    def save_journal(self, note: str = "") -> Turn | None:
        """Save the conversation (and its evaluation, if any) as a journal entry with
        ``note``; return the turn, or None with ``error``."""
        if not self.user:
            return self._fail("enter your user id in the form first")
        if self.session_id is None:
            return self._fail("there is no conversation to save yet")
        session_id = self.session_id
        return self._run(lambda: self.engine.save_journal(self.user, session_id,
                                                          note.strip() or None))

    def shown_report(self, turn: Turn | None = None) -> tuple[BuddyReport, ContextPack] | None:
        """Return the report of ``turn`` (default: the last turn) and the ContextPack it was
        evaluated on, or None when the turn evaluated nothing (or its report is gone)."""
        turn = turn if turn is not None else self.last_turn
        if turn is None or turn.eval_id is None or self.keeper is None:
            return None
        report = self.keeper.reports.get(turn.eval_id)
        if report is None:
            return None
        intent = report.intent
        ctx = self.keeper.builder.build(intent.user_id, intent.symbol, intent.timeframe,
                                        intent.as_of)
        return report, ctx

    def _run(self, call: Callable[[], Turn], said: str | None = None) -> Turn | None:
        """Run one engine call; on success show ``said`` (the user's words) and the reply,
        on a refusal only the error (the words stay in the text box, nothing was stored)."""
        self.error = None
        try:
            turn = call()
        except (BuddyError, KeyError, ValueError) as exc:
            # the engine refuses a bad session or input with an error naming it
            return self._fail(str(exc.args[0]) if isinstance(exc, KeyError) and exc.args
                              else str(exc))
        self.session_id = turn.session_id
        self.draft = turn.draft
        self.typed = None
        self.last_turn = turn
        if said is not None:
            self.messages.append(ChatMessage(role="user", text=said))
        self.messages.append(ChatMessage(role="assistant", text=turn.reply, route=turn.route,
                                         renderer=turn.renderer))
        return turn

    def _fail(self, message: str) -> Turn | None:
        self.error = message
        return None


# ------------------------------------------------------------------------------ widgets
def messages_html(messages: Sequence[ChatMessage]) -> str:
    """Return the conversation as HTML (escaped), the newest last."""
    if not messages:
        return ("<div class='tb-chat-empty' style='color:#90a4ae;font-size:13px'>Describe a "
                "trade idea in your own words; I ask for what is missing and evaluate it when "
                "you press Evaluate. I describe the idea; I do not predict prices.</div>")
    out = []
    for message in messages:
        mine = message.role == "user"
        colour = {"user": "#e3f2fd", "assistant": "#f5f5f5"}.get(message.role, "#ffebee")
        by = "" if message.renderer in (None, "template") else f" · {message.renderer}"
        tag = "" if mine or message.route is None else (
            f"<div style='font-size:10px;color:#90a4ae'>{html.escape(message.route + by)}</div>")
        text = html.escape(message.text).replace("\n", "<br>")
        out.append(f"<div class='tb-chat-msg tb-chat-{html.escape(message.role)}' style='"
                   f"margin:3px 0;padding:4px 8px;border-radius:6px;background:{colour};"
                   f"{'margin-left:40px' if mine else 'margin-right:40px'};font-size:13px'>"
                   f"{text}{tag}</div>")
    return "".join(out)


def slots_html(rows: Sequence[SlotRow], problems: Sequence[FieldError] = ()) -> str:
    """Return the slot table as HTML, each row marked with its state, then the problems."""
    cells = []
    for row in rows:
        colour = _STATE_COLOURS[row.state]
        value = html.escape(row.value) if row.value else (
            f"<i>{ {'missing': 'needed', 'declined': 'none'}.get(row.state, 'optional')}</i>")
        cells.append(f"<tr class='tb-slot tb-slot-{row.slot} tb-slot-{row.state}'>"
                     f"<td style='color:#607d8b;padding-right:8px;white-space:nowrap;"
                     f"vertical-align:top'>{html.escape(row.label)}</td>"
                     f"<td class='tb-slot-value' style='color:{colour};line-height:1.3'>"
                     f"{value}</td></tr>")
    notes = "".join(
        f"<div class='tb-chat-problem' style='color:#b71c1c;font-size:12px'>&#9888; "
        f"{html.escape(p.field)}: {html.escape(p.rule)} ({html.escape(repr(p.value))})</div>"
        for p in problems)
    legend = ("<div style='font-size:10px;color:#90a4ae;margin-top:4px'>"
              f"<span style='color:{_STATE_COLOURS['typing']}'>blue</span>: read from what you "
              "are typing, not sent yet</div>")
    return (f"<table class='tb-chat-slots' style='font-size:12px;width:100%'>"
            f"{''.join(cells)}</table>{notes}{legend}")


class ChatPanel:
    """The chat panel as ipywidgets, beside the workbench's form."""

    def __init__(self, model: ChatModel, *, report_view: ReportView | None = None,
                 chart: ChartView | None = None) -> None:
        self.model = model
        own_report = report_view is None
        self.chart = chart if chart is not None else (ChartView() if own_report else None)
        self.report_view = report_view if report_view is not None else ReportView(
            chart=None if self.chart is None else self.chart.widget)
        self.messages = w.HTML(messages_html(model.messages))
        self.messages.add_class("tb-chat-messages")
        self.slots = w.HTML(slots_html(model.rows()))
        self.slots.add_class("tb-chat-draft")
        self.text = w.Text(placeholder=PLACEHOLDER, continuous_update=True,
                           layout=w.Layout(width="100%"))
        self.text.add_class("tb-chat-input")
        self.text.observe(lambda change: self._typed(change["new"]), names="value")
        self.send_button = w.Button(description="Send", icon="paper-plane",
                                    layout=w.Layout(width="90px"))
        self.send_button.add_class("tb-chat-send")
        self.send_button.on_click(lambda _: self.send())
        self.evaluate_button = w.Button(description="Evaluate", button_style="primary",
                                        icon="check", layout=w.Layout(width="110px"))
        self.evaluate_button.add_class("tb-chat-evaluate")
        self.evaluate_button.on_click(lambda _: self.evaluate())
        self.note = w.Text(placeholder="journal note (optional)",
                           layout=w.Layout(width="220px"))
        self.note.add_class("tb-chat-note")
        self.save_button = w.Button(description="Save to journal", icon="book",
                                    layout=w.Layout(width="140px"))
        self.save_button.add_class("tb-chat-save")
        self.save_button.on_click(lambda _: self.save_journal())
        self.status = w.HTML()
        self.status.add_class("tb-chat-status")
        own = [] if not own_report else [self.report_view.widget]
        conversation = w.Box([self.messages], layout=w.Layout(
            height="220px", overflow="auto", border="1px solid #cfd8dc", padding="4px",
            flex_flow="column-reverse"))  # opens scrolled to the newest
        self.widget = w.VBox([
            w.HTML("<h3 style='margin:0 0 6px'>Brainstorm</h3>"),
            w.HBox([conversation, self.slots],
                   layout=w.Layout(width="100%", align_items="flex-start")),
            w.HBox([self.text, self.send_button], layout=w.Layout(width="100%")),
            w.HBox([self.evaluate_button, self.note, self.save_button]),
            self.status, *own,
        ], layout=w.Layout(width="100%", margin="0 0 12px 0"))
        conversation.layout.flex = "1 1 auto"
        self.slots.layout = w.Layout(width="250px", min_width="250px", margin="0 0 0 8px")
        self.widget.add_class("tb-chat")

    @classmethod
    def beside(cls, app: WorkbenchApp) -> ChatPanel:
        """Return the panel for ``app``: the form's user, the app's report view and chart,
        and a Brainstorm over the app's Buddy (the optional LLM from the environment)."""
        keeper = ReportKeepingBuddy(app.buddy)
        engine = Brainstorm(keeper, llm=AssistantLLM.from_env())
        symbols = {symbol: inst.name for symbol, inst in keeper.catalogue().instruments.items()}
        panel = cls(ChatModel(engine, user=str(app.form["user"]), symbols=symbols,
                              keeper=keeper),
                    report_view=app.report_view, chart=app.chart)
        app.fields["user"].observe(lambda change: panel.set_user(str(change["new"])),
                                   names="value")
        return panel

    # ------------------------------------------------------------------ actions
    def set_user(self, user: str) -> None:
        """Talk as ``user`` (a new conversation when it changes)."""
        self.model.set_user(user)
        self._refresh()

    def send(self) -> Turn | None:
        """Send the text box (as Send does) and show the reply."""
        text = self.text.value
        turn = self.model.send(text)
        if turn is not None:
            self.text.value = ""
        return self._shown(turn)

    def evaluate(self) -> Turn | None:
        """Evaluate the draft (as Evaluate does) and show the report."""
        self.status.value = "<i>evaluating ...</i>"
        return self._shown(self.model.evaluate())

    def save_journal(self) -> Turn | None:
        """Save the conversation as a journal entry (as Save to journal does)."""
        turn = self.model.save_journal(self.note.value)
        if turn is not None:
            self.note.value = ""
        self._shown(turn)
        if turn is not None and turn.journal_id:
            self.status.value = (f"<span style='color:#2e7d32'>saved to the journal "
                                 f"({html.escape(turn.journal_id)})</span>")
        return turn

    # ------------------------------------------------------------------ view
    def _typed(self, text: str) -> None:
        self.slots.value = slots_html(self.model.preview(text), self.model.problems())

    def _shown(self, turn: Turn | None) -> Turn | None:
        self._refresh()
        if turn is not None and turn.eval_id is not None:
            self._show_report(turn)
        return turn

    def _show_report(self, turn: Turn) -> None:
        found = self.model.shown_report(turn)
        if found is None:
            verdict = (turn.report or {}).get("verdict", "?")
            score = (turn.report or {}).get("overall_score")
            self.report_view.show_message(
                f"evaluated ({turn.eval_id}): {verdict}, score "
                f"{'n/a' if score is None else f'{score:.0f}/100'}")
            return
        report, ctx = found
        self.report_view.show(ReportModel.build(report, ctx))
        if self.chart is not None:
            self.chart.show(chart_model(ctx, report.intent, issues=report.all_issues))

    def _refresh(self) -> None:
        model = self.model
        self.messages.value = messages_html(model.messages)
        self.slots.value = slots_html(model.rows(), model.problems())
        self.status.value = "" if model.error is None else (
            f"<span class='tb-chat-error' style='color:#b71c1c;font-size:12px'>&#9888; "
            f"{html.escape(model.error)}</span>")
