"""The brainstorm session engine: a conversation that fills a TradeIdeaDraft and evaluates it.

This is an edge like ``buddy.api``: it stamps wall-clock times on messages and opens nothing
but the store it is handed. One turn:

1. requests the workbench never fulfils (a prediction, certainty, dropping the stop, another
   user's data) get ``buddy.guardrails.safe_reply``; an instruction to drop the rules gets a
   fixed reply; neither touches the draft;
2. otherwise the router (``IntentRouter``) picks brainstorm, evaluate or review; the parser
   (``parse_utterance`` / ``apply_updates``) fills the draft's slots;
3. brainstorm: the reply says which slots changed and asks the next question
   (``next_question``: no number invented); evaluate with a complete draft: the intent is
   built through ``Buddy.make_intent`` (the size from the risk budget and the equity known at
   the decision time, said in the reply) and ``Buddy.evaluate_intent`` logs the report;
   review: the named trade's post-trade review, or "no such trade";
4. the user's message, the reply (tool calls in ``tool_calls_json_optional``) and the
   session's state (the draft) are written in ONE transaction (``buddy.store.assistant``).

A session belongs to one user: another user's session id raises ``KeyError('session_id:
...')``. A journal note is stored as the user's text; nothing in it is read as an
instruction.
"""

from __future__ import annotations

import inspect
import math
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from buddy.errors import FieldError, FieldErrors, IntentValidationError
from buddy.guardrails import predictive_phrases, request_categories, safe_reply, unsafe_advice
from buddy.store.assistant import (
    JournalRow,
    MessageRow,
    SessionChangedError,
    create_session,
    read_messages,
    read_session,
    write_turn,
)

if TYPE_CHECKING:
    from buddy.api import Buddy
    from buddy.assistant.draft import TradeIdeaDraft
    from buddy.assistant.llm import AssistantLLM
    from buddy.assistant.router import IntentRouter, Routing

__all__ = ["MAX_TEXT_CHARS", "AssistantInputError", "Brainstorm", "Turn"]

#: The longest message a turn accepts (characters).
MAX_TEXT_CHARS = 4_000
#: How many sessions' latest state a Brainstorm keeps in memory.
CACHED_SESSIONS = 256
#: The timeframe a draft without one is evaluated on, when the symbol has it.
DEFAULT_TIMEFRAME = "1d"
#: The ``content_or_ref`` of the user's side of a button press.
ACTION_REFS = {"evaluate": "action:evaluate", "save_journal": "action:save_journal"}

#: Instructions to drop the workbench's rules or role: answered with RULES_REPLY, obeyed never.
_OVERRIDE = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass|skip|drop|turn\s+off|disable)\s+(?:all\s+|"
    r"any\s+|the\s+|your\s+|my\s+|these\s+|those\s+|previous\s+|prior\s+|above\s+|risk\s+)*"
    r"(?:rules?|instructions?|guardrails?|checks?|limits|polic(?:y|ies)|system\s+prompt|"
    r"prompt|restrictions?|safety)\b"
    r"|\byou\s+are\s+now\b|\bact\s+as\s+(?:if|an?|my)\b|\bpretend\s+(?:to\s+be|you)\b"
    r"|\bjailbreak\b|\bdeveloper\s+mode\b",
    re.IGNORECASE)
RULES_REPLY = (
    "I keep the same checks and the same rules for every idea, whatever a message asks, and "
    "your risk rules stay as your account has them. Tell me more about the trade idea, or say "
    "evaluate when it is complete.")
#: "save this to my journal", "journal it", "save the session": the save_journal action.
_SAVE_JOURNAL = re.compile(
    r"^\s*(?:please\s+)?(?:save|log|add|put|write|store)\b[^.:!?]{0,40}?\bjournal\b"
    r"|^\s*journal\s+(?:it|this|that)\b|^\s*save\s+(?:it|this|the\s+session)\b",
    re.IGNORECASE)
_NOTE_AFTER = re.compile(r"(?:note|saying|with)\s*[:\-]\s*(?P<note>.+)$|:\s*(?P<rest>.+)$",
                         re.IGNORECASE | re.DOTALL)
_SLOT_WORDS = {"symbol": "symbol", "side": "side", "thesis": "thesis", "entry": "entry",
               "stop": "stop", "target": "target", "size": "size", "risk_pct": "risk",
               "risk_amount": "risk", "horizon": "horizon", "timeframe": "timeframe",
               "order_type": "order type", "as_of": "as of", "target_r": "target in R"}
#: TradeIntent fields by the draft slot the trader said them as.
_INTENT_SLOTS = {"proposed_entry": "entry", "proposed_stop": "stop",
                 "proposed_target": "target", "proposed_size": "size",
                 "proposed_risk_amount": "risk_amount", "holding_horizon": "horizon"}
_NEUTRAL_REPLY = ("I noted your message. Tell me the idea's symbol, side, entry, stop, target "
                  "and size, or say evaluate when it is complete.")


class AssistantInputError(FieldErrors):
    """A message or action the session engine refuses; nothing was written."""

    what = "assistant input"


@dataclass(frozen=True)
class Turn:
    """What one turn produced: the reply, the route taken, the draft after it, the follow-up
    questions, the evaluation (``BuddyReport.to_dict()``, its eval_id) when one ran, the
    journal entry when one was saved, and who wrote the words ('template' | 'llm')."""

    session_id: str
    reply: str
    route: str
    draft: TradeIdeaDraft
    questions: tuple[str, ...] = ()
    report: dict[str, Any] | None = None
    eval_id: str | None = None
    journal_id: str | None = None
    renderer: str = "template"
    tool_calls: tuple[dict[str, Any], ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the turn as JSON-able values (the draft as ``TradeIdeaDraft.to_dict``)."""
        return {"session_id": self.session_id, "reply": self.reply, "route": self.route,
                "draft": self.draft.to_dict(), "questions": list(self.questions),
                "report": self.report, "eval_id": self.eval_id,
                "journal_id": self.journal_id, "renderer": self.renderer,
                "tool_calls": [dict(c) for c in self.tool_calls]}


@dataclass
class _Outcome:
    """What a handler decided, before rendering and persisting."""

    reply: str
    route: str
    draft: TradeIdeaDraft
    questions: tuple[str, ...] = ()
    report: dict[str, Any] | None = None
    eval_id: str | None = None
    journal: JournalRow | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # keys to set on the session state
    templated: bool = True  # False for fixed replies the LLM never rephrases
    numbers_from: list[str] = field(default_factory=list)


class Brainstorm:
    """Brainstorm sessions over one ``Buddy`` (its store, config and catalogue)."""

    def __init__(self, buddy: Buddy, *, router: IntentRouter | None = None,
                 llm: AssistantLLM | None = None) -> None:
        self.buddy = buddy
        self._router = router
        self.llm = llm
        # the state each recent session was written with (oldest first): a turn answers
        # from it without a read, and write_turn checks the stored turn count is the same
        self._states: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    @property
    def router(self) -> IntentRouter:
        """Return the router (the packaged default, trained once per process, unless given)."""
        if self._router is None:
            from buddy.assistant.router import IntentRouter

            self._router = IntentRouter.default()
        return self._router

    # ---------------------------------------------------------------- public API
    def start(self, user_id: str) -> str:
        """Open a new, empty session for ``user_id``; return its session_id."""
        user_id = _checked_user(user_id)
        session_id = _new_id("ses")
        create_session(self.buddy.store, session_id=session_id, user_id=user_id,
                       started_at=_now(), mode="brainstorm", state=_initial_state())
        self._remember(user_id, session_id, _initial_state())
        return session_id

    def turn(self, user_id: str, session_id: str | None, text: str) -> Turn:
        """Answer one message of the user in ``session_id`` (a new session when None) and
        store the turn; return it. Raises AssistantInputError for an empty or overlong
        message and KeyError('session_id: ...') for a session the user does not have."""
        user_id = _checked_user(user_id)
        text = _checked_text(text)
        return self._run(user_id, session_id, text,
                         lambda sid, state, draft: self._answer(user_id, sid, state, draft,
                                                                text))

    def evaluate(self, user_id: str, session_id: str) -> Turn:
        """Evaluate the session's draft as it stands (the one-click Evaluate): the report
        when the draft is complete, else the question for what is missing."""
        user_id = _checked_user(user_id)
        return self._run(user_id, _checked_session(session_id), ACTION_REFS["evaluate"],
                         lambda sid, state, draft: self._evaluate(user_id, draft))

    def save_journal(self, user_id: str, session_id: str, note: str | None = None) -> Turn:
        """Save the session as a journal entry (the idea, the evaluation, the user's note
        verbatim and the transcript), linked to the evaluated intent if any."""
        user_id = _checked_user(user_id)
        if note is not None:
            note = _checked_text(note, name="note")
        content = ACTION_REFS["save_journal"] + ("" if note is None else f" note: {note}")
        return self._run(user_id, _checked_session(session_id), content,
                         lambda sid, state, draft: self._save_journal(user_id, sid, state,
                                                                      draft, note))

    def history(self, user_id: str, session_id: str) -> list[dict[str, Any]]:
        """Return the session's messages in order (msg_id, session_id, ts, role,
        content_or_ref, tool_calls_json_optional). Raises KeyError for a session the user
        does not have."""
        user_id = _checked_user(user_id)
        session_id = _checked_session(session_id)
        if read_session(self.buddy.store, user_id, session_id) is None:
            raise KeyError(f"session_id: no session {session_id!r} for user {user_id!r}")
        return read_messages(self.buddy.store, user_id, session_id)

    def draft(self, user_id: str, session_id: str) -> TradeIdeaDraft:
        """Return the session's draft as stored. Raises KeyError like ``history``."""
        _, state, _ = self._session(_checked_user(user_id), _checked_session(session_id),
                                    fresh=True)
        return _draft_from(state)

    # ---------------------------------------------------------------- one turn
    def _run(self, user_id: str, session_id: str | None, content: str,
             answer: Callable[[str, dict[str, Any], TradeIdeaDraft], _Outcome]) -> Turn:
        """Answer and store one turn; answer once more from the stored state when another
        process took a turn in the session meanwhile."""
        received = _now()
        for attempt in (0, 1):
            sid, state, new = self._session(user_id, session_id, fresh=attempt > 0)
            outcome = answer(sid, state, _draft_from(state))
            try:
                return self._persist(user_id, sid, state, new, received, content, outcome)
            except SessionChangedError:
                self._states.pop((user_id, sid), None)
                if attempt:
                    raise
        raise AssertionError("unreachable")  # the loop returns or raises

    def _session(self, user_id: str, session_id: str | None, *, fresh: bool = False
                 ) -> tuple[str, dict[str, Any], bool]:
        if session_id is None:
            return _new_id("ses"), _initial_state(), True
        cached = None if fresh else self._states.get((user_id, session_id))
        if cached is not None:
            # the stored turn count is checked when the turn is written (write_turn)
            return session_id, dict(cached), False
        record = read_session(self.buddy.store, user_id, session_id)
        if record is None:
            raise KeyError(f"session_id: no session {session_id!r} for user {user_id!r}")
        state: dict[str, Any] = record["state"]
        return session_id, state, False

    def _answer(self, user_id: str, session_id: str, state: dict[str, Any],
                draft: TradeIdeaDraft, text: str) -> _Outcome:
        if _SAVE_JOURNAL.search(text):  # the note is stored as the user's text, never obeyed
            return self._save_journal(user_id, session_id, state, draft, _note_in(text))
        categories = request_categories(text)
        if categories:
            return _Outcome(reply=safe_reply(text) or "", route="brainstorm", draft=draft,
                            templated=False,
                            tool_calls=[{"tool": "guardrail", "categories": list(categories)}])
        if _OVERRIDE.search(text):
            return _Outcome(reply=RULES_REPLY, route="brainstorm", draft=draft,
                            templated=False,
                            tool_calls=[{"tool": "guardrail", "categories": ["override"]}])
        router = self.router
        # the packaged router also reads company names ("my last apple trade"); a router
        # given per the contract's route(text, draft) works as well
        routing = (router.route(text, draft, symbols=self._symbols())
                   if "symbols" in inspect.signature(router.route).parameters
                   else router.route(text, draft))
        call: dict[str, Any] = {"tool": "route", "route": str(routing.route),
                                "confidence": round(float(routing.confidence), 4),
                                "trade_ref": routing.trade_ref}
        if str(routing.route) == "review":
            outcome = self._review(user_id, draft, routing)
            outcome.tool_calls.insert(0, call)
            return outcome
        from buddy.assistant.parse import apply_updates, overwrites, parse_utterance

        updates = parse_utterance(text, draft, self._symbols())
        updated = apply_updates(draft, updates)
        parsed = {"tool": "parse", "updates": [
            {"slot": u.slot, "value": _jsonable(u.value), "source_text": u.source_text}
            for u in updates]}
        noted = _changes(draft, updated, [o.sentence() for o in overwrites(draft, updates)])
        if str(routing.route) == "evaluate":
            outcome = self._evaluate(user_id, updated)
            outcome.reply = _join(noted, outcome.reply)
        else:
            outcome = self._brainstorm(updated, noted)
        outcome.tool_calls[:0] = [call, parsed]
        return outcome

    def _brainstorm(self, draft: TradeIdeaDraft, noted: str) -> _Outcome:
        from buddy.assistant.parse import next_question

        question = next_question(draft)
        if question is None:
            tail = ("The idea has every slot it needs. Say evaluate, or press Evaluate, to run "
                    "the checks on it.")
            questions: tuple[str, ...] = ()
        else:
            tail, questions = question, (question,)
        reply = _join(noted or ("I did not find a trade detail in that." if question else ""),
                      tail)
        return _Outcome(reply=reply, route="brainstorm", draft=draft, questions=questions,
                        numbers_from=_draft_numbers(draft))

    # ---------------------------------------------------------------- evaluate
    def _evaluate(self, user_id: str, draft: TradeIdeaDraft) -> _Outcome:
        from buddy.assistant.parse import next_question

        if draft.missing() or draft.problems():
            question = next_question(draft)
            missing = ", ".join(_SLOT_WORDS.get(s, s) for s in draft.missing())
            why = (f"Before I can evaluate it I need: {missing}." if missing else
                   "Before I can evaluate it, one part of the idea contradicts another.")
            questions = (question,) if question else ()
            return _Outcome(reply=_join(why, question or ""), route="evaluate", draft=draft,
                            questions=questions, numbers_from=_draft_numbers(draft),
                            tool_calls=[{"tool": "evaluate", "status": "incomplete",
                                         "missing": list(draft.missing()),
                                         "problems": [str(p) for p in draft.problems()]}])
        try:
            plan = self._plan(user_id, draft)
        except FieldErrors as exc:
            return _refused(draft, exc.errors)
        if isinstance(plan, str):  # the size cannot be worked out: say why, ask for it
            return _Outcome(reply=plan, route="evaluate", draft=draft, questions=(plan,),
                            numbers_from=_draft_numbers(draft),
                            tool_calls=[{"tool": "evaluate", "status": "no_size"}])
        try:
            intent = self.buddy.make_intent(**plan.intent_args)
            report = self.buddy.evaluate_intent(intent, log=True)
        except IntentValidationError as exc:
            return _refused(draft, exc.errors)
        data = report.to_dict()
        reply = _join(plan.said, _report_words(data))
        return _Outcome(
            reply=reply, route="evaluate", draft=draft, report=data, eval_id=report.eval_id,
            numbers_from=[*_draft_numbers(draft), plan.said, _report_words(data)],
            state={"intent_id": intent.intent_id, "eval_id": report.eval_id,
                   "evaluated": {"verdict": data["verdict"], "score": data["overall_score"],
                                 "as_of": data["as_of_local"], "size": intent.proposed_size}},
            tool_calls=[{"tool": "evaluate", "status": "evaluated",
                         "intent_id": intent.intent_id, "eval_id": report.eval_id,
                         "verdict": data["verdict"], "score": data["overall_score"],
                         "logging": report.logging.state if report.logging else None,
                         "intent": plan.intent_args | {"as_of": str(plan.intent_args["as_of"])}
                         }])

    def _plan(self, user_id: str, draft: TradeIdeaDraft) -> _Plan | str:
        """Return the intent's arguments and the words saying what was assumed, or the
        question to ask when the size cannot be worked out."""
        catalogue = self.buddy.catalogue()
        symbol = str(draft.symbol).upper()
        inst = self.buddy.instrument(symbol, catalogue)
        timeframes = sorted(tf for (s, tf) in catalogue.coverage if s == symbol)
        timeframe = draft.timeframe or (DEFAULT_TIMEFRAME if DEFAULT_TIMEFRAME in timeframes
                                        else (timeframes[0] if timeframes else None))
        if timeframe is None or (symbol, timeframe) not in catalogue.coverage:
            stored = ", ".join(timeframes) or "none"
            raise AssistantInputError([FieldError(
                "timeframe", f"has no bars for {symbol} (stored: {stored})", timeframe)])
        said: list[str] = []
        as_of: Any
        if draft.as_of:
            as_of = _exchange_time(draft.as_of, inst.timezone)
            zone = "" if isinstance(as_of, str) else f" ({inst.timezone} time)"
            said.append(f"Evaluated as of {draft.as_of}{zone}, the time you named.")
        else:
            last = catalogue.coverage[(symbol, timeframe)][1]
            as_of = last
            said.append(f"Evaluated as of the last close in the data, {_day(last, inst.timezone)}"
                        f" ({timeframe} bars); name another time with 'as of' and a date.")
        entry, stop = float(draft.entry), float(draft.stop)  # type: ignore[arg-type]
        target = draft.target
        if target is None and draft.target_r is not None:  # "target 2R": from the stop distance
            sign = 1.0 if draft.side == "long" else -1.0
            target = entry + sign * float(draft.target_r) * abs(entry - stop)
            said.append(f"Target {target:g}: {draft.target_r:g}R from the entry.")
        risk_amount = draft.risk_amount
        if draft.size is not None:
            size = float(draft.size)
        else:
            per_unit = abs(entry - stop) * inst.contract_multiplier
            if risk_amount is None:
                resolved = _resolved_as_of(as_of, inst)
                equity, source = self._equity(user_id, resolved)
                if equity is None:
                    return (f"I can't size this from a risk of {draft.risk_pct:g}% of equity: "
                            f"your equity as of {_day(resolved, inst.timezone)} is not known "
                            f"({source}). Give a size in units, or a risk amount in "
                            f"{inst.currency}.")
                risk_amount = equity * float(draft.risk_pct or 0.0) / 100.0
                basis = (f"{draft.risk_pct:g}% of your equity of {equity:,.2f} {inst.currency}"
                         f" as of {_day(resolved, inst.timezone)} ({source})")
            else:
                basis = f"{risk_amount:,.2f} {inst.currency}"
            lots = math.floor(risk_amount / per_unit / inst.lot_size + 1e-9)
            size = lots * inst.lot_size
            if size <= 0:
                return (f"A risk of {basis} buys less than one lot of {inst.lot_size:g} at a "
                        f"stop distance of {abs(entry - stop):g}: give a size in units or a "
                        "larger risk.")
            said.append(f"Size {size:g} units: a risk of {basis} over the stop distance of "
                        f"{abs(entry - stop):g} per unit ({entry:g} to {stop:g}), rounded "
                        f"down to whole lots of {inst.lot_size:g}.")
        args = {"user": user_id, "symbol": symbol, "side": draft.side, "timeframe": timeframe,
                "entry": entry, "stop": stop, "target": target, "size": size,
                "as_of": as_of, "horizon": draft.horizon,
                "order_type": draft.order_type or "limit", "risk_amount": risk_amount}
        return _Plan(intent_args=args, said=" ".join(said))

    def _equity(self, user_id: str, as_of: datetime) -> tuple[float | None, str]:
        """Return the user's equity known at ``as_of`` and where it came from: the latest
        equity history row by then, else the account snapshot written by then."""
        import pandas as pd

        from buddy.store.accounts import equity_as_of
        from buddy.store.portfolio import equity_history

        history = equity_history(self.buddy.store, user_id)
        if len(history):
            times = pd.to_datetime(history["as_of"], utc=True)
            known = history[(times <= pd.Timestamp(as_of)).to_numpy()]
            if len(known):
                return float(known["equity"].iloc[-1]), "equity history"
        value = float(equity_as_of(self.buddy.store, [user_id], [as_of])["equity"].iloc[0])
        if math.isfinite(value):
            return value, "account snapshot"
        return None, "no equity history and no account snapshot written by then"

    # ---------------------------------------------------------------- review
    def _review(self, user_id: str, draft: TradeIdeaDraft, routing: Routing) -> _Outcome:
        from buddy.store.trades import read_reviews
        from buddy.trades.review import render_review

        trade, asked = self._find_trade(user_id, routing.trade_ref)
        if trade is None:
            reply = (f"I found no closed trade of yours for {asked}. Name the trade by its id "
                     "(buddy trades list shows them), or say which symbol's last trade.")
            return _Outcome(reply=reply, route="review", draft=draft, questions=(reply,),
                            templated=False,
                            tool_calls=[{"tool": "post_trade_review", "found": False,
                                         "asked": asked}])
        trade_id = str(trade["trade_id"])
        reviews = read_reviews(self.buddy.store, user_id, trade_ids=[trade_id])
        generated = False
        if reviews.empty:
            from buddy.jobs.reviews import review_trade_ids

            reviews = review_trade_ids(self.buddy.store, user_id, [trade_id])
            generated = True
        if reviews.empty:
            reply = f"Trade {trade_id} has no post-trade review yet: it could not be reviewed."
            return _Outcome(reply=reply, route="review", draft=draft, templated=False,
                            tool_calls=[{"tool": "post_trade_review", "found": True,
                                         "trade_id": trade_id, "reviewed": False}])
        review = reviews.iloc[-1].to_dict()
        words = render_review(trade, review)
        return _Outcome(reply=words, route="review", draft=draft, templated=False,
                        state={"reviewed_trade_id": trade_id},
                        tool_calls=[{"tool": "post_trade_review", "found": True,
                                     "trade_id": trade_id, "generated": generated,
                                     "review_id": str(review.get("review_id")),
                                     "process_grade": str(review.get("process_grade"))}])

    def _find_trade(self, user_id: str, ref: str | None) -> tuple[dict[str, Any] | None, str]:
        """Return the user's closed trade ``ref`` names (``Routing.trade_ref``: a trade id,
        or 'last [TICKER] [long|short]') and how it was asked for; None when there is none."""
        from buddy.assistant.router import parse_trade_ref
        from buddy.store.trades import read_trades

        if not ref:
            return None, "the trade you meant (no trade id or symbol named)"
        try:
            named = parse_trade_ref(ref)
        except ValueError:
            return None, f"trade {ref}"
        trades = read_trades(self.buddy.store, user_id, status="closed")
        if named.trade_id is not None:
            wanted = _id_key(named.trade_id)
            hits = trades[[_id_key(str(t)) == wanted for t in trades["trade_id"]]]
            return (hits.iloc[0].to_dict() if len(hits) else None), f"trade {named.trade_id}"
        asked = " ".join(p for p in ("your last", named.symbol, named.side, "trade") if p)
        pick = trades
        if named.symbol is not None:
            pick = pick[pick["symbol"] == named.symbol.upper()]
        if named.side is not None:
            pick = pick[pick["side"] == named.side]
        if pick.empty:
            return None, asked
        return pick.sort_values(["close_ts", "trade_id"]).iloc[-1].to_dict(), asked

    # ---------------------------------------------------------------- journal
    def _save_journal(self, user_id: str, session_id: str, state: dict[str, Any],
                      draft: TradeIdeaDraft, note: str | None) -> _Outcome:
        journal_id = _new_id("jrn")
        messages = (read_messages(self.buddy.store, user_id, session_id)
                    if state.get("turns") else [])
        intent_id = state.get("intent_id")
        lines = [f"Brainstorm session {session_id}",
                 f"Idea: {draft.summary() or 'no slot filled'}"]
        evaluated = state.get("evaluated")
        if evaluated:
            score = evaluated.get("score")
            lines.append(f"Evaluation {state.get('eval_id')} as of {evaluated.get('as_of')}: "
                         f"verdict {evaluated.get('verdict')}, score "
                         f"{'n/a' if score is None else f'{score:.0f}/100'}")
        if note:
            lines.append(f"Note: {note}")
        if messages:
            lines.append("Transcript:")
            lines += [f"  {'you' if m['role'] == 'user' else 'buddy'}: {m['content_or_ref']}"
                      for m in messages]
        tags = ("brainstorm",) + (("evaluated",) if intent_id else ())
        row = JournalRow(journal_id=journal_id, note_text="\n".join(lines), tags=tags,
                         intent_id=intent_id)
        linked = f", linked to the evaluated intent {intent_id}" if intent_id else ""
        reply = f"Saved this session to your journal as {journal_id}{linked}."
        return _Outcome(reply=reply, route="brainstorm", draft=draft, journal=row,
                        templated=False, state={"journal_id": journal_id},
                        tool_calls=[{"tool": "save_journal", "journal_id": journal_id,
                                     "intent_id": intent_id, "n_messages": len(messages),
                                     "note_chars": len(note or "")}])

    # ---------------------------------------------------------------- rendering, storing
    def _render(self, outcome: _Outcome) -> tuple[str, str, str | None]:
        """Return (reply, renderer, fallback reason): the LLM's rephrasing when configured
        and the reply is a template, else the template; a reply with predictive wording or
        advice never given is replaced by a neutral one."""
        text, renderer, reason = outcome.reply, "template", None
        if self.llm is not None and outcome.templated:
            rephrased = self.llm.rephrase(outcome.reply,
                                          numbers_from=[outcome.reply, *outcome.numbers_from])
            text, renderer, reason = rephrased.text, rephrased.renderer, rephrased.fallback_reason
        if predictive_phrases(text) or unsafe_advice(text):
            # the template echoes the user's words (the thesis, a trade id): never let them
            # through as the workbench's own claim
            reason = f"reply held wording the workbench never uses; {reason or ''}".strip("; ")
            text, renderer = _NEUTRAL_REPLY, "template"
        return text, renderer, reason

    def _persist(self, user_id: str, session_id: str, state: dict[str, Any], new: bool,
                 received: datetime, content: str, outcome: _Outcome) -> Turn:
        reply, renderer, reason = self._render(outcome)
        answered = max(_now(), received + timedelta(microseconds=1))  # after the message
        new_state = {**state, **outcome.state, "draft": outcome.draft.to_dict(),
                     "turns": int(state.get("turns", 0)) + 1, "last_route": outcome.route}
        calls = [*outcome.tool_calls, {"tool": "render", "renderer": renderer,
                                       "fallback_reason": reason}]
        write_turn(self.buddy.store, session_id=session_id, user_id=user_id,
                   active_at=answered, mode=outcome.route, state=new_state, new_session=new,
                   journal=outcome.journal,
                   expect_turns=None if new else int(state.get("turns", 0)), messages=[
                       MessageRow(msg_id=_new_id("msg"), ts=received, role="user",
                                  content=content),
                       MessageRow(msg_id=_new_id("msg"), ts=answered, role="assistant",
                                  content=reply, tool_calls=calls)])
        self._remember(user_id, session_id, new_state)
        return Turn(session_id=session_id, reply=reply, route=outcome.route,
                    draft=outcome.draft, questions=outcome.questions, report=outcome.report,
                    eval_id=outcome.eval_id,
                    journal_id=outcome.journal.journal_id if outcome.journal else None,
                    renderer=renderer, tool_calls=tuple(calls))

    def _remember(self, user_id: str, session_id: str, state: dict[str, Any]) -> None:
        key = (user_id, session_id)
        with self._lock:
            self._states.pop(key, None)
            self._states[key] = state
            while len(self._states) > CACHED_SESSIONS:
                self._states.pop(next(iter(self._states)))

    def _symbols(self) -> dict[str, str]:
        return {s: inst.name for s, inst in self.buddy.catalogue().instruments.items()}


@dataclass(frozen=True)
class _Plan:
    intent_args: dict[str, Any]
    said: str


# -------------------------------------------------------------------- helpers
def _now() -> datetime:
    return datetime.now(UTC)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def _initial_state() -> dict[str, Any]:
    return {"draft": {}, "turns": 0}


def _draft_from(state: dict[str, Any]) -> TradeIdeaDraft:
    from buddy.assistant.draft import TradeIdeaDraft

    return TradeIdeaDraft.from_dict(state.get("draft") or {})


def _checked_user(user_id: Any) -> str:
    if not isinstance(user_id, str) or not user_id.strip():
        raise AssistantInputError([FieldError("user_id", "must be a non-empty string",
                                              user_id)])
    return user_id.strip()


def _checked_session(session_id: Any) -> str:
    if not isinstance(session_id, str) or not session_id.strip():
        raise AssistantInputError([FieldError("session_id", "must be a non-empty string",
                                              session_id)])
    return session_id.strip()


def _checked_text(text: Any, *, name: str = "text") -> str:
    if not isinstance(text, str) or not text.strip():
        raise AssistantInputError([FieldError(name, "must be a non-empty string", text)])
    if len(text) > MAX_TEXT_CHARS:
        raise AssistantInputError([FieldError(
            name, f"must be at most {MAX_TEXT_CHARS} characters", f"{len(text)} characters")])
    return text.strip()


def _note_in(text: str) -> str | None:
    match = _NOTE_AFTER.search(text)
    if match is None:
        return None
    note = (match.group("note") or match.group("rest") or "").strip()
    return note or None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _slot_values(draft: TradeIdeaDraft) -> dict[str, Any]:
    """Return the draft's filled values (not its declined slots or conflicts)."""
    return {k: v for k, v in draft.to_dict().items()
            if v is not None and k not in ("declined", "conflicts")}


def _id_key(trade_id: str) -> str:
    return trade_id.replace("-", "").strip().lower()


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _changes(before: TradeIdeaDraft, after: TradeIdeaDraft, changed: Sequence[str]) -> str:
    """Return the words saying which slots the turn filled and which it changed (the
    parser's ``Overwrite.sentence``)."""
    old, new = _slot_values(before), _slot_values(after)
    filled = []
    for slot, value in new.items():
        if slot in old:
            continue
        shown = f"{_fmt(value)}%" if slot == "risk_pct" else _fmt(value)
        filled.append(f"{_SLOT_WORDS.get(slot, slot)} " + (f"'{value}'" if slot == "thesis"
                                                          else shown))
    parts = ["Noted: " + ", ".join(filled) + "."] if filled else []
    parts += [c[0].upper() + c[1:] + "." for c in changed if c]
    return " ".join(parts)


def _draft_numbers(draft: TradeIdeaDraft) -> list[str]:
    return [_fmt(v) for v in _slot_values(draft).values() if isinstance(v, (int, float))]


def _join(*parts: str) -> str:
    return " ".join(p.strip() for p in parts if p and p.strip())


def _day(when: Any, timezone: str) -> str:
    import pandas as pd

    stamp = pd.Timestamp(when)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return stamp.tz_convert(timezone).strftime("%Y-%m-%d")


def _exchange_time(as_of: str, timezone: str) -> str | datetime:
    """Return a date as it is (the session's close), a time without a zone as the
    exchange's local time (as the trader reads the chart), a time with one as it is."""
    import pandas as pd

    if len(as_of.strip()) <= 10:
        return as_of
    try:
        stamp = pd.Timestamp(as_of)
    except (ValueError, TypeError):
        return as_of  # make_intent names the field and the rule
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(timezone)
    return stamp.tz_convert("UTC").to_pydatetime()


def _resolved_as_of(as_of: Any, inst: Any) -> datetime:
    from buddy.api import resolve_as_of

    if isinstance(as_of, datetime):
        return as_of
    try:
        return resolve_as_of(str(as_of), inst.timezone, calendar=inst.trading_calendar)
    except FieldErrors:
        raise
    except (ValueError, TypeError):
        raise AssistantInputError([FieldError(
            "as_of", "must be a date YYYY-MM-DD or an ISO timestamp with a zone", as_of)]
        ) from None


def _report_words(data: dict[str, Any]) -> str:
    """Return the report in a few sentences: the verdict and score, the top issues' titles,
    what was not checked (the report's own words)."""
    score = data.get("overall_score")
    words = [f"Verdict {str(data['verdict']).upper()}, score "
             f"{'n/a' if score is None else f'{score:.0f}/100'}, as of {data['as_of_local']}."]
    shown = [i for i in data.get("issues", []) if i.get("shown")]
    if shown:
        titles = "; ".join(str(i.get("title") or i.get("code")) for i in shown)
        words.append(f"Top issues: {titles}.")
    else:
        words.append("No issue found by the checks that ran.")
    if data.get("not_checked"):
        words.append(f"Not checked: {len(data['not_checked'])} item(s), listed in the report.")
    return " ".join(words)


def _refused(draft: TradeIdeaDraft, errors: Sequence[FieldError]) -> _Outcome:
    """Return the answer to an idea the intent rules refuse: each field in the draft's words
    (``proposed_entry`` is the entry), its rule and value, and which to change."""
    named = [(_INTENT_SLOTS.get(e.field, e.field), e) for e in errors]
    problems = "; ".join(f"{slot} {e.rule} (got {e.value!r})" for slot, e in named)
    reply = f"The idea can't be evaluated as it stands: {problems}. Which should change?"
    return _Outcome(reply=reply, route="evaluate", draft=draft, questions=(reply,),
                    numbers_from=[problems, *_draft_numbers(draft)],
                    tool_calls=[{"tool": "evaluate", "status": "invalid",
                                 "errors": [{"field": slot, "intent_field": e.field,
                                             "rule": e.rule, "value": _jsonable(e.value)}
                                            for slot, e in named]}])
