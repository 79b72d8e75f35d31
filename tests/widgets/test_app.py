"""The workbench app without a browser: set widget values, click, check the report model."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from buddy.api import Buddy
from buddy.config import ModuleConfig, ModuleSpec, param
from buddy.context.pieces import KeyLevelsSnapshot, RegimeSnapshot
from buddy.demo import SAMPLE_IDEAS, place_idea
from buddy.domain import Fact, Issue, Mitigation, Severity
from buddy.evaluators import registry
from buddy.evaluators.base import Code, Evaluator, Evidence
from buddy.evidence import format_value
from buddy.store import Store
from buddy.users.store import set_user
from buddy.widgets import WorkbenchApp
from buddy.widgets.chart import (
    HEIGHT,
    PLOTLY_MIMETYPE,
    WIDTH,
    chart_model,
    near_levels,
    price_ticks,
)
from buddy.widgets.controls import load_preferences
from buddy.widgets.report_view import mtfa_badges, regime_badges
from tests import factories


@pytest.fixture(scope="module")
def db(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a copy of the sample database these tests may write to."""
    path = tmp_path_factory.mktemp("widgets") / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    return path


@pytest.fixture(scope="module")
def idea(db: Path) -> dict[str, object]:
    """Return AAPL long 1d as of 2012-06-01, priced from the data (stop 1.5, target 3 ATR)."""
    return place_idea(Buddy.open(db), SAMPLE_IDEAS[0])


def _open(db: Path, user: str) -> WorkbenchApp:
    return WorkbenchApp.open(db, user)


def _fill(app: WorkbenchApp, idea: dict[str, object], **overrides: str) -> None:
    values = {"symbol": idea["symbol"], "side": idea["side"], "timeframe": idea["timeframe"],
              "as_of": idea["as_of"], "entry": str(idea["entry"]), "stop": str(idea["stop"]),
              "target": str(idea["target"]), "size": str(idea["size"]),
              "horizon": str(idea["horizon"])}
    values.update(overrides)
    for name, value in values.items():
        app.fields[name].value = value


def _count(db: Path, table: str, user: str) -> int:
    return int(Store(db).query(f"SELECT count(*) AS n FROM {table} WHERE user_id = ?",
                               [user]).iloc[0, 0])


def test_the_form_offers_the_stored_symbols_and_shows_price_and_atr(db: Path) -> None:
    app = _open(db, "form-user")
    store = Store(db)
    assert list(app.fields["symbol"].options) == sorted(store.tickers()["symbol"])
    app.fields["symbol"].value = "EURUSD"
    assert set(app.fields["timeframe"].options) == {"1h", "4h", "1d"}
    assert app.form["as_of"] == "2017-12-29"  # the last closed bar's day, exchange time
    app.fields["timeframe"].value = "1h"
    app.fields["as_of"].value = "2017-06-15T14:00:00Z"
    ctx = app.buddy.builder.build("form-user", "EURUSD", "1h",
                                  datetime(2017, 6, 15, 14, tzinfo=UTC))
    assert f"{ctx.market.last_close:.5f}" in app.hints["entry"].value
    assert "ATR" in app.hints["entry"].value


def test_evaluate_shows_the_score_and_the_ranked_issues_and_logs_once(
        db: Path, idea: dict[str, object]) -> None:
    set_user(Store(db), "eval-user", equity=100_000.0)  # the risk checks run
    app = _open(db, "eval-user")
    _fill(app, idea, size="500")  # 2.3x the risk budget
    before = _count(db, "trade_evaluations", "eval-user")
    app.evaluate_button.click()
    report = app.report
    assert app.errors == {}
    assert report is not None and report.score is not None and report.issues
    assert _count(db, "trade_evaluations", "eval-user") == before + 1
    logged = Store(db).query("SELECT eval_id, overall_score FROM trade_evaluations "
                             "WHERE eval_id = ?", [report.eval_id])
    assert logged["overall_score"].iloc[0] == pytest.approx(report.score)
    ranks = [Severity(i.severity).rank for i in report.issues]
    assert ranks == sorted(ranks, reverse=True)
    for issue in report.issues:
        assert issue.explanation and issue.action and issue.evidence
    assert report.score_text in app.report_view.header.value
    assert len(app.report_view.issues.children) == len(report.issues)
    assert report.issues[0].title in app.report_view.issues.children[0].children[0].value
    svg = app.chart.shown("text/html")  # the chart: entry, stop and target over the bars
    assert svg.startswith("<svg") and svg.count("<rect") >= 100
    for name in ("entry", "stop", "target"):
        assert f"class='tb-line-{name}' data-price='{idea[name]}'" in svg
    figure = app.chart.shown(PLOTLY_MIMETYPE)  # ... and the same, interactive
    lines = {trace["meta"]["kind"]: trace["meta"]["price"] for trace in figure["data"][1:]}
    assert {name: lines[name] for name in ("entry", "stop", "target")} == {
        name: float(str(idea[name])) for name in ("entry", "stop", "target")}


@pytest.mark.parametrize(("overrides", "field", "words"), [
    ({"entry": "abc"}, "entry", "must be a number"),
    ({"stop": "580"}, "stop", "must be below the entry"),
    ({"as_of": "1990-01-05"}, "as_of", "is before the first closed"),
    ({"size": "", "risk_amount": ""}, "size", "or give a risk amount"),
    ({"horizon": "2.5"}, "horizon", "whole number"),
])
def test_invalid_input_shows_the_message_beside_the_field_and_logs_nothing(
        db: Path, idea: dict[str, object], overrides: dict[str, str], field: str,
        words: str) -> None:
    app = _open(db, "invalid-user")
    _fill(app, idea, **overrides)
    before = (_count(db, "trade_evaluations", "invalid-user"),
              _count(db, "trade_intents", "invalid-user"))
    app.evaluate_button.click()
    assert app.report is None
    assert words in app.errors[field]
    assert words in app.field_errors[field].value
    assert all(not label.value for name, label in app.field_errors.items()
               if name not in app.errors)
    assert (_count(db, "trade_evaluations", "invalid-user"),
            _count(db, "trade_intents", "invalid-user")) == before


def test_a_blank_size_is_sized_from_the_risk_amount(db: Path, idea: dict[str, object]
                                                    ) -> None:
    app = _open(db, "risk-user")
    _fill(app, idea, size="", risk_amount="1000")
    assert "from risk" in app.hints["size"].value
    app.evaluate_button.click()
    intent = app.model.report.intent
    per_share = abs(float(idea["entry"]) - float(idea["stop"]))
    assert intent.proposed_size == int(1000 // per_share)
    assert intent.proposed_risk_amount == 1000


def test_ui_only_changes_never_rebuild_the_context_pack(db: Path, idea: dict[str, object]
                                                       ) -> None:
    set_user(Store(db), "ui-user", equity=100_000.0)
    app = _open(db, "ui-user")
    _fill(app, idea, size="500")  # an issue with evidence to expand
    app.evaluate_button.click()
    builder = app.buddy.builder
    misses, hits = builder.misses, builder.hits
    svg = app.chart.shown("text/html")
    app.report_view.evidence[0].selected_index = 0  # expand the evidence
    app.report_view.evidence[0].selected_index = None
    app.chart.toggle.value = False  # hide and show the chart
    assert app.chart.body.layout.display == "none"
    app.chart.toggle.value = True
    assert (builder.misses, builder.hits) == (misses, hits)
    assert app.chart.shown("text/html") is svg
    app.evaluate_button.click()  # the same idea again: the pack comes from the cache
    assert builder.misses == misses


def test_the_journal_saves_the_evaluation_with_the_note(db: Path, idea: dict[str, object]
                                                       ) -> None:
    app = _open(db, "journal-user")
    app.note.value = "too early"
    app.save_button.click()
    assert "evaluate an idea first" in app.errors["note"]
    assert _count(db, "trade_journal", "journal-user") == 0
    _fill(app, idea)
    app.evaluate_button.click()
    app.note.value = "   "
    app.save_button.click()
    assert app.errors["note"] == "must not be empty"
    app.note.value = "Pullback to the 20-day EMA; skip if it opens below the stop."
    app.tags.value = "swing, pullback"
    app.save_button.click()
    assert "note" not in app.errors and app.note.value == ""
    rows = Store(db).query("SELECT * FROM trade_journal WHERE user_id = 'journal-user'")
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["note_text"].startswith("Pullback") and row["journal_id"] in app.model.journal_ids
    assert row["intent_id_optional"] == app.model.report.intent.intent_id
    tags = json.loads(row["tags_json"])
    assert tags["eval_id"] == app.report.eval_id and tags["tags"] == ["swing", "pullback"]
    app.fields["entry"].value = "-1"  # an invalid idea replaces the report: nothing to save
    app.evaluate_button.click()
    assert app.report is None and app.chart.model is None
    app.note.value = "about the invalid idea"
    app.save_button.click()
    assert "evaluate an idea first" in app.errors["note"]
    assert _count(db, "trade_journal", "journal-user") == 1


def test_controls_are_saved_per_user_and_applied_at_once(db: Path, idea: dict[str, object]
                                                        ) -> None:
    app = _open(db, "controls-user")
    _fill(app, idea)
    app.evaluate_button.click()
    first = app.report
    assert "data_quality" in [m.name for m in first.modules]
    app.controls.modules["data_quality"].value = False  # opt out: the report updates at once
    second = app.report
    assert second.eval_id != first.eval_id
    assert "data_quality" not in [m.name for m in second.modules]
    assert second.disabled_modules == ("data_quality",)
    assert load_preferences(Store(db), "controls-user").disabled_modules == ("data_quality",)
    app.controls.disclosures["data_sources"].value = False
    assert "Data sources" not in [title for title, _ in app.report.disclosures]
    app.controls.strictness.value = "lenient"
    assert len(app.report.issues) <= 3
    app.controls.strictness.value = "strict"
    assert len(app.report.issues) >= min(6, app.report.n_issues_total)
    app.controls.nudge_sensitivity.value = "high"

    again = _open(db, "controls-user")  # a new session shows the saved settings
    assert again.controls.modules["data_quality"].value is False
    assert again.controls.disclosures["data_sources"].value is False
    assert again.controls.strictness.value == "strict"
    assert again.controls.nudge_sensitivity.value == "high"
    other = _open(db, "someone-else")  # ... for that user only
    assert other.controls.modules["data_quality"].value is True
    other.fields["user"].value = "controls-user"  # switching user loads their settings
    assert other.controls.modules["data_quality"].value is False


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _ProbeConfig(ModuleConfig):
    config_name = "zz_probe"

    limit: float = param(1.0, lo=0.0, hi=10.0, unit="R")


class _Probe(Evaluator[_ProbeConfig]):
    name = "zz_probe"
    version = "1"
    requires = frozenset({"market"})
    config_cls = _ProbeConfig
    codes: ClassVar = {"PROBE_FOUND": Code(
        "Probe finding", "The probe measured {gap}.", "Look at the probe's {gap}.",
        evidence=(Evidence("gap", "R", threshold="limit"),), action="LOOK_AT_PROBE",
        harm="none: a probe of the widget", measure=None)}

    def evaluate_batch(self, ctx):
        return self.result(ctx.n, [self.fire("PROBE_FOUND", np.arange(ctx.n),
                                             Severity.CRITICAL, gap=2.5)])


@pytest.fixture
def probe() -> Iterator[None]:
    registry.register(_Probe)
    yield
    registry.unregister(_Probe.name)


def test_a_new_module_shows_without_changes_to_the_view(db: Path, idea: dict[str, object],
                                                        probe: None) -> None:
    base = Buddy.open(db)
    config = dataclasses.replace(base.config,
                                 modules=(*base.config.modules, ModuleSpec(name="zz_probe")))
    app = WorkbenchApp(Buddy(base.store, config), user="probe-user")
    _fill(app, idea)
    app.evaluate_button.click()
    top = app.report.issues[0]
    assert (top.module, top.code, top.severity) == ("zz_probe", "PROBE_FOUND", "critical")
    assert top.explanation == f"The probe measured {format_value(2.5, 'R')}."
    assert [(e.name, e.value, e.threshold) for e in top.evidence] == [
        ("gap", format_value(2.5, "R"), format_value(1.0, "R"))]
    assert "Probe finding" in app.report_view.issues.children[0].children[0].value
    assert "zz_probe" in app.report_view.details.value
    assert "zz_probe" in app.controls.modules  # and it can be switched off


def test_an_absent_piece_shows_missing_with_its_reason(db: Path, idea: dict[str, object]
                                                      ) -> None:
    from buddy.context.builder import ContextPackBuilder
    from buddy.store import Store

    def absent(reason: str):
        return lambda request: (None, reason)

    store = Store(db)
    builder = ContextPackBuilder(store, providers={
        "regime": absent("no regime snapshot for this test"),
        "mtfa": absent("no alignment for this test"),
        "levels": absent("no key levels for this test")})
    app = WorkbenchApp(Buddy(store, builder=builder), user="bare-user")
    _fill(app, idea)
    app.evaluate_button.click()
    assert app.report.regime.missing == "no regime snapshot for this test"
    assert app.report.mtfa.missing == "no alignment for this test"
    assert "missing: no regime snapshot for this test" in app.report_view.context.value
    assert app.chart.model.note == "levels missing: no key levels for this test"


def test_regime_and_mtfa_badges_read_the_pieces() -> None:
    regime = RegimeSnapshot(symbol="TEST", timeframe="1d", ts=factories.AS_OF,
                            trend_state="up", trend_strength=31.0, vol_state="volatile",
                            vol_z=2.1, vol_expansion_flag=True, liquidity_state="thin",
                            spread_proxy=0.001, relvol=0.4, hmm_state_id=0,
                            hmm_state_labels=("calm", "turbulent"), hmm_probs=(1.0, 0.0),
                            transition_matrix=((0.9, 0.1), (0.2, 0.8)))
    ctx = factories.pack(regime=regime, missing={},
                         mtfa=factories.mtfa({"1w": "down", "1d": "up"}))
    badges = {b.label: b for b in regime_badges(ctx, 10).badges}
    assert badges["trend"].value == "up (ADX 31)" and badges["trend"].tone == "good"
    assert badges["volatility"].tone == "warn" and "expanding" in badges["volatility"].value
    assert badges["liquidity"].tone == "warn"
    assert badges["transition risk"].value == f"{1 - 0.9 ** 10:.0%} within 10 bars"
    mtfa = mtfa_badges(ctx, factories.intent().side)
    assert [b.label for b in mtfa.badges][:3] == ["alignment", "1w", "1d"]
    assert any(b.label == "conflict" for b in mtfa.badges)


def test_the_chart_draws_the_key_levels_nearest_the_entry() -> None:
    levels = KeyLevelsSnapshot(symbol="TEST", timeframe="1d", ts=factories.AS_OF,
                               prior_day_high=104.0, prior_day_low=96.0,
                               prior_day_close=100.5, rolling_range_high=500.0)
    ctx = factories.pack(levels=levels)
    intent = factories.intent(proposed_entry=100.0, proposed_stop=95.0,
                              proposed_target=110.0)
    model = chart_model(ctx, intent)
    assert set(model.levels) == {"prior_day_high", "prior_day_low", "prior_day_close"}
    assert all(f"data-name='{name}'" in model.svg for name in model.levels)
    assert "rolling_range_high" not in model.levels  # far outside the drawn range
    assert near_levels({"a": 100.0, "b": 100.1, "c": 103.0}, 100.0, 90, 110, min_gap=1.0) == {
        "a": 100.0, "c": 103.0}
    assert price_ticks(96.3, 111.2) == [97.5, 100, 102.5, 105, 107.5, 110]


def _level_issue(code: str, name: str, price: float) -> Issue:
    return Issue(module="entry_quality", code=code, severity=Severity.MEDIUM,
                 evidence=(Fact(name="entry", value=100.0, unit="price"),
                           Fact(name="level_name", value=name),
                           Fact(name="level_price", value=price, unit="price"),
                           Fact(name="near_level_atr", value=0.2, unit="ATR")),
                 mitigation=Mitigation(action="WAIT"))


def test_a_level_an_issue_cites_is_drawn_and_labelled() -> None:
    """The cited level is drawn as its own labelled line even where no key level is (and
    beyond the bars' range: the range widens to it); a plain key level at its price is not
    drawn twice; facts that are not level prices are not drawn."""
    levels = KeyLevelsSnapshot(symbol="TEST", timeframe="1d", ts=factories.AS_OF,
                               prior_day_high=104.0, prior_day_low=96.0,
                               prior_day_close=100.5)
    ctx = factories.pack(levels=levels)
    intent = factories.intent(proposed_entry=100.0, proposed_stop=95.0,
                              proposed_target=110.0)
    issues = [_level_issue("ENTRY_UNDER_RESISTANCE", "prior_day_high", 104.0),
              _level_issue("STOP_NOT_BEYOND_LEVEL", "sr_cluster", 250.0)]
    model = chart_model(ctx, intent, issues=issues)
    assert [(c.name, c.price, c.code) for c in model.cited] == [
        ("prior_day_high", 104.0, "ENTRY_UNDER_RESISTANCE"),
        ("sr_cluster", 250.0, "STOP_NOT_BEYOND_LEVEL")]
    assert model.svg is not None
    assert model.svg.count("class='tb-cited-level'") == 2
    assert ("data-code='ENTRY_UNDER_RESISTANCE' data-name='prior_day_high' "
            "data-price='104.0'") in model.svg
    assert "prior day high 104 (ENTRY_UNDER_RESISTANCE)" in model.svg
    assert "sr cluster 250 (STOP_NOT_BEYOND_LEVEL)" in model.svg
    assert model.levels and set(model.levels) <= {"prior_day_low", "prior_day_close"}
    assert "2 level(s) cited" in model.note
    assert chart_model(ctx, intent).cited == ()


def test_the_chart_scales_to_its_container_and_keeps_labels_inside() -> None:
    """The SVG is as wide as its container up to WIDTH (a viewBox, no fixed width), and every
    label's anchor lies inside the figure."""
    ctx = factories.pack()
    intent = factories.intent(proposed_entry=100.0, proposed_stop=95.0,
                              proposed_target=110.0)
    svg = chart_model(ctx, intent, issues=[_level_issue("X_LEVEL", "a_level", 101.0)]).svg
    assert svg is not None
    assert f"viewBox='0 0 {WIDTH} {HEIGHT}'" in svg and "width='100%'" in svg
    for x, y in re.findall(r"<text x='([-\d.]+)' y='([-\d.]+)'", svg):
        assert 0 <= float(x) <= WIDTH and 0 <= float(y) <= HEIGHT, (x, y)


def test_the_report_shows_the_top_issues_and_every_other_in_an_expander(
        db: Path, idea: dict[str, object]) -> None:
    set_user(Store(db), "more-user", equity=100_000.0)
    app = _open(db, "more-user")
    # a stop inside the noise, a target short of 1.5R, far too large, held far too long
    _fill(app, idea, stop="557", target="562", size="2000", horizon="400")
    app.evaluate_button.click()
    report, full, view = app.report, app.model.report, app.report_view
    assert report is not None and full is not None
    assert len(view.issues.children) == len(report.issues)
    ranked = full.ranked_issues
    assert len(report.issues) + len(report.more_issues) == len(ranked)
    assert [r.rank for r in (*report.issues, *report.more_issues)] == list(
        range(1, len(ranked) + 1))
    assert report.more_issues, [r.code for r in report.issues]
    assert view.more.layout.display == "" and view.more.selected_index is None
    assert view.more.get_title(0) == f"All other issues ({len(report.more_issues)})"
    (body,) = view.more.children
    assert len(body.children) == len(report.more_issues)
    for row, child in zip(report.more_issues, body.children, strict=True):
        assert row.title in child.value and f"<b>{row.rank}.</b>" in child.value
    names = [e.name for r in (*report.issues, *report.more_issues) for e in r.evidence]
    assert names and not [n for n in names if "_" in n]  # evidence named in words
    assert report.verdict == full.verdict.value == "fix first"
    assert "tb-verdict" in view.header.value and "FIX FIRST" in view.header.value
    assert report.not_checked == full.not_checked_text()
    assert "no exit template to compare with" in report.not_checked
    assert "tb-not-checked" in view.header.value
    # a report with nothing beyond the top hides the expander
    _fill(app, idea)
    app.evaluate_button.click()
    assert app.report is not None
    assert (view.more.layout.display == "none") is (not app.report.more_issues)
