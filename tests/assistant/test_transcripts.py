"""Golden brainstorm transcripts (``transcripts/*.yaml``) replayed through the real engine.

Each file is one conversation of one user over a private copy of the demo database: every
turn says something (``say``) or presses a button (``action: evaluate | save_journal``), and
states what must follow: the route, the draft's slots, what is missing or contradictory, the
question asked (``asks``: a word of it, or null for none), whether an evaluation ran (and the
intent it built), the journal entry saved, words the reply must or must not hold. Every reply
is checked for predictive wording and advice the workbench never gives; every turn's two
messages must be stored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs pinned

from buddy.api import Buddy
from buddy.assistant.session import Brainstorm, Turn
from buddy.guardrails import SAFE_REPLIES, predictive_phrases, unsafe_advice
from buddy.store import Store
from buddy.store.portfolio import record_equity
from buddy.store.trades import read_journal, read_trades

TRANSCRIPTS = sorted((Path(__file__).parent / "transcripts").glob("*.yaml"))
TURN_KEYS = {"say", "action", "note", "route", "slots", "missing", "problems", "asks",
             "evaluated", "intent", "reply_contains", "reply_lacks", "journal", "safe_reply",
             "draft_unchanged", "reviewed_symbol", "reviewed_by_id"}


@pytest.fixture(scope="module")
def brainstorm(demo_store: Store, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Brainstorm]:
    """Return one engine over a private copy of the demo database (the demo trader's trades
    and reviews, the bundled market data) shared by the module's transcripts."""
    import shutil

    path = tmp_path_factory.mktemp("transcripts") / "buddy.duckdb"
    shutil.copy(demo_store.path, path)
    yield Brainstorm(Buddy(Store(path)))


def test_every_transcript_is_well_formed() -> None:
    assert len(TRANSCRIPTS) >= 5, [p.name for p in TRANSCRIPTS]
    for path in TRANSCRIPTS:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert {"name", "user", "turns"} <= set(spec), path.name
        for n, turn in enumerate(spec["turns"]):
            assert set(turn) <= TURN_KEYS, (path.name, n, set(turn) - TURN_KEYS)
            assert ("say" in turn) != ("action" in turn), (path.name, n)


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript(path: Path, brainstorm: Brainstorm) -> None:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    user = spec["user"]
    store = brainstorm.buddy.store
    if "equity" in spec:
        equity = spec["equity"]
        record_equity(store, user, datetime.fromisoformat(equity["as_of"]).replace(tzinfo=UTC),
                      float(equity["amount"]), equity["currency"], "transcript")
    session_id: str | None = None
    n_evaluations = len(store.evaluations(user))
    evaluated = 0
    for n, expect in enumerate(spec["turns"]):
        where = f"{path.name} turn {n} ({expect.get('say') or expect.get('action')!r})"
        before = None if session_id is None else brainstorm.draft(user, session_id)
        turn = _play(brainstorm, user, session_id, expect)
        session_id = turn.session_id
        _check_turn(turn, expect, before, where)
        if turn.eval_id is not None and turn.report is not None:
            print(f"{path.stem} turn {n}: verdict {turn.report['verdict']}, score "
                  f"{turn.report['overall_score']}, size {turn.report['intent']['proposed_size']}"
                  f", eval {turn.eval_id}")
            evaluated += 1
            _check_evaluation(brainstorm, user, turn, expect, where)
        if "journal" in expect:
            print(f"{path.stem} turn {n}: journal {turn.journal_id}")
            _check_journal(brainstorm, user, session_id, turn, expect["journal"], where)
        if expect.get("reviewed_by_id"):
            _, (named,) = _with_trade_ids(brainstorm, user, str(expect["say"]))
            assert f"Review of {named} " in turn.reply, (where, named, turn.reply)
        if "reviewed_symbol" in expect:
            latest = read_trades(store, user, status="closed")
            latest = latest[latest["symbol"] == expect["reviewed_symbol"]]
            newest = latest.sort_values(["close_ts", "trade_id"]).iloc[-1]["trade_id"]
            assert f"Review of {newest} " in turn.reply, where
    assert session_id is not None
    history = brainstorm.history(user, session_id)
    assert [m["role"] for m in history] == ["user", "assistant"] * len(spec["turns"])
    assert len(store.evaluations(user)) == n_evaluations + evaluated


def _play(brainstorm: Brainstorm, user: str, session_id: str | None, expect: dict[str, Any]
          ) -> Turn:
    if "say" in expect:
        text, _ = _with_trade_ids(brainstorm, user, str(expect["say"]))
        return brainstorm.turn(user, session_id, text)
    if session_id is None:
        session_id = brainstorm.start(user)
    if expect["action"] == "evaluate":
        return brainstorm.evaluate(user, session_id)
    if expect["action"] == "save_journal":
        return brainstorm.save_journal(user, session_id, expect.get("note"))
    raise AssertionError(f"unknown action {expect['action']!r}")


def _with_trade_ids(brainstorm: Brainstorm, user: str, text: str) -> tuple[str, list[str]]:
    """Return ``text`` with each ``{trade:SYMBOL:N}`` as the id of the user's closed trade in
    SYMBOL at position N in close order (-1 the newest), and those ids (the store's ids are
    not written into the transcript)."""
    ids: list[str] = []

    def trade_id(match: re.Match[str]) -> str:
        trades = read_trades(brainstorm.buddy.store, user, status="closed")
        trades = trades[trades["symbol"] == match.group(1)]
        ids.append(str(trades.sort_values(["close_ts", "trade_id"])
                       .iloc[int(match.group(2))]["trade_id"]))
        return ids[-1]

    return re.sub(r"\{trade:([A-Z]+):(-?\d+)\}", trade_id, text), ids


def _check_turn(turn: Turn, expect: dict[str, Any], before: Any, where: str) -> None:
    assert not predictive_phrases(turn.reply), (where, turn.reply)
    assert not unsafe_advice(turn.reply), (where, turn.reply)
    if "route" in expect:
        assert turn.route == expect["route"], (where, turn.route, turn.reply)
    draft = turn.draft.to_dict()
    for slot, value in (expect.get("slots") or {}).items():
        got = draft[slot]
        if isinstance(value, (int, float)) and got is not None:
            assert math.isclose(got, value), (where, slot, got, value)
        else:
            assert got == value, (where, slot, got, value)
    if "missing" in expect:
        assert list(turn.draft.missing()) == expect["missing"], (where, turn.draft.missing())
    if "problems" in expect:
        assert [p.field for p in turn.draft.problems()] == expect["problems"], (
            where, turn.draft.problems())
    if "asks" in expect:
        if expect["asks"] is None:
            assert turn.questions == (), (where, turn.questions)
        else:
            assert turn.questions, (where, turn.reply)
            assert expect["asks"].lower() in turn.questions[0].lower(), (where, turn.questions)
            assert turn.questions[0] in turn.reply, where
    if "evaluated" in expect:
        assert (turn.eval_id is not None) == expect["evaluated"], (where, turn.reply)
        assert (turn.report is not None) == expect["evaluated"], where
    for words in expect.get("reply_contains", []):
        assert words.lower() in turn.reply.lower(), (where, words, turn.reply)
    for words in expect.get("reply_lacks", []):
        assert words.lower() not in turn.reply.lower(), (where, words, turn.reply)
    if "safe_reply" in expect:
        assert turn.reply == SAFE_REPLIES[expect["safe_reply"]], (where, turn.reply)
    if expect.get("draft_unchanged"):
        assert before is not None and turn.draft == before, (where, turn.draft, before)


def _check_evaluation(brainstorm: Brainstorm, user: str, turn: Turn, expect: dict[str, Any],
                      where: str) -> None:
    report = turn.report
    assert report is not None and report["eval_id"] == turn.eval_id, where
    assert report["verdict"].upper() in turn.reply, (where, turn.reply)
    for name, value in (expect.get("intent") or {}).items():
        got = report["intent"][name]
        if isinstance(value, (int, float)):
            assert math.isclose(float(got), value), (where, name, got, value)
        else:
            assert got == value, (where, name, got, value)
    logged = brainstorm.buddy.store.evaluations(user)
    assert turn.eval_id in set(logged["eval_id"]), where


def _check_journal(brainstorm: Brainstorm, user: str, session_id: str, turn: Turn,
                   expect: dict[str, Any], where: str) -> None:
    assert turn.journal_id is not None, (where, turn.reply)
    assert turn.journal_id in turn.reply, where
    journal = read_journal(brainstorm.buddy.store, user)
    row = journal[journal["journal_id"] == turn.journal_id]
    assert len(row) == 1, where
    note = str(row["note_text"].iloc[0])
    assert session_id in note, where
    state_intent = row["intent_id_optional"].iloc[0]
    if expect.get("linked"):
        assert isinstance(state_intent, str) and state_intent, where
        intents = brainstorm.buddy.store.evaluations(user)
        assert state_intent in set(intents["intent_id"]), where
    else:
        assert state_intent is None or (isinstance(state_intent, float)
                                        and math.isnan(state_intent)), where
    for words in expect.get("contains", []):
        assert words.lower() in note.lower(), (where, words, note)
