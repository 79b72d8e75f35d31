"""RiskReward's rules for one intent, as plain Python over one ContextPack: the oracle the
column form is checked against (the former scalar form, compacted).

``audit(intent, pack, config)`` returns the issues as (code, severity, evidence, action facts),
facts as {name: (value, unit, threshold)}, every declared fact present (None where the rule
cannot give it). The spread is the paper's two-bar estimate over consecutive usable bars,
written out bar by bar.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from buddy.context.pack import ContextPack
from buddy.domain import OrderType, TradeIntent
from buddy.evaluators.risk_reward import RiskRewardConfig
from buddy.evidence import round_to_tick
from buddy.users.model import AccountContext

Facts = dict[str, tuple[Any, str, Any]]
Issue = tuple[str, str, Facts, Facts]


def spread(high: list[float], low: list[float], close: list[float]) -> float | None:
    """Return the mean two-bar Corwin-Schultz estimate over consecutive usable bars."""
    k = 3 - 2 * math.sqrt(2)
    estimates = []
    for i in range(1, len(high)):
        h1, l1, c1, h2, l2 = high[i - 1], low[i - 1], close[i - 1], high[i], low[i]
        if not all(math.isfinite(x) for x in (h1, l1, c1, h2, l2)) or l1 <= 0 or l2 <= 0:
            continue
        shift = (l2 - c1 if l2 > c1 else 0.0) - (c1 - h2 if h2 < c1 else 0.0)
        h2, l2 = h2 - shift, l2 - shift
        beta = math.log(h1 / l1) ** 2 + math.log(h2 / l2) ** 2
        gamma = math.log(max(h1, h2) / min(l1, l2)) ** 2
        alpha = (math.sqrt(2 * beta) - math.sqrt(beta)) / k - math.sqrt(gamma / k)
        estimates.append(max(0.0, 2 * (math.exp(alpha) - 1) / (1 + math.exp(alpha))))
    return sum(estimates) / len(estimates) if estimates else None


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def audit(intent: TradeIntent, pack: ContextPack, cfg: RiskRewardConfig) -> list[Issue]:
    """Return the issues RiskReward raises on ``intent`` against ``pack``."""
    market, acct = pack.market, pack.account
    assert market is not None and isinstance(acct, AccountContext)
    inst, rules, user = pack.instrument, acct.rules, acct.account
    # rules may hold whole numbers; facts carry them as floats
    min_rr, max_pct = float(acct.rules.min_reward_risk), float(acct.rules.max_risk_per_trade_pct)
    recent = market.bars.tail(cfg.lookback_bars)
    high, low = recent["high"].tolist(), recent["low"].tolist()
    ranges = [h - lo for h, lo in zip(high, low, strict=True) if math.isfinite(h - lo)]
    median = float(np.median(ranges)) if ranges else None
    median = median if median is not None and median > 0 else None
    atr = market.latest_features.get("atr_14")
    atr = atr if atr is not None and math.isfinite(atr) and atr > 0 else None
    spread_frac = spread(high, low, recent["close"].tolist())
    volumes = [v for v in recent["volume"].tolist() if math.isfinite(v) and v > 0]
    average_volume = sum(volumes) / len(volumes) if volumes else None
    money, size_unit = inst.currency, "shares" if inst.asset_class == "equity" else "units"
    same = inst.currency == user.base_currency
    equity = user.equity_snapshot if same and (user.equity_snapshot or 0) > 0 else None
    budget = equity * max_pct / 100 if equity is not None else None
    entry, sign, size, mult = (intent.proposed_entry, intent.side.sign, intent.proposed_size,
                               inst.contract_multiplier)
    stop = intent.stop_distance
    risk = stop * mult * size if stop is not None else None
    noise = max([d for d in (cfg.min_stop_atr * atr if atr else None,
                             cfg.min_stop_range * median if median else None) if d],
                default=None)
    crossings = 1.0 if intent.order_type in (OrderType.MARKET, OrderType.STOP) else 0.5
    slippage = (crossings * spread_frac * entry + cfg.slippage_atr * (atr or 0.0)
                if spread_frac is not None else None)
    sd_atr = stop / atr if stop is not None and atr else None

    def lots(units: float | None) -> float | None:
        if units is None:
            return None
        return max(0.0, math.floor(round(units / inst.lot_size, 9)) * inst.lot_size)

    def size_for(amount: float | None, distance: float | None) -> float | None:
        return lots(amount / (distance * mult)) if amount is not None and distance else None

    def stop_at(distance: float | None, wider: bool) -> float | None:
        if distance is None:
            return None
        down = (sign > 0) == wider
        price = round_to_tick(entry - sign * distance, inst.tick_size,
                              direction="down" if down else "up")
        return price if price > 0 else None

    def m(value: float | None, threshold: float | None = None) -> tuple[Any, str, Any]:
        return (_r(value, 2), money, _r(threshold, 2))

    def z(value: float | None) -> tuple[Any, str, Any]:
        return (value, size_unit, None)

    def p(value: float | None, digits: int | None = None) -> tuple[Any, str, Any]:
        return (value if digits is None or value is None else round(value, digits), "price",
                None)

    budget_size = size_for(budget, stop)
    out: list[Issue] = []
    if stop is None and rules.stop_required:
        suggested = stop_at(noise, True)
        out.append(("NO_STOP", "critical", {"entry": p(entry), "atr_14": p(atr),
                                            "stop_required": (True, "", None)},
                    {"suggested_stop": p(suggested),
                     "suggested_size": z(size_for(budget, abs(entry - suggested)
                                                  if suggested is not None else None)),
                     "risk_budget": m(budget)}))
    rr = intent.reward_risk
    if (rr is not None and stop is not None and intent.reward_distance is not None
            and intent.reward_distance < min_rr * stop - 0.5 * inst.tick_size * (1 + 1e-6)):
        target = round_to_tick(entry + sign * min_rr * stop, inst.tick_size,
                               direction="up" if sign > 0 else "down")
        out.append(("REWARD_RISK_BELOW_MIN", "medium",
                    {"rr": (round(rr, 4), "R", min_rr),
                     "min_reward_risk": (min_rr, "R", None),
                     "reward_distance": p(intent.reward_distance, 8),
                     "stop_distance": p(stop, 8)},
                    {"suggested_target": p(target if target > 0 else None)}))
    if not same:
        out.append(("ACCOUNT_CURRENCY_MISMATCH", "low",
                    {"instrument_currency": (inst.currency, "", None),
                     "account_currency": (user.base_currency, "", None),
                     "risk_amount": m(risk), "notional": m(entry * size * mult)}, {}))
    elif equity is None:
        snapshot = user.equity_snapshot
        out.append(("NO_EQUITY_SNAPSHOT", "low",
                    {"equity_snapshot": (None if snapshot is None else float(snapshot), money,
                                         None),
                     "max_risk_per_trade_pct": (max_pct, "%", None),
                     "risk_amount": m(risk)}, {}))
    elif risk is not None and budget is not None and risk > budget * (1 + 1e-9):
        assert stop is not None and budget_size is not None
        out.append(("RISK_ABOVE_BUDGET", "high" if risk / budget > 1.5 else "medium",
                    {"risk_amount": m(risk, budget),
                     "risk_pct_equity": (round(100 * risk / equity, 4), "%",
                                         max_pct),
                     "risk_budget": m(budget),
                     "max_risk_per_trade_pct": (max_pct, "%", None),
                     "equity": m(equity), "size": z(size)},
                    {"budget_size": z(budget_size),
                     "risk_at_budget_size": m(budget_size * stop * mult)}))
    stated = intent.proposed_risk_amount
    if risk is not None and stated is not None:
        mismatch = 100 * (risk - stated) / stated
        if abs(mismatch) > cfg.risk_amount_tolerance_pct:
            out.append(("RISK_AMOUNT_MISMATCH", "medium" if mismatch > 0 else "low",
                        {"risk_amount": m(risk), "proposed_risk_amount": m(stated),
                         "risk_mismatch_pct": (round(mismatch, 4), "%",
                                               cfg.risk_amount_tolerance_pct)},
                        {"size_for_stated_risk": z(size_for(stated, stop)
                                                   if budget is not None else None)}))
    if stop is not None:
        sd_range = stop / median if median else None
        inside_atr = sd_atr is not None and sd_atr < cfg.min_stop_atr
        if inside_atr or (sd_range is not None and sd_range < cfg.min_stop_range):
            suggested = stop_at(noise, True)
            kept = min(risk, budget) if budget is not None and risk is not None else None
            evidence = {
                "stop_distance_atr": (_r(sd_atr, 4), "ATR", cfg.min_stop_atr),
                "min_stop_atr": (cfg.min_stop_atr, "ATR", None),
                "stop_distance_range": (_r(sd_range, 4), "ratio", cfg.min_stop_range),
                "min_stop_range": (cfg.min_stop_range, "ratio", None),
                "stop_distance": p(stop, 8), "atr_14": p(atr), "median_range": p(median),
                "lookback_bars": (cfg.lookback_bars, "bars", None)}
            action = {"suggested_stop": p(suggested),
                      "suggested_size": z(size_for(kept, abs(entry - suggested)
                                                   if suggested is not None else None)),
                      "risk_amount": m(kept)}
            if inside_atr:
                assert sd_atr is not None
                out.append(("STOP_INSIDE_NOISE",
                            "high" if sd_atr < 0.5 * cfg.min_stop_atr else "medium",
                            evidence, action))
            else:
                out.append(("STOP_INSIDE_RECENT_RANGE", "medium", evidence, action))
    min_size = cfg.min_position_lots * inst.lot_size
    if ((sd_atr is not None and sd_atr > cfg.max_stop_atr)
            or (budget_size is not None and min_size > 0 and budget_size < min_size - 1e-9)):
        limits = [cfg.max_stop_atr * atr if atr else None,
                  budget / (min_size * mult) if budget is not None and min_size > 0 else None]
        out.append(("STOP_TOO_WIDE", "medium",
                    {"stop_distance_atr": (_r(sd_atr, 4), "ATR", cfg.max_stop_atr),
                     "max_stop_atr": (cfg.max_stop_atr, "ATR", None),
                     "stop_distance": p(stop, 8), "budget_size": z(budget_size),
                     "min_position_size": z(min_size)},
                    {"suggested_stop": p(stop_at(min((d for d in limits if d), default=None),
                                                 False))}))
    if slippage is not None and stop:
        share = 100 * slippage / stop
        limit = cfg.max_slippage_share_pct
        if share > limit:
            assert spread_frac is not None
            out.append(("SLIPPAGE_RISK", "medium" if share > 2 * limit else "low",
                        {"slippage_share_pct": (round(share, 4), "%", limit),
                         "max_slippage_share_pct": (limit, "%", None),
                         "expected_slippage": p(slippage, 8),
                         "spread_pct": (round(100 * spread_frac, 4), "%", None),
                         "stop_distance": p(stop, 8)},
                        {"suggested_stop": p(stop_at(slippage / (limit / 100), True)),
                         "slippage_cost": m(slippage * size * mult)}))
    if average_volume:
        pct, limit = 100 * size / average_volume, cfg.max_participation_pct
        if pct > limit:
            out.append(("HIGH_PARTICIPATION", "high" if pct > 5 * limit else "medium",
                        {"participation_pct": (round(pct, 4), "%", limit),
                         "max_participation_pct": (limit, "%", None),
                         "average_volume": (round(average_volume, 2), size_unit, None),
                         "size": z(size), "lookback_bars": (len(volumes), "bars", None)},
                        {"participation_size_limit": z(lots(limit / 100 * average_volume))}))
    power = user.buying_power_snapshot
    if power is not None and same and entry * size * mult > power * (1 + 1e-9):
        out.append(("NOTIONAL_ABOVE_BUYING_POWER", "high",
                    {"notional": m(entry * size * mult, power), "buying_power": m(power),
                     "size": z(size)},
                    {"buying_power_size_limit": z(lots(max(power, 0.0) / (entry * mult)))}))
    if atr and abs(entry - market.last_close) / atr > cfg.max_entry_distance_atr:
        out.append(("ENTRY_FAR_FROM_MARKET", "high",
                    {"entry_distance_atr": (round(abs(entry - market.last_close) / atr, 4),
                                            "ATR", cfg.max_entry_distance_atr),
                     "max_entry_distance_atr": (cfg.max_entry_distance_atr, "ATR", None),
                     "entry": p(entry), "last_close": p(market.last_close), "atr_14": p(atr)},
                    {}))
    return out
