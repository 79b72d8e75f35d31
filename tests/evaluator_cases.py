"""Intents and context packs every evaluator is run on by the contract test.

Cases range from a clean idea to ones that should trip each module; a module that emits
nothing on all of them fails the contract (its cases are too weak). Later modules add cases.
"""

from __future__ import annotations

from buddy.context.pack import ContextPack
from buddy.domain import TradeIntent
from tests import factories


def contract_cases() -> list[tuple[TradeIntent, ContextPack]]:
    full = factories.pack()
    stale = factories.pack(market=factories.market(sessions_since_last_bar=9))
    short = factories.pack(market=factories.market(n_bars=40, with_features=False))
    return [
        (factories.intent(), full),
        (factories.intent(), stale),
        (factories.intent(), short),
        *risk_and_exit_cases(full),
    ]


def near_market_intent(ctx: ContextPack, **overrides: object) -> TradeIntent:
    """Return a long at the last close, stop 1.5 ATR below, target 3 ATR above (2R)."""
    assert ctx.market is not None
    close = round(ctx.market.last_close, 2)
    atr = ctx.market.latest_features["atr_14"]
    values: dict[str, object] = dict(proposed_entry=close,
                                     proposed_stop=round(close - 1.5 * atr, 2),
                                     proposed_target=round(close + 3.0 * atr, 2))
    values.update(overrides)
    return factories.intent(**values)


def risk_and_exit_cases(full: ContextPack) -> list[tuple[TradeIntent, ContextPack]]:
    """Cases that trip the risk_reward and exit_plan modules (and one clean idea)."""
    from buddy.domain import OrderType, Side

    close = round(full.market.last_close, 2) if full.market is not None else 100.0
    no_templates = factories.pack(account=factories.account(exit_templates=()))
    no_equity = factories.pack(account=factories.account(equity_snapshot=None,
                                                         buying_power_snapshot=None))
    return [
        (near_market_intent(full), full),
        # No stop, no target, no horizon, no template to fill them in.
        (near_market_intent(no_templates, proposed_stop=None, proposed_target=None,
                            holding_horizon=None, order_type=OrderType.MARKET),
         no_templates),
        # A short with a stop inside the noise, a near target, a huge size, a stated risk that
        # does not match, a horizon far too long for daily bars and an unknown template.
        (near_market_intent(full, side=Side.SHORT, proposed_stop=round(close * 1.003, 2),
                            proposed_target=round(close * 0.999, 2), proposed_size=50_000.0,
                            proposed_risk_amount=100.0, holding_horizon=400,
                            exit_template="scalp"), full),
        # No equity; a size the template's half-off partial cannot split; a far target.
        (near_market_intent(no_equity, proposed_size=33.0, proposed_target=round(
            close * 1.5, 2), holding_horizon=3), no_equity),
    ]
