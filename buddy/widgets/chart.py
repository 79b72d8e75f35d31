"""The price chart: recent closed bars with the entry, stop, target and the key levels near them.

Drawn as an inline SVG in an ``ipywidgets.HTML``: a few hundred elements built as text in
about a millisecond, where a matplotlib PNG took longer to draw than the logged evaluation
itself (see benchmarks/widgets.py). Only what the ContextPack holds is drawn: bars closed by
as_of, on the as-of price basis, and the key levels of the ``levels`` piece when present.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass

import ipywidgets as w
import numpy as np
import pandas as pd

from buddy.context.pack import ContextPack
from buddy.domain import TradeIntent

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


@dataclass(frozen=True, slots=True)
class ChartModel:
    """What the chart shows, and why a part of it is missing."""

    svg: str | None
    levels: Mapping[str, float]  # the key levels drawn, by name
    note: str  # 'levels missing: <reason>' or what was drawn


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


def chart_model(ctx: ContextPack, intent: TradeIntent, *, bars: int = CHART_BARS) -> ChartModel:
    """Return the chart of ``intent`` over the last ``bars`` closed bars of ``ctx``."""
    if ctx.market is None:
        return ChartModel(svg=None, levels={},
                          note=f"no chart: market data missing: "
                               f"{ctx.missing.get('market', 'not provided')}")
    frame = ctx.market.bars.tail(bars)
    prices = [p for p in (intent.proposed_entry, intent.proposed_stop, intent.proposed_target)
              if p is not None]
    low = min(float(frame["low"].min()), *prices)
    high = max(float(frame["high"].max()), *prices)
    pad = (high - low) * 0.04 or abs(high) * 0.01
    levels, missing = key_levels(ctx)
    shown = near_levels(levels, intent.proposed_entry, low - pad, high + pad,
                        min_gap=(high - low) * LEVEL_GAP)
    svg = render_svg(frame, intent, shown, ylim=(low - pad, high + pad))
    if missing is not None:
        note = f"levels missing: {missing}"
    elif shown:
        note = (f"{len(shown)} of {len(levels)} key levels drawn: the nearest to the entry, "
                "one per price band")
    else:
        note = f"none of {len(levels)} key levels lies in the drawn price range"
    return ChartModel(svg=svg, levels=shown, note=note)


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


def render_svg(frame: pd.DataFrame, intent: TradeIntent, levels: Mapping[str, float], *,
               ylim: tuple[float, float]) -> str:
    """Return candlesticks of ``frame`` with the intent's prices and ``levels`` as SVG."""
    n = len(frame)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    y_low, y_high = ylim
    slot = plot_w / max(n, 1)

    def y(price: float) -> float:
        return _TOP + (y_high - price) / (y_high - y_low) * plot_h

    def x(i: float) -> float:
        return _LEFT + (i + 0.5) * slot

    parts = [f"<svg class='tb-chart-svg' xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' "
             f"height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}' font-family='sans-serif'>",
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
    """The chart panel: a show/hide toggle over the chart and its note (UI-only)."""

    def __init__(self) -> None:
        self.toggle = w.ToggleButton(value=True, description="Chart", icon="line-chart",
                                     tooltip="Show or hide the price chart")
        self.image = w.HTML()
        self.note = w.HTML()
        self.body = w.VBox([self.image, self.note])
        self.toggle.observe(self._toggled, names="value")
        self.widget = w.VBox([self.toggle, self.body], layout=w.Layout(display="none"))
        self.widget.add_class("tb-chart")
        self.model: ChartModel | None = None

    def show(self, model: ChartModel | None) -> None:
        """Show ``model`` (None hides the chart)."""
        self.model = model
        self.widget.layout.display = "" if model else "none"
        self.image.value = (model.svg or "") if model else ""
        self.note.value = "" if model is None else (
            f"<small style='color:#546e7a'>{html.escape(model.note)}</small>")

    def _toggled(self, change: dict) -> None:
        self.body.layout.display = "" if change["new"] else "none"
