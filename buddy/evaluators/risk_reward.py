"""RiskReward: is the trade's risk defined, sized to the budget, and outside normal noise?

Checks the reward-to-risk ratio against the user's minimum, the presence of a stop, the risk at
the stop against the per-trade budget (equity x max risk %), the stop distance against ATR(14)
and the median bar range, spread and slippage against the stop distance, the size against the
average bar volume, the notional against buying power, and the entry against the last close.

Sizes are in the instrument's units (shares, or currency units for FX); money is in the
account currency. Every suggested size is rounded down to the lot size, and is given only
when there is a stop and an equity snapshot to size against; equity is never guessed.

Costs: with no quotes in the data, the spread proxy is the Corwin-Schultz (2012) high-low
estimator over the lookback bars (``corwin_schultz_spread``). The stop exit crosses half the
spread, a market or stop entry the other half, and the exit slips ``slippage_atr`` ATR more.
On daily and hourly bars the estimator overstates quoted spreads of liquid instruments, so the
check errs towards flagging; its default limit is set so that stops of about one ATR or more
on liquid names pass.

``evaluate_batch`` runs the same checks column-wise on a BatchContext (``_TradeColumns`` holds
``_TradeRisk``'s numbers for every row); it gives the same issues and evidence row by row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from buddy.batch.columns import objects, py_round
from buddy.batch.result import BatchResult, FactColumn, IssueBlock, evidence_json, issues_frame
from buddy.config import ModuleConfig, param
from buddy.context.pack import ContextPack, Instrument, MarketData
from buddy.domain import EvaluationResult, Fact, Issue, OrderType, Severity, TradeIntent
from buddy.errors import ConfigError, FieldError
from buddy.evaluators.base import Evaluator, IssueTemplate
from buddy.evaluators.registry import register
from buddy.evidence import round_to_tick
from buddy.users.model import AccountContext

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext, Windows


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskRewardConfig(ModuleConfig):
    """Thresholds of the risk, sizing, stop-noise, cost and fat-finger checks."""

    config_name = "risk_reward"

    min_stop_atr: float = param(1.0, lo=0.0, hi=10.0, unit="ATR",
                                doc="smallest stop distance in ATR(14) that sits outside "
                                    "normal bar-to-bar noise")
    max_stop_atr: float = param(6.0, lo=0.5, hi=50.0, unit="ATR",
                                doc="largest stop distance in ATR(14) before the stop counts "
                                    "as too wide")
    lookback_bars: int = param(20, lo=2, hi=300, unit="bars",
                               doc="recent closed bars behind the median range, the spread "
                                   "proxy and the average volume")
    min_stop_range: float = param(1.0, lo=0.0, hi=10.0, unit="ratio",
                                  doc="smallest stop distance as a multiple of the median "
                                      "high-low range of the lookback bars")
    min_position_lots: float = param(1.0, lo=0.0, hi=1_000_000.0, unit="lots",
                                     doc="smallest position worth taking; a budget size below "
                                         "it means the stop is too wide for the budget")
    risk_amount_tolerance_pct: float = param(5.0, lo=0.0, hi=100.0, unit="%",
                                             doc="allowed gap between the stated risk amount "
                                                 "and the risk computed from stop and size")
    slippage_atr: float = param(0.05, lo=0.0, hi=2.0, unit="ATR",
                                doc="fill slippage assumed on the stop exit, on top of the "
                                    "spread")
    max_slippage_share_pct: float = param(25.0, lo=0.1, hi=100.0, unit="%",
                                          doc="largest share of the stop distance that spread "
                                              "crossings and slippage may take (the spread "
                                              "proxy overstates quoted spreads on daily and "
                                              "hourly bars, hence the generous default)")
    max_participation_pct: float = param(1.0, lo=0.0001, hi=100.0, unit="%",
                                         doc="largest size as a share of the average bar "
                                             "volume of the lookback bars (1% suits daily bars)")
    max_entry_distance_atr: float = param(3.0, lo=0.1, hi=100.0, unit="ATR",
                                          doc="largest distance of the entry from the last "
                                              "close before it looks like a typo")

    def __post_init__(self) -> None:
        ModuleConfig.__post_init__(self)
        if self.min_stop_atr > self.max_stop_atr:
            raise ConfigError([FieldError(
                "risk_reward.min_stop_atr", f"must be <= max_stop_atr ({self.max_stop_atr:g})",
                self.min_stop_atr)])


@register
class RiskRewardEvaluator(Evaluator):
    """Check reward/risk, stop presence, risk budget, stop noise, costs and fat fingers."""

    name = "risk_reward"
    version = "1.0.0"
    requires = frozenset({"market", "account"})
    config_cls = RiskRewardConfig
    templates: ClassVar = {
        "NO_STOP": IssueTemplate(
            "No stop-loss",
            "The intent has no stop while your rules require one; the loss from the entry at "
            "{entry} has no defined limit.",
            "Set a stop, e.g. at {suggested_stop} (outside recent noise), before entering."),
        "REWARD_RISK_BELOW_MIN": IssueTemplate(
            "Reward/risk below your minimum",
            "The target sits {rr} of risk away, below your minimum of {min_reward_risk}.",
            "A target at {suggested_target} or beyond meets {min_reward_risk}; otherwise "
            "reconsider the trade."),
        "RISK_ABOVE_BUDGET": IssueTemplate(
            "Risk above your per-trade budget",
            "The loss at the stop is {risk_amount} ({risk_pct_equity} of equity), above your "
            "budget of {risk_budget} ({max_risk_per_trade_pct}).",
            "Cut the size to {budget_size} to keep the risk within {risk_budget}."),
        "NO_EQUITY_SNAPSHOT": IssueTemplate(
            "No equity snapshot",
            "No equity snapshot is on file, so the risk cannot be checked against the "
            "{max_risk_per_trade_pct} per-trade budget and no size is suggested.",
            "Record the account equity to get the budget check and a size."),
        "ACCOUNT_CURRENCY_MISMATCH": IssueTemplate(
            "Instrument and account currencies differ",
            "Amounts are in {instrument_currency} while the account is in "
            "{account_currency}; with no conversion rate in the context, the risk of "
            "{risk_amount} is not checked against equity or buying power.",
            "Check the risk and notional against the account in {account_currency} by hand."),
        "RISK_AMOUNT_MISMATCH": IssueTemplate(
            "Stated risk does not match stop and size",
            "The stop and size risk {risk_amount}, {risk_mismatch_pct} away from the stated "
            "{proposed_risk_amount}.",
            "Recheck the size: {size_for_stated_risk} at this stop risks the stated "
            "{proposed_risk_amount}."),
        "STOP_INSIDE_NOISE": IssueTemplate(
            "Stop inside normal noise",
            "A stop {stop_distance_atr} from entry sits inside normal noise (threshold "
            "{min_stop_atr}).",
            "Widen the stop to at least {suggested_stop}, or cut the size to {suggested_size} "
            "to keep the risk at {risk_amount}."),
        "STOP_INSIDE_RECENT_RANGE": IssueTemplate(
            "Stop inside the recent bar range",
            "The stop distance of {stop_distance} is {stop_distance_range} of the median "
            "high-low range of the last {lookback_bars} (threshold {min_stop_range}).",
            "Widen the stop to at least {suggested_stop}, or cut the size to {suggested_size} "
            "to keep the risk at {risk_amount}."),
        "STOP_TOO_WIDE": IssueTemplate(
            "Stop too wide for the budget",
            "The stop sits {stop_distance_atr} from entry (limit {max_stop_atr}); at that "
            "distance the risk budget allows {budget_size} (smallest position "
            "{min_position_size}).",
            "Tighten the stop to {suggested_stop} or closer, or skip the trade."),
        "SLIPPAGE_RISK": IssueTemplate(
            "Costs are a large share of the stop",
            "Spread and fill slippage of about {expected_slippage} (spread proxy {spread_pct}) "
            "take {slippage_share_pct} of the stop distance (limit {max_slippage_share_pct}).",
            "Widen the stop to at least {suggested_stop}, or count about {slippage_cost} of "
            "extra cost in the risk."),
        "HIGH_PARTICIPATION": IssueTemplate(
            "Size large against traded volume",
            "The size is {participation_pct} of the average bar volume of {average_volume} "
            "(limit {max_participation_pct}).",
            "Keep the size at or below {participation_size_limit}, or split the order over "
            "several bars."),
        "NOTIONAL_ABOVE_BUYING_POWER": IssueTemplate(
            "Notional above buying power",
            "The position's notional of {notional} exceeds the buying power of "
            "{buying_power}.",
            "Keep the size at or below {buying_power_size_limit}."),
        "ENTRY_FAR_FROM_MARKET": IssueTemplate(
            "Entry far from the market",
            "The entry at {entry} is {entry_distance_atr} from the last close of {last_close} "
            "(limit {max_entry_distance_atr}).",
            "Check the entry price for a typo; the last close was {last_close}."),
    }

    def evaluate(self, intent: TradeIntent, ctx: ContextPack) -> EvaluationResult:
        """Return risk, sizing, stop-noise, cost and fat-finger issues for ``intent``."""
        market, acct = ctx.market, ctx.account
        assert market is not None and isinstance(acct, AccountContext)  # guaranteed by requires
        cfg = self.config
        trade = _TradeRisk.of(intent, ctx.instrument, market, acct, cfg)
        rules = acct.rules
        issues = [
            *self._no_stop(trade, rules.stop_required),
            *self._reward_risk(trade, intent.reward_risk, intent.reward_distance,
                               rules.min_reward_risk),
            *self._budget(trade, acct, rules.max_risk_per_trade_pct),
            *self._stated_risk(trade, intent.proposed_risk_amount),
            *self._stop_noise(trade),
            *self._stop_too_wide(trade),
            *self._slippage(trade),
            *self._participation(trade),
            *self._buying_power(trade, acct.account.buying_power_snapshot),
            *self._entry_distance(trade, market.last_close),
        ]
        facts = [
            Fact(name="rr", value=_round(intent.reward_risk, 4), unit="R"),
            trade.money_fact("risk_amount", trade.risk_amount),
            trade.money_fact("risk_budget", trade.risk_budget),
            Fact(name="risk_pct_equity", value=_round(trade.risk_pct_equity, 4), unit="%"),
            Fact(name="stop_distance", value=_round(trade.stop_distance, 8), unit="price"),
            Fact(name="stop_distance_atr", value=_round(trade.stop_distance_atr, 4), unit="ATR"),
            Fact(name="atr_14", value=trade.atr, unit="price"),
            Fact(name="median_range", value=trade.median_range, unit="price"),
            trade.size_fact("budget_size", trade.budget_size),
            Fact(name="spread_pct", value=_round(_pct(trade.spread_frac), 4), unit="%"),
            Fact(name="slippage_share_pct", value=_round(trade.slippage_share_pct, 4), unit="%"),
            Fact(name="participation_pct", value=_round(trade.participation_pct, 4), unit="%"),
            trade.money_fact("notional", trade.notional),
            Fact(name="entry_distance_atr", unit="ATR", value=_round(
                abs(trade.entry - market.last_close) / trade.atr if trade.atr else None, 4)),
        ]
        return self.result(issues, facts)

    # ------------------------------------------------------------------------------ checks
    def _no_stop(self, trade: _TradeRisk, stop_required: bool) -> list[Issue]:
        if trade.stop_distance is not None or not stop_required:
            return []
        suggested = trade.stop_at(trade.noise_distance, wider=True)
        action_facts = [Fact(name="suggested_stop", value=suggested, unit="price")]
        if suggested is not None and trade.risk_budget is not None:
            size = trade.size_for(trade.risk_budget, abs(trade.entry - suggested))
            action_facts += [trade.size_fact("suggested_size", size),
                             trade.money_fact("risk_budget", trade.risk_budget)]
        return [self.issue(
            "NO_STOP", Severity.CRITICAL,
            [Fact(name="entry", value=trade.entry, unit="price"),
             Fact(name="atr_14", value=trade.atr, unit="price"),
             Fact(name="stop_required", value=True)],
            "SET_STOP", action_facts)]

    def _reward_risk(self, trade: _TradeRisk, rr: float | None, reward_distance: float | None,
                     min_reward_risk: float) -> list[Issue]:
        if rr is None or trade.stop_distance is None or rr >= min_reward_risk:
            return []
        target = round_to_tick(trade.entry + trade.sign * min_reward_risk * trade.stop_distance,
                               trade.inst.tick_size, direction="up" if trade.sign > 0 else "down")
        return [self.issue(
            "REWARD_RISK_BELOW_MIN", Severity.MEDIUM,
            [Fact(name="rr", value=_round(rr, 4), unit="R", threshold=min_reward_risk),
             Fact(name="min_reward_risk", value=min_reward_risk, unit="R"),
             Fact(name="reward_distance", value=_round(reward_distance, 8), unit="price"),
             Fact(name="stop_distance", value=_round(trade.stop_distance, 8), unit="price")],
            "MOVE_TARGET_OR_SKIP",
            [Fact(name="suggested_target", value=target if target > 0 else None, unit="price"),
             Fact(name="min_reward_risk", value=min_reward_risk, unit="R")])]

    def _budget(self, trade: _TradeRisk, acct: AccountContext, max_risk_pct: float) -> list[Issue]:
        if not trade.same_currency:
            return [self.issue(
                "ACCOUNT_CURRENCY_MISMATCH", Severity.LOW,
                [Fact(name="instrument_currency", value=trade.inst.currency),
                 Fact(name="account_currency", value=acct.account.base_currency),
                 trade.money_fact("risk_amount", trade.risk_amount),
                 trade.money_fact("notional", trade.notional)],
                "CHECK_RISK_IN_ACCOUNT_CURRENCY")]
        if trade.equity is None:
            return [self.issue(
                "NO_EQUITY_SNAPSHOT", Severity.LOW,
                [Fact(name="equity_snapshot", value=acct.account.equity_snapshot,
                      unit=trade.money),
                 Fact(name="max_risk_per_trade_pct", value=max_risk_pct, unit="%"),
                 trade.money_fact("risk_amount", trade.risk_amount)],
                "RECORD_EQUITY_SNAPSHOT",
                [Fact(name="max_risk_per_trade_pct", value=max_risk_pct, unit="%")])]
        if (trade.risk_amount is None or trade.risk_budget is None or trade.unit_risk is None
                or trade.budget_size is None
                or trade.risk_amount <= trade.risk_budget * (1 + 1e-9)):
            return []
        over = trade.risk_amount / trade.risk_budget
        return [self.issue(
            "RISK_ABOVE_BUDGET", Severity.HIGH if over > 1.5 else Severity.MEDIUM,
            [trade.money_fact("risk_amount", trade.risk_amount, trade.risk_budget),
             Fact(name="risk_pct_equity", value=_round(trade.risk_pct_equity, 4), unit="%",
                  threshold=max_risk_pct),
             trade.money_fact("risk_budget", trade.risk_budget),
             Fact(name="max_risk_per_trade_pct", value=max_risk_pct, unit="%"),
             trade.money_fact("equity", trade.equity),
             trade.size_fact("size", trade.size)],
            "REDUCE_SIZE",
            [trade.size_fact("budget_size", trade.budget_size),
             trade.money_fact("risk_budget", trade.risk_budget),
             trade.money_fact("risk_at_budget_size", trade.budget_size * trade.unit_risk)])]

    def _stated_risk(self, trade: _TradeRisk, stated: float | None) -> list[Issue]:
        if trade.risk_amount is None or trade.stop_distance is None or stated is None:
            return []
        mismatch_pct = 100.0 * (trade.risk_amount - stated) / stated
        if abs(mismatch_pct) <= self.config.risk_amount_tolerance_pct:
            return []
        action_facts = [trade.money_fact("proposed_risk_amount", stated)]
        if trade.risk_budget is not None:
            action_facts.append(trade.size_fact("size_for_stated_risk",
                                            trade.size_for(stated, trade.stop_distance)))
        return [self.issue(
            "RISK_AMOUNT_MISMATCH", Severity.MEDIUM if mismatch_pct > 0 else Severity.LOW,
            [trade.money_fact("risk_amount", trade.risk_amount),
             trade.money_fact("proposed_risk_amount", stated),
             Fact(name="risk_mismatch_pct", value=_round(mismatch_pct, 4), unit="%",
                  threshold=self.config.risk_amount_tolerance_pct)],
            "RECHECK_SIZE", action_facts)]

    def _stop_noise(self, trade: _TradeRisk) -> list[Issue]:
        cfg = self.config
        if trade.stop_distance is None:
            return []
        stop_distance_range = (trade.stop_distance / trade.median_range
                               if trade.median_range else None)
        inside_atr = (trade.stop_distance_atr is not None
                      and trade.stop_distance_atr < cfg.min_stop_atr)
        inside_range = (stop_distance_range is not None
                        and stop_distance_range < cfg.min_stop_range)
        if not (inside_atr or inside_range):
            return []
        # One issue, with one suggested stop that clears both thresholds.
        suggested = trade.stop_at(trade.noise_distance, wider=True)
        action_facts = [Fact(name="suggested_stop", value=suggested, unit="price")]
        if (suggested is not None and trade.risk_budget is not None
                and trade.risk_amount is not None):
            kept_risk = min(trade.risk_amount, trade.risk_budget)
            size = trade.size_for(kept_risk, abs(trade.entry - suggested))
            action_facts += [trade.size_fact("suggested_size", size),
                             trade.money_fact("risk_amount", kept_risk)]
        evidence = [
            Fact(name="stop_distance_atr", value=_round(trade.stop_distance_atr, 4), unit="ATR",
                 threshold=cfg.min_stop_atr),
            Fact(name="min_stop_atr", value=cfg.min_stop_atr, unit="ATR"),
            Fact(name="stop_distance_range", value=_round(stop_distance_range, 4),
                 unit="ratio", threshold=cfg.min_stop_range),
            Fact(name="min_stop_range", value=cfg.min_stop_range, unit="ratio"),
            Fact(name="stop_distance", value=_round(trade.stop_distance, 8), unit="price"),
            Fact(name="atr_14", value=trade.atr, unit="price"),
            Fact(name="median_range", value=trade.median_range, unit="price"),
            Fact(name="lookback_bars", value=cfg.lookback_bars, unit="bars"),
        ]
        if inside_atr:
            assert trade.stop_distance_atr is not None
            severity = (Severity.HIGH if trade.stop_distance_atr < 0.5 * cfg.min_stop_atr
                        else Severity.MEDIUM)
            return [self.issue("STOP_INSIDE_NOISE", severity, evidence,
                               "WIDEN_STOP_OR_CUT_SIZE", action_facts)]
        return [self.issue("STOP_INSIDE_RECENT_RANGE", Severity.MEDIUM, evidence,
                           "WIDEN_STOP_OR_CUT_SIZE", action_facts)]

    def _stop_too_wide(self, trade: _TradeRisk) -> list[Issue]:
        cfg = self.config
        min_size = cfg.min_position_lots * trade.inst.lot_size
        beyond_atr = (trade.stop_distance_atr is not None
                      and trade.stop_distance_atr > cfg.max_stop_atr)
        too_small = (trade.budget_size is not None and min_size > 0
                     and trade.budget_size < min_size - 1e-9)
        if not (beyond_atr or too_small):
            return []
        # The stop that clears both limits: within max_stop_atr, and leaving room for the
        # smallest position inside the budget.
        limits = [cfg.max_stop_atr * trade.atr if trade.atr else None,
                  trade.risk_budget / (min_size * trade.inst.contract_multiplier)
                  if trade.risk_budget is not None and min_size > 0 else None]
        distance = min((d for d in limits if d), default=None)
        return [self.issue(
            "STOP_TOO_WIDE", Severity.MEDIUM,
            [Fact(name="stop_distance_atr", value=_round(trade.stop_distance_atr, 4), unit="ATR",
                  threshold=cfg.max_stop_atr),
             Fact(name="max_stop_atr", value=cfg.max_stop_atr, unit="ATR"),
             Fact(name="stop_distance", value=_round(trade.stop_distance, 8), unit="price"),
             trade.size_fact("budget_size", trade.budget_size),
             trade.size_fact("min_position_size", min_size)],
            "TIGHTEN_STOP_OR_SKIP",
            [Fact(name="suggested_stop", value=trade.stop_at(distance, wider=False),
                  unit="price")])]

    def _slippage(self, trade: _TradeRisk) -> list[Issue]:
        cfg = self.config
        share = trade.slippage_share_pct
        if (share is None or trade.expected_slippage is None or trade.spread_frac is None
                or share <= cfg.max_slippage_share_pct):
            return []
        needed = trade.expected_slippage / (cfg.max_slippage_share_pct / 100.0)
        return [self.issue(
            "SLIPPAGE_RISK",
            Severity.MEDIUM if share > 2 * cfg.max_slippage_share_pct else Severity.LOW,
            [Fact(name="slippage_share_pct", value=_round(share, 4), unit="%",
                  threshold=cfg.max_slippage_share_pct),
             Fact(name="max_slippage_share_pct", value=cfg.max_slippage_share_pct, unit="%"),
             Fact(name="expected_slippage", value=_round(trade.expected_slippage, 8),
                  unit="price"),
             Fact(name="spread_pct", value=_round(_pct(trade.spread_frac), 4), unit="%"),
             Fact(name="stop_distance", value=_round(trade.stop_distance, 8), unit="price")],
            "WIDEN_STOP_OR_ACCEPT_COST",
            [Fact(name="suggested_stop", value=trade.stop_at(needed, wider=True), unit="price"),
             trade.money_fact("slippage_cost",
                          trade.expected_slippage * trade.size * trade.inst.contract_multiplier)])]

    def _participation(self, trade: _TradeRisk) -> list[Issue]:
        cfg = self.config
        pct = trade.participation_pct
        if pct is None or trade.average_volume is None or pct <= cfg.max_participation_pct:
            return []
        limit = trade.lots(cfg.max_participation_pct / 100.0 * trade.average_volume)
        return [self.issue(
            "HIGH_PARTICIPATION",
            Severity.HIGH if pct > 5 * cfg.max_participation_pct else Severity.MEDIUM,
            [Fact(name="participation_pct", value=_round(pct, 4), unit="%",
                  threshold=cfg.max_participation_pct),
             Fact(name="max_participation_pct", value=cfg.max_participation_pct, unit="%"),
             trade.size_fact("average_volume", _round(trade.average_volume, 2)),
             trade.size_fact("size", trade.size),
             Fact(name="lookback_bars", value=trade.volume_bars, unit="bars")],
            "REDUCE_SIZE", [trade.size_fact("participation_size_limit", limit)])]

    def _buying_power(self, trade: _TradeRisk, buying_power: float | None) -> list[Issue]:
        if (buying_power is None or not trade.same_currency
                or trade.notional <= buying_power * (1 + 1e-9)):
            return []
        limit = trade.lots(max(buying_power, 0.0) / (trade.entry * trade.inst.contract_multiplier))
        return [self.issue(
            "NOTIONAL_ABOVE_BUYING_POWER", Severity.HIGH,
            [trade.money_fact("notional", trade.notional, buying_power),
             trade.money_fact("buying_power", buying_power),
             trade.size_fact("size", trade.size)],
            "REDUCE_SIZE", [trade.size_fact("buying_power_size_limit", limit)])]

    def _entry_distance(self, trade: _TradeRisk, last_close: float) -> list[Issue]:
        cfg = self.config
        if trade.atr is None:
            return []
        distance_atr = abs(trade.entry - last_close) / trade.atr
        if distance_atr <= cfg.max_entry_distance_atr:
            return []
        return [self.issue(
            "ENTRY_FAR_FROM_MARKET", Severity.HIGH,
            [Fact(name="entry_distance_atr", value=_round(distance_atr, 4), unit="ATR",
                  threshold=cfg.max_entry_distance_atr),
             Fact(name="max_entry_distance_atr", value=cfg.max_entry_distance_atr,
                  unit="ATR"),
             Fact(name="entry", value=trade.entry, unit="price"),
             Fact(name="last_close", value=last_close, unit="price"),
             Fact(name="atr_14", value=trade.atr, unit="price")],
            "CHECK_ENTRY_PRICE", [Fact(name="last_close", value=last_close, unit="price")])]

    # -------------------------------------------------------------------------- batch form
    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Return ``evaluate``'s verdicts on every row of ``ctx``, column-wise.

        Each check is a mask over the rows, written so that NaN (the scalar form's None)
        decides as the scalar comparison does, with its evidence built on the rows where it
        fired. Explain facts and mitigations are not part of a BatchResult, so the suggested
        stops, targets and sizes are not computed here.
        """
        if not ctx.n:
            return BatchResult.from_issues(self.name, self.version, 0, issues_frame([]))
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            t = _TradeColumns.of(ctx, self.config)
            blocks = [*self._no_stop_batch(t), *self._reward_risk_batch(t),
                      *self._budget_batch(t), *self._stated_risk_batch(t),
                      *self._stop_noise_batch(t), *self._stop_too_wide_batch(t),
                      *self._slippage_batch(t), *self._participation_batch(t),
                      *self._buying_power_batch(t), *self._entry_distance_batch(t)]
        return BatchResult.from_issues(self.name, self.version, ctx.n, issues_frame(blocks))

    def _no_stop_batch(self, t: _TradeColumns) -> list[IssueBlock]:
        return t.block("NO_STOP", ~t.has_stop & t.stop_required, Severity.CRITICAL, [
            FactColumn("entry", t.entry, "price"),
            FactColumn("atr_14", t.atr, "price"),
            FactColumn("stop_required", True)])

    def _reward_risk_batch(self, t: _TradeColumns) -> list[IssueBlock]:
        fired = t.has_stop & t.has_target & ~(t.reward_risk >= t.min_reward_risk)
        return t.block("REWARD_RISK_BELOW_MIN", fired, Severity.MEDIUM, [
            FactColumn("rr", _Rounded(t.reward_risk, 4), "R", t.min_reward_risk_raw),
            FactColumn("min_reward_risk", t.min_reward_risk_raw, "R"),
            FactColumn("reward_distance", _Rounded(t.reward_distance, 8), "price"),
            FactColumn("stop_distance", _Rounded(t.stop_distance, 8), "price")])

    def _budget_batch(self, t: _TradeColumns) -> list[IssueBlock]:
        risk = _Rounded(t.risk_amount, 2)
        above = t.has_equity & t.has_stop & ~(t.risk_amount <= t.risk_budget * (1 + 1e-9))
        return [
            *t.block("ACCOUNT_CURRENCY_MISMATCH", ~t.same_currency, Severity.LOW, [
                FactColumn("instrument_currency", _Indexed(t.currencies, t.currency)),
                FactColumn("account_currency", t.account_currency),
                FactColumn("risk_amount", risk, _MONEY),
                FactColumn("notional", _Rounded(t.notional, 2), _MONEY)]),
            *t.block("NO_EQUITY_SNAPSHOT", t.same_currency & ~t.has_equity, Severity.LOW, [
                FactColumn("equity_snapshot", t.equity_raw, _MONEY),
                FactColumn("max_risk_per_trade_pct", t.max_risk_pct_raw, "%"),
                FactColumn("risk_amount", risk, _MONEY)]),
            *t.block("RISK_ABOVE_BUDGET", above, np.where(
                t.risk_amount / t.risk_budget > 1.5, Severity.HIGH.value,
                Severity.MEDIUM.value), [
                FactColumn("risk_amount", risk, _MONEY, _Rounded(t.risk_budget, 2)),
                FactColumn("risk_pct_equity", _Rounded(t.risk_pct_equity, 4), "%",
                           t.max_risk_pct_raw),
                FactColumn("risk_budget", _Rounded(t.risk_budget, 2), _MONEY),
                FactColumn("max_risk_per_trade_pct", t.max_risk_pct_raw, "%"),
                FactColumn("equity", _Rounded(t.equity, 2), _MONEY),
                FactColumn("size", t.size, _SIZE)]),
        ]

    def _stated_risk_batch(self, t: _TradeColumns) -> list[IssueBlock]:
        tolerance = self.config.risk_amount_tolerance_pct
        mismatch = 100.0 * (t.risk_amount - t.stated_risk) / t.stated_risk
        fired = t.has_stop & t.has_stated_risk & ~(np.abs(mismatch) <= tolerance)
        return t.block("RISK_AMOUNT_MISMATCH", fired, np.where(
            mismatch > 0, Severity.MEDIUM.value, Severity.LOW.value), [
            FactColumn("risk_amount", _Rounded(t.risk_amount, 2), _MONEY),
            FactColumn("proposed_risk_amount", _Rounded(t.stated_risk, 2), _MONEY),
            FactColumn("risk_mismatch_pct", _Rounded(mismatch, 4), "%", tolerance)])

    def _stop_noise_batch(self, t: _TradeColumns) -> list[IssueBlock]:
        cfg = self.config
        stop_distance_range = t.stop_distance / t.median_range  # NaN without a median range
        inside_atr = t.has_stop & t.has_atr & (t.stop_distance_atr < cfg.min_stop_atr)
        inside_range = (t.has_stop & ~np.isnan(t.median_range)
                        & (stop_distance_range < cfg.min_stop_range))
        evidence = [
            FactColumn("stop_distance_atr", _Rounded(t.stop_distance_atr, 4), "ATR",
                       cfg.min_stop_atr),
            FactColumn("min_stop_atr", cfg.min_stop_atr, "ATR"),
            FactColumn("stop_distance_range", _Rounded(stop_distance_range, 4), "ratio",
                       cfg.min_stop_range),
            FactColumn("min_stop_range", cfg.min_stop_range, "ratio"),
            FactColumn("stop_distance", _Rounded(t.stop_distance, 8), "price"),
            FactColumn("atr_14", t.atr, "price"),
            FactColumn("median_range", t.median_range, "price"),
            FactColumn("lookback_bars", cfg.lookback_bars, "bars"),
        ]
        return [
            *t.block("STOP_INSIDE_NOISE", inside_atr, np.where(
                t.stop_distance_atr < 0.5 * cfg.min_stop_atr, Severity.HIGH.value,
                Severity.MEDIUM.value), evidence),
            *t.block("STOP_INSIDE_RECENT_RANGE", inside_range & ~inside_atr, Severity.MEDIUM,
                     evidence),
        ]

    def _stop_too_wide_batch(self, t: _TradeColumns) -> list[IssueBlock]:
        cfg = self.config
        min_size = cfg.min_position_lots * t.lot_size
        beyond_atr = t.has_stop & t.has_atr & (t.stop_distance_atr > cfg.max_stop_atr)
        too_small = (t.has_equity & t.has_stop & (min_size > 0)
                     & (t.budget_size < min_size - 1e-9))
        return t.block("STOP_TOO_WIDE", beyond_atr | too_small, Severity.MEDIUM, [
            FactColumn("stop_distance_atr", _Rounded(t.stop_distance_atr, 4), "ATR",
                       cfg.max_stop_atr),
            FactColumn("max_stop_atr", cfg.max_stop_atr, "ATR"),
            FactColumn("stop_distance", _Rounded(t.stop_distance, 8), "price"),
            FactColumn("budget_size", t.budget_size, _SIZE),
            FactColumn("min_position_size", min_size, _SIZE)])

    def _slippage_batch(self, t: _TradeColumns) -> list[IssueBlock]:
        limit = self.config.max_slippage_share_pct
        share = 100.0 * t.expected_slippage / t.stop_distance
        fired = (t.has_spread & t.has_stop & (t.stop_distance != 0)) & ~(share <= limit)
        return t.block("SLIPPAGE_RISK", fired, np.where(
            share > 2 * limit, Severity.MEDIUM.value, Severity.LOW.value), [
            FactColumn("slippage_share_pct", _Rounded(share, 4), "%", limit),
            FactColumn("max_slippage_share_pct", limit, "%"),
            FactColumn("expected_slippage", _Rounded(t.expected_slippage, 8), "price"),
            FactColumn("spread_pct", _Rounded(100.0 * t.spread_frac, 4), "%"),
            FactColumn("stop_distance", _Rounded(t.stop_distance, 8), "price")])

    def _participation_batch(self, t: _TradeColumns) -> list[IssueBlock]:
        limit = self.config.max_participation_pct
        pct = 100.0 * t.size / t.average_volume
        fired = (t.volume_bars > 0) & (t.average_volume != 0) & ~(pct <= limit)
        return t.block("HIGH_PARTICIPATION", fired, np.where(
            pct > 5 * limit, Severity.HIGH.value, Severity.MEDIUM.value), [
            FactColumn("participation_pct", _Rounded(pct, 4), "%", limit),
            FactColumn("max_participation_pct", limit, "%"),
            FactColumn("average_volume", _Rounded(t.average_volume, 2), _SIZE),
            FactColumn("size", t.size, _SIZE),
            FactColumn("lookback_bars", t.volume_bars, "bars")])

    def _buying_power_batch(self, t: _TradeColumns) -> list[IssueBlock]:
        fired = (t.has_buying_power & t.same_currency
                 & ~(t.notional <= t.buying_power * (1 + 1e-9)))
        return t.block("NOTIONAL_ABOVE_BUYING_POWER", fired, Severity.HIGH, [
            FactColumn("notional", _Rounded(t.notional, 2), _MONEY,
                       _Rounded(t.buying_power, 2)),
            FactColumn("buying_power", _Rounded(t.buying_power, 2), _MONEY),
            FactColumn("size", t.size, _SIZE)])

    def _entry_distance_batch(self, t: _TradeColumns) -> list[IssueBlock]:
        limit = self.config.max_entry_distance_atr
        distance_atr = np.abs(t.entry - t.last_close) / t.atr
        return t.block("ENTRY_FAR_FROM_MARKET", t.has_atr & ~(distance_atr <= limit),
                       Severity.HIGH, [
            FactColumn("entry_distance_atr", _Rounded(distance_atr, 4), "ATR", limit),
            FactColumn("max_entry_distance_atr", limit, "ATR"),
            FactColumn("entry", t.entry, "price"),
            FactColumn("last_close", t.last_close, "price"),
            FactColumn("atr_14", t.atr, "price")])


@dataclass(frozen=True, slots=True, kw_only=True)
class _TradeRisk:
    """The numbers every check of one evaluation shares (money in ``money``, sizes in units)."""

    entry: float
    sign: int
    size: float
    inst: Instrument
    money: str  # the account currency, or the instrument's when they differ
    same_currency: bool  # False: no conversion rate, so no equity or buying-power checks
    size_unit: str  # 'shares' or 'units'
    atr: float | None
    median_range: float | None
    noise_distance: float | None  # the stop distance that clears both noise thresholds
    spread_frac: float | None
    expected_slippage: float | None  # price: spread crossings plus slippage_atr x ATR
    average_volume: float | None
    volume_bars: int
    stop_distance: float | None
    equity: float | None
    risk_budget: float | None

    @classmethod
    def of(cls, intent: TradeIntent, inst: Instrument, market: MarketData,
           acct: AccountContext, cfg: RiskRewardConfig) -> _TradeRisk:
        recent = market.bars.tail(cfg.lookback_bars)
        high = recent["high"].to_numpy(dtype=np.float64)
        low = recent["low"].to_numpy(dtype=np.float64)
        ranges = (high - low)[np.isfinite(high - low)]
        median_range = _positive(float(np.median(ranges)) if ranges.size else None)
        atr = _positive(market.latest_features.get("atr_14"))
        spread_frac = corwin_schultz_spread(high, low, recent["close"].to_numpy(np.float64))
        volume = recent["volume"].to_numpy(dtype=np.float64)
        volume = volume[np.isfinite(volume) & (volume > 0)]
        same_currency = inst.currency == acct.account.base_currency
        equity = acct.account.equity_snapshot if same_currency else None
        equity = equity if equity is not None and equity > 0 else None
        noise = [d for d in (cfg.min_stop_atr * atr if atr else None,
                             cfg.min_stop_range * median_range if median_range else None) if d]
        # The stop exit crosses half the spread; a market or stop entry crosses the other half.
        crossings = 1.0 if intent.order_type in (OrderType.MARKET, OrderType.STOP) else 0.5
        slippage = (crossings * spread_frac * intent.proposed_entry
                    + cfg.slippage_atr * (atr or 0.0) if spread_frac is not None else None)
        return cls(
            entry=intent.proposed_entry, sign=intent.side.sign, size=intent.proposed_size,
            inst=inst, money=acct.account.base_currency if same_currency else inst.currency,
            same_currency=same_currency,
            size_unit="shares" if inst.asset_class == "equity" else "units",
            atr=atr, median_range=median_range, noise_distance=max(noise, default=None),
            spread_frac=spread_frac, expected_slippage=slippage,
            average_volume=float(volume.mean()) if volume.size else None,
            volume_bars=int(volume.size), stop_distance=intent.stop_distance, equity=equity,
            risk_budget=(equity * acct.rules.max_risk_per_trade_pct / 100.0
                         if equity is not None else None))

    @property
    def unit_risk(self) -> float | None:
        """Money lost per unit of size at the stop."""
        return (self.stop_distance * self.inst.contract_multiplier
                if self.stop_distance is not None else None)

    @property
    def risk_amount(self) -> float | None:
        return self.unit_risk * self.size if self.unit_risk is not None else None

    @property
    def risk_pct_equity(self) -> float | None:
        if self.risk_amount is None or self.equity is None:
            return None
        return 100.0 * self.risk_amount / self.equity

    @property
    def budget_size(self) -> float | None:
        if self.risk_budget is None or self.stop_distance is None:
            return None
        return self.size_for(self.risk_budget, self.stop_distance)

    @property
    def stop_distance_atr(self) -> float | None:
        if self.stop_distance is None or self.atr is None:
            return None
        return self.stop_distance / self.atr

    @property
    def slippage_share_pct(self) -> float | None:
        if self.expected_slippage is None or not self.stop_distance:
            return None
        return 100.0 * self.expected_slippage / self.stop_distance

    @property
    def participation_pct(self) -> float | None:
        return 100.0 * self.size / self.average_volume if self.average_volume else None

    @property
    def notional(self) -> float:
        return self.entry * self.size * self.inst.contract_multiplier

    def lots(self, units: float) -> float:
        """Return ``units`` rounded down to a whole number of lots (never negative)."""
        lot = self.inst.lot_size
        return max(0.0, math.floor(round(units / lot, 9)) * lot)

    def size_for(self, risk: float, stop_distance: float) -> float:
        """Return the whole-lot size whose loss at ``stop_distance`` stays within ``risk``."""
        return self.lots(risk / (stop_distance * self.inst.contract_multiplier))

    def stop_at(self, distance: float | None, *, wider: bool) -> float | None:
        """Return the stop ``distance`` from the entry, on the tick grid: rounded away from the
        entry when the stop must be at least this far (``wider``), towards it when at most this
        far. None without a distance or when the price would not be positive."""
        if distance is None:
            return None
        round_down = (self.sign > 0) == wider
        price = round_to_tick(self.entry - self.sign * distance, self.inst.tick_size,
                              direction="down" if round_down else "up")
        return price if price > 0 else None

    def money_fact(self, name: str, value: float | None, threshold: float | None = None
                   ) -> Fact:
        return Fact(name=name, value=_round(value, 2), unit=self.money,
                    threshold=_round(threshold, 2))

    def size_fact(self, name: str, value: float | None) -> Fact:
        return Fact(name=name, value=value, unit=self.size_unit)


def corwin_schultz_spread(high: np.ndarray, low: np.ndarray, close: np.ndarray
                          ) -> float | None:
    """Return the Corwin-Schultz (2012) bid-ask spread estimate as a fraction of price.

    For each pair of consecutive bars, the two-bar high/low range carries twice the variance
    but the same spread as one bar's range, which separates the two:
    beta = ln(H1/L1)^2 + ln(H2/L2)^2, gamma = ln(max(H1,H2)/min(L1,L2))^2,
    alpha = (sqrt(2 beta) - sqrt(beta)) / (3 - 2 sqrt 2) - sqrt(gamma / (3 - 2 sqrt 2)),
    S = 2 (e^alpha - 1) / (1 + e^alpha). The second bar's high and low are first shifted by
    any gap beyond the first bar's close (the paper's overnight adjustment); negative
    two-bar estimates are set to 0 and the estimates averaged, as in the paper. None with fewer
    than two usable bars.
    """
    usable = np.isfinite(high) & np.isfinite(low) & np.isfinite(close) & (low > 0)
    high, low, close = high[usable], low[usable], close[usable]
    if high.size < 2:
        return None
    h1, l1 = high[:-1], low[:-1]
    h2, l2 = high[1:].copy(), low[1:].copy()
    prior_close = close[:-1]
    gap_up = np.where(l2 > prior_close, l2 - prior_close, 0.0)
    gap_down = np.where(h2 < prior_close, prior_close - h2, 0.0)
    h2, l2 = h2 - gap_up + gap_down, l2 - gap_up + gap_down
    beta = np.log(h1 / l1) ** 2 + np.log(h2 / l2) ** 2
    gamma = np.log(np.maximum(h1, h2) / np.minimum(l1, l2)) ** 2
    k = 3.0 - 2.0 * math.sqrt(2.0)
    alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / k - np.sqrt(gamma / k)
    spread = 2.0 * (np.exp(alpha) - 1.0) / (1.0 + np.exp(alpha))
    return float(np.mean(np.maximum(spread, 0.0)))


def _positive(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value > 0 else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def _pct(fraction: float | None) -> float | None:
    return None if fraction is None else 100.0 * fraction


# ---------------------------------------------------------------------------- batch form
#: Placeholder units of a FactColumn, replaced per row by the row's money or size unit.
_MONEY = "<money>"
_SIZE = "<size>"


@dataclass(frozen=True, slots=True)
class _Rounded:
    """A fact column written as ``_round(value, digits)``: rounded on the rows an issue fired
    on only, when its evidence is built."""

    values: np.ndarray
    digits: int


@dataclass(frozen=True, slots=True)
class _Indexed:
    """A fact column whose row i is ``values[index[i]]``: a value of the row's account or
    currency, as given (an int stays an int), looked up on the rows an issue fired on only."""

    values: np.ndarray  # object: one per distinct account or currency
    index: np.ndarray  # int64 per row


@dataclass(frozen=True, slots=True, kw_only=True)
class _TradeColumns:
    """``_TradeRisk``'s numbers for every row of a BatchContext: NaN where the scalar form has
    None, and ``has_*`` masks where a None decides a check by itself.

    The money unit is the instrument's currency on every row: ``_TradeRisk.money`` is the
    account's currency only when the two are the same.
    """

    entry: np.ndarray
    size: np.ndarray
    lot_size: np.ndarray
    currency: np.ndarray  # int64: the instrument currency's index in ``currencies``
    currencies: np.ndarray  # object: the distinct instrument currencies
    in_shares: np.ndarray  # sizes in shares (equity), else units
    account_currency: _Indexed
    same_currency: np.ndarray
    stop_required: np.ndarray
    min_reward_risk: np.ndarray
    min_reward_risk_raw: _Indexed
    max_risk_pct_raw: _Indexed
    equity_raw: _Indexed  # the snapshot as given (None, 0, ...)
    has_equity: np.ndarray  # an equity to size against: same currency and snapshot > 0
    equity: np.ndarray
    risk_budget: np.ndarray
    has_buying_power: np.ndarray
    buying_power: np.ndarray
    has_stop: np.ndarray
    stop_distance: np.ndarray
    has_target: np.ndarray
    reward_distance: np.ndarray
    reward_risk: np.ndarray
    has_stated_risk: np.ndarray
    stated_risk: np.ndarray
    last_close: np.ndarray
    has_atr: np.ndarray
    atr: np.ndarray
    median_range: np.ndarray
    has_spread: np.ndarray
    spread_frac: np.ndarray
    expected_slippage: np.ndarray
    average_volume: np.ndarray
    volume_bars: np.ndarray  # int64
    risk_amount: np.ndarray
    risk_pct_equity: np.ndarray
    budget_size: np.ndarray
    stop_distance_atr: np.ndarray
    notional: np.ndarray

    @classmethod
    def of(cls, ctx: BatchContext, cfg: RiskRewardConfig) -> _TradeColumns:
        """Return the columns of ``ctx``'s rows (``_TradeRisk.of`` and its properties,
        column-wise, in the same order of operations)."""
        intents, inst = ctx.intents, ctx.instrument
        entry = intents["proposed_entry"].to_numpy(np.float64)
        size = intents["proposed_size"].to_numpy(np.float64)
        stop_distance = intents["stop_distance"].to_numpy(np.float64)
        stated = intents["proposed_risk_amount"].to_numpy(np.float64)
        lot = inst["lot_size"].to_numpy(np.float64)
        multiplier = inst["contract_multiplier"].to_numpy(np.float64)
        currency, currencies = pd.factorize(inst["currency"], use_na_sentinel=False)
        currencies = np.asarray(currencies, dtype=object)
        account = _AccountColumns.of(ctx, currencies)
        same_currency = currency == account.row(account.currency)
        equity = account.row(account.equity)
        has_equity = same_currency & (equity > 0)
        equity = np.where(has_equity, equity, np.nan)
        risk_budget = equity * account.row(account.max_risk_pct) / 100.0
        atr = (ctx.latest["atr_14"].to_numpy(np.float64) if "atr_14" in ctx.latest.columns
               else np.full(ctx.n, np.nan))
        has_atr = np.isfinite(atr) & (atr > 0)
        atr = np.where(has_atr, atr, np.nan)
        median_range, spread, has_spread, average_volume, volume_bars = _window_stats(
            ctx.bars, cfg.lookback_bars)
        # The stop exit crosses half the spread; a market or stop entry the other half.
        crossings = np.where(intents["order_type"].isin(
            [OrderType.MARKET.value, OrderType.STOP.value]).to_numpy(bool), 1.0, 0.5)
        slippage = np.where(has_spread, crossings * spread * entry
                            + cfg.slippage_atr * np.where(has_atr, atr, 0.0), np.nan)
        risk_amount = stop_distance * multiplier * size
        return cls(
            entry=entry, size=size, lot_size=lot, currency=currency, currencies=currencies,
            in_shares=(inst["asset_class"] == "equity").to_numpy(bool),
            account_currency=_Indexed(account.base_currency, account.index),
            same_currency=same_currency,
            stop_required=account.row(account.stop_required),
            min_reward_risk=account.row(account.min_reward_risk),
            min_reward_risk_raw=_Indexed(account.min_reward_risk_raw, account.index),
            max_risk_pct_raw=_Indexed(account.max_risk_pct_raw, account.index),
            equity_raw=_Indexed(account.equity_raw, account.index),
            has_equity=has_equity, equity=equity, risk_budget=risk_budget,
            has_buying_power=account.row(account.has_buying_power),
            buying_power=account.row(account.buying_power),
            has_stop=~np.isnan(intents["proposed_stop"].to_numpy(np.float64)),
            stop_distance=stop_distance,
            has_target=~np.isnan(intents["proposed_target"].to_numpy(np.float64)),
            reward_distance=intents["reward_distance"].to_numpy(np.float64),
            reward_risk=intents["reward_risk"].to_numpy(np.float64),
            has_stated_risk=~np.isnan(stated), stated_risk=stated,
            last_close=ctx.market["last_close"].to_numpy(np.float64),
            has_atr=has_atr, atr=atr, median_range=median_range, has_spread=has_spread,
            spread_frac=spread, expected_slippage=slippage, average_volume=average_volume,
            volume_bars=volume_bars, risk_amount=risk_amount,
            risk_pct_equity=100.0 * risk_amount / equity,
            budget_size=_lots(risk_budget / (stop_distance * multiplier), lot),
            stop_distance_atr=stop_distance / atr,
            notional=entry * size * multiplier)

    def block(self, code: str, fired: np.ndarray, severity: Severity | np.ndarray,
              facts: list[FactColumn]) -> list[IssueBlock]:
        """Return the IssueBlock of ``code`` on the ``fired`` rows (none when none fired);
        ``severity`` and the facts' columns are per row of the whole batch."""
        rows = np.flatnonzero(fired)
        if not rows.size:
            return []
        if isinstance(severity, np.ndarray):
            severity = severity[rows]
        return [IssueBlock(code, rows, severity, self.evidence(facts, rows))]

    def evidence(self, facts: list[FactColumn], rows: np.ndarray) -> np.ndarray:
        """Return the evidence JSON of ``facts`` on ``rows``: per group of rows sharing a money
        and a size unit, with the ``_MONEY`` and ``_SIZE`` placeholders filled in."""
        groups = self.currency[rows] * 2 + self.in_shares[rows]
        out = np.empty(len(rows), dtype=object)
        for group in np.unique(groups):
            at = np.flatnonzero(groups == group)
            picked = rows[at]
            units = {_MONEY: self.currencies[group // 2],
                     _SIZE: "shares" if group % 2 else "units"}
            out[at] = evidence_json([
                FactColumn(f.name, _pick(f.value, picked), units.get(f.unit, f.unit),
                           _pick(f.threshold, picked)) for f in facts], len(picked))
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class _AccountColumns:
    """The account fields the checks read, one entry per distinct account piece (read once
    each), and ``index``: each row's account."""

    index: np.ndarray  # int64 per row
    base_currency: np.ndarray  # object
    currency: np.ndarray  # int64: the base currency's index in the instrument currencies
    equity_raw: np.ndarray  # object
    equity: np.ndarray  # NaN: None
    has_buying_power: np.ndarray
    buying_power: np.ndarray  # NaN: None
    max_risk_pct_raw: np.ndarray  # object
    max_risk_pct: np.ndarray
    min_reward_risk_raw: np.ndarray  # object
    min_reward_risk: np.ndarray
    stop_required: np.ndarray

    @classmethod
    def of(cls, ctx: BatchContext, currencies: np.ndarray) -> _AccountColumns:
        """Return the accounts of ``ctx``; ``currencies``: the instrument currencies."""
        accounts: list[AccountContext] = []

        def number(acct: AccountContext) -> int:
            accounts.append(acct)
            return len(accounts) - 1

        index = ctx.piece_values("account", number, dtype=np.int64, default=-1)
        if (index < 0).any():
            raise ValueError("risk_reward needs the account piece on every row")
        position = {c: i for i, c in enumerate(currencies)}
        users = [a.account for a in accounts]
        rules = [a.rules for a in accounts]
        return cls(
            index=index, base_currency=objects([u.base_currency for u in users]),
            # -2: a base currency no instrument has (-1 would be no row's code either)
            currency=np.array([position.get(u.base_currency, -2) for u in users],
                              dtype=np.int64),
            equity_raw=objects([u.equity_snapshot for u in users]),
            equity=_floats([u.equity_snapshot for u in users]),
            has_buying_power=np.array([u.buying_power_snapshot is not None for u in users],
                                      dtype=bool),
            buying_power=_floats([u.buying_power_snapshot for u in users]),
            max_risk_pct_raw=objects([r.max_risk_per_trade_pct for r in rules]),
            max_risk_pct=_floats([r.max_risk_per_trade_pct for r in rules]),
            min_reward_risk_raw=objects([r.min_reward_risk for r in rules]),
            min_reward_risk=_floats([r.min_reward_risk for r in rules]),
            stop_required=np.array([bool(r.stop_required) for r in rules], dtype=bool))

    def row(self, values: np.ndarray) -> np.ndarray:
        """Return a per-account array per row."""
        return values[self.index]


def _floats(values: list[Any]) -> np.ndarray:
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def _window_stats(bars: Windows, k: int) -> tuple[np.ndarray, ...]:
    """Return per row, over its last ``k`` bars: the positive median high-low range (NaN:
    None), the Corwin-Schultz spread and whether there is one, the average positive volume
    (NaN: None) and the number of bars behind it (int64), as ``_TradeRisk.of`` computes them.

    Rows whose last ``k`` bars are the same rows of the window data share the numbers: they
    are computed once per distinct (first, last) bar.
    """
    first = np.maximum(bars.start, bars.stop - k)
    span = len(bars.data) + 1
    if span < 3_000_000_000:  # the key below stays inside int64
        codes, keys = pd.factorize(first * span + bars.stop)
        distinct = np.zeros(len(keys), dtype=np.int64)
        distinct[codes[::-1]] = np.arange(len(codes))[::-1]
        windows = bars.take(distinct)
    else:
        codes, windows = np.arange(len(first)), bars
    high, low = windows.tail("high", k), windows.tail("low", k)
    close, volume = windows.tail("close", k), windows.tail("volume", k)
    ranges = high - low
    ranges[~np.isfinite(ranges)] = np.nan
    median = _row_medians(ranges)
    median[~(median > 0) | ~np.isfinite(median)] = np.nan
    spread, has_spread = _corwin_schultz_rows(high, low, close)
    average_volume, volume_bars = _row_means(volume, np.isfinite(volume) & (volume > 0))
    return (median[codes], spread[codes], has_spread[codes], average_volume[codes],
            volume_bars[codes])


def _row_medians(values: np.ndarray) -> np.ndarray:
    """Return each row's median of its non-NaN values (NaN when none): the two middle values
    of the sorted row averaged as ``np.median`` averages them, so the result is the same."""
    ordered = np.sort(values, axis=1)  # NaN last
    count = (~np.isnan(values)).sum(axis=1)
    rows = np.arange(len(values))
    median = (ordered[rows, np.maximum(count - 1, 0) // 2]
              + ordered[rows, np.minimum(count // 2, values.shape[1] - 1)]) / 2.0
    median[count == 0] = np.nan
    return median


def _row_means(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return each row's mean of its ``valid`` values (NaN when none) and their count.

    A row's valid values are packed to the front in order and averaged by ``mean`` over a
    slice of exactly that length, so the sum runs as ``np.mean`` of the filtered 1-d array
    runs it; the loop is over the distinct counts, not the rows.
    """
    count = valid.sum(axis=1).astype(np.int64)
    means = np.full(len(values), np.nan)
    full = count == values.shape[1]
    if full.any():
        means[full] = values[full].mean(axis=1)
    partial = np.flatnonzero((count > 0) & ~full)
    if partial.size:
        order = np.argsort(~valid[partial], axis=1, kind="stable")
        packed = np.take_along_axis(values[partial], order, axis=1)
        counts = count[partial]
        for c in np.unique(counts):
            at = counts == c
            means[partial[at]] = packed[at, :c].mean(axis=1)
    return means, count


def _corwin_schultz_rows(high: np.ndarray, low: np.ndarray, close: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``corwin_schultz_spread`` of every row of (N, k) bars (NaN where it is None)
    and whether it is defined (two usable bars or more)."""
    usable = np.isfinite(high) & np.isfinite(low) & np.isfinite(close) & (low > 0)
    count = usable.sum(axis=1)
    ragged = np.flatnonzero(~usable.all(axis=1))
    if ragged.size:  # pack each row's usable bars to the front, in order
        order = np.argsort(~usable[ragged], axis=1, kind="stable")
        high, low, close = high.copy(), low.copy(), close.copy()
        for values in (high, low, close):
            values[ragged] = np.take_along_axis(values[ragged], order, axis=1)
    h1, l1 = high[:, :-1], low[:, :-1]
    h2, l2 = high[:, 1:], low[:, 1:]
    prior_close = close[:, :-1]
    gap_up = np.where(l2 > prior_close, l2 - prior_close, 0.0)
    gap_down = np.where(h2 < prior_close, prior_close - h2, 0.0)
    h2, l2 = h2 - gap_up + gap_down, l2 - gap_up + gap_down
    # the same element-wise operations as corwin_schultz_spread (the first bar's log range
    # and e^alpha are each computed once: the same values)
    beta = (np.log(high / low) ** 2)[:, :-1] + np.log(h2 / l2) ** 2
    gamma = np.log(np.maximum(h1, h2) / np.minimum(l1, l2)) ** 2
    k = 3.0 - 2.0 * math.sqrt(2.0)
    alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / k - np.sqrt(gamma / k)
    e_alpha = np.exp(alpha)
    spread = np.maximum(2.0 * (e_alpha - 1.0) / (1.0 + e_alpha), 0.0)
    pairs = np.arange(spread.shape[1])[None, :] < (count - 1)[:, None]
    mean, _ = _row_means(spread, pairs)
    return mean, count >= 2


def _lots(units: np.ndarray, lot: np.ndarray) -> np.ndarray:
    """Return ``_TradeRisk.lots`` of every row (NaN stays NaN).

    ``floor(round(q, 9))`` is ``floor(q)`` unless ``q`` lies within 5e-10 of the next whole
    number (the rounding reaches it); those rare rows take the scalar formula itself.
    """
    steps = units / lot
    whole = np.floor(steps)
    near = np.isfinite(steps) & (whole + 1.0 - steps <= 1e-9 + 4 * np.spacing(np.abs(steps)))
    for i in np.flatnonzero(near):
        whole[i] = math.floor(round(float(steps[i]), 9))
    return np.maximum(0.0, whole * lot)


def _pick(value: Any, rows: np.ndarray) -> Any:
    """Return a fact column's value on ``rows``: an array picked, a ``_Rounded`` picked then
    rounded, an ``_Indexed`` looked up, a scalar as is."""
    if isinstance(value, _Rounded):
        return py_round(value.values[rows], value.digits)
    if isinstance(value, _Indexed):
        return value.values[value.index[rows]]
    if isinstance(value, np.ndarray):
        return value[rows]
    return value
