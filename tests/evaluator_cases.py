"""Intents and context packs every evaluator is run on by the contract test.

Cases range from a clean idea to ones that should trip each module; a module that emits
nothing on all of them fails the contract (its cases are too weak). Later modules add cases.
"""

from __future__ import annotations

from buddy.context.pack import ContextPack
from buddy.domain import TradeIntent
from tests import factories


def contract_cases() -> list[tuple[TradeIntent, ContextPack]]:
    return [(intent, with_regime(ctx)) for intent, ctx in _cases()]


def with_regime(ctx: ContextPack) -> ContextPack:
    """Return ``ctx`` with the default regime piece when it has none: factories.pack() leaves
    the regime missing (the orchestrator's skip tests rely on it), but the contract calls
    evaluate() directly, which regime_fit (requiring 'regime') cannot do without one."""
    import dataclasses

    if ctx.regime is not None:
        return ctx
    missing = {k: v for k, v in ctx.missing.items() if k != "regime"}
    return dataclasses.replace(ctx, regime=factories.regime(), missing=missing)


def _cases() -> list[tuple[TradeIntent, ContextPack]]:
    full = factories.pack()
    stale = factories.pack(market=factories.market(sessions_since_last_bar=9))
    short = factories.pack(market=factories.market(n_bars=40, with_features=False))
    return [
        (factories.intent(), full),
        (factories.intent(), stale),
        (factories.intent(), short),
        *risk_and_exit_cases(full),
        *mtfa_and_scanner_cases(full),
        *regime_cases(full),
        *entry_quality_cases(full),
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


def mtfa_and_scanner_cases(full: ContextPack) -> list[tuple[TradeIntent, ContextPack]]:
    """Cases that trip the mtfa and missing_scanner modules, optional pieces included."""
    import dataclasses

    from buddy.context.pieces import KeyLevelsSnapshot, RegimeSnapshot
    from buddy.domain import Side

    assert full.market is not None
    close = round(full.market.last_close, 2)
    as_of = full.as_of
    # A weekly downtrend under a daily uptrend; high-risk HMM regime; levels on the way;
    # an open position; a thinly traded stock; earnings and a macro release inside the horizon.
    against = factories.mtfa({"1w": "down", "1d": "up"}, {"1w": 35.0, "1d": 20.0})
    regime = RegimeSnapshot(
        symbol="TEST", timeframe="1d", ts=as_of, trend_state="up", trend_strength=25.0,
        vol_state="normal", vol_z=0.1, vol_expansion_flag=False, liquidity_state="normal",
        spread_proxy=0.001, relvol=1.0, hmm_state_id=0, hmm_state_labels=("calm", "stormy"),
        hmm_probs=(0.9, 0.1), transition_matrix=((0.9, 0.1), (0.2, 0.8)))
    levels = KeyLevelsSnapshot(
        symbol="TEST", timeframe="1d", ts=as_of, prior_day_high=round(close * 1.01, 2),
        prior_day_low=round(close * 0.99, 2), prior_day_close=close,
        rolling_range_high=round(close * 1.03, 2), rolling_range_low=round(close * 0.95, 2))
    events = (factories.event("earnings", "2012-06-07T20:30Z"),
              factories.event("macro", "2012-06-08T12:30Z", "US payrolls", None))
    busy = dataclasses.replace(
        full, mtfa=against, regime=regime, levels=levels,
        portfolio=factories.ExposureStub(TEST=200.0),
        market=factories.thin_market(),
        schedule=factories.schedule(events=events), missing={})
    # Optional pieces of the wrong kind, a schedule without known earnings.
    odd = dataclasses.replace(full, mtfa=factories.mtfa({"1w": "up", "1d": "down"}),
                              regime=dataclasses.replace(regime, hmm_probs=()),
                              portfolio="positions unknown")
    return [
        (near_market_intent(busy, proposed_target=round(close * 1.05, 2), holding_horizon=30),
         busy),
        (near_market_intent(busy, side=Side.SHORT, proposed_stop=round(close * 1.02, 2),
                            proposed_target=round(close * 0.9, 2), holding_horizon=5), busy),
        (near_market_intent(odd, proposed_target=None, holding_horizon=None), odd),
    ]


def regime_cases(full: ContextPack) -> list[tuple[TradeIntent, ContextPack]]:
    """Cases that trip every regime_fit code (and one where the HMM is not fitted yet)."""
    import dataclasses

    from buddy.domain import Side

    assert full.market is not None
    close = round(full.market.last_close, 2)
    three_bars_back = full.market.bars["ts"].iloc[-4].to_pydatetime()
    # A long into a strong down-trend, volatility expanding at z 2.4, thin volume, the HMM
    # undecided between fast-switching states, and a snapshot three bars old.
    rough = dataclasses.replace(full, regime=factories.regime(
        ts=three_bars_back, trend_state="down", trend_strength=41.0, vol_state="volatile",
        vol_z=2.4, vol_expansion_flag=True, liquidity_state="thin", relvol=0.2,
        spread_proxy=0.012, hmm_state_id=1, hmm_probs=(0.4, 0.6),
        transition_matrix=((0.9, 0.1), (0.15, 0.85))), missing={})
    # A short against a moderate up-trend in a volatile (not expanding) regime; no HMM yet.
    no_hmm = dataclasses.replace(full, regime=factories.regime(
        trend_strength=28.0, vol_z=1.7, hmm_state_id=None, hmm_state_labels=(), hmm_probs=(),
        transition_matrix=(), model_version="", fitted_through=None), missing={})
    return [
        (near_market_intent(rough, holding_horizon=40), rough),
        (near_market_intent(rough, holding_horizon=None), rough),
        (near_market_intent(no_hmm, side=Side.SHORT, proposed_stop=round(close * 1.03, 2),
                            proposed_target=round(close * 0.94, 2)), no_hmm),
    ]


def entry_quality_cases(full: ContextPack) -> list[tuple[TradeIntent, ContextPack]]:
    """Cases that trip the entry_quality module's location, stop, extension and
    microstructure codes (and one clean idea with levels)."""
    import dataclasses

    from buddy.domain import Side

    assert full.market is not None
    close = round(full.market.last_close, 2)
    atr = full.market.latest_features["atr_14"]
    with_levels = dataclasses.replace(full, levels=factories.levels(close))
    # Resistance 0.2 ATR above the entry, support 0.5 ATR below with the stop just above it.
    crowded = dataclasses.replace(full, levels=factories.levels(
        close, prior_day_high=close + 0.2 * atr, prior_day_low=close - 0.5 * atr))
    # EMA(20) and the month VWAP far below; a wide last bar on a tenth of the usual volume.
    bars = full.market.bars.copy()
    bars.loc[bars.index[-1], ["high", "low", "volume"]] = [close + 1.5 * atr,
                                                           close - 1.5 * atr, 1e5]
    stretched_market = dataclasses.replace(
        full.market, bars=bars, features=full.market.features.assign(ema_20=close - 4 * atr))
    stretched = dataclasses.replace(full, market=stretched_market, levels=factories.levels(
        close, anchored_vwaps=(factories.levels(close * 0.9).anchored_vwaps[1],)))
    return [
        (near_market_intent(with_levels), with_levels),
        (near_market_intent(crowded, proposed_stop=round(close - 0.45 * atr, 2)), crowded),
        (near_market_intent(crowded, side=Side.SHORT, proposed_stop=round(close + 1.5 * atr, 2),
                            proposed_target=round(close - 3 * atr, 2)), crowded),
        (near_market_intent(stretched), stretched),
    ]
