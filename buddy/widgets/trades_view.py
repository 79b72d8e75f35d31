"""The trades view of the workbench: the trader's trades, one trade's chart with its fills,
its MAE/MFE and post-trade review, and a journal note on it.

Two layers, as in ``buddy.widgets.app``. ``TradesBook`` is the view-model (the list, the
selected trade's detail, the note action) and knows nothing of widgets; ``TradesView`` builds
the ipywidgets around it. Everything is read through ``buddy.store.trades``; the only write is
a journal note on the selected trade.

The chart is drawn after the fact (a review looks back), so it shows bars before, during and
after the trade, of the timeframe the review measured on (else the linked intent's, else the
finest stored), on the prices as traded.
"""

from __future__ import annotations

import html
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import ipywidgets as w
import numpy as np
import pandas as pd

from buddy.store import Store
from buddy.store import trades as trade_store
from buddy.timeframes import Timeframe
from buddy.users.store import get_user
from buddy.widgets.chart import price_ticks

#: Bars drawn before the trade opens and after it closes, and the most drawn in all.
BARS_BEFORE, BARS_AFTER, MAX_BARS = 30, 10, 240
#: Trades listed at most (newest first): a Select of thousands of rows is unusable.
MAX_LISTED = 2000

WIDTH, HEIGHT = 760, 330  # px
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 118, 24, 24
_UP, _DOWN = "#2e7d32", "#b71c1c"
_ALL = "all"


@dataclass(frozen=True, slots=True)
class TradeChart:
    """A trade's chart: SVG (None when no bars cover it) and what was drawn or why not."""

    svg: str | None
    timeframe: str | None
    note: str


@dataclass(frozen=True, slots=True)
class TradeDetail:
    """What the view shows for one trade."""

    trade: Mapping[str, Any]
    fills: pd.DataFrame  # trade_fills rows, by time
    review: Mapping[str, Any] | None  # the newest post_trade_reviews row, None if none
    journal: pd.DataFrame  # trade_journal rows on this trade, oldest first
    chart: TradeChart
    figures: tuple[tuple[str, str], ...]  # (label, value with units) for MAE/MFE and grade


def trade_label(row: Mapping[str, Any]) -> str:
    """Return one line of the trade list: open time, symbol, side, size, entry, result."""
    opened = pd.Timestamp(row["open_ts"]).tz_convert("UTC")
    result = "open" if row.get("status") == "open" else (
        f"{row['pnl_r']:+.2f}R" if _finite(row.get("pnl_r")) else
        f"{row['pnl']:+,.0f}" if _finite(row.get("pnl")) else "n/a")
    return (f"{opened:%Y-%m-%d %H:%M} {row['symbol']:<6} {row['side']:<5} "
            f"{row['qty']:>10,.0f} @ {row['avg_entry']:<10g} {result}")


def trade_figures(trade: Mapping[str, Any], review: Mapping[str, Any] | None,
                  currency: str = "USD") -> tuple[tuple[str, str], ...]:
    """Return the figures shown beside the chart, each with its unit (money in the account
    ``currency``); what the review could not measure says so instead of a number."""
    out: list[tuple[str, str]] = [
        ("P&L", _money(trade.get("pnl"), currency)),
        ("P&L in R", _r(trade.get("pnl_r"), "no stop known: not computed")),
        ("Fees", _money(trade.get("fees"), currency))]
    if review is None:
        out.append(("Review", "not reviewed yet"))
        return tuple(out)
    reason = _review_note(review)
    for label, key, unit in (("MAE", "mae_price", "price"), ("MFE", "mfe_price", "price"),
                             ("MAE in R", "mae_r", "R"), ("MFE in R", "mfe_r", "R"),
                             ("MAE position", "mae_position", "ccy"),
                             ("MFE position", "mfe_position", "ccy"),
                             ("Exit efficiency", "exit_efficiency", "pct"),
                             ("Bars held", "bars_held", "bars")):
        raw = review.get(key)
        if not _finite(raw):
            out.append((label, f"not checked{': ' + reason if reason else ''}"))
            continue
        value = float(raw)
        if unit == "R":
            out.append((label, f"{value:+.2f} R"))
        elif unit == "ccy":
            out.append((label, _money(value, currency)))
        elif unit == "pct":
            out.append((label, f"{100 * value:.0f}%"))
        elif unit == "bars":
            out.append((label, f"{int(value)} bars of {review.get('bars_timeframe') or '?'}"))
        else:
            out.append((label, f"{value:g}"))
    out.append(("Process grade", str(review.get("process_grade") or "not graded")))
    out.append(("Process / outcome", str(review.get("process_outcome") or "n/a")))
    return tuple(out)


def _review_note(review: Mapping[str, Any]) -> str:
    """Return why the review has no MAE/MFE, when its JSON says."""
    raw = review.get("review_json")
    try:
        body = json.loads(raw) if isinstance(raw, str) else (raw or {})
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    for key in ("excursion_note", "mae_note", "bars_note", "not_checked", "note"):
        if isinstance(body.get(key), str):
            return str(body[key])
    excursion = body.get("excursion")
    if isinstance(excursion, dict) and isinstance(excursion.get("note"), str):
        return str(excursion["note"])
    return ""


class TradesBook:
    """The view-model: a user's trades, the selected one's detail, and journal notes."""

    def __init__(self, store: Store, user: str) -> None:
        self.store = store
        self.user = user.strip()
        self.symbol = _ALL
        self.status = _ALL
        self.trades = pd.DataFrame()
        self.detail: TradeDetail | None = None
        self.errors: dict[str, str] = {}
        self.refresh()

    # ------------------------------------------------------------------ the list
    def refresh(self) -> None:
        """Read the user's trades again (after an import or a rebuild)."""
        self.trades = (trade_store.read_trades(self.store, self.user) if self.user
                       else pd.DataFrame())
        state = get_user(self.store, self.user) if self.user else None
        self.currency = state.account.base_currency if state is not None else "USD"
        if self.detail is not None and self.detail.trade["trade_id"] not in set(
                self.trades.get("trade_id", ())):
            self.detail = None

    def set_user(self, user: str) -> None:
        """Show ``user``'s trades instead."""
        self.user = user.strip()
        self.detail = None
        self.refresh()

    @property
    def symbols(self) -> list[str]:
        """Return the symbols the user traded."""
        return sorted(set(self.trades["symbol"])) if len(self.trades) else []

    def listed(self) -> pd.DataFrame:
        """Return the trades passing the filters, newest first (at most MAX_LISTED)."""
        frame = self.trades
        if not len(frame):
            return frame
        if self.symbol != _ALL:
            frame = frame[frame["symbol"] == self.symbol]
        if self.status != _ALL:
            frame = frame[frame["status"] == self.status]
        return frame.sort_values(["open_ts", "trade_id"], ascending=False).head(MAX_LISTED)

    def options(self) -> list[tuple[str, str]]:
        """Return (label, trade_id) for each listed trade."""
        return [(trade_label(row), row["trade_id"]) for row in self.listed().to_dict("records")]

    # ------------------------------------------------------------------ one trade
    def select(self, trade_id: str) -> TradeDetail:
        """Read one of the user's trades with its fills, review, notes and chart."""
        rows = self.trades[self.trades["trade_id"] == trade_id] if len(self.trades) else None
        if rows is None or rows.empty:
            raise KeyError(f"trade_id: no trade {trade_id!r} for user {self.user!r}")
        trade = rows.iloc[0].to_dict()
        with self.store.reading():
            fills = trade_store.read_trade_fills(self.store, self.user, [trade_id])
            reviews = trade_store.read_reviews(self.store, self.user, trade_ids=[trade_id])
            journal = trade_store.read_journal(self.store, self.user, trade_id=trade_id)
            review = (reviews.sort_values("generated_at").iloc[-1].to_dict()
                      if len(reviews) else None)
            timeframe = self._timeframe(trade, review)
            chart = self._chart(trade, fills, timeframe)
        self.detail = TradeDetail(trade=trade, fills=fills, review=review, journal=journal,
                                  chart=chart,
                                  figures=trade_figures(trade, review, self.currency))
        return self.detail

    def _timeframe(self, trade: Mapping[str, Any], review: Mapping[str, Any] | None
                   ) -> str | None:
        stored = trade_store.timeframes_by_symbol(self.store, [trade["symbol"]]).get(
            trade["symbol"], [])
        if not stored:
            return None
        wanted = [review.get("bars_timeframe") if review else None]
        intent_id = trade.get("linked_intent_id")
        if isinstance(intent_id, str):
            intents = trade_store.read_intents(self.store, self.user, [intent_id])
            if len(intents):
                wanted.append(intents.iloc[0]["timeframe"])
        for choice in wanted:
            if isinstance(choice, str) and choice in stored:
                return choice
        return min(stored, key=lambda tf: Timeframe.parse(tf).nominal)

    def _chart(self, trade: Mapping[str, Any], fills: pd.DataFrame, timeframe: str | None
               ) -> TradeChart:
        if timeframe is None:
            return TradeChart(None, None, f"no chart: no bars of {trade['symbol']} stored")
        nominal = Timeframe.parse(timeframe).nominal
        opened = pd.Timestamp(trade["open_ts"])
        closed = pd.Timestamp(trade["close_ts"]) if _present(trade.get("close_ts")) else None
        # calendar padding: weekends and nights hold no bars, so ask for twice the bars
        start = opened - 2 * BARS_BEFORE * nominal
        end = (closed if closed is not None else opened) + 2 * BARS_AFTER * nominal
        bars = self.store.bars(trade["symbol"], timeframe, start=start.to_pydatetime(),
                               as_of=end.to_pydatetime())
        if bars.empty:
            return TradeChart(None, timeframe, f"no chart: no {timeframe} bars of "
                              f"{trade['symbol']} around {opened:%Y-%m-%d}")
        inside = bars[(bars["ts_close"] > opened) & (
            bars["ts"] <= (closed if closed is not None else bars["ts"].max()))]
        before = bars[bars["ts_close"] <= opened].tail(BARS_BEFORE)
        after = bars[bars["ts"] > closed].head(BARS_AFTER) if closed is not None else (
            bars.iloc[:0])
        frame = pd.concat([before, inside, after]).tail(MAX_BARS).reset_index(drop=True)
        svg = render_trade_svg(frame, fills, trade, timeframe)
        note = (f"{len(frame)} {timeframe} bars: {len(before)} before the entry, "
                f"{len(inside)} during the trade, {len(after)} after; "
                f"{len(fills)} fills marked (buys green up, sells red down)")
        if inside.empty:
            note += f"; no {timeframe} bar closed inside the trade (it opened and closed " \
                    "within one bar)"
        return TradeChart(svg, timeframe, note)

    # ------------------------------------------------------------------ journal
    def add_note(self, note: str, tags: str = "") -> str | None:
        """Write a journal note on the selected trade; return its journal_id, or None with
        ``errors['note']`` saying why nothing was written."""
        self.errors.pop("note", None)
        if self.detail is None:
            self.errors["note"] = "select a trade first: the note is saved on it"
            return None
        if not note.strip():
            self.errors["note"] = "must not be empty"
            return None
        journal_id = uuid.uuid4().hex
        trade_store.add_journal_note(
            self.store, journal_id=journal_id, user_id=self.user,
            trade_id=str(self.detail.trade["trade_id"]), intent_id=None, note=note.strip(),
            tags=[t.strip() for t in tags.split(",") if t.strip()])
        self.select(str(self.detail.trade["trade_id"]))
        return journal_id


# ------------------------------------------------------------------------------ drawing
def render_trade_svg(frame: pd.DataFrame, fills: pd.DataFrame, trade: Mapping[str, Any],
                     timeframe: str) -> str:
    """Return candlesticks of ``frame`` with the trade's fills marked and its entry, exit
    and initial stop drawn, as SVG."""
    n = len(frame)
    levels: dict[str, float] = {
        name: float(trade[column]) for name, column in (
            ("entry", "avg_entry"), ("exit", "avg_exit"), ("stop", "initial_stop"))
        if _finite(trade.get(column))}
    prices: list[float] = [*levels.values(), *(float(p) for p in fills["price"])]
    low = min([float(frame["low"].min()), *prices])
    high = max([float(frame["high"].max()), *prices])
    pad = (high - low) * 0.05 or abs(high) * 0.01
    y_low, y_high = low - pad, high + pad
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    slot = plot_w / max(n, 1)

    def y(price: float) -> float:
        return _TOP + (y_high - price) / (y_high - y_low) * plot_h

    def x(i: float) -> float:
        return _LEFT + (i + 0.5) * slot

    intraday = Timeframe.parse(timeframe).is_intraday
    opened = pd.Timestamp(trade["open_ts"])
    parts = [f"<svg class='tb-trade-svg' xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' "
             f"height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}' font-family='sans-serif'>",
             f"<text x='{_LEFT}' y='15' font-size='12' fill='#263238'>"
             f"{html.escape(str(trade['symbol']))} {timeframe}: {trade['side']} "
             f"{float(trade['qty']):,.0f} opened {opened:%Y-%m-%d %H:%M} UTC"
             f"{'' if trade.get('status') != 'open' else ' (open)'}</text>"]
    for tick in price_ticks(y_low, y_high):
        ty = y(tick)
        parts.append(f"<line x1='{_LEFT}' x2='{_LEFT + plot_w}' y1='{ty:.1f}' y2='{ty:.1f}' "
                     f"stroke='#eceff1'/><text x='{_LEFT - 4}' y='{ty + 3:.1f}' "
                     f"font-size='10' text-anchor='end' fill='#607d8b'>{tick:g}</text>")
    fmt = "%m-%d %H:%M" if intraday else "%Y-%m-%d"
    for i in np.linspace(0, n - 1, num=min(6, n)).round().astype(int):
        parts.append(f"<text x='{x(i):.1f}' y='{HEIGHT - 8}' font-size='10' "
                     f"text-anchor='middle' fill='#607d8b'>"
                     f"{pd.Timestamp(frame['ts'].iloc[i]).strftime(fmt)}</text>")
    body_w = max(1.0, slot * 0.7)
    for i, (open_, hi, lo, close) in enumerate(
            frame[["open", "high", "low", "close"]].to_numpy(float)):
        colour = _UP if close >= open_ else _DOWN
        top, bottom = y(max(open_, close)), y(min(open_, close))
        cx = x(i)
        parts.append(f"<line x1='{cx:.1f}' x2='{cx:.1f}' y1='{y(hi):.1f}' y2='{y(lo):.1f}' "
                     f"stroke='{colour}' stroke-width='0.8' opacity='0.6'/>"
                     f"<rect x='{cx - body_w / 2:.1f}' y='{top:.1f}' width='{body_w:.1f}' "
                     f"height='{max(bottom - top, 0.8):.1f}' fill='{colour}' opacity='0.6'/>")
    styles = {"entry": ("#1565c0", ""), "exit": ("#6a1b9a", " stroke-dasharray='6,3'"),
              "stop": ("#b71c1c", " stroke-dasharray='4,3'")}
    label_y = -math.inf
    for name, price in sorted(levels.items(), key=lambda item: -item[1]):
        colour, dash = styles[name]
        ly = y(price)
        # a stopped-out trade exits at its stop: keep the two labels apart, top to bottom
        label_y = max(ly + 4, label_y + 12)
        parts.append(f"<g class='tb-trade-{name}' data-price='{price}'><line x1='{_LEFT}' "
                     f"x2='{_LEFT + plot_w}' y1='{ly:.1f}' y2='{ly:.1f}' stroke='{colour}' "
                     f"stroke-width='1.2'{dash}/><text x='{_LEFT + plot_w + 4}' "
                     f"y='{label_y:.1f}' font-size='11' fill='{colour}'>{name} {price:g}"
                     f"</text></g>")
    positions = _bar_positions(frame, fills)
    for (_, fill), at in zip(fills.iterrows(), positions, strict=True):
        buy = fill["side"] == "buy" if isinstance(fill.get("side"), str) else (
            fill["fill_type"] in ("open", "add")) == (trade["side"] == "long")
        cx, cy = x(at), y(float(fill["price"]))
        shape = (f"{cx - 5:.1f},{cy + 9:.1f} {cx + 5:.1f},{cy + 9:.1f} {cx:.1f},{cy + 1:.1f}"
                 if buy else
                 f"{cx - 5:.1f},{cy - 9:.1f} {cx + 5:.1f},{cy - 9:.1f} {cx:.1f},{cy - 1:.1f}")
        stamp = pd.Timestamp(fill["ts"]).strftime("%Y-%m-%d %H:%M")
        parts.append(f"<polygon class='tb-fill' data-side='{'buy' if buy else 'sell'}' "
                     f"data-price='{float(fill['price'])}' data-ts='{stamp}' "
                     f"points='{shape}' fill='{_UP if buy else _DOWN}'>"
                     f"<title>{'buy' if buy else 'sell'} {float(fill['qty']):,.0f} @ "
                     f"{float(fill['price']):g} ({fill['fill_type']}) {stamp} UTC</title>"
                     f"</polygon>")
    parts.append("</svg>")
    return "".join(parts)


def _bar_positions(frame: pd.DataFrame, fills: pd.DataFrame) -> list[float]:
    """Return each fill's x slot: the bar whose [ts, ts_close] holds it (a fill at a bar's
    close sits on that bar)."""
    if not len(fills):
        return []
    closes = pd.DatetimeIndex(frame["ts_close"]).as_unit("ns").asi8
    stamps = pd.DatetimeIndex(fills["ts"]).as_unit("ns").asi8
    at = np.searchsorted(closes, stamps, side="left")
    return [float(min(i, len(frame) - 1)) for i in at]


# ------------------------------------------------------------------------------ widgets
_STYLE = {"description_width": "70px"}


class TradesView:
    """The trades tab: filters, the list, the chart, figures, review and a journal note."""

    def __init__(self, store: Store, user: str) -> None:
        self.model = TradesBook(store, user)
        self.symbol = w.Dropdown(description="Symbol", style=_STYLE,
                                 layout=w.Layout(width="200px"))
        self.status_filter = w.Dropdown(options=[_ALL, "open", "closed"], value=_ALL,
                                        description="Status", style=_STYLE,
                                        layout=w.Layout(width="200px"))
        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       layout=w.Layout(width="100px"))
        self.list = w.Select(rows=14, layout=w.Layout(width="560px"))
        self.list.add_class("tb-trades-list")
        self.count = w.HTML()
        self.chart = w.HTML()
        self.chart.add_class("tb-trade-chart")
        self.chart_note = w.HTML()
        self.figures = w.HTML()
        self.figures.add_class("tb-trade-figures")
        self.review = w.HTML()
        self.review.add_class("tb-trade-review")
        self.journal = w.HTML()
        self.note = w.Textarea(placeholder="What did this trade teach you ...",
                               layout=w.Layout(width="420px", height="60px"),
                               description="Note", style=_STYLE)
        self.tags = w.Text(placeholder="comma,separated", description="Tags", style=_STYLE,
                           layout=w.Layout(width="420px"))
        self.save_button = w.Button(description="Save note", icon="book")
        self.save_button.add_class("tb-trade-save")
        self.note_status = w.HTML()
        self._syncing = False
        self.symbol.observe(lambda c: self._filter(symbol=c["new"]), names="value")
        self.status_filter.observe(lambda c: self._filter(status=c["new"]), names="value")
        self.list.observe(lambda c: self._selected(c["new"]), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.save_button.on_click(lambda _: self.save_note())
        self._show_list()
        self.widget = w.VBox([
            w.HBox([self.symbol, self.status_filter, self.refresh_button, self.count]),
            self.list, self.chart, self.chart_note,
            w.HBox([self.figures, self.review], layout=w.Layout(align_items="flex-start")),
            w.HTML("<h4 style='margin:10px 0 4px'>Journal</h4>"), self.journal,
            self.note, self.tags, w.HBox([self.save_button, self.note_status])])
        self.widget.add_class("tb-trades")

    # ------------------------------------------------------------------ actions
    def set_user(self, user: str) -> None:
        """Show ``user``'s trades."""
        self.model.set_user(user)
        self._show_list()

    def refresh(self) -> None:
        """Read the trades again (as the Refresh button does)."""
        self.model.refresh()
        self._show_list()

    def save_note(self) -> str | None:
        """Save the note on the selected trade (as the Save button does)."""
        journal_id = self.model.add_note(self.note.value, self.tags.value)
        error = self.model.errors.get("note")
        if journal_id is None:
            self.note_status.value = (f"<span style='color:#b71c1c'>&#9888; "
                                      f"{html.escape(error or '')}</span>")
            return None
        self.note_status.value = (f"<span style='color:#2e7d32'>saved to the journal "
                                  f"({journal_id[:8]})</span>")
        self.note.value = ""
        self.tags.value = ""
        self._show_detail()
        return journal_id

    # ------------------------------------------------------------------ display
    def _filter(self, *, symbol: str | None = None, status: str | None = None) -> None:
        if self._syncing:
            return
        if symbol is not None:
            self.model.symbol = symbol
        if status is not None:
            self.model.status = status
        self._show_list()

    def _show_list(self) -> None:
        self._syncing = True
        try:
            symbols = [_ALL, *self.model.symbols]
            self.symbol.options = symbols
            self.symbol.value = self.model.symbol if self.model.symbol in symbols else _ALL
            self.model.symbol = self.symbol.value
            options = self.model.options()
            self.list.options = options
            chosen = self.model.detail.trade["trade_id"] if self.model.detail else None
            self.list.value = chosen if chosen in {v for _, v in options} else None
        finally:
            self._syncing = False
        total = len(self.model.trades)
        self.count.value = (f"<span style='color:#607d8b;font-size:12px'>{len(options)} of "
                            f"{total} trades of {html.escape(self.model.user or '?')}</span>")
        if self.list.value is None:
            self.model.detail = None
        self._show_detail()

    def _selected(self, trade_id: str | None) -> None:
        if self._syncing or trade_id is None:
            return
        self.model.select(trade_id)
        self.note_status.value = ""
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.model.detail
        if detail is None:
            self.chart.value = ""
            self.chart_note.value = ("<i style='color:#607d8b'>select a trade to see its chart, "
                                     "excursions and review</i>")
            self.figures.value = self.review.value = self.journal.value = ""
            return
        self.chart.value = detail.chart.svg or ""
        self.chart_note.value = (f"<small style='color:#546e7a'>"
                                 f"{html.escape(detail.chart.note)}</small>")
        self.figures.value = _figures_html(detail.figures)
        self.review.value = _review_html(detail.review)
        self.journal.value = _journal_html(detail.journal)


def _figures_html(figures: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><td style='color:#607d8b;padding-right:10px'>{html.escape(k)}</td>"
                   f"<td>{html.escape(v)}</td></tr>" for k, v in figures)
    return f"<table style='font-size:12px;margin-right:24px'>{rows}</table>"


def _review_html(review: Mapping[str, Any] | None) -> str:
    if review is None:
        return ("<div style='font-size:12px;color:#607d8b'>No post-trade review of this "
                "trade yet.</div>")
    parts = [f"<div style='font-size:12px'><b>Review</b> {html.escape(str(review.get('version')))}"
             f" generated {pd.Timestamp(review['generated_at']):%Y-%m-%d %H:%M} UTC"]
    for title, key in (("Lessons", "key_lessons_json"), ("What went well", "what_went_well_json"),
                       ("What to improve", "what_to_improve_json")):
        items = _items(review.get(key))
        if items:
            parts.append(f"<div style='margin-top:6px'><b>{title}</b><ul style='margin:2px 0'>"
                         + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul></div>")
    parts.append("</div>")
    return "".join(parts)


def _items(raw: Any) -> list[str]:
    """Return the texts of a JSON list of strings or of objects with a text field."""
    try:
        values = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return [str(raw)]
    if not isinstance(values, list):
        return []
    out = []
    for value in values:
        if isinstance(value, dict):
            text = next((value[k] for k in ("text", "lesson", "message", "summary")
                         if isinstance(value.get(k), str)), None)
            out.append(text if text is not None else json.dumps(value, sort_keys=True))
        else:
            out.append(str(value))
    return out


def _journal_html(journal: pd.DataFrame) -> str:
    if not len(journal):
        return "<div style='font-size:12px;color:#607d8b'>No notes on this trade.</div>"
    rows = []
    for row in journal.to_dict("records"):
        tags = _items(row.get("tags_json"))
        rows.append(f"<li class='tb-journal-note'>{html.escape(str(row['note_text']))}"
                    + (f" <span style='color:#607d8b'>[{html.escape(', '.join(tags))}]</span>"
                       if tags else "") + "</li>")
    return "<ul style='font-size:12px;margin:2px 0'>" + "".join(rows) + "</ul>"


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float | np.floating) and not isinstance(value, bool) and (
        math.isfinite(float(value)))


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and (
        value is not pd.NaT)


def _money(value: Any, currency: str) -> str:
    return f"{float(value):+,.2f} {currency}" if _finite(value) else "n/a"


def _r(value: Any, missing: str) -> str:
    return f"{float(value):+.2f} R" if _finite(value) else missing
