"""Command line: ``buddy brainstorm`` talks a trade idea through and evaluates it.

``--say TEXT`` (repeatable) answers each message in turn and exits; without it the command
reads messages from the prompt until ``/quit`` or end of input. ``/evaluate`` is the
one-click Evaluate, ``/save [NOTE]`` saves the session to the journal, ``/history`` prints the
stored messages. ``--session ID`` continues a session.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from buddy.errors import BuddyError, FieldErrors

PROMPT = "you"
COMMANDS_HELP = "/evaluate, /save [note], /history, /quit"


def _brainstorm(ctx: click.Context) -> Any:
    from buddy.api import Buddy
    from buddy.assistant.llm import AssistantLLM
    from buddy.assistant.session import Brainstorm
    from buddy.config_sources import production_config

    root = ctx.find_root().obj
    if root is not None and hasattr(root, "store"):
        store = root.store()  # under `buddy`: its --db
    else:  # run on its own: $BUDDY_DB, else data/buddy.duckdb
        from buddy.cli import open_store

        store = open_store(None)
    return Brainstorm(Buddy(store, production_config()), llm=AssistantLLM.from_env())


def _fail(exc: Exception) -> None:
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _show(turn: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(turn.to_dict(), default=str))
        return
    click.echo(f"buddy> {turn.reply}")
    if turn.eval_id:
        click.echo(f"       (evaluation {turn.eval_id} logged)")


@click.command()
@click.option("--user", "user_id", required=True, help="User id (the session's owner).")
@click.option("--session", "session_id", default=None, metavar="ID",
              help="Continue this session (default: start a new one).")
@click.option("--say", "messages", multiple=True, metavar="TEXT",
              help="A message to answer, then exit; repeatable, answered in order.")
@click.option("--evaluate", "do_evaluate", is_flag=True,
              help="After the messages, evaluate the draft (the one-click Evaluate).")
@click.option("--save-journal", is_flag=True,
              help="After the messages (and the evaluation), save the session to the journal.")
@click.option("--note", default=None, help="Your note for --save-journal (stored as text).")
@click.option("--history", "show_history", is_flag=True,
              help="Print the session's stored messages and exit (needs --session).")
@click.option("--json", "as_json", is_flag=True, help="Print each turn as one JSON line.")
@click.pass_context
def brainstorm(ctx: click.Context, user_id: str, session_id: str | None,
               messages: tuple[str, ...], do_evaluate: bool, save_journal: bool,
               note: str | None, show_history: bool, as_json: bool) -> None:
    """Talk a trade idea through: fill its slots, evaluate it, save it to the journal."""
    if show_history and session_id is None:
        raise click.BadParameter("needs --session ID", param_hint="--history")
    if note is not None and not save_journal:
        raise click.BadParameter("is only read with --save-journal", param_hint="--note")
    try:
        engine = _brainstorm(ctx)
        if show_history:
            for message in engine.history(user_id, session_id):
                click.echo(json.dumps(message, default=str) if as_json else
                           f"{message['ts']} {message['role']}> {message['content_or_ref']}")
            return
        if messages or do_evaluate or save_journal:
            _one_shot(engine, user_id, session_id, messages, do_evaluate, save_journal, note,
                      as_json)
            return
        _loop(engine, user_id, session_id, as_json)
    except (FieldErrors, BuddyError, KeyError) as exc:
        _fail(exc)


def _one_shot(engine: Any, user_id: str, session_id: str | None, messages: tuple[str, ...],
              do_evaluate: bool, save_journal: bool, note: str | None, as_json: bool) -> None:
    if session_id is None and not messages:
        session_id = engine.start(user_id)
    for text in messages:
        turn = engine.turn(user_id, session_id, text)
        session_id = turn.session_id
        _show(turn, as_json)
    if do_evaluate:
        _show(engine.evaluate(user_id, session_id), as_json)
    if save_journal:
        _show(engine.save_journal(user_id, session_id, note), as_json)
    if not as_json:
        click.echo(f"session {session_id} (continue with --session {session_id})", err=True)


def _loop(engine: Any, user_id: str, session_id: str | None, as_json: bool,
          read: Callable[[], str] | None = None) -> None:
    """Answer messages from the prompt until /quit or end of input."""
    read = read or (lambda: click.prompt(PROMPT, prompt_suffix="> ", default="",
                                         show_default=False))
    click.echo(f"Tell me the trade idea in your words ({COMMANDS_HELP}).", err=True)
    while True:
        try:
            text = read().strip()
        except (EOFError, click.Abort):
            break
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        try:
            if text == "/evaluate" or text.startswith("/save") or text == "/history":
                if session_id is None:
                    session_id = engine.start(user_id)
                if text == "/evaluate":
                    turn = engine.evaluate(user_id, session_id)
                elif text == "/history":
                    for m in engine.history(user_id, session_id):
                        click.echo(f"{m['ts']} {m['role']}> {m['content_or_ref']}")
                    continue
                else:
                    turn = engine.save_journal(user_id, session_id,
                                               text[len("/save"):].strip() or None)
            else:
                turn = engine.turn(user_id, session_id, text)
        except FieldErrors as exc:  # a bad message: say so and keep the conversation
            click.echo(f"error: {exc}", err=True)
            continue
        session_id = turn.session_id
        _show(turn, as_json)
    if session_id is not None and not as_json:
        click.echo(f"session {session_id} (continue with --session {session_id})", err=True)
