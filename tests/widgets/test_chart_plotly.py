"""The interactive price chart: a valid plotly figure with the bars, the intent's prices and
the levels (those the issues cite named and labelled), shown with the SVG as its fallback."""

from __future__ import annotations

import json

import plotly.graph_objects as go

from buddy.context.pieces import KeyLevelsSnapshot
from buddy.domain import Fact, Issue, Mitigation, Severity
from buddy.widgets.chart import PLOTLY_MIMETYPE, ChartView, chart_model
from tests import factories


def _cited(code: str, name: str, price: float) -> Issue:
    return Issue(module="entry_quality", code=code, severity=Severity.MEDIUM,
                 evidence=(Fact(name="level_name", value=name),
                           Fact(name="level_price", value=price, unit="price")),
                 mitigation=Mitigation(action="WAIT"))


def _model(**intent: float | None):  # type: ignore[no-untyped-def]
    levels = KeyLevelsSnapshot(symbol="TEST", timeframe="1d", ts=factories.AS_OF,
                               prior_day_high=104.0, prior_day_low=96.0,
                               prior_day_close=100.5)
    prices = {"proposed_entry": 100.0, "proposed_stop": 95.0, "proposed_target": 110.0}
    prices.update(intent)  # type: ignore[arg-type]
    ctx = factories.pack(levels=levels)
    return ctx, chart_model(ctx, factories.intent(**prices),
                            issues=[_cited("ENTRY_UNDER_RESISTANCE", "prior_day_high", 104.0)])


def _lines(figure: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for trace in figure["data"][1:]:
        found.setdefault(trace["meta"]["kind"], []).append(trace)
    return found


def test_the_figure_is_valid_plotly_json_with_the_bars_and_the_lines() -> None:
    ctx, model = _model()
    figure = model.figure
    assert figure is not None
    json.dumps(figure)  # plain JSON: numbers and strings only
    checked = go.Figure(data=figure["data"], layout=figure["layout"])  # raises when invalid
    bars = checked.data[0]
    assert bars.type == "candlestick"
    frame = ctx.market.bars.tail(len(bars.x))
    assert list(bars.close) == frame["close"].astype(float).tolist()
    assert checked.layout.xaxis.rangeslider.visible is False
    assert checked.layout.dragmode == "zoom"  # drag to zoom, hover on every trace
    lines = _lines(figure)
    assert [t["meta"]["price"] for t in lines["entry"]] == [100.0]
    assert [t["meta"]["price"] for t in lines["stop"]] == [95.0]
    assert [t["meta"]["price"] for t in lines["target"]] == [110.0]
    assert {t["meta"]["name"] for t in lines["level"]} == set(model.levels)
    for trace in figure["data"][1:]:
        assert trace["y"][0] == trace["y"][1] == trace["meta"]["price"]  # horizontal
        assert trace["x"] == [bars.x[0], bars.x[-1]]  # across the drawn bars
        assert trace["hovertemplate"].startswith(trace["name"])


def test_the_level_an_issue_cites_is_drawn_named_and_labelled() -> None:
    _, model = _model()
    cited = _lines(model.figure)["cited"]
    assert [(t["meta"]["code"], t["meta"]["name"], t["meta"]["price"]) for t in cited] == [
        ("ENTRY_UNDER_RESISTANCE", "prior_day_high", 104.0)]
    texts = [a["text"] for a in model.figure["layout"]["annotations"]]
    assert "prior day high 104 (ENTRY_UNDER_RESISTANCE)" in texts
    assert {"entry 100", "stop 95", "target 110"} <= set(texts)
    # the plain key level at the cited price is not drawn twice
    assert "prior_day_high" not in {t["meta"]["name"] for t in _lines(model.figure)["level"]}


def test_a_missing_stop_or_target_draws_no_line() -> None:
    _, model = _model(proposed_stop=None, proposed_target=None)
    lines = _lines(model.figure)
    assert "stop" not in lines and "target" not in lines and len(lines["entry"]) == 1


def test_the_view_shows_plotly_with_the_svg_as_fallback_and_clears() -> None:
    _, model = _model()
    view = ChartView()
    view.show(model)
    (output,) = view.plot.outputs
    assert output["output_type"] == "display_data"
    assert set(output["data"]) == {PLOTLY_MIMETYPE, "text/html"}
    assert view.shown(PLOTLY_MIMETYPE)["data"] == model.figure["data"]
    assert view.shown("text/html") == model.svg
    assert view.widget.layout.display == ""
    view.show(None)
    assert view.plot.outputs == () and view.shown(PLOTLY_MIMETYPE) is None
    assert view.widget.layout.display == "none"
