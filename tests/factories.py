"""Deterministic builders of domain values for tests (no mocks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from buddy.context.pack import ContextPack, Instrument, MarketData
from buddy.context.pieces import MTFASnapshot, RegimeSnapshot, TimeframeTrend
from buddy.domain import OrderType, Side, TradeIntent
from buddy.events.model import ScheduleContext, UpcomingEvent
from buddy.timeframes import Timeframe
from buddy.users.model import AccountContext, ExitTemplate, PartialExit, RiskRules, UserAccount

AS_OF = datetime(2012, 6, 1, 20, 0, tzinfo=UTC)


def instrument(**overrides: Any) -> Instrument:
    values = dict(symbol="TEST", name="Test Inc", asset_class="equity", exchange="XNYS",
                  currency="USD", sector="Technology", tick_size=0.01, lot_size=1.0,
                  contract_multiplier=1.0, trading_calendar="XNYS", benchmark="SP500",
                  timezone="America/New_York")
    values.update(overrides)
    return Instrument(**values)


def intent(**overrides: Any) -> TradeIntent:
    values = dict(user_id="u1", symbol="TEST", side=Side.LONG, timeframe=Timeframe.D1,
                  proposed_entry=100.0, proposed_stop=95.0, proposed_target=110.0,
                  proposed_size=100.0, as_of=AS_OF, holding_horizon=10,
                  order_type=OrderType.LIMIT, intent_id="intent-1")
    values.update(overrides)
    return TradeIntent(**values)


def market(n_bars: int = 250, *, seed: int = 1, sessions_since_last_bar: int = 0,
           missing_sessions: tuple = (), with_features: bool = True) -> MarketData:
    rng = np.random.default_rng(seed)
    ts = pd.date_range(end=AS_OF, periods=n_bars, freq="D", tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n_bars)))
    bars = pd.DataFrame({"symbol": "TEST", "timeframe": "1d", "ts": ts, "ts_close": ts,
                         "session": ts.tz_localize(None).normalize(), "open": close,
                         "high": close * 1.01, "low": close * 0.99, "close": close,
                         "volume": 1e6, "adj_close": np.nan})
    features = pd.DataFrame({"symbol": "TEST", "timeframe": "1d", "ts": ts,
                             "atr_14": close * 0.02, "rsi_14": 50.0, "ema_20": close,
                             "sma_50": close, "adx_14": 20.0, "rv_20": 0.2})
    if not with_features:
        features = features.iloc[0:0]
    return MarketData(bars=bars, features=features, last_bar_close=ts[-1].to_pydatetime(),
                      sessions_since_last_bar=sessions_since_last_bar,
                      missing_sessions=missing_sessions, window_sessions=n_bars,
                      bars_without_features=0 if with_features else n_bars)


#: The exit template the default account uses: 2R target, 10-bar time stop, half off at 1R.
SWING_2R = ExitTemplate(name="swing_2r", target_r=2.0, time_stop_bars=10, breakeven_at_r=1.0,
                        partials=(PartialExit(at_r=1.0, fraction=0.5),))


def account(**overrides: Any) -> AccountContext:
    """Return an account piece: USD 100,000 equity, 200,000 buying power, default rules with
    swing_2r as the default exit template. Overrides name AccountContext fields, or
    UserAccount fields (equity_snapshot, buying_power_snapshot, base_currency); ``rules`` may
    be a mapping of RiskRules settings."""
    user_fields = ("user_id", "base_currency", "equity_snapshot", "buying_power_snapshot")
    user = dict(user_id="u1", base_currency="USD", equity_snapshot=100_000.0,
                buying_power_snapshot=200_000.0)
    user.update({k: overrides.pop(k) for k in user_fields if k in overrides})
    values: dict[str, Any] = dict(account=UserAccount(**user),
                                  rules=RiskRules(default_exit_template="swing_2r"),
                                  rules_version=1, exit_templates=(SWING_2R,))
    values.update(overrides)
    if not isinstance(values["rules"], RiskRules):
        values["rules"] = RiskRules.from_mapping(
            {"default_exit_template": "swing_2r", **values["rules"]})
    return AccountContext(**values)


def pack(**overrides: Any) -> ContextPack:
    values = dict(user_id="u1", symbol="TEST", timeframe=Timeframe.D1, as_of=AS_OF,
                  instrument=instrument(), market=market(), account=account(),
                  mtfa=mtfa(), schedule=schedule(),
                  missing={"regime": "not computed in tests"})
    values.update(overrides)
    return ContextPack(**values)


# ---------------------------------------------------------------------------- mtfa, schedule
def trend(timeframe: str = "1d", direction: str = "up", strength: float = 25.0,
          close_vs_ema50_atr: float | None = None, bar_ts: datetime | None = None
          ) -> TimeframeTrend:
    """Return one timeframe's trend read (close 1 ATR beyond EMA50 in its direction)."""
    if close_vs_ema50_atr is None:
        close_vs_ema50_atr = {"up": 1.0, "down": -1.0}.get(direction, 0.0)
    return TimeframeTrend(timeframe=timeframe, bar_ts=bar_ts or AS_OF, direction=direction,
                          strength=strength, close_vs_ema50_atr=close_vs_ema50_atr)


def mtfa(directions: dict[str, str] | None = None, strengths: dict[str, float] | None = None,
         **overrides: Any) -> MTFASnapshot:
    """Return an MTFA piece; by default a 1w/1d stack trending up at ADX 25 on both.

    ``directions`` and ``strengths`` map timeframe -> value; score and conflicts are computed
    by buddy.mtfa.compute unless overridden.
    """
    from buddy.mtfa.compute import alignment_score, conflicts

    directions = directions or {"1w": "up", "1d": "up"}
    strengths = strengths or {}
    stack = tuple(trend(tf, d, strengths.get(tf, 25.0)) for tf, d in directions.items())
    values: dict[str, Any] = dict(stack=stack, alignment_score=alignment_score(stack),
                                  conflicts=conflicts(stack))
    values.update(overrides)
    return MTFASnapshot(**values)


def event(kind: str = "earnings", ts: datetime | str = "2012-06-07T20:30Z",
          title: str = "TEST Q2 earnings", symbol: str | None = "TEST",
          **overrides: Any) -> UpcomingEvent:
    """Return an imported upcoming event (announced a month before it happens)."""
    when = pd.Timestamp(ts).to_pydatetime()
    values: dict[str, Any] = dict(kind=kind, ts=when, title=title, symbol=symbol,
                                  source="tests", event_id=f"ev-{kind}-{when:%Y%m%d%H%M}",
                                  announced_at=(pd.Timestamp(when) - pd.Timedelta(days=30)
                                                ).to_pydatetime())
    values.update(overrides)
    return UpcomingEvent(**values)


def schedule(*, events: tuple = (), as_of: datetime = AS_OF, calendar: str = "XNYS",
             lookahead_days: int = 400, **overrides: Any) -> ScheduleContext:
    """Return a schedule piece of TEST: the real calendar's holidays, early closes and
    sessions after ``as_of`` plus ``events``; no earnings dates known unless overridden."""
    from buddy.events.calendar import exchange_schedule

    end = (pd.Timestamp(as_of) + pd.Timedelta(days=lookahead_days)).to_pydatetime()
    calendar_events, sessions, calendar_ends = exchange_schedule(calendar, as_of, end)
    values: dict[str, Any] = dict(
        symbol="TEST", calendar=calendar, as_of=as_of, window_end=end,
        events=tuple(sorted([*calendar_events, *events], key=lambda e: (e.ts, e.event_id))),
        sessions=sessions, calendar_ends=calendar_ends,
        earnings_dates_known=sum(e.kind == "earnings" for e in events))
    values.update(overrides)
    return ScheduleContext(**values)


def thin_market(volume: float = 100.0, **kw: Any) -> MarketData:
    """Return ``market(**kw)`` whose bars trade only ``volume`` units each."""
    import dataclasses

    base = market(**kw)
    return dataclasses.replace(base, bars=base.bars.assign(volume=volume))


class ExposureStub:
    """A portfolio piece implementing the missing-scanner's exposure hook."""

    def __init__(self, **positions: float) -> None:
        self._positions = dict(positions)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExposureStub) and other._positions == self._positions

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._positions.items())))

    def position_in(self, symbol: str) -> float:
        return float(self._positions.get(symbol, 0.0))


# ---------------------------------------------------------------------------- regime
def regime(**overrides: Any) -> RegimeSnapshot:
    """Return a calm, orderly regime of TEST at AS_OF's bar: an ADX-25 up-trend, normal
    volatility and liquidity, the HMM 95% in its calm state (stay probability 0.98)."""
    values: dict[str, Any] = dict(
        symbol="TEST", timeframe="1d", ts=AS_OF, trend_state="up", trend_strength=25.0,
        vol_state="normal", vol_z=0.2, vol_expansion_flag=False, liquidity_state="normal",
        spread_proxy=0.002, relvol=1.0, hmm_state_id=0, hmm_state_labels=("calm", "volatile"),
        hmm_probs=(0.95, 0.05), transition_matrix=((0.98, 0.02), (0.03, 0.97)),
        model_version="hmm-test", fitted_through=datetime(2012, 3, 1, 14, 30, tzinfo=UTC))
    values.update(overrides)
    return RegimeSnapshot(**values)


# ---------------------------------------------------------------------------- key levels
def levels(close: float | None = None, **overrides: Any) -> Any:
    """Return a key-levels piece of TEST around ``close`` (default: market()'s last close, whose
    ATR is 2% of it), placed so that a long at the close with a stop 1.5 ATR below trips
    nothing: prior day 1.5% either side, pivots from it, the month VWAP 0.25 ATR below, a
    support cluster 2 ATR below and a resistance cluster 2.5 ATR above."""
    from buddy.context.pieces import AnchoredVWAP, KeyLevelsSnapshot, PriceLevel

    c = market().last_close if close is None else close
    high, low = c * 1.015, c * 0.985
    pivot = (high + low + c) / 3.0
    span = high - low

    def vwap(anchor: str, centre: float, sd: float, days: int) -> AnchoredVWAP:
        return AnchoredVWAP(anchor=anchor, anchor_ts=AS_OF - pd.Timedelta(days=days),
                            vwap=centre, upper_1=centre + sd, lower_1=centre - sd,
                            upper_2=centre + 2 * sd, lower_2=centre - 2 * sd)

    values: dict[str, Any] = dict(
        symbol="TEST", timeframe="1d", ts=AS_OF, prior_day_high=high, prior_day_low=low,
        prior_day_close=c,
        pivots={"classic": {"P": pivot, "R1": 2 * pivot - low, "R2": pivot + span,
                            "S1": 2 * pivot - high, "S2": pivot - span}},
        anchored_vwaps=(vwap("week", c * 0.998, c * 0.004, 3),
                        vwap("month", c * 0.995, c * 0.01, 20)),
        rolling_range_high=c * 1.06, rolling_range_low=c * 0.94,
        support_resistance=(
            PriceLevel(price=c * 0.96, kind="support", touches=3,
                       last_touch=AS_OF - pd.Timedelta(days=30)),
            PriceLevel(price=c * 1.05, kind="resistance", touches=2,
                       last_touch=AS_OF - pd.Timedelta(days=60))),
        version="test")
    values.update(overrides)
    return KeyLevelsSnapshot(**values)
