"""Command line: ``buddy feedback EVAL_ID CODE --dismissed|--helpful|--not-helpful`` (feedback
on one report item) and ``buddy ab-test create|list|end|analyse`` (nudge and warning
experiments)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from buddy.errors import BuddyError, FieldError, FieldErrors


def _store(ctx: click.Context) -> Any:
    return ctx.find_root().obj.store()


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.command()
@click.argument("eval_id")
@click.argument("code")
@click.option("--dismissed", is_flag=True, help="You dismissed this item.")
@click.option("--helpful", "rating", flag_value="helpful", default=None,
              help="The item helped.")
@click.option("--not-helpful", "rating", flag_value="not_helpful",
              help="The item did not help.")
@click.option("--user", "user_id", default=None,
              help="Your user id: the evaluation must be yours.")
@click.pass_context
def feedback(ctx: click.Context, eval_id: str, code: str, dismissed: bool,
             rating: str | None, user_id: str | None) -> None:
    """Record feedback on one item (issue CODE) of the logged evaluation EVAL_ID."""
    from buddy.behavior.feedback import FeedbackError, record_feedback

    kinds = (["dismissed"] if dismissed else []) + ([rating] if rating else [])
    try:
        if not kinds:
            raise FeedbackError([FieldError("feedback", "give --dismissed, --helpful or "
                                            "--not-helpful", None)])
        store = _store(ctx)
        for kind in kinds:
            saved = record_feedback(store, eval_id=eval_id, code=code, kind=kind,
                                    user_id=user_id, source="cli")
    except (BuddyError, FieldErrors) as exc:
        _fail(exc)
    rated = {True: "helpful", False: "not helpful", None: "not rated"}[saved.helpful]
    click.echo(f"feedback on {saved.issue_code} of {saved.eval_id}: "
               f"{'dismissed' if saved.dismissed else 'not dismissed'}, {rated}")


@click.group("ab-test")
def ab_test() -> None:
    """Run A/B experiments on nudges and warnings (arms show, reword or hold back items)."""


@ab_test.command("create")
@click.argument("experiment_id")
@click.option("--codes", required=True,
              help="Comma-separated issue codes the arms apply to (warnings or nudges).")
@click.option("--arm", "arms", multiple=True, required=True, metavar="NAME:ACTION[:STYLE][@W]",
              help="An arm, the first the control: e.g. control:show, ask:reword:question@2, "
                   "quiet:hold_back. Repeat for each arm.")
@click.option("--users", default="", help="Comma-separated user ids (default: every user).")
@click.option("--max-severity", default="medium", show_default=True,
              type=click.Choice(["info", "low", "medium", "high", "critical"]),
              help="Items more severe are always shown as they are.")
@click.option("--description", default="", help="What the experiment tests.")
@click.pass_context
def experiment_create(ctx: click.Context, experiment_id: str, codes: str,
                      arms: tuple[str, ...], users: str, max_severity: str,
                      description: str) -> None:
    """Create an active experiment; its arms apply from the next evaluation."""
    from buddy.behavior.experiments import NudgeExperiment, create_experiment

    try:
        made = create_experiment(_store(ctx), NudgeExperiment.create(
            experiment_id=experiment_id, codes=codes, arms=[_arm(a) for a in arms],
            users=users, max_severity=max_severity, description=description))
    except (BuddyError, FieldErrors) as exc:
        _fail(exc)
    click.echo(f"experiment {made.experiment_id} active: codes {', '.join(made.codes)}; arms "
               + ", ".join(f"{a.name} ({a.action}{':' + a.style if a.style else ''}, "
                           f"weight {a.weight:g})" for a in made.arms))


def _arm(text: str) -> dict[str, Any]:
    """Return the arm mapping of 'NAME:ACTION[:STYLE][@WEIGHT]' (validated by the caller)."""
    spec, _, weight = text.partition("@")
    parts = spec.split(":")
    arm: dict[str, Any] = {"name": parts[0], "action": parts[1] if len(parts) > 1 else None,
                           "style": parts[2] if len(parts) > 2 else None}
    if weight:
        try:
            arm["weight"] = float(weight)
        except ValueError:
            arm["weight"] = weight  # refused by the validation, naming the arm
    return arm


@ab_test.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def experiment_list(ctx: click.Context, as_json: bool) -> None:
    """List the experiments, active and ended."""
    from buddy.store.nudge_experiments import experiment_rows

    rows = experiment_rows(_store(ctx))
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no experiments")
    for row in rows:
        click.echo(f"{row['experiment_id']} [{row['status']}] codes {', '.join(row['codes'])}; "
                   f"arms {', '.join(a['name'] + ':' + a['action'] for a in row['arms'])}")


@ab_test.command("end")
@click.argument("experiment_id")
@click.pass_context
def experiment_end(ctx: click.Context, experiment_id: str) -> None:
    """End an active experiment: later evaluations show its items as they are."""
    from buddy.behavior.experiments import end_experiment

    try:
        end_experiment(_store(ctx), experiment_id)
    except (BuddyError, FieldErrors) as exc:
        _fail(exc)
    click.echo(f"experiment {experiment_id} ended")


@ab_test.command("analyse")
@click.argument("experiment_id")
@click.option("--as-of", "as_of", default=None,
              help="Read only what was known then: YYYY-MM-DD (end of that UTC day) or ISO "
                   "with zone (default: everything recorded).")
@click.option("--window-hours", type=float, default=24.0, show_default=True,
              help="How long after a decision a revision or trade counts as its outcome.")
@click.option("--confidence", type=float, default=0.95, show_default=True)
@click.pass_context
def experiment_analyse(ctx: click.Context, experiment_id: str, as_of: str | None,
                       window_hours: float, confidence: float) -> None:
    """Print each arm's dismiss and helpfulness rates and outcomes with n and intervals."""
    from buddy.behavior.experiment_analysis import (
        arm_effects,
        arm_rates,
        experiment_units,
        render_analysis,
    )
    from buddy.strategy.cli import parse_as_of

    try:
        found, decisions, items = experiment_units(
            _store(ctx), experiment_id, as_of=parse_as_of(as_of), window_hours=window_hours)
        rates = arm_rates(found, decisions, items, confidence=confidence)
        effects = arm_effects(found, decisions, items, confidence=confidence)
    except (BuddyError, FieldErrors) as exc:
        _fail(exc)
    click.echo(render_analysis(found, decisions, rates, effects, confidence=confidence))
