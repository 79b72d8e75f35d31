"""The Python entry point: ``Buddy.open().evaluate(...)``.

This is an edge: it opens the store, validates input against the instrument and the data,
builds the ContextPack, runs the orchestrator and logs the evaluation in one transaction.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import date, datetime, time
from typing import Any

import pandas as pd

from buddy.config import ScoringConfig, default_scoring_config
from buddy.config_sources import production_config
from buddy.context.builder import ContextPackBuilder
from buddy.context.pack import Instrument
from buddy.context.providers import ProviderRegistry
from buddy.domain import TradeIntent, as_utc
from buddy.errors import FieldError, IntentValidationError
from buddy.explain import explainer_from_env
from buddy.orchestrator import Orchestrator
from buddy.report import BuddyReport, LogStatus
from buddy.store import Store
from buddy.store.bars import bar_spans
from buddy.validation import MAX_BARS_PAST_DATA, Catalogue, catalogue_errors

__all__ = ["MAX_BARS_PAST_DATA", "Buddy", "default_providers", "instrument_errors",
           "resolve_as_of"]


class Buddy:
    """A workbench session over one database file and one scoring configuration."""

    def __init__(self, store: Store, config: ScoringConfig | None = None, *,
                 builder: ContextPackBuilder | None = None) -> None:
        self.store = store
        self.config = config or default_scoring_config()
        self.builder = builder or ContextPackBuilder(store)
        for piece, provider in default_providers().items():
            if piece not in self.builder.providers:
                self.builder.register(piece, provider)
        self.orchestrator = Orchestrator(self.config, explainer=explainer_from_env())
        self._catalog: Catalogue | None = None
        self._experiments: tuple[int, list[Any]] | None = None  # (context stamp, active)

    @classmethod
    def open(cls, db: str | os.PathLike[str] | None = None,
             config: ScoringConfig | None = None) -> Buddy:
        """Open the database (``db``, else $BUDDY_DB, else data/buddy.duckdb) with ``config``,
        else the production config (``buddy.config_sources.production_config()``)."""
        return cls(Store(db), config or production_config())

    def __repr__(self) -> str:
        return (f"Buddy(db={str(self.store.path)!r}, config={self.config.name}@"
                f"{self.config.version} #{self.config.hash})")

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, *, user: str, symbol: str, side: str, timeframe: str,
                 entry: float, stop: float | None, target: float | None, size: float,
                 as_of: str | datetime, horizon: int | None = None, order_type: str = "limit",
                 risk_amount: float | None = None, log: bool = True) -> BuddyReport:
        """Validate a trade idea, evaluate it as of ``as_of`` and log it; return the report.

        ``as_of`` may be a date ('2012-06-01': the close of that day's session, or the end of
        the day in the exchange's zone when it is no session) or an aware timestamp. Raises
        IntentValidationError naming every bad field; nothing is written then.

        The log waits a few seconds at most for the file (``buddy.store.core.LOG_WAIT_S``);
        when another process keeps it busy the rows are queued durably and written by the
        next write: the report says which in ``report.logging`` (``LogStatus``).
        """
        # one read connection for validation and the pack, handed over to a writer that
        # waits meanwhile (another process's log or a replay's results)
        with self.store.reading(yield_to_writers=True):
            intent = self.make_intent(user=user, symbol=symbol, side=side,
                                      timeframe=timeframe, entry=entry, stop=stop,
                                      target=target, size=size, as_of=as_of, horizon=horizon,
                                      order_type=order_type, risk_amount=risk_amount)
            report, rules_version = self._evaluate(intent)
        if log:  # after the read connection closed: a write needs the file to itself
            return self._log(intent, report, rules_version)
        return report

    def make_intent(self, *, user: str, symbol: str, side: str, timeframe: str, entry: Any,
                    stop: Any, target: Any, size: Any, as_of: Any, horizon: Any = None,
                    order_type: Any = "limit", risk_amount: Any = None) -> TradeIntent:
        """Return a validated TradeIntent (intrinsic rules and instrument/data rules)."""
        symbol_u = str(symbol).strip().upper()
        inst = self.instrument(symbol_u)
        intent = TradeIntent.create(
            user_id=user, symbol=symbol_u, side=side, timeframe=timeframe,
            proposed_entry=entry, proposed_stop=stop, proposed_target=target,
            proposed_size=size,
            as_of=resolve_as_of(as_of, inst.timezone, calendar=inst.trading_calendar),
            holding_horizon=horizon, order_type=order_type, proposed_risk_amount=risk_amount)
        self.validate(intent)
        return intent

    def validate(self, intent: TradeIntent) -> None:
        """Check ``intent`` against its instrument and the stored data; raise on any problem
        (``buddy.validation``'s rules, a batch of one)."""
        self._validate(intent, self.catalogue())

    @staticmethod
    def _validate(intent: TradeIntent, catalogue: Catalogue) -> None:
        errors = catalogue_errors(intent, catalogue)
        if errors:
            raise IntentValidationError(errors)

    def evaluate_intent(self, intent: TradeIntent, *, log: bool = True) -> BuddyReport:
        """Evaluate an already-built intent (validated again) and log it."""
        with self.store.reading(yield_to_writers=True):
            report, rules_version = self._evaluate(intent)
        if log:
            return self._log(intent, report, rules_version)
        return report

    def _evaluate(self, intent: TradeIntent) -> tuple[BuddyReport, int | None]:
        """Validate, build the pack (cached) and run the orchestrator; return the report and
        the account's rules version."""
        catalogue = self.catalogue()
        self._validate(intent, catalogue)
        ctx = self.builder.build(intent.user_id, intent.symbol, intent.timeframe, intent.as_of,
                                 stamp=catalogue.stamp)
        rules_version = ctx.account.rules_version if ctx.account is not None else None
        report = self._with_experiments(self.orchestrator.run(intent, ctx), catalogue.stamp)
        return report, rules_version

    def _with_experiments(self, report: BuddyReport, stamp: int) -> BuddyReport:
        """Return ``report`` as the active nudge/warning experiments' arms show it, each arm
        on the report (logged with the evaluation): ``buddy.behavior.experiments``. The
        active experiments are read again only after a context-affecting write (creating or
        ending one touches the stamp)."""
        from buddy.behavior.experiments import active_experiments, apply_experiments

        if self._experiments is None or self._experiments[0] != stamp:
            self._experiments = (stamp, active_experiments(self.store))
        return apply_experiments(report, self._experiments[1])

    def _log(self, intent: TradeIntent, report: BuddyReport, rules_version: int | None
             ) -> BuddyReport:
        """Log the report (or queue it when the file stays busy); return it with the
        outcome in ``logging``."""
        state, detail = self.store.log_or_queue(
            intent.as_row(), {**report.evaluation_row(), "rules_version": rules_version},
            report.item_rows())
        return dataclasses.replace(report, logging=LogStatus(state, detail))

    def instrument(self, symbol: str, catalogue: Catalogue | None = None) -> Instrument:
        """Return the instrument of ``symbol``; the error lists the known symbols."""
        instruments = (catalogue or self.catalogue()).instruments
        if symbol not in instruments:
            known = ", ".join(sorted(instruments)) or "none loaded"
            raise IntentValidationError([FieldError(
                "symbol", f"is not in the tickers table (known: {known})", symbol)])
        return instruments[symbol]

    def catalogue(self) -> Catalogue:
        """Return what intents are validated against (instruments and each series' closed-bar
        span), re-read only after a context-affecting write."""
        stamp = self.store.context_stamp()
        if self._catalog is None or self._catalog.stamp != stamp:
            with self.store.reading(yield_to_writers=True):
                tickers = self.store.tickers()
                coverage = bar_spans(self.store)
            self._catalog = Catalogue(
                stamp=stamp,
                instruments={row["symbol"]: Instrument.from_row(row)
                             for row in tickers.to_dict("records")},
                coverage={(r.symbol, r.timeframe): (r.first_close.to_pydatetime(),
                                                    r.last_ts_close.to_pydatetime())
                          for r in coverage.itertuples()})
        return self._catalog



def default_providers() -> ProviderRegistry:
    """Return the registry of the standard provider of every context piece (imported here,
    at the edge)."""
    from buddy.behavior.provider import behavior_provider
    from buddy.events.provider import schedule_provider
    from buddy.levels.provider import levels_provider
    from buddy.mtfa.provider import mtfa_provider
    from buddy.portfolio.provider import portfolio_provider
    from buddy.regime.provider import regime_provider
    from buddy.strategy.provider import strategy_provider
    from buddy.users.provider import account_provider

    return ProviderRegistry({"account": account_provider, "regime": regime_provider,
                             "levels": levels_provider, "mtfa": mtfa_provider,
                             "schedule": schedule_provider, "strategy": strategy_provider,
                             "portfolio": portfolio_provider, "behavior": behavior_provider})


def instrument_errors(intent: TradeIntent, instrument: Instrument) -> list[FieldError]:
    """Return the tick-size and lot-size violations of ``intent`` for ``instrument`` (the
    instrument rules of ``buddy.validation``)."""
    catalogue = Catalogue(stamp=0, instruments={intent.symbol: instrument})
    return catalogue_errors(intent, catalogue, reads=("instrument",))


def resolve_as_of(value: str | datetime | pd.Timestamp, exchange_tz: str, *,
                  calendar: str | None = None) -> datetime:
    """Return ``value`` as UTC. A bare date means the close of that day's session in
    ``calendar`` (16:00 New York for an XNYS day, 17:00 for FX24x5), or the end of that day in
    ``exchange_tz`` when no calendar is given or the date is no session."""
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            day = datetime.strptime(value.strip(), "%Y-%m-%d").date()
        except ValueError:
            raise IntentValidationError([FieldError(
                "as_of", "must be a date YYYY-MM-DD or an ISO timestamp with a zone", value)]
            ) from None
        if calendar is not None:
            close = _session_close(calendar, day)
            if close is not None:
                return close
        end = pd.Timestamp(datetime.combine(day, time(23, 59, 59)), tz=exchange_tz)
        return end.tz_convert("UTC").to_pydatetime()
    return as_utc(value)


def _session_close(calendar: str, day: date) -> datetime | None:
    from buddy.data.calendars import get_calendar

    try:
        close = get_calendar(calendar).session_open_close([day])["close"].iloc[0]
    except (KeyError, ValueError):  # a calendar the package does not know: end of day
        return None
    return None if pd.isna(close) else pd.Timestamp(close).tz_convert("UTC").to_pydatetime()
