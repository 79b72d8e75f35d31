"""The workbench's portfolio tab: the figures it shows are the snapshot's, the chart is a valid
plotly figure of them, and what cannot be shown says why."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import pytest

from buddy.portfolio.snapshot import exposure_snapshot
from buddy.store import Store
from buddy.widgets.chart import PLOTLY_MIMETYPE
from buddy.widgets.portfolio_view import PortfolioView

#: The bundled data's last daily close: the demo trader holds GOOG and MSFT then.
DATA_END = "2013-03-01T21:00Z"


@pytest.fixture(scope="module")
def view(portfolio_demo: Store) -> PortfolioView:
    view = PortfolioView(portfolio_demo, "demo")
    view.as_of.value = DATA_END
    view.refresh()
    return view


def test_the_tab_shows_the_snapshots_heat_clusters_and_contributions(
        view: PortfolioView, portfolio_demo: Store) -> None:
    snap, reason = exposure_snapshot(portfolio_demo, "demo", DATA_END)
    assert snap is not None, reason
    assert math.isfinite(snap.heat_pct) and math.isfinite(snap.vol_pct)
    head, body = view.head.value, view.body.value
    assert f"Heat {snap.heat_pct:.2f}%" in head
    assert f"limit {snap.heat_limit_pct:g}%" in head
    assert f"n = {snap.vol_n} days" in head and f"n = {snap.var_historical_n} days" in head
    for symbol in snap.positions["symbol"]:
        assert f">{symbol}<" in body
    for cluster in snap.clusters:
        assert ", ".join(cluster["members"]) in body
    figure = view.shown(PLOTLY_MIMETYPE)
    go.Figure(figure)  # plotly validates every trace and axis
    bars = {trace["name"]: trace for trace in figure["data"]}
    contributions = bars["risk contribution per day"]
    assert contributions["y"] == list(snap.positions["symbol"])
    assert contributions["x"] == pytest.approx(list(snap.positions["contribution_pct"]),
                                               abs=1e-4)
    assert bars["heat"]["x"] == [pytest.approx(snap.heat_pct)]
    limit = figure["layout"]["shapes"][0]
    assert limit["x0"] == limit["x1"] == snap.heat_limit_pct


def test_a_bad_as_of_names_the_field_and_value_and_draws_nothing(view: PortfolioView) -> None:
    view.as_of.value = "last tuesday"
    view.refresh()
    assert "as of: must be a date or time" in view.head.value
    assert "last tuesday" in view.head.value
    assert view.shown(PLOTLY_MIMETYPE) is None and view.body.value == ""
    view.as_of.value = DATA_END
    view.refresh()
    assert view.shown(PLOTLY_MIMETYPE) is not None


def test_a_user_without_positions_sees_why(portfolio_demo: Store) -> None:
    view = PortfolioView(portfolio_demo, "nobody")
    assert view.head.value.startswith("<i>no portfolio: ")
    assert view.shown(PLOTLY_MIMETYPE) is None
