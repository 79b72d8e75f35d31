"""The portfolio tab of the workbench: heat, correlation clusters and risk contributions.

``PortfolioBook`` is the view-model: the user, the as-of (blank: the newest stored exposure
snapshot's time, else now) and the ``ExposureSnapshot`` computed on demand from the
positions, bars and rules known then (``buddy.portfolio.snapshot.exposure_snapshot``), or why
there is none. ``PortfolioView`` draws it: a headline with heat against the user's limit,
exposure, volatility and VaR (each with its interval and n), a plotly chart of each
position's weight, open risk and risk contribution coloured by its correlation cluster, and
the positions and clusters as tables. It reads only; the stored snapshots are written by the
portfolio job.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any

import ipywidgets as w
import pandas as pd

from buddy.errors import BuddyError
from buddy.portfolio.snapshot import ExposureSnapshot, exposure_snapshot
from buddy.store import Store
from buddy.store.portfolio import read_snapshots
from buddy.widgets.chart import PLOTLY_MIMETYPE

_STYLE = {"description_width": "70px"}
_CELL = "padding:2px 8px;text-align:right"
_HEAD = "padding:2px 8px;text-align:left;border-bottom:1px solid #cfd8dc"
#: Cluster colours (a position outside every cluster of two or more is grey).
_PALETTE = ("#1565c0", "#6a1b9a", "#00838f", "#ef6c00", "#2e7d32", "#ad1457", "#4e342e")
_ALONE = "#90a4ae"
_OVER = "#b71c1c"


class PortfolioBook:
    """The view-model: whose portfolio, as of when, and its snapshot or why there is none."""

    def __init__(self, store: Store, user: str, as_of: str = "") -> None:
        self.store = store
        self.user = user.strip()
        self.as_of_text = as_of.strip()
        self.snapshot: ExposureSnapshot | None = None
        self.error: str | None = None
        self.refresh()

    def set_user(self, user: str) -> None:
        """Show ``user``'s portfolio."""
        self.user = user.strip()
        self.refresh()

    def set_as_of(self, text: str) -> None:
        """Show the portfolio as of ``text`` (a date or time; blank: the default)."""
        self.as_of_text = text.strip()
        self.refresh()

    def as_of(self) -> pd.Timestamp:
        """Return the as-of shown: the typed one (UTC when no zone is given), else the newest
        stored snapshot's, else now. Raises ValueError naming the field for bad text."""
        if self.as_of_text:
            try:
                t = pd.Timestamp(self.as_of_text)
            except ValueError as exc:
                raise ValueError(f"as of: must be a date or time like 2013-03-01 or "
                                 f"2013-03-01T21:00Z, got {self.as_of_text!r}") from exc
            return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
        stored = read_snapshots(self.store, self.user)
        if len(stored):
            return pd.Timestamp(stored["ts"].iloc[-1]).tz_convert("UTC")
        return pd.Timestamp(datetime.now(UTC))

    def refresh(self) -> None:
        """Compute the snapshot again from what the store knows as of the as-of."""
        self.snapshot, self.error = None, None
        if not self.user:
            self.error = "enter a user to see their portfolio"
            return
        try:
            self.snapshot, reason = exposure_snapshot(self.store, self.user, self.as_of())
        except (BuddyError, ValueError) as exc:
            self.error = f"no portfolio: {exc}"
            return
        if self.snapshot is None:
            self.error = f"no portfolio: {reason}"


class PortfolioView:
    """The portfolio tab: an as-of field, a Refresh button, the headline, chart and tables."""

    def __init__(self, store: Store, user: str) -> None:
        self.model = PortfolioBook(store, user)
        self.as_of = w.Text(description="As of", style=_STYLE,
                            placeholder="blank: newest snapshot",
                            layout=w.Layout(width="260px"))
        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       layout=w.Layout(width="100px"))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.head = w.HTML()
        self.head.add_class("tb-portfolio-head")
        self.plot = w.Output(layout=w.Layout(width="100%", max_width="840px"))
        self.plot.add_class("tb-portfolio-plot")
        self.body = w.HTML()
        self.body.add_class("tb-portfolio-body")
        self.widget = w.VBox([w.HBox([self.as_of, self.refresh_button]), self.head,
                              self.plot, self.body])
        self.widget.add_class("tb-portfolio")
        self._show()

    def set_user(self, user: str) -> None:
        """Show ``user``'s portfolio."""
        self.model.set_user(user)
        self._show()

    def refresh(self) -> None:
        """Compute the snapshot again as of the field's value (as the Refresh button does)."""
        self.model.set_as_of(self.as_of.value)
        self._show()

    def shown(self, mimetype: str) -> Any:
        """Return what the chart shows in ``mimetype`` (None when it shows nothing)."""
        return self.plot.outputs[0]["data"].get(mimetype) if self.plot.outputs else None

    def _show(self) -> None:
        snap = self.model.snapshot
        if snap is None:
            self.head.value = f"<i>{html.escape(self.model.error or '')}</i>"
            self.plot.outputs, self.body.value = (), ""
            return
        self.head.value = headline_html(snap)
        figure = portfolio_figure(snap)
        self.plot.outputs = ({"output_type": "display_data",
                              "data": {PLOTLY_MIMETYPE: figure}, "metadata": {}},
                             ) if figure is not None else ()
        self.body.value = tables_html(snap)


def _pct(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(float(value)) else \
        f"{float(value):.{digits}f}%"


def _colour(cluster: Any, sizes: dict[Any, int]) -> str:
    if sizes.get(cluster, 0) < 2:
        return _ALONE
    return _PALETTE[int(cluster) % len(_PALETTE)] if str(cluster).lstrip("-").isdigit() \
        else _PALETTE[hash(str(cluster)) % len(_PALETTE)]


def headline_html(snap: ExposureSnapshot) -> str:
    """Return heat against the limit, exposure, volatility and VaR with intervals and n."""
    e = html.escape
    over = snap.heat_breach
    unknown = (f" (open risk unknown, left out: {e(', '.join(snap.heat_unknown_symbols))})"
               if snap.heat_unknown_symbols else "")
    heat = (f"<b style='color:{_OVER if over else '#263238'}'>Heat {_pct(snap.heat_pct)}"
            f"</b> of equity at the stops, limit {snap.heat_limit_pct:g}%"
            + (" <b style='color:#b71c1c'>over the limit</b>" if over else "") + unknown)
    equity = (f"{snap.equity:,.0f} {e(snap.base_currency or '')}" if snap.equity is not None
              else "unknown")
    lines = [
        f"<h3 style='margin:0 0 4px'>Portfolio of {e(snap.user_id)}</h3>",
        f"<div style='font-size:12px;color:#546e7a'>as of {snap.as_of:%Y-%m-%d %H:%M} UTC; "
        f"equity {equity} ({e(snap.equity_source)}); positions from "
        f"{e(snap.positions_source)}</div>",
        f"<p style='margin:6px 0'>{heat}<br>",
        f"{len(snap.positions)} positions: gross {_pct(snap.gross_pct)}, net "
        f"{_pct(snap.net_pct)} of equity, beta-adjusted net "
        f"{_pct(snap.beta_net_exposure_pct)}<br>",
        f"Volatility {_pct(snap.vol_pct)} of equity per day (95% interval "
        f"{_pct(snap.vol_low_pct)} to {_pct(snap.vol_high_pct)}, n = {snap.vol_n} days); "
        f"VaR {snap.var_level:.0%}: parametric {_pct(snap.var_parametric_pct)} over "
        f"{snap.var_horizon_days} day(s) (95% interval {_pct(snap.var_parametric_low_pct)} "
        f"to {_pct(snap.var_parametric_high_pct)}), historical "
        f"{_pct(snap.var_historical_pct)} over 1 day (95% interval "
        f"{_pct(snap.var_historical_low_pct)} to {_pct(snap.var_historical_high_pct)}, n = "
        f"{snap.var_historical_n} days)</p>"]
    if snap.not_checked:
        lines.append("<div class='tb-portfolio-unchecked' style='font-size:12px;"
                     "color:#8d6e63'>Not checked: " + "; ".join(
                         f"{e(k)}: {e(v)}" for k, v in snap.not_checked.items()) + "</div>")
    return "".join(lines)


def portfolio_figure(snap: ExposureSnapshot) -> dict[str, Any] | None:
    """Return a plotly.js figure of each position's weight, open risk and risk contribution
    (% of equity; bars coloured by correlation cluster) and the heat against its limit, or
    None without positions."""
    pos = snap.positions
    if not len(pos):
        return None
    symbols = [str(s) for s in pos["symbol"]]
    sizes = pos["cluster"].value_counts().to_dict()
    colours = [_colour(c, sizes) for c in pos["cluster"]]
    hover = [f"{s}: cluster {c}" for s, c in zip(symbols, pos["cluster"], strict=True)]

    def values(column: str) -> list[float | None]:
        return [None if not math.isfinite(float(v)) else round(float(v), 4)
                for v in pos[column]]

    data: list[dict[str, Any]] = []
    for k, (column, name) in enumerate((("weight_pct", "weight"),
                                        ("open_risk_pct", "open risk to the stop"),
                                        ("contribution_pct", "risk contribution per day"))):
        axis = "" if k == 0 else str(k + 1)
        data.append({"type": "bar", "orientation": "h", "name": name, "y": symbols,
                     "x": values(column), "marker": {"color": colours},
                     "text": hover, "hovertemplate": f"%{{text}}<br>{name} %{{x:.2f}}% of "
                                                     f"equity<extra></extra>",
                     "xaxis": f"x{axis}", "yaxis": f"y{axis}", "showlegend": False})
    heat = snap.heat_pct if math.isfinite(snap.heat_pct) else None
    data.append({"type": "bar", "orientation": "h", "name": "heat", "y": ["heat"],
                 "x": [heat], "marker": {"color": [_OVER if snap.heat_breach else "#455a64"]},
                 "hovertemplate": "heat %{x:.2f}% of equity<extra></extra>",
                 "xaxis": "x4", "yaxis": "y4", "showlegend": False})
    titles = ("weight, % of equity", "open risk to the stop, % of equity",
              "risk contribution, % of equity per day", "heat, % of equity")
    layout: dict[str, Any] = {
        "height": 120 + 34 * len(symbols) + 60, "autosize": True, "showlegend": False,
        "margin": {"l": 70, "r": 20, "t": 30, "b": 30}, "plot_bgcolor": "white",
        "paper_bgcolor": "white", "annotations": [], "shapes": [{
            "type": "line", "xref": "x4", "yref": "y4 domain", "x0": snap.heat_limit_pct,
            "x1": snap.heat_limit_pct, "y0": 0, "y1": 1,
            "line": {"color": _OVER, "dash": "dash", "width": 1.5}}]}
    domains = ((0.0, 0.31), (0.345, 0.655), (0.69, 1.0))
    for k, title in enumerate(titles):
        axis = "" if k == 0 else str(k + 1)
        top = k < 3
        x_domain = domains[k] if top else (0.0, 1.0)
        y_domain = (0.3, 1.0) if top else (0.0, 0.16)
        layout[f"xaxis{axis}"] = {"domain": list(x_domain), "anchor": f"y{axis}",
                                  "zeroline": True, "gridcolor": "#eceff1",
                                  "ticksuffix": "%"}
        layout[f"yaxis{axis}"] = {"domain": list(y_domain), "anchor": f"x{axis}",
                                  "automargin": True, "showticklabels": k in (0, 3)}
        layout["annotations"].append({
            "text": html.escape(title), "xref": "paper", "yref": "paper", "showarrow": False,
            "x": (x_domain[0] + x_domain[1]) / 2, "y": y_domain[1] + (0.04 if top else 0.05),
            "xanchor": "center", "yanchor": "bottom", "font": {"size": 11}})
    layout["xaxis4"]["range"] = [0, max(heat or 0.0, snap.heat_limit_pct) * 1.15]
    layout["annotations"].append({
        "text": f"limit {snap.heat_limit_pct:g}%", "xref": "x4", "yref": "paper",
        "x": snap.heat_limit_pct, "y": 0.17, "showarrow": False, "xanchor": "left",
        "font": {"size": 10, "color": _OVER}})
    config = {"displaylogo": False, "responsive": True, "scrollZoom": False,
              "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
    return {"data": data, "layout": layout, "config": config}


def tables_html(snap: ExposureSnapshot) -> str:
    """Return the positions (weight, open risk, cluster, contribution, beta with its
    interval and n) and the clusters (members, weights, mean correlation) as HTML."""
    e = html.escape
    rows = []
    for p in snap.positions.itertuples(index=False):
        beta = ("not checked" if not math.isfinite(float(p.beta)) else
                f"{p.beta:.2f} [{p.beta_low:.2f}, {p.beta_high:.2f}] n={p.beta_n} to "
                f"{e(str(p.benchmark))}")
        stop = "unknown" if p.stop is None or not math.isfinite(float(p.stop)) else \
            f"{float(p.stop):g}"
        rows.append(
            f"<tr><td style='{_HEAD}'>{e(str(p.symbol))}</td>"
            f"<td style='{_CELL}'>{float(p.qty):,.2f}</td>"
            f"<td style='{_CELL}'>{float(p.mark):,.4g}</td>"
            f"<td style='{_CELL}'>{_pct(p.weight_pct)}</td>"
            f"<td style='{_CELL}'>{stop}</td>"
            f"<td style='{_CELL}'>{_pct(p.open_risk_pct)}</td>"
            f"<td style='{_CELL}'>{e(str(p.cluster))}</td>"
            f"<td style='{_CELL}'>{_pct(p.contribution_pct, 3)}</td>"
            f"<td style='{_CELL}'>{beta}</td></tr>")
    parts = [
        "<h4 style='margin:8px 0 2px'>Positions</h4>"
        "<table class='tb-portfolio-positions' style='border-collapse:collapse;"
        "font-size:12px'>"
        f"<tr><th style='{_HEAD}'>symbol</th><th style='{_HEAD}'>qty</th>"
        f"<th style='{_HEAD}'>mark</th><th style='{_HEAD}'>weight</th>"
        f"<th style='{_HEAD}'>stop</th><th style='{_HEAD}'>open risk</th>"
        f"<th style='{_HEAD}'>cluster</th><th style='{_HEAD}'>contribution / day</th>"
        f"<th style='{_HEAD}'>beta [95%] ({e(snap.beta_window)}"
        f"{', Blume' if snap.beta_blume else ''})</th></tr>" + "".join(rows) + "</table>"]
    rows = []
    for c in snap.clusters:
        corr = ("n/a" if c.get("mean_corr") is None else
                f"{float(c['mean_corr']):.2f} (pairs with n &ge; {c.get('min_n')})")
        rows.append(
            f"<tr><td style='{_HEAD}'>{e(str(c['cluster']))}</td>"
            f"<td style='{_HEAD}'>{e(', '.join(map(str, c['members'])))}</td>"
            f"<td style='{_CELL}'>{_pct(c.get('net_weight_pct'))}</td>"
            f"<td style='{_CELL}'>{_pct(c.get('gross_weight_pct'))}</td>"
            f"<td style='{_CELL}'>{corr}</td></tr>")
    parts.append(
        f"<h4 style='margin:8px 0 2px'>Correlation clusters</h4><div style='font-size:12px;"
        f"color:#607d8b'>average linkage on sqrt((1 - rho) / 2), cut at "
        f"{snap.cluster_max_distance:g}; {e(snap.returns_window)}</div>"
        + ("<table class='tb-portfolio-clusters' style='border-collapse:collapse;"
           "font-size:12px'>"
           f"<tr><th style='{_HEAD}'>cluster</th><th style='{_HEAD}'>members</th>"
           f"<th style='{_HEAD}'>net weight</th><th style='{_HEAD}'>gross weight</th>"
           f"<th style='{_HEAD}'>mean correlation</th></tr>" + "".join(rows) + "</table>"
           if rows else "<p class='tb-portfolio-clusters'>none computed (see not checked)"
                        "</p>"))
    return "".join(parts)
