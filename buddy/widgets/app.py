"""The workbench app: an intent form, the Evaluate button, the Buddy Report and the controls.

Two layers. ``Workbench`` is the view-model: the form's values, the errors per field, the
last report with its ContextPack, the user's preferences, and the actions (evaluate, save a
journal note, change a preference). It knows nothing of widgets, so it is tested and
benchmarked directly. ``WorkbenchApp`` builds the ipywidgets around it and mirrors it.

The app is an edge: it reads the store through ``Buddy`` and writes evaluations (through
``Buddy``), preferences (through ``buddy.users.store``) and journal notes.
"""

from __future__ import annotations

import html
import importlib
import json
import math
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ipywidgets as w
import pandas as pd

from buddy.api import Buddy, resolve_as_of
from buddy.context.builder import ContextPackBuilder, PieceProvider, PieceRequest, ScalarProvider
from buddy.context.pack import ContextPack, Instrument
from buddy.domain import OrderType, Side
from buddy.errors import BuddyError, FieldError, IntentValidationError
from buddy.evidence import format_value
from buddy.report import BuddyReport
from buddy.store import Store
from buddy.store.trades import add_intent_note
from buddy.timeframes import Timeframe
from buddy.widgets.chart import ChartModel, ChartView, chart_model
from buddy.widgets.controls import (
    ControlsView,
    UserPreferences,
    load_preferences,
    save_preferences,
    scoring_config_for,
)
from buddy.widgets.portfolio_view import PortfolioView
from buddy.widgets.profile_view import ProfileView
from buddy.widgets.report_view import ReportModel, ReportView
from buddy.widgets.trades_view import TradesView

DEFAULT_USER = "trader"
#: The user a served page shows first (``python -m buddy.widgets.serve --user``).
USER_ENV = "BUDDY_USER"
#: The page's own words (Voila hides the notebook's text, written for a notebook reader).
INTRO = ("<h2 style='margin:0 0 4px'>Trading Buddy</h2>"
         "<p style='margin:0 0 8px;color:#455a64'>Fill in a trade idea and press "
         "<b>Evaluate</b>: the Buddy Report lists what to fix first, with the numbers behind "
         "each point. <b>Trades</b> reviews the trades you made; <b>Profile</b> shows your "
         "habits. The report describes the idea as of its time; it does not predict prices."
         "</p>")

#: The form's fields, in display order.
FORM_FIELDS: tuple[str, ...] = ("user", "symbol", "side", "timeframe", "as_of", "entry", "stop",
                                "target", "size", "risk_amount", "horizon", "order_type")

#: Where a validation error is shown: the intent field it names -> the form field.
ERROR_FIELDS: Mapping[str, str] = {
    "user_id": "user", "symbol": "symbol", "side": "side", "timeframe": "timeframe",
    "as_of": "as_of", "proposed_entry": "entry", "proposed_stop": "stop",
    "proposed_target": "target", "proposed_size": "size", "proposed_risk_amount": "risk_amount",
    "holding_horizon": "horizon", "order_type": "order_type",
}

#: Providers of ContextPack pieces that other parts of the workbench ship, installed by
#: ``install_providers`` when importable: (piece, module, function).
PIECE_PROVIDERS: tuple[tuple[str, str, str], ...] = (
    ("account", "buddy.users.provider", "account_provider"),
    ("regime", "buddy.regime.provider", "regime_provider"),
    ("levels", "buddy.levels.provider", "levels_provider"),
    ("mtfa", "buddy.mtfa.provider", "mtfa_provider"),
    ("schedule", "buddy.events.provider", "schedule_provider"),
)


def install_providers(builder: ContextPackBuilder) -> list[str]:
    """Install every importable provider of PIECE_PROVIDERS the builder lacks; return the
    pieces installed. A provider that raises yields a missing piece with the error."""
    installed = []
    for piece, module_name, function in PIECE_PROVIDERS:
        if piece in builder.providers:
            continue
        try:
            provider = getattr(importlib.import_module(module_name), function)
        except (ImportError, AttributeError):
            continue
        builder.register(piece, _guarded(piece, provider))
        installed.append(piece)
    return installed


def _guarded(piece: str, provider: PieceProvider[Any]) -> ScalarProvider:
    def provide(request: PieceRequest) -> tuple[Any | None, str | None]:
        try:
            return provider(request)
        except Exception as exc:  # one broken piece must not take the whole report down
            return None, f"the {piece} provider failed: {type(exc).__name__}: {exc}"

    return provide


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketHint:
    """What the form shows beside the prices: the market as of the form's as_of."""

    last_close: float
    atr: float | None  # ATR(14) of the last closed bar, price units
    last_bar_close: datetime
    instrument: Instrument


def page_user(store: Store, requested: str = DEFAULT_USER) -> str:
    """Return the user a page opens with: $BUDDY_USER when set, else ``requested`` when it
    names someone (not the placeholder DEFAULT_USER) or has an account, else the most
    recently updated user with an account, else '' (the page then asks for one)."""
    from buddy.store.users import account_user_ids

    chosen = os.environ.get(USER_ENV, "").strip()
    if chosen:
        return chosen
    requested = requested.strip()
    if requested and requested != DEFAULT_USER:
        return requested
    accounts = account_user_ids(store)
    if requested and requested in accounts:
        return requested
    return accounts[0] if accounts else ""


def write_journal_note(store: Store, *, user_id: str, intent_id: str, note: str,
                       tags: Mapping[str, Any]) -> str:
    """Write one trade_journal row linked to ``intent_id``; return its journal_id."""
    journal_id = uuid.uuid4().hex
    add_intent_note(store, journal_id=journal_id, user_id=user_id, intent_id=intent_id,
                    note=note, tags_json=json.dumps(dict(tags)))
    return journal_id


class Workbench:
    """The view-model: form values, errors per field, the last report, preferences."""

    def __init__(self, buddy: Buddy, *, user: str = DEFAULT_USER) -> None:
        self.buddy = buddy
        coverage = buddy.store.bar_coverage()
        self.timeframes: dict[str, list[str]] = {
            symbol: sorted(group["timeframe"], key=lambda tf: Timeframe.parse(tf).nominal,
                           reverse=True)
            for symbol, group in coverage.groupby("symbol", sort=True)}
        self._last_close = {(r.symbol, r.timeframe): r.last_ts_close
                            for r in coverage.itertuples()}
        self.symbols: list[str] = sorted(buddy.store.tickers()["symbol"])
        self.modules: list[str] = [m.name for m in buddy.config.modules]
        self.form: dict[str, Any] = {name: "" for name in FORM_FIELDS}
        self.form.update(user=user, side=Side.LONG.value, order_type=OrderType.LIMIT.value)
        self.errors: dict[str, str] = {}
        self.report: BuddyReport | None = None
        self.context: ContextPack | None = None
        self.view: ReportModel | None = None
        self.chart: ChartModel | None = None
        self.journal_ids: list[str] = []
        self.preferences = load_preferences(buddy.store, user)
        self._engines: dict[tuple[Any, ...], Buddy] = {}
        if self.symbols:
            self.update(symbol="AAPL" if "AAPL" in self.symbols else self.symbols[0])

    # ------------------------------------------------------------------ form
    def update(self, **values: Any) -> None:
        """Set form values; a new symbol picks a timeframe it has, and a default as_of."""
        unknown = set(values) - set(FORM_FIELDS)
        if unknown:
            raise KeyError(f"not form fields: {sorted(unknown)}; fields: {FORM_FIELDS}")
        self.form.update(values)
        if "user" in values:
            user = str(values["user"]).strip()
            self.preferences = (load_preferences(self.buddy.store, user) if user
                                else UserPreferences())
        if "symbol" in values:
            options = self.timeframes.get(self.form["symbol"], [])
            if options and self.form["timeframe"] not in options:
                self.form["timeframe"] = "1d" if "1d" in options else options[-1]
            if not str(values.get("as_of") or "").strip():
                self.form["as_of"] = self.default_as_of()

    def default_as_of(self) -> str:
        """Return the day of the last closed bar of the form's series (exchange time)."""
        last = self._last_close.get((self.form["symbol"], self.form["timeframe"]))
        if last is None:
            return ""
        tz = self.buddy.instrument(self.form["symbol"]).timezone
        return pd.Timestamp(last).tz_convert(tz).strftime("%Y-%m-%d")

    def market_hint(self) -> MarketHint | None:
        """Return the last close and ATR as of the form's as_of, or None when it cannot tell."""
        user = str(self.form["user"]).strip()
        try:
            instrument = self.buddy.instrument(str(self.form["symbol"]).strip().upper())
            timeframe = Timeframe.parse(self.form["timeframe"])
            as_of = resolve_as_of(str(self.form["as_of"]).strip(), instrument.timezone)
        except (BuddyError, ValueError, TypeError):
            return None
        if not user:
            return None
        ctx = self.buddy.builder.build(user, instrument.symbol, timeframe, as_of)
        if ctx.market is None:
            return None
        atr = ctx.market.latest_features.get("atr_14")
        return MarketHint(last_close=ctx.market.last_close,
                          atr=None if atr is None or not math.isfinite(atr) else atr,
                          last_bar_close=ctx.market.last_bar_close, instrument=instrument)

    def intent_arguments(self) -> dict[str, Any]:
        """Return Buddy.make_intent keyword arguments from the form (text as typed; a blank
        size is sized from the risk amount and the stop distance)."""
        form = {k: (v.strip() if isinstance(v, str) else v) for k, v in self.form.items()}
        blank = {k for k, v in form.items() if v in ("", None)}
        args = {"user": form["user"], "symbol": form["symbol"], "side": form["side"],
                "timeframe": form["timeframe"], "as_of": form["as_of"],
                "entry": None if "entry" in blank else form["entry"],
                "stop": None if "stop" in blank else form["stop"],
                "target": None if "target" in blank else form["target"],
                "size": None if "size" in blank else form["size"],
                "risk_amount": None if "risk_amount" in blank else form["risk_amount"],
                "horizon": None if "horizon" in blank else form["horizon"],
                "order_type": form["order_type"]}
        if args["size"] is None and args["risk_amount"] is not None:
            args["size"] = self._size_from_risk(args)
        return args

    def _size_from_risk(self, args: Mapping[str, Any]) -> float | None:
        try:
            risk = float(args["risk_amount"])
            per_unit = abs(float(args["entry"]) - float(args["stop"]))
            instrument = self.buddy.instrument(str(args["symbol"]).strip().upper())
        except (TypeError, ValueError, BuddyError):
            return None  # validation names the bad fields
        per_unit *= instrument.contract_multiplier
        if not (math.isfinite(risk) and risk > 0 and per_unit > 0):
            return None
        lots = math.floor(risk / per_unit / instrument.lot_size + 1e-9)
        if lots < 1:
            raise IntentValidationError([FieldError(
                "proposed_risk_amount", "is less than the risk of one lot "
                f"({instrument.lot_size:g} units risk {per_unit * instrument.lot_size:,.2f})",
                args["risk_amount"])])
        return lots * instrument.lot_size

    # ------------------------------------------------------------------ actions
    def evaluate(self) -> ReportModel | None:
        """Validate the form, evaluate and log it; return the report model, or None with
        ``errors`` naming each bad field (nothing is logged then, and no report is shown)."""
        self.errors = {}
        self.report = self.context = self.view = self.chart = None
        try:
            engine = self.engine()
            intent = engine.make_intent(**self.intent_arguments())
            report = engine.evaluate_intent(intent)
        except IntentValidationError as exc:
            self.errors = form_errors(exc.errors)
            return None
        self.report = report
        self.context = self.buddy.builder.build(intent.user_id, intent.symbol,
                                                intent.timeframe, intent.as_of)
        self.view = ReportModel.build(report, self.context)
        self.chart = chart_model(self.context, intent, issues=report.all_issues)
        return self.view

    def engine(self) -> Buddy:
        """Return the Buddy that applies the user's preferences; all share one pack cache."""
        prefs = self.preferences
        key = (prefs.disabled_modules, prefs.strictness)
        engine = self._engines.get(key)
        if engine is None:
            config = scoring_config_for(self.buddy.config, prefs)
            engine = (self.buddy if config == self.buddy.config else
                      Buddy(self.buddy.store, config, builder=self.buddy.builder))
            self._engines[key] = engine
        return engine

    def set_preferences(self, **changes: Any) -> ReportModel | None:
        """Save the form user's changed preferences and re-evaluate the shown idea with them.

        Raises UserSettingsError (nothing saved) for a bad value.
        """
        user = str(self.form["user"]).strip()
        if not user:
            raise IntentValidationError([FieldError("user_id", "is required", user)])
        self.preferences = save_preferences(self.buddy.store, user, **changes)
        return self.evaluate() if self.report is not None else None

    def save_journal(self, note: str, tags: str = "") -> str | None:
        """Save the shown evaluation with a journal note; return the journal_id, or None with
        ``errors['note']`` saying why nothing was written."""
        self.errors.pop("note", None)
        if self.report is None:
            self.errors["note"] = "evaluate an idea first: the note is saved with its report"
            return None
        if not note.strip():
            self.errors["note"] = "must not be empty"
            return None
        report = self.report
        journal_id = write_journal_note(
            self.buddy.store, user_id=report.intent.user_id, intent_id=report.intent.intent_id,
            note=note.strip(),
            tags={"eval_id": report.eval_id, "overall_score": report.overall_score,
                  "overall_severity": report.overall_severity.value,
                  "tags": [t.strip() for t in tags.split(",") if t.strip()]})
        self.journal_ids.append(journal_id)
        return journal_id


def form_errors(errors: tuple[FieldError, ...] | list[FieldError]) -> dict[str, str]:
    """Return the message of each form field named by ``errors`` ('form' for the others)."""
    out: dict[str, str] = {}
    for error in errors:
        name = ERROR_FIELDS.get(error.field, "form")
        rule = error.rule
        if name == "size" and rule == "is required":
            rule = "is required (or give a risk amount and a stop)"
        text = rule if name != "form" else f"{error.field}: {rule}"
        out[name] = f"{out[name]}; {text}" if name in out else text
    return out


# ------------------------------------------------------------------------------ widgets
_FIELD_LAYOUT = w.Layout(width="300px")
_STYLE = {"description_width": "90px"}


class WorkbenchApp:
    """The workbench as ipywidgets: ``WorkbenchApp.open(db, user).widget`` in a notebook."""

    def __init__(self, buddy: Buddy, *, user: str = DEFAULT_USER) -> None:
        self.model = Workbench(buddy, user=user)
        self.fields = self._make_fields()
        self.hints = {name: w.HTML(layout=w.Layout(width="300px")) for name in FORM_FIELDS}
        self.field_errors = {name: w.HTML() for name in (*FORM_FIELDS, "form", "note")}
        for name, label in self.field_errors.items():
            label.add_class(f"tb-error-{name}")
        self.evaluate_button = w.Button(description="Evaluate", button_style="primary",
                                        icon="check")
        self.evaluate_button.add_class("tb-evaluate")
        self.evaluate_button.on_click(lambda _: self.evaluate())
        self.status = w.HTML()
        self.note = w.Textarea(placeholder="Why this trade, what would make you skip it ...",
                               layout=w.Layout(width="300px", height="60px"),
                               description="Note", style=_STYLE)
        self.tags = w.Text(placeholder="comma,separated", description="Tags", style=_STYLE,
                           layout=_FIELD_LAYOUT)
        self.save_button = w.Button(description="Save to journal", icon="book")
        self.save_button.add_class("tb-save")
        self.save_button.on_click(lambda _: self.save_journal())
        self.journal_status = w.HTML()
        self.chart = ChartView()
        self.report_view = ReportView(chart=self.chart.widget, feedback_store=buddy.store)
        self.controls = ControlsView(self.model.modules, self._preferences_changed)
        self.controls.show(self.model.preferences)
        self.trades = TradesView(buddy.store, user)
        self.profile = ProfileView(buddy.store, user)
        self.portfolio = PortfolioView(buddy.store, user)
        self._syncing = False
        self._show_form()
        for name, widget in self.fields.items():
            widget.observe(lambda change, name=name: self._field_changed(name, change["new"]),
                           names="value")
        self._refresh_hints(build=True)
        self._root = self._layout()

    @classmethod
    def open(cls, db_path: str | os.PathLike[str] | None = None,
             user: str = DEFAULT_USER) -> WorkbenchApp:
        """Open the database (``db_path``; empty means $BUDDY_DB, else data/buddy.duckdb)
        with every available context provider installed, showing ``page_user(user)``."""
        buddy = Buddy.open(db_path or None)
        install_providers(buddy.builder)
        return cls(buddy, user=page_user(buddy.store, user))

    # ------------------------------------------------------------------ the view-model
    @property
    def widget(self) -> w.Widget:
        """Return the root widget."""
        return self._root

    @property
    def form(self) -> dict[str, Any]:
        """Return a copy of the form's values."""
        return dict(self.model.form)

    @property
    def errors(self) -> dict[str, str]:
        """Return the validation message of each bad field."""
        return dict(self.model.errors)

    @property
    def report(self) -> ReportModel | None:
        """Return the report model on show."""
        return self.model.view

    @property
    def buddy(self) -> Buddy:
        """Return the session's Buddy."""
        return self.model.buddy

    def evaluate(self) -> ReportModel | None:
        """Evaluate the form (as the Evaluate button does) and show the result."""
        self.status.value = "<i>evaluating ...</i>"
        try:
            view = self.model.evaluate()
        except BuddyError as exc:
            view = None
            self.model.errors = {"form": f"evaluation failed: {exc}"}
        self._show_result(view)
        return view

    def _show_result(self, view: ReportModel | None) -> None:
        self.status.value = ""
        self._show_errors()
        if view is not None:
            self.report_view.show(view)
        elif self.model.errors:
            self.report_view.show_message("Fix the fields marked in red; nothing was logged.",
                                          "#b71c1c")
        self.chart.show(self.model.chart)

    def save_journal(self) -> str | None:
        """Save the shown evaluation with the note (as the Save button does)."""
        journal_id = self.model.save_journal(self.note.value, self.tags.value)
        self._show_errors()
        if journal_id is not None:
            self.journal_status.value = (f"<span style='color:#2e7d32'>saved to the journal "
                                         f"({journal_id[:8]})</span>")
            self.note.value = ""
        else:
            self.journal_status.value = ""
        return journal_id

    # ------------------------------------------------------------------ widgets
    def _make_fields(self) -> dict[str, w.ValueWidget]:
        model = self.model

        def text(description: str, placeholder: str = "") -> w.Text:
            return w.Text(description=description, placeholder=placeholder, style=_STYLE,
                          layout=_FIELD_LAYOUT, continuous_update=False)

        fields: dict[str, w.ValueWidget] = {
            "user": text("User", "your user id"),
            "symbol": w.Dropdown(options=model.symbols, description="Symbol", style=_STYLE,
                                 layout=_FIELD_LAYOUT),
            "side": w.Dropdown(options=[s.value for s in Side], description="Side",
                               style=_STYLE, layout=_FIELD_LAYOUT),
            "timeframe": w.Dropdown(options=model.timeframes.get(model.form["symbol"], []),
                                    description="Timeframe", style=_STYLE,
                                    layout=_FIELD_LAYOUT),
            "as_of": text("As of", "YYYY-MM-DD or ISO time with zone"),
            "entry": text("Entry", "price"),
            "stop": text("Stop", "price (blank: none)"),
            "target": text("Target", "price (blank: none)"),
            "size": text("Size", "units (or use risk amount)"),
            "risk_amount": text("Risk amount", "loss at the stop, quote ccy"),
            "horizon": text("Horizon", "bars (optional)"),
            "order_type": w.Dropdown(options=[o.value for o in OrderType],
                                     description="Order type", style=_STYLE,
                                     layout=_FIELD_LAYOUT),
        }
        for name, widget in fields.items():
            widget.add_class(f"tb-field-{name}")
        return fields

    def _show_form(self) -> None:
        """Copy the view-model's form into the widgets (without feeding changes back)."""
        self._syncing = True
        try:
            self.fields["timeframe"].options = self.model.timeframes.get(
                self.model.form["symbol"], [])
            for name, widget in self.fields.items():
                value = self.model.form[name]
                if widget.value != value and (not hasattr(widget, "options")
                                              or value in widget.options):
                    widget.value = value
        finally:
            self._syncing = False

    def _field_changed(self, name: str, value: Any) -> None:
        if self._syncing:
            return
        self.model.update(**{name: value})
        if name in ("symbol", "user"):
            self._show_form()
        if name == "user":
            self.controls.show(self.model.preferences)
            self.trades.set_user(str(value))
            self.profile.set_user(str(value))
            self.portfolio.set_user(str(value))
        self._refresh_hints(build=name in ("user", "symbol", "timeframe", "as_of"))

    def _refresh_hints(self, *, build: bool) -> None:
        """Show the last price and ATR beside the prices (``build``: read the market)."""
        if build:
            self._hint = self.model.market_hint()
        for label in self.hints.values():
            label.value = ""
        user = str(self.model.form["user"]).strip()
        if not user:
            self.hints["user"].value = _small("enter your user id to evaluate", "#b71c1c")
        hint = self._hint
        if hint is None:
            self.hints["entry"].value = _small("no closed bar at this as_of", "#b71c1c") if (
                self.model.form["symbol"] and user) else ""
            return
        atr = hint.atr
        atr_text = "n/a" if atr is None else format_value(atr, "price")
        self.hints["entry"].value = _small(
            f"last {format_value(hint.last_close, 'price')}, ATR {atr_text} "
            f"(bar closed {hint.last_bar_close:%Y-%m-%d %H:%M}Z)")
        entry = _number(self.model.form["entry"])
        size = _number(self.model.form["size"])
        for name in ("stop", "target"):
            price = _number(self.model.form[name])
            if entry is None or price is None:
                continue
            distance = price - entry
            text = f"{distance:+,.{_decimals(hint.instrument.tick_size)}f}"
            if atr:
                text += f" = {abs(distance) / atr:.2f} ATR {'above' if distance > 0 else 'below'}"
            if name == "stop" and size:
                risk = abs(distance) * size * hint.instrument.contract_multiplier
                text += f", risk {hint.instrument.currency} {risk:,.0f}"
            self.hints[name].value = _small(text)
        if size is None and _number(self.model.form["risk_amount"]) is not None:
            try:
                sized = self.model.intent_arguments()["size"]
            except IntentValidationError:
                sized = None
            if sized:
                self.hints["size"].value = _small(f"from risk: {sized:g} units")
        self.hints["as_of"].value = _small(
            f"{hint.instrument.symbol} trades in {hint.instrument.timezone}")

    def _show_errors(self) -> None:
        for name, label in self.field_errors.items():
            message = self.model.errors.get(name)
            label.value = "" if message is None else (
                f"<span style='color:#b71c1c;font-size:12px'>&#9888; {html.escape(message)}"
                "</span>")

    def _preferences_changed(self, values: dict[str, Any]) -> None:
        shown = self.model.report is not None
        try:
            view = self.model.set_preferences(**values)
        except BuddyError as exc:
            self.controls.show_error(str(exc))
            self.controls.show(self.model.preferences)
            return
        self.controls.show_error(None)
        if shown:
            self._show_result(view)

    def _layout(self) -> w.Widget:
        rows = [w.HBox([self.fields[name], self.field_errors[name], self.hints[name]],
                       layout=w.Layout(align_items="center"))
                for name in FORM_FIELDS]
        form = w.VBox([
            w.HTML("<h3 style='margin:0 0 6px'>Trade idea</h3>"), *rows,
            w.HBox([self.evaluate_button, self.status]), self.field_errors["form"],
            w.HTML("<h4 style='margin:12px 0 4px'>Journal</h4>"),
            w.HBox([self.note, self.field_errors["note"]]), self.tags,
            w.HBox([self.save_button, self.journal_status]),
            w.HTML("<hr style='margin:10px 0'>"), self.controls.widget,
        ], layout=w.Layout(width="640px", min_width="640px"))
        form.add_class("tb-form")
        # the brainstorm chat beside the form, its Evaluate shown in the same report view;
        # imported here so `import buddy.widgets` does not load the assistant's parsers
        from buddy.widgets.chat_view import ChatPanel

        self.chat = ChatPanel.beside(self)
        report = w.VBox([self.chat.widget,
                         w.HTML("<h3 style='margin:0 0 6px'>Buddy Report</h3>"),
                         self.report_view.widget],
                        layout=w.Layout(flex="1 1 auto", padding="0 0 0 16px"))
        tabs = w.Tab(children=[w.HBox([form, report], layout=w.Layout(width="100%")),
                               self.trades.widget, self.profile.widget,
                               self.portfolio.widget],
                     titles=("Evaluate an idea", "Trades", "Profile", "Portfolio"))
        tabs.add_class("tb-tabs")
        intro = w.HTML(INTRO)
        intro.add_class("tb-intro")
        root = w.VBox([intro, tabs])
        root.add_class("tb-app")
        return root


def _small(text: str, colour: str = "#607d8b") -> str:
    return f"<span style='color:{colour};font-size:11px'>{html.escape(text)}</span>"


def _number(value: Any) -> float | None:
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _decimals(tick: float) -> int:
    return max(0, min(8, round(-math.log10(tick)))) if tick > 0 else 2
