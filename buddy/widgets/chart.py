"""The price chart: recent closed bars with the entry, stop, target and the key levels near them.

Interactive with plotly (zoom, pan, hover on every bar and line): ``price_figure`` builds the
figure as plotly.js JSON, shown through plotly's Jupyter renderer (the ``jupyterlab-plotly``
extension the plotly package installs, loaded by JupyterLab and Voila alike). The JSON is
written directly, not through ``plotly.graph_objects``: building and validating a Figure
object costs about 0.1 s per chart where this costs a millisecond (the tests validate it with
``plotly.graph_objects.Figure``). The same chart as an inline SVG rides along as the
``text/html`` fallback of the display bundle, for a front end without the plotly renderer.

A level an issue cites (a fact in ``price`` whose name says level, e.g. ENTRY_UNDER_RESISTANCE's
``level_price`` with its ``level_name``) is always drawn, as a labelled line of its own, and
the price range widens to show it. The SVG scales to its container (``viewBox``, width 100%
up to ``WIDTH``) so no label is clipped on a narrow page, and every label is placed inside
the figure's box.

Drawn as an inline SVG in an ``ipywidgets.HTML``: a few hundred elements built as text in
about a millisecond, where a matplotlib PNG took longer to draw than the logged evaluation
itself (see benchmarks/widgets.py). Only what the ContextPack holds is drawn: bars closed by
as_of, on the as-of price basis, and the key levels of the ``levels`` piece when present.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import ipywidgets as w
import numpy as np
import pandas as pd

from buddy.context.pack import ContextPack
from buddy.domain import Issue, TradeIntent

#: Bars drawn, counted back from the last closed bar.
CHART_BARS = 120
#: Key levels drawn at most: those nearest the entry inside the drawn price range.
MAX_LEVELS = 6
#: Smallest distance between two drawn levels, as a fraction of the drawn price range.
LEVEL_GAP = 0.05

WIDTH, HEIGHT = 760, 330  # px
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 118, 24, 24  # plot margins, px
_UP, _DOWN = "#2e7d32", "#b71c1c"
_LINES = {"entry": "#1565c0", "stop": "#b71c1c", "target": "#2e7d32"}
_CITED = "#6a1b9a"
_LEVEL = "#78909c"
#: The mimetype plotly's Jupyter renderer draws.
PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"


@dataclass(frozen=True, slots=True)
class CitedLevel:
    """A key level an issue cites: its name, price and the citing issue's code."""

    name: str  # the level's name ('' when the issue names none)
    price: float
    code: str

    @property
    def label(self) -> str:
        """Return the line's label: 'prior day high 572.65 (ENTRY_UNDER_RESISTANCE)'."""
        name = self.name.replace("_", " ")
        return f"{name} {self.price:g} ({self.code})" if name else (
            f"level {self.price:g} ({self.code})")


def cited_levels(issues: Iterable[Issue]) -> tuple[CitedLevel, ...]:
    """Return the levels ``issues`` cite, once per price (to 6 decimals), in issue order:
    each evidence fact in ``price`` whose name contains 'level', named by the issue's
    ``level_name`` fact when it has one (a named citation replaces an unnamed one at the
    same price)."""
    seen: dict[float, CitedLevel] = {}
    for issue in issues:
        named = issue.fact("level_name")
        name = str(named.value) if named is not None and named.value else ""
        for fact in issue.evidence:
            value = fact.value
            if (fact.unit != "price" or "level" not in fact.name
                    or not isinstance(value, int | float) or isinstance(value, bool)
                    or not math.isfinite(value)):
                continue
            key = round(float(value), 6)
            if key not in seen or (name and not seen[key].name):
                seen[key] = CitedLevel(name, float(value), issue.code)
    return tuple(seen.values())


@dataclass(frozen=True, slots=True)
class ChartModel:
    """What the chart shows, and why a part of it is missing."""

    svg: str | None
    levels: Mapping[str, float]  # the key levels drawn, by name
    note: str  # 'levels missing: <reason>' or what was drawn
    cited: tuple[CitedLevel, ...] = ()  # the levels issues cite, all drawn
    figure: Mapping[str, Any] | None = None  # the same chart as plotly.js JSON

    def bundle(self) -> dict[str, Any]:
        """Return the display bundle: the plotly figure, the SVG as the HTML fallback."""
        data: dict[str, Any] = {}
        if self.figure is not None:
            data[PLOTLY_MIMETYPE] = dict(self.figure)
        if self.svg is not None:
            data["text/html"] = self.svg
        return data


def key_levels(ctx: ContextPack) -> tuple[dict[str, float], str | None]:
    """Return the pack's named key levels and, when the piece is absent, the reason."""
    named = getattr(ctx.levels, "named_levels", None)
    if ctx.levels is None or named is None:
        return {}, ctx.missing.get("levels", "not provided")
    return dict(named()), None


def near_levels(levels: Mapping[str, float], entry: float, low: float, high: float,
                limit: int = MAX_LEVELS, min_gap: float = 0.0) -> dict[str, float]:
    """Return at most ``limit`` levels inside [low, high], nearest to ``entry`` first, each
    at least ``min_gap`` from those already taken (so their labels stay readable)."""
    inside = sorted(((name, price) for name, price in levels.items() if low <= price <= high),
                    key=lambda item: (abs(item[1] - entry), item[0]))
    taken: dict[str, float] = {}
    for name, price in inside:
        if len(taken) == limit:
            break
        if all(abs(price - other) >= min_gap for other in taken.values()):
            taken[name] = price
    return taken


def chart_model(ctx: ContextPack, intent: TradeIntent, *, bars: int = CHART_BARS,
                issues: Iterable[Issue] = ()) -> ChartModel:
    """Return the chart of ``intent`` over the last ``bars`` closed bars of ``ctx``, with
    every level ``issues`` cite drawn and labelled."""
    if ctx.market is None:
        return ChartModel(svg=None, levels={},
                          note=f"no chart: market data missing: "
                               f"{ctx.missing.get('market', 'not provided')}")
    frame = ctx.market.bars.tail(bars)
    cited = cited_levels(issues)
    prices = [p for p in (intent.proposed_entry, intent.proposed_stop, intent.proposed_target)
              if p is not None] + [c.price for c in cited]
    low = min(float(frame["low"].min()), *prices)
    high = max(float(frame["high"].max()), *prices)
    pad = (high - low) * 0.04 or abs(high) * 0.01
    levels, missing = key_levels(ctx)
    # a cited level is drawn as such; the plain key level at its price would repeat it
    at_cited = {c.price for c in cited}
    shown = near_levels({k: v for k, v in levels.items() if v not in at_cited},
                        intent.proposed_entry, low - pad, high + pad,
                        min_gap=(high - low) * LEVEL_GAP)
    svg = render_svg(frame, intent, shown, ylim=(low - pad, high + pad), cited=cited)
    figure = price_figure(frame, intent, shown, ylim=(low - pad, high + pad), cited=cited)
    if missing is not None:
        note = f"levels missing: {missing}"
    elif shown:
        note = (f"{len(shown)} of {len(levels)} key levels drawn: the nearest to the entry, "
                "one per price band")
    else:
        note = f"none of {len(levels)} key levels lies in the drawn price range"
    if cited:
        note += f"; {len(cited)} level(s) cited by the issues drawn in purple"
    return ChartModel(svg=svg, levels=shown, note=note, cited=cited, figure=figure)


def price_ticks(low: float, high: float, target_count: int = 6) -> list[float]:
    """Return round price ticks inside [low, high]: the step of 1, 2, 2.5 or 5 times a power
    of 10 whose tick count is nearest ``target_count``."""
    span = high - low
    if not span > 0:
        return [low]
    power = 10 ** math.floor(math.log10(span / target_count))
    step = min((m * power for m in (1, 2, 2.5, 5, 10)),
               key=lambda s: abs(span / s - target_count))
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def price_figure(frame: pd.DataFrame, intent: TradeIntent, levels: Mapping[str, float], *,
                 ylim: tuple[float, float], cited: tuple[CitedLevel, ...] = ()
                 ) -> dict[str, Any]:
    """Return candlesticks of ``frame`` with the intent's entry, stop and target, ``levels``
    and the ``cited`` levels as a plotly.js figure (data, layout, config). Each line is a
    labelled trace (hover) whose ``meta`` says what it is: ``kind`` ('entry', 'stop',
    'target', 'level' or 'cited'), ``price``, and for a level ``name`` (a cited one's
    ``code`` too)."""
    fmt = "%Y-%m-%d %H:%M" if intent.timeframe.is_intraday else "%Y-%m-%d"
    # a category axis: bars side by side as traded, no empty weekends or nights
    x = [ts.strftime(fmt) for ts in frame["ts"]]
    ohlc = frame[["open", "high", "low", "close"]].to_numpy(float)
    data: list[dict[str, Any]] = [{
        "type": "candlestick", "name": intent.symbol, "x": x,
        "open": ohlc[:, 0].tolist(), "high": ohlc[:, 1].tolist(),
        "low": ohlc[:, 2].tolist(), "close": ohlc[:, 3].tolist(),
        "increasing": {"line": {"color": _UP}}, "decreasing": {"line": {"color": _DOWN}},
        "showlegend": False}]
    annotations: list[dict[str, Any]] = []
    span = [x[0], x[-1]] if x else []

    def line(label: str, price: float, colour: str, dash: str, meta: dict[str, Any],
             width: float = 1.2) -> None:
        data.append({"type": "scatter", "mode": "lines", "name": label, "x": span,
                     "y": [price, price], "line": {"color": colour, "dash": dash,
                                                   "width": width},
                     "hovertemplate": f"{html.escape(label)}<extra></extra>",
                     "meta": {**meta, "price": price}})

    for name, price in levels.items():
        line(f"{name} {price:g}", price, _LEVEL, "dot", {"kind": "level", "name": name},
             width=1.0)
        annotations.append({"xref": "paper", "x": 0, "xanchor": "left", "y": price,
                            "yref": "y", "yanchor": "bottom", "text": html.escape(
                                f"{name} {price:g}"), "showarrow": False,
                            "font": {"size": 9, "color": "#546e7a"},
                            "bgcolor": "rgba(255,255,255,0.85)"})
    for level in cited:
        line(level.label, level.price, _CITED, "dashdot",
             {"kind": "cited", "name": level.name, "code": level.code}, width=1.6)
        annotations.append({"xref": "paper", "x": 1, "xanchor": "right", "y": level.price,
                            "yref": "y", "yanchor": "bottom", "text": html.escape(level.label),
                            "showarrow": False, "font": {"size": 10, "color": _CITED},
                            "bgcolor": "rgba(255,255,255,0.85)"})
    for kind, planned in (("entry", intent.proposed_entry), ("stop", intent.proposed_stop),
                          ("target", intent.proposed_target)):
        if planned is None:
            continue
        line(f"{kind} {planned:g}", planned, _LINES[kind],
             "solid" if kind == "entry" else "dash", {"kind": kind}, width=1.6)
        annotations.append({"xref": "paper", "x": 1, "xanchor": "left", "y": planned,
                            "yref": "y", "text": f"{kind} {planned:g}", "showarrow": False,
                            "font": {"size": 11, "color": _LINES[kind]}})
    title = (f"{intent.symbol} {intent.timeframe.value}: last {len(x)} closed bars to "
             f"{intent.as_of:%Y-%m-%d %H:%M} UTC (drag to zoom, double-click to reset)")
    layout = {
        "title": {"text": html.escape(title), "font": {"size": 12}, "x": 0.01},
        "height": HEIGHT + 40, "autosize": True, "showlegend": False,
        "dragmode": "zoom", "hovermode": "x",
        "margin": {"l": _LEFT, "r": _RIGHT, "t": 36, "b": 28},
        "xaxis": {"type": "category", "nticks": 6, "tickangle": 0, "automargin": True,
                  "rangeslider": {"visible": False}, "showgrid": False},
        "yaxis": {"range": [ylim[0], ylim[1]], "gridcolor": "#eceff1", "tickformat": ",.4~g"},
        "annotations": annotations, "plot_bgcolor": "white", "paper_bgcolor": "white",
    }
    config = {"displaylogo": False, "responsive": True, "scrollZoom": False,
              "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
    return {"data": data, "layout": layout, "config": config}


def render_svg(frame: pd.DataFrame, intent: TradeIntent, levels: Mapping[str, float], *,
               ylim: tuple[float, float], cited: tuple[CitedLevel, ...] = ()) -> str:
    """Return candlesticks of ``frame`` with the intent's prices, ``levels`` and the
    ``cited`` levels as SVG (scaled to its container, at most ``WIDTH`` px wide)."""
    n = len(frame)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    y_low, y_high = ylim
    slot = plot_w / max(n, 1)

    def y(price: float) -> float:
        return _TOP + (y_high - price) / (y_high - y_low) * plot_h

    def x(i: float) -> float:
        return _LEFT + (i + 0.5) * slot

    parts = [f"<svg class='tb-chart-svg' xmlns='http://www.w3.org/2000/svg' width='100%' "
             f"viewBox='0 0 {WIDTH} {HEIGHT}' preserveAspectRatio='xMinYMin meet' "
             f"style='max-width:{WIDTH}px;height:auto;display:block' "
             f"font-family='sans-serif'>",
             f"<text x='{_LEFT}' y='15' font-size='12' fill='#263238'>"
             f"{html.escape(intent.symbol)} {intent.timeframe.value}: last {n} closed bars to "
             f"{intent.as_of:%Y-%m-%d %H:%M} UTC</text>"]
    for tick in price_ticks(y_low, y_high):
        ty = y(tick)
        parts.append(f"<line x1='{_LEFT}' x2='{_LEFT + plot_w}' y1='{ty:.1f}' y2='{ty:.1f}' "
                     f"stroke='#eceff1'/><text x='{_LEFT - 4}' y='{ty + 3:.1f}' "
                     f"font-size='10' text-anchor='end' fill='#607d8b'>{tick:g}</text>")
    fmt = "%m-%d %H:%M" if intent.timeframe.is_intraday else "%Y-%m-%d"
    for i in np.linspace(0, n - 1, num=min(6, n)).round().astype(int):
        parts.append(f"<text x='{x(i):.1f}' y='{HEIGHT - 8}' font-size='10' "
                     f"text-anchor='middle' fill='#607d8b'>"
                     f"{frame['ts'].iloc[i].strftime(fmt)}</text>")
    parts.append(f"<line x1='{_LEFT}' x2='{_LEFT}' y1='{_TOP}' y2='{_TOP + plot_h}' "
                 f"stroke='#b0bec5'/><line x1='{_LEFT}' x2='{_LEFT + plot_w}' "
                 f"y1='{_TOP + plot_h}' y2='{_TOP + plot_h}' stroke='#b0bec5'/>")
    body_w = max(1.0, slot * 0.7)
    columns = ("open", "high", "low", "close")
    for i, (open_, high, low, close) in enumerate(frame[list(columns)].to_numpy(float)):
        colour = _UP if close >= open_ else _DOWN
        top, bottom = y(max(open_, close)), y(min(open_, close))
        cx = x(i)
        parts.append(f"<line x1='{cx:.1f}' x2='{cx:.1f}' y1='{y(high):.1f}' "
                     f"y2='{y(low):.1f}' stroke='{colour}' stroke-width='0.8'/>"
                     f"<rect x='{cx - body_w / 2:.1f}' y='{top:.1f}' width='{body_w:.1f}' "
                     f"height='{max(bottom - top, 0.8):.1f}' fill='{colour}'/>")
    for name, price in levels.items():
        ly = y(price)
        label = html.escape(f"{name} {price:g}")
        parts.append(f"<g class='tb-level' data-name='{html.escape(name)}' data-price='{price}'>"
                     f"<line x1='{_LEFT}' x2='{_LEFT + plot_w}' y1='{ly:.1f}' y2='{ly:.1f}' "
                     f"stroke='#78909c' stroke-dasharray='2,3'/>"
                     f"<rect x='{_LEFT + 2}' y='{ly - 6:.1f}' width='{len(label) * 5.6 + 4:.0f}'"
                     f" height='11' fill='white' opacity='0.85'/>"
                     f"<text x='{_LEFT + 4}' y='{ly + 3:.1f}' font-size='9' fill='#546e7a'>"
                     f"{label}</text></g>")
    for level in cited:
        ly = y(level.price)
        label = html.escape(level.label)
        # right-aligned inside the plot: the right margin holds entry, stop and target
        width = len(level.label) * 5.6 + 6
        parts.append(f"<g class='tb-cited-level' data-code='{html.escape(level.code)}' "
                     f"data-name='{html.escape(level.name)}' data-price='{level.price}'>"
                     f"<line x1='{_LEFT}' x2='{_LEFT + plot_w}' y1='{ly:.1f}' y2='{ly:.1f}' "
                     f"stroke='{_CITED}' stroke-width='1.2' stroke-dasharray='8,2,2,2'/>"
                     f"<rect x='{_LEFT + plot_w - width - 2:.0f}' y='{ly - 13:.1f}' "
                     f"width='{width:.0f}' height='11' fill='white' opacity='0.85'/>"
                     f"<text x='{_LEFT + plot_w - 4}' y='{ly - 4:.1f}' font-size='9' "
                     f"text-anchor='end' fill='{_CITED}'>{label}</text></g>")
    for name, line_price in (("entry", intent.proposed_entry), ("stop", intent.proposed_stop),
                             ("target", intent.proposed_target)):
        if line_price is None:
            continue
        ly = y(line_price)
        dash = "" if name == "entry" else " stroke-dasharray='6,3'"
        parts.append(f"<g class='tb-line-{name}' data-price='{line_price}'>"
                     f"<line x1='{_LEFT}' x2='{_LEFT + plot_w}' y1='{ly:.1f}' y2='{ly:.1f}' "
                     f"stroke='{_LINES[name]}' stroke-width='1.4'{dash}/>"
                     f"<text x='{_LEFT + plot_w + 4}' y='{ly + 4:.1f}' font-size='11' "
                     f"fill='{_LINES[name]}'>{name} {line_price:g}</text></g>")
    parts.append("</svg>")
    return "".join(parts)


class ChartView:
    """The chart panel: a show/hide toggle over the chart and its note (UI-only). The chart
    is an ``Output`` holding the model's display bundle: plotly where the front end has its
    renderer (JupyterLab, Voila), the SVG elsewhere."""

    def __init__(self) -> None:
        self.toggle = w.ToggleButton(value=True, description="Chart", icon="line-chart",
                                     tooltip="Show or hide the price chart")
        self.plot = w.Output(layout=w.Layout(width="100%", max_width=f"{WIDTH + 80}px"))
        self.plot.add_class("tb-chart-plot")
        self.note = w.HTML()
        self.body = w.VBox([self.plot, self.note])
        self.toggle.observe(self._toggled, names="value")
        self.widget = w.VBox([self.toggle, self.body], layout=w.Layout(display="none"))
        self.widget.add_class("tb-chart")
        self.model: ChartModel | None = None

    def show(self, model: ChartModel | None) -> None:
        """Show ``model`` (None hides the chart)."""
        self.model = model
        self.widget.layout.display = "" if model else "none"
        bundle = model.bundle() if model else {}
        self.plot.outputs = ({"output_type": "display_data", "data": bundle,
                              "metadata": {}},) if bundle else ()
        self.note.value = "" if model is None else (
            f"<small style='color:#546e7a'>{html.escape(model.note)}</small>")

    def shown(self, mimetype: str) -> Any:
        """Return what the chart shows in ``mimetype`` (None when it shows nothing)."""
        return self.plot.outputs[0]["data"].get(mimetype) if self.plot.outputs else None

    def _toggled(self, change: dict) -> None:
        self.body.layout.display = "" if change["new"] else "none"
