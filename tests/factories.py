"""Deterministic builders of domain values for tests (no mocks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from buddy.context.pack import ContextPack, Instrument, MarketData
from buddy.domain import OrderType, Side, TradeIntent
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
                  missing={"regime": "not computed in tests"})
    values.update(overrides)
    return ContextPack(**values)
