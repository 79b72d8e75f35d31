"""Feedback on report items, the behavioural outcomes of decision points, the analysis of an
experiment per arm (checked against independent computations) and the commands, on the demo
trader's real intents, trades and reviews."""

from __future__ import annotations

import dataclasses
import math
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from buddy.behavior.experiment_analysis import arm_effects, arm_rates, experiment_units
from buddy.behavior.feedback import FeedbackError, intent_outcomes, record_feedback
from buddy.cli import cli
from buddy.store import Store
from tests.behavior.experiment_data import (
    EXPERIMENT_ID,
    NUDGE,
    SEVERE,
    WARNING,
    build_experiment_store,
)


@pytest.fixture(scope="module")
def experiment_store(demo_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The demo store with 150 evaluations under the test experiment (read-only)."""
    return build_experiment_store(demo_store, tmp_path_factory.mktemp("exp") / "exp.duckdb")


@pytest.fixture
def writable(experiment_store: Store, tmp_path: Path) -> Callable[[], Store]:
    def copy() -> Store:
        path = tmp_path / "exp-copy.duckdb"
        shutil.copy(experiment_store.path, path)
        return Store(path)
    return copy


def _arms(store: Store) -> pd.DataFrame:
    import json

    rows = store.query("SELECT eval_id, intent_id, user_id, eval_ts, "
                       "CAST(experiment_arms_json AS VARCHAR) AS arms FROM trade_evaluations "
                       "WHERE experiment_arms_json IS NOT NULL ORDER BY eval_ts")
    rows["arm"] = [json.loads(a)[0]["arm"] for a in rows["arms"]]
    rows["codes"] = [tuple(json.loads(a)[0]["codes"]) for a in rows["arms"]]
    return rows


# ---------------------------------------------------------------- feedback
def test_feedback_is_recorded_per_item_a_dismissal_stays_a_rating_is_replaced(
        writable: Callable[[], Store]) -> None:
    store = writable()
    arms = _arms(store)
    shown = arms[(arms["arm"] == "control") & arms["codes"].map(lambda c: NUDGE not in c)]
    eval_id = shown["eval_id"].iloc[0]
    t0 = datetime(2026, 1, 5, 12, tzinfo=UTC)
    # an item the experiment does not target takes feedback too (the fixture gave none)
    first = record_feedback(store, eval_id=eval_id, code="no_time_stop", kind="dismissed",
                            at=t0)
    assert (first.dismissed, first.helpful, first.module_name) == (True, None, "exit_plan")
    record_feedback(store, eval_id=eval_id, code="NO_TIME_STOP", kind="helpful",
                    source="widget", at=t0 + timedelta(minutes=1))
    last = record_feedback(store, eval_id=eval_id, code="NO_TIME_STOP", kind="not_helpful",
                           user_id="demo", at=t0 + timedelta(minutes=2))
    assert (last.dismissed, last.helpful, last.source) == (True, False, "cli")
    assert last.first_at == t0 and last.updated_at == t0 + timedelta(minutes=2)


def test_bad_feedback_is_refused_naming_the_field_and_nothing_is_written(
        writable: Callable[[], Store]) -> None:
    store = writable()
    arms = _arms(store)
    held = arms[arms["arm"] == "quiet"]["eval_id"].iloc[0]
    shown = arms[arms["arm"] == "control"]["eval_id"].iloc[0]
    before = store.query("SELECT count(*) AS n FROM report_item_feedback")["n"].iloc[0]
    cases = [
        (dict(eval_id="nope", code=WARNING, kind="helpful"), "eval_id"),
        (dict(eval_id=shown, code=WARNING, kind="helpful", user_id="someone"), "eval_id"),
        (dict(eval_id=shown, code="STOP_TOO_TIGHT", kind="helpful"), "code"),
        (dict(eval_id=held, code=WARNING, kind="dismissed"), "code"),
        (dict(eval_id=shown, code=WARNING, kind="love"), "kind"),
        (dict(eval_id=shown, code=WARNING, kind="helpful", source="email"), "source"),
    ]
    for kwargs, field in cases:
        with pytest.raises(FeedbackError) as refused:
            record_feedback(store, **kwargs)
        assert field in refused.value.fields, (kwargs, refused.value)
    assert store.query("SELECT count(*) AS n FROM report_item_feedback")["n"].iloc[0] == before


def test_dismissing_a_behaviour_nudge_quiets_that_detector(
        writable: Callable[[], Store]) -> None:
    store = writable()
    arms = _arms(store)
    row = arms[(arms["arm"] == "control") & arms["codes"].map(lambda c: NUDGE in c)].iloc[0]
    at = datetime(2026, 1, 5, 12, tzinfo=UTC)
    record_feedback(store, eval_id=row["eval_id"], code=NUDGE, kind="dismissed", at=at)
    quiet = store.query("SELECT detector, eval_id FROM nudge_dismissals WHERE user_id = 'demo' "
                        "AND dismissed_at = ?", [at])
    assert quiet.values.tolist() == [["revenge", row["eval_id"]]]
    record_feedback(store, eval_id=row["eval_id"], code=WARNING, kind="dismissed", at=at)
    assert len(store.query("SELECT * FROM nudge_dismissals WHERE dismissed_at = ?", [at])) == 1


# ---------------------------------------------------------------- outcomes
def test_outcomes_read_the_linked_trade_and_its_review(experiment_store: Store) -> None:
    arms = _arms(experiment_store)
    out = intent_outcomes(experiment_store, arms).set_index("eval_id")
    trades = experiment_store.query(
        "SELECT t.linked_intent_id AS intent_id, t.trade_id, t.open_ts, r.process_score "
        "FROM trades t LEFT JOIN post_trade_reviews r USING (trade_id) "
        "WHERE t.user_id = 'demo' AND t.linked_intent_id IS NOT NULL")
    merged = arms.merge(trades, on="intent_id", how="left").set_index("eval_id")
    # a plain loop over the rule: traded when a linked trade opened within 24 h
    for eval_id, row in merged.iterrows():
        opened = pd.notna(row["trade_id"]) and (
            pd.Timestamp(row["eval_ts"]) <= row["open_ts"]
            <= pd.Timestamp(row["eval_ts"]) + pd.Timedelta(hours=24))
        assert bool(out.loc[eval_id, "traded"]) == opened, eval_id
        if opened:
            assert out.loc[eval_id, "trade_id"] == row["trade_id"]
            assert np.isclose(out.loc[eval_id, "process_score"], row["process_score"],
                              equal_nan=True)
    assert out["traded"].sum() > 100  # the demo trader traded most of its intents


def test_a_revised_plan_is_changed_and_unknowns_are_not_checked(
        writable: Callable[[], Store]) -> None:
    store = writable()
    arms = _arms(store)
    first = arms.iloc[0]
    intent = store.query("SELECT * FROM trade_intents WHERE intent_id = ?",
                         [first["intent_id"]]).iloc[0].to_dict()
    revised = {**intent, "intent_id": "revised-1", "proposed_stop": intent["proposed_stop"] * 0.99,
               "as_of": pd.Timestamp(intent["as_of"]) + pd.Timedelta(hours=2)}
    same = {**intent, "intent_id": "same-plan",
            "as_of": pd.Timestamp(intent["as_of"]) + pd.Timedelta(hours=3)}
    lonely = {**intent, "intent_id": "no-trader", "user_id": "nobody"}
    from buddy.store.core import insert_frame

    with store.transaction() as con:
        insert_frame(con, "trade_intents", pd.DataFrame([revised, same, lonely]))
    evaluations = pd.DataFrame([
        {"eval_id": "e1", "intent_id": first["intent_id"], "user_id": "demo",
         "eval_ts": first["eval_ts"]},
        {"eval_id": "e2", "intent_id": "no-trader", "user_id": "nobody",
         "eval_ts": first["eval_ts"]}])
    out = intent_outcomes(store, evaluations).set_index("eval_id")
    assert bool(out.loc["e1", "changed"]) and not bool(out.loc["e1", "abandoned"])
    # a trader with no trade history: traded and abandoned are not checked, never False
    assert not bool(out.loc["e2", "changed"])
    assert pd.isna(out.loc["e2", "traded"]) and pd.isna(out.loc["e2", "abandoned"])
    # as of an hour after the decision the window is still open: nothing known yet
    early = intent_outcomes(store, evaluations, as_of=pd.Timestamp(first["eval_ts"])
                            + pd.Timedelta(hours=1)).set_index("eval_id")
    assert early[["changed", "traded", "abandoned"]].isna().all().all()
    with pytest.raises(FeedbackError):
        intent_outcomes(store, evaluations, window_hours=0)


# ---------------------------------------------------------------- the analysis
def _wilson(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_rates_and_differences_agree_with_independent_computations(
        experiment_store: Store) -> None:
    exp, decisions, items = experiment_units(experiment_store, EXPERIMENT_ID)
    arms = _arms(experiment_store)
    assert len(decisions) == len(arms) == 150
    assert decisions.groupby("arm").size().to_dict() == arms.groupby("arm").size().to_dict()
    # every targeted item below the severity cap is a unit's item; the severe one is exempt
    assert SEVERE not in set(items["issue_code"])
    assert len(items) == sum(len(c) for c in arms["codes"])
    rates = arm_rates(exp, decisions, items).set_index(["arm", "measure"])
    feedback = experiment_store.query("SELECT * FROM report_item_feedback")
    z = stats.norm.ppf(0.975)
    for arm in ("control", "ask"):
        mine = items[items["arm"] == arm]
        said = feedback[feedback["eval_id"].isin(mine["eval_id"])]
        k, n = int(said["dismissed"].sum()), len(mine)
        row = rates.loc[(arm, "dismissed")]
        assert (row["k"], row["n"]) == (k, n)
        assert np.allclose([row["lo"], row["hi"]], _wilson(k, n, z))
        rated = said["helpful"].dropna()
        assert rates.loc[(arm, "helpful"), "n"] == len(rated)
        assert rates.loc[(arm, "helpful"), "k"] == int(rated.sum())
    # nothing shown in the hold-back arm: no rate, never a zero
    assert rates.loc[("quiet", "dismissed"), "n"] == 0
    assert math.isnan(rates.loc[("quiet", "dismissed"), "value"])
    effects = arm_effects(exp, decisions, items).set_index(["arm", "measure"])
    # Newcombe's hybrid score interval from the two Wilson intervals
    k1, n1 = rates.loc[("ask", "dismissed"), ["k", "n"]]
    k0, n0 = rates.loc[("control", "dismissed"), ["k", "n"]]
    (l1, u1), (l0, u0) = _wilson(int(k1), int(n1), z), _wilson(int(k0), int(n0), z)
    p1, p0 = k1 / n1, k0 / n0
    d = p1 - p0
    lo = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    got = effects.loc[("ask", "dismissed")]
    assert np.allclose([got["difference"], got["lo"], got["hi"]], [d, lo, hi])
    # the mean process score: Welch's interval
    a = decisions.loc[decisions["arm"] == "quiet", "process_score"].dropna().to_numpy()
    b = decisions.loc[decisions["arm"] == "control", "process_score"].dropna().to_numpy()
    welch = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    got = effects.loc[("quiet", "process_score")]
    assert np.allclose([got["lo"], got["hi"]], [welch.low, welch.high])


def test_the_analysis_as_of_t_reads_nothing_after_t(experiment_store: Store) -> None:
    _, every, _ = experiment_units(experiment_store, EXPERIMENT_ID)
    cut = every["eval_ts"].sort_values().iloc[len(every) // 2]
    _, decisions, items = experiment_units(experiment_store, EXPERIMENT_ID, as_of=cut)
    assert (decisions["eval_ts"] <= cut).all() and len(decisions) < len(every)
    feedback = experiment_store.query("SELECT eval_id, issue_code, first_at "
                                      "FROM report_item_feedback WHERE first_at > ?", [cut])
    later = set(zip(feedback["eval_id"], feedback["issue_code"], strict=True))
    mine = items[items["dismissed"].fillna(False) | items["helpful"].notna()]
    assert not later & set(zip(mine["eval_id"], mine["issue_code"], strict=True))
    # the last decisions' windows are still open at the cut: their outcomes are unknown
    recent = decisions[decisions["eval_ts"] > cut - pd.Timedelta(hours=24)]
    assert recent["traded"].isna().all()


def test_feedback_changed_after_t_is_not_known_as_of_t(writable: Callable[[], Store]) -> None:
    store = writable()
    given = store.query("SELECT f.eval_id, f.issue_code, f.first_at, e.eval_ts "
                        "FROM report_item_feedback f JOIN trade_evaluations e USING (eval_id) "
                        "WHERE f.dismissed ORDER BY e.eval_ts LIMIT 1").iloc[0]
    cut = pd.Timestamp(given["eval_ts"]) + pd.Timedelta(days=2)  # after the first feedback
    _, _, before = experiment_units(store, EXPERIMENT_ID, as_of=cut)
    mine = before[(before["eval_id"] == given["eval_id"])
                  & (before["issue_code"] == given["issue_code"])].iloc[0]
    assert bool(mine["dismissed"])  # given by the cut, unchanged since: known
    record_feedback(store, eval_id=given["eval_id"], code=given["issue_code"],
                    kind="helpful", at=cut.to_pydatetime() + timedelta(days=1))
    _, _, after = experiment_units(store, EXPERIMENT_ID, as_of=cut)
    mine = after[(after["eval_id"] == given["eval_id"])
                 & (after["issue_code"] == given["issue_code"])].iloc[0]
    # its state at the cut cannot be told from the row changed later: not known, left out
    assert pd.isna(mine["dismissed"]) and pd.isna(mine["helpful"])
    _, _, now = experiment_units(store, EXPERIMENT_ID)
    mine = now[(now["eval_id"] == given["eval_id"])
               & (now["issue_code"] == given["issue_code"])].iloc[0]
    assert bool(mine["dismissed"]) and bool(mine["helpful"])


# ---------------------------------------------------------------- the commands
def test_feedback_and_experiment_commands(writable: Callable[[], Store]) -> None:
    store = writable()
    db = str(store.path)
    arms = _arms(store)
    eval_id = arms[arms["arm"] == "control"]["eval_id"].iloc[0]
    runner = CliRunner()
    done = runner.invoke(cli, ["--db", db, "feedback", eval_id, WARNING, "--dismissed",
                               "--helpful"])
    assert done.exit_code == 0, done.output
    assert f"feedback on {WARNING} of {eval_id}: dismissed, helpful" in done.output
    refused = runner.invoke(cli, ["--db", db, "feedback", "nope", WARNING, "--helpful"])
    assert refused.exit_code == 2 and "eval_id: names no logged evaluation" in refused.output
    nothing = runner.invoke(cli, ["--db", db, "feedback", eval_id, WARNING])
    assert nothing.exit_code == 2 and "feedback: give --dismissed" in nothing.output
    made = runner.invoke(cli, ["--db", db, "ab-test", "create", "stops", "--codes",
                               "STOP_TOO_TIGHT", "--arm", "control:show",
                               "--arm", "ask:reword:question@2"])
    assert made.exit_code == 0 and "ask (reword:question, weight 2)" in made.output
    bad = runner.invoke(cli, ["--db", db, "ab-test", "create", "x", "--codes", "A_B",
                              "--arm", "control:show", "--arm", "odd:shout"])
    assert bad.exit_code == 2 and "arms[1].action" in bad.output
    listed = runner.invoke(cli, ["--db", db, "ab-test", "list"])
    assert "stops [active]" in listed.output and f"{EXPERIMENT_ID} [active]" in listed.output
    shown = runner.invoke(cli, ["--db", db, "ab-test", "analyse", EXPERIMENT_ID])
    assert shown.exit_code == 0, shown.output
    assert "150 decision points" in shown.output and "dismissed" in shown.output
    assert "n=" in shown.output and "[95% interval]" in shown.output
    ended = runner.invoke(cli, ["--db", db, "ab-test", "end", "stops"])
    assert ended.exit_code == 0 and "stops [ended]" in runner.invoke(
        cli, ["--db", db, "ab-test", "list"]).output


# ---------------------------------------------------------------- the workbench's buttons
def test_the_report_view_buttons_record_feedback_on_shown_items(
        writable: Callable[[], Store]) -> None:
    from buddy.context.pack import ContextPack, Instrument
    from buddy.widgets.report_view import ReportModel, ReportView
    from tests.behavior.experiment_data import intent_of, report_for

    store = writable()
    rows = store.query("SELECT * FROM trade_intents WHERE user_id = 'demo' "
                       "ORDER BY as_of, intent_id LIMIT 150").to_dict("records")
    arms = _arms(store).set_index("intent_id")
    n = next(k for k, r in enumerate(rows) if arms.loc[r["intent_id"], "arm"] == "control"
             and k % 3 == 1)  # a warning, no nudge: shown as it was logged
    intent = intent_of(rows[n])
    report = report_for(intent, n)  # the same items, under the logged eval_id
    ticker = store.instrument(intent.symbol)
    assert ticker is not None
    pack = ContextPack(user_id="demo", symbol=intent.symbol, timeframe=intent.timeframe,
                       as_of=intent.as_of, market=None, instrument=Instrument.from_row(ticker))
    view = ReportView(feedback_store=store)
    view.show(ReportModel.build(report, pack))
    assert [f.code for f in view.feedback] == [i.code for i in report.top_issues]
    warning = next(f for f in view.feedback if f.code == WARNING)
    warning.buttons["dismissed"].click()
    warning.buttons["not_helpful"].click()
    assert "thanks: not helpful" in warning.status.value
    saved = store.query("SELECT dismissed, helpful, source FROM report_item_feedback "
                        "WHERE eval_id = ? AND issue_code = ?", [report.eval_id, WARNING])
    assert saved.values.tolist() == [[True, False, "widget"]]
    # a report whose evaluation is not logged: the button says why, nothing is written
    unlogged = ReportView(feedback_store=store)
    unlogged.show(ReportModel.build(
        report_for(dataclasses.replace(intent, intent_id="not-logged"), n), pack))
    unlogged.feedback[0].buttons["helpful"].click()
    assert "names no logged evaluation" in unlogged.feedback[0].status.value
    assert ReportView().feedback == [] and not ReportView().feedback_store
