"""RiskReward: is the trade's risk defined, sized to the budget, and outside normal noise?

Checks the reward-to-risk ratio against the user's minimum, the presence of a stop, the risk at
the stop against the per-trade budget (equity x max risk %), the stop distance against ATR(14)
and the median bar range, spread and slippage against the stop distance, the size against the
average bar volume, the notional against buying power, and the entry against the last close.

Sizes are in the instrument's units (shares, or currency units for FX); money is in the
instrument's currency, which is the account's whenever the risk is compared with equity.
A target within half a tick of the minimum reward/risk meets it (the nearest tick to the
minimum's price is as close as a target can be). Every suggested size is rounded down to the
lot size, and is given only when there is a stop and an equity snapshot to size against;
equity is never guessed (a size that cannot be given is null in the mitigation's facts).
A missing equity snapshot or conversion rate is reported as not checked, not as an issue.

Costs: with no quotes in the data, the spread proxy is the Corwin-Schultz (2012) high-low
estimator over the lookback bars (``buddy.features.spread``). The stop exit crosses half the
spread, a market or stop entry the other half, and the exit slips ``slippage_atr`` ATR more.
On daily and hourly bars the estimator overstates quoted spreads of liquid instruments, so the
check errs towards flagging; its default limit is set so that stops of about one ATR or more
on liquid names pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from buddy.batch.result import BatchResult, IssueBlock
from buddy.config import ModuleConfig, param
from buddy.domain import OrderType, Severity
from buddy.errors import ConfigError, FieldError
from buddy.evaluators.base import Code, Evaluator, Evidence, severity_where
from buddy.evaluators.registry import register
from buddy.evidence import to_tick
from buddy.features.spread import corwin_schultz_windows
from buddy.users.model import AccountContext

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext, Windows

#: Units that depend on the row: its money (the instrument's currency) and its size unit
#: ('shares' for equities, else 'units'), given per row to ``fire`` and ``result``.
MONEY = "<money>"
SIZE = "<size>"


def _money(name: str) -> Evidence:
    return Evidence(name, MONEY, digits=2)


def _size(name: str) -> Evidence:
    return Evidence(name, SIZE)


def _price(name: str, digits: int | None = None) -> Evidence:
    return Evidence(name, "price", digits=digits)


#: The evidence both stop-noise codes carry.
_NOISE_EVIDENCE = (
    Evidence("stop_distance_atr", "ATR", 4, threshold="min_stop_atr"),
    Evidence("min_stop_atr", "ATR"),
    Evidence("stop_distance_range", "ratio", 4, threshold="min_stop_range"),
    Evidence("min_stop_range", "ratio"),
    _price("stop_distance", 8), _price("atr_14"), _price("median_range"),
    Evidence("lookback_bars", "bars"),
)
_NOISE_ACTION = (_price("suggested_stop"), _size("suggested_size"), _money("risk_amount"))


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
class RiskRewardEvaluator(Evaluator[RiskRewardConfig]):
    """Check reward/risk, stop presence, risk budget, stop noise, costs and fat fingers."""

    name = "risk_reward"
    guards_risk = True
    version = "1.2.0"
    requires = frozenset({"market", "account"})
    config_cls = RiskRewardConfig
    codes: ClassVar = {
        "NO_STOP": Code(
            "No stop-loss",
            "The intent has no stop while your rules require one; the loss from the entry at "
            "{entry} has no defined limit.",
            "Set a stop, e.g. at {suggested_stop} (outside recent noise), before entering.",
            evidence=(_price("entry"), _price("atr_14"), Evidence("stop_required")),
            action="SET_STOP",
            action_facts=(_price("suggested_stop"), _size("suggested_size"),
                          _money("risk_budget")),
            harm="a loss with no planned limit, which can exceed any budget; replay intents "
                 "always carry a stop, so no outcome there can judge it",
            measure=None),
        "REWARD_RISK_BELOW_MIN": Code(
            "Reward/risk below your minimum",
            "The target sits {rr} of risk away, below your minimum of {min_reward_risk}.",
            "A target at {suggested_target} or beyond meets {min_reward_risk}; otherwise "
            "reconsider the trade.",
            evidence=(Evidence("rr", "R", 4), Evidence("min_reward_risk", "R"),
                      _price("reward_distance", 8), _price("stop_distance", 8)),
            action="MOVE_TARGET_OR_SKIP", action_facts=(_price("suggested_target"),),
            harm="a win pays less per unit of risk than the user's rules ask for, so the "
                 "realized R is lower", measure="realized_r"),
        "RISK_ABOVE_BUDGET": Code(
            "Risk above your per-trade budget",
            "The loss at the stop is {risk_amount} ({risk_pct_equity} of equity), above your "
            "budget of {risk_budget} ({max_risk_per_trade_pct}).",
            "Cut the size to {budget_size} to keep the risk within {risk_budget}.",
            evidence=(_money("risk_amount"), Evidence("risk_pct_equity", "%", 4),
                      _money("risk_budget"), Evidence("max_risk_per_trade_pct", "%"),
                      _money("equity"), _size("size")),
            action="REDUCE_SIZE",
            action_facts=(_size("budget_size"), _money("risk_at_budget_size")),
            harm="a losing trade takes a larger share of equity than the per-trade budget",
            measure="equity_loss"),
        "NO_EQUITY_SNAPSHOT": Code(
            "No equity snapshot",
            "No equity snapshot is on file, so the risk cannot be checked against the "
            "{max_risk_per_trade_pct} per-trade budget and no size is suggested.",
            "Record the account equity to get the budget check and a size.",
            evidence=(Evidence("equity_snapshot", MONEY), Evidence("max_risk_per_trade_pct", "%"),
                      _money("risk_amount")),
            action="RECORD_EQUITY_SNAPSHOT", kind="not_checked",
            harm="the risk was not checked against the per-trade budget: no equity on file"),
        "ACCOUNT_CURRENCY_MISMATCH": Code(
            "Instrument and account currencies differ",
            "Amounts are in {instrument_currency} while the account is in "
            "{account_currency}; with no conversion rate in the context, the risk of "
            "{risk_amount} is not checked against equity or buying power.",
            "Check the risk and notional against the account in {account_currency} by hand.",
            evidence=(Evidence("instrument_currency"), Evidence("account_currency"),
                      _money("risk_amount"), _money("notional")),
            action="CHECK_RISK_IN_ACCOUNT_CURRENCY", kind="not_checked",
            harm="the risk and notional were not checked against the account: no rate "
                 "converts the instrument's currency to the account's"),
        "RISK_AMOUNT_MISMATCH": Code(
            "Stated risk does not match stop and size",
            "The stop and size risk {risk_amount}, {risk_mismatch_pct} away from the stated "
            "{proposed_risk_amount}.",
            "Recheck the size: {size_for_stated_risk} at this stop risks the stated "
            "{proposed_risk_amount}.",
            evidence=(_money("risk_amount"), _money("proposed_risk_amount"),
                      Evidence("risk_mismatch_pct", "%", 4,
                               threshold="risk_amount_tolerance_pct")),
            action="RECHECK_SIZE", action_facts=(_size("size_for_stated_risk"),),
            harm="the loss at the stop differs from the one the trader planned (mostly "
                 "larger), a deeper loss in equity terms", measure="equity_loss"),
        "STOP_INSIDE_NOISE": Code(
            "Stop inside normal noise",
            "A stop {stop_distance_atr} from entry sits inside normal noise (threshold "
            "{min_stop_atr}).",
            "Widen the stop to at least {suggested_stop}, or cut the size to {suggested_size} "
            "to keep the risk at {risk_amount}.",
            evidence=_NOISE_EVIDENCE, action="WIDEN_STOP_OR_CUT_SIZE",
            action_facts=_NOISE_ACTION,
            harm="stopped out by ordinary bar-to-bar noise within a few bars of the fill",
            measure="stopped_early"),
        "STOP_INSIDE_RECENT_RANGE": Code(
            "Stop inside the recent bar range",
            "The stop distance of {stop_distance} is {stop_distance_range} of the median "
            "high-low range of the last {lookback_bars} (threshold {min_stop_range}).",
            "Widen the stop to at least {suggested_stop}, or cut the size to {suggested_size} "
            "to keep the risk at {risk_amount}.",
            evidence=_NOISE_EVIDENCE, action="WIDEN_STOP_OR_CUT_SIZE",
            action_facts=_NOISE_ACTION,
            harm="stopped out by one ordinary bar's range within a few bars of the fill",
            measure="stopped_early"),
        "STOP_TOO_WIDE": Code(
            "Stop too wide for the budget",
            "The stop sits {stop_distance_atr} from entry (limit {max_stop_atr}); at that "
            "distance the risk budget allows {budget_size} (smallest position "
            "{min_position_size}).",
            "Tighten the stop to {suggested_stop} or closer, or skip the trade.",
            evidence=(Evidence("stop_distance_atr", "ATR", 4, threshold="max_stop_atr"),
                      Evidence("max_stop_atr", "ATR"), _price("stop_distance", 8),
                      _size("budget_size"), _size("min_position_size")),
            action="TIGHTEN_STOP_OR_SKIP", action_facts=(_price("suggested_stop"),),
            harm="with the stop and the R-multiple target far outside normal moves, the "
                 "holding horizon ends the trade before either is reached",
            measure="time_stopped"),
        "SLIPPAGE_RISK": Code(
            "Costs are a large share of the stop",
            "Spread and fill slippage of about {expected_slippage} (spread proxy {spread_pct}) "
            "take {slippage_share_pct} of the stop distance (limit {max_slippage_share_pct}).",
            "Widen the stop to at least {suggested_stop}, or count about {slippage_cost} of "
            "extra cost in the risk.",
            evidence=(Evidence("slippage_share_pct", "%", 4, threshold="max_slippage_share_pct"),
                      Evidence("max_slippage_share_pct", "%"), _price("expected_slippage", 8),
                      Evidence("spread_pct", "%", 4), _price("stop_distance", 8)),
            action="WIDEN_STOP_OR_ACCEPT_COST",
            action_facts=(_price("suggested_stop"), _money("slippage_cost")),
            harm="spread and slippage at the stop make the loss larger than the planned risk",
            measure="loss_beyond_stop"),
        "HIGH_PARTICIPATION": Code(
            "Size large against traded volume",
            "The size is {participation_pct} of the average bar volume of {average_volume} "
            "(limit {max_participation_pct}).",
            "Keep the size at or below {participation_size_limit}, or split the order over "
            "several bars.",
            evidence=(Evidence("participation_pct", "%", 4, threshold="max_participation_pct"),
                      Evidence("max_participation_pct", "%"),
                      Evidence("average_volume", SIZE, 2), _size("size"),
                      Evidence("lookback_bars", "bars")),
            action="REDUCE_SIZE", action_facts=(_size("participation_size_limit"),),
            harm="the order moves the price against itself and fills worse than planned; "
                 "replay fills at bar prices without market impact, so no outcome there can "
                 "judge it", measure=None),
        "NOTIONAL_ABOVE_BUYING_POWER": Code(
            "Notional above buying power",
            "The position's notional of {notional} exceeds the buying power of "
            "{buying_power}.",
            "Keep the size at or below {buying_power_size_limit}.",
            evidence=(_money("notional"), _money("buying_power"), _size("size")),
            action="REDUCE_SIZE", action_facts=(_size("buying_power_size_limit"),),
            harm="the order cannot be placed in full (rejected or a margin call); replay does "
                 "not model buying power, so no outcome there can judge it", measure=None),
        "ENTRY_FAR_FROM_MARKET": Code(
            "Entry far from the market",
            "The entry at {entry} is {entry_distance_atr} from the last close of {last_close} "
            "(limit {max_entry_distance_atr}).",
            "Check the entry price for a typo; the last close was {last_close}.",
            evidence=(Evidence("entry_distance_atr", "ATR", 4,
                               threshold="max_entry_distance_atr"),
                      Evidence("max_entry_distance_atr", "ATR"), _price("entry"),
                      _price("last_close"), _price("atr_14")),
            action="CHECK_ENTRY_PRICE",
            harm="a limit entry this far from the market does not trade within the fill "
                 "window (or a typo fills at a price nobody meant)", measure="not_filled"),
    }
    explain = (
        Evidence("rr", "R", 4), _money("risk_amount"), _money("risk_budget"),
        Evidence("risk_pct_equity", "%", 4), _price("stop_distance", 8),
        Evidence("stop_distance_atr", "ATR", 4), _price("atr_14"), _price("median_range"),
        _size("budget_size"), Evidence("spread_pct", "%", 4),
        Evidence("slippage_share_pct", "%", 4), Evidence("participation_pct", "%", 4),
        _money("notional"), Evidence("entry_distance_atr", "ATR", 4),
    )

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Flag each risk rule on the rows that break it: NaN (no stop, no ATR, no equity)
        never fires a comparison, so a missing input leaves its check unchecked."""
        cfg = self.config
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            t = _RiskColumns.of(ctx, cfg)
            blocks = [*self._no_stop(t), *self._reward_risk(t), *self._budget(t),
                      *self._stated_risk(t), *self._stop_noise(t), *self._stop_too_wide(t),
                      *self._slippage(t), *self._participation(t), *self._buying_power(t),
                      *self._entry_distance(t)]
            explain = {
                "rr": t.reward_risk, "risk_amount": t.risk_amount,
                "risk_budget": t.risk_budget, "risk_pct_equity": t.risk_pct_equity,
                "stop_distance": t.stop_distance, "stop_distance_atr": t.stop_distance_atr,
                "atr_14": t.atr, "median_range": t.median_range, "budget_size": t.budget_size,
                "spread_pct": 100.0 * t.spread, "slippage_share_pct": t.slippage_share_pct,
                "participation_pct": t.participation_pct, "notional": t.notional,
                "entry_distance_atr": t.entry_distance_atr}
        return self.result(ctx.n, blocks, explain=explain, units=t.units(slice(None)))

    def _fire(self, t: _RiskColumns, code: str, rows: np.ndarray,
              severity: Severity | np.ndarray, **values: Any) -> list[IssueBlock]:
        """Return ``fire``'s block of ``code`` on ``rows`` in each row's money and size unit
        (none when no row fired)."""
        if not len(rows):
            return []
        return [self.fire(code, rows, severity, units=t.units(rows), **values)]

    # ------------------------------------------------------------------------------ rules
    def _no_stop(self, t: _RiskColumns) -> list[IssueBlock]:
        rows = np.flatnonzero(~t.has_stop & t.stop_required)
        if not len(rows):
            return []
        suggested = t.stop_at(rows, t.noise_distance[rows], wider=True)
        return self._fire(
            t, "NO_STOP", rows, Severity.CRITICAL, entry=t.entry[rows], atr_14=t.atr[rows],
            stop_required=True, suggested_stop=suggested,
            suggested_size=t.size_for(rows, t.risk_budget[rows],
                                      np.abs(t.entry[rows] - suggested)),
            risk_budget=t.risk_budget[rows])

    def _reward_risk(self, t: _RiskColumns) -> list[IssueBlock]:
        # A target on the tick nearest the minimum's price meets the minimum: a target
        # rounded onto the grid may sit up to half a tick short (1.998R for a 2R minimum).
        rows = np.flatnonzero(t.has_stop & t.has_target & ~(
            t.reward_distance >= t.min_reward_risk * t.stop_distance
            - 0.5 * t.tick_size * (1 + 1e-6)))
        if not len(rows):
            return []
        sign = t.sign[rows]
        target = _to_tick(t.entry[rows] + sign * t.min_reward_risk[rows] * t.stop_distance[rows],
                          t.tick_size[rows], down=sign < 0)
        return self._fire(
            t, "REWARD_RISK_BELOW_MIN", rows, Severity.MEDIUM,
            thresholds={"rr": t.min_reward_risk[rows]}, rr=t.reward_risk[rows],
            min_reward_risk=t.min_reward_risk[rows], reward_distance=t.reward_distance[rows],
            stop_distance=t.stop_distance[rows],
            suggested_target=np.where(target > 0, target, np.nan))

    def _budget(self, t: _RiskColumns) -> list[IssueBlock]:
        # One of three per row: another currency, no equity, or the budget check itself.
        other = np.flatnonzero(~t.same_currency)
        no_equity = np.flatnonzero(t.same_currency & ~t.has_equity)
        rows = np.flatnonzero(t.has_equity & t.has_stop
                              & ~(t.risk_amount <= t.risk_budget * (1 + 1e-9)))
        risk, budget = t.risk_amount[rows], t.risk_budget[rows]
        return [
            *self._fire(t, "ACCOUNT_CURRENCY_MISMATCH", other, Severity.LOW,
                        instrument_currency=t.currencies[t.currency[other]],
                        account_currency=t.account_currency[other],
                        risk_amount=t.risk_amount[other], notional=t.notional[other]),
            *self._fire(t, "NO_EQUITY_SNAPSHOT", no_equity, Severity.LOW,
                        equity_snapshot=t.equity_snapshot[no_equity],
                        max_risk_per_trade_pct=t.max_risk_pct[no_equity],
                        risk_amount=t.risk_amount[no_equity]),
            *self._fire(t, "RISK_ABOVE_BUDGET", rows,
                        severity_where(risk / budget > 1.5, Severity.HIGH, Severity.MEDIUM),
                        thresholds={"risk_amount": budget,
                                    "risk_pct_equity": t.max_risk_pct[rows]},
                        risk_amount=risk, risk_pct_equity=t.risk_pct_equity[rows],
                        risk_budget=budget, max_risk_per_trade_pct=t.max_risk_pct[rows],
                        equity=t.equity[rows], size=t.size[rows],
                        budget_size=t.budget_size[rows],
                        risk_at_budget_size=t.budget_size[rows] * t.unit_risk[rows]),
        ]

    def _stated_risk(self, t: _RiskColumns) -> list[IssueBlock]:
        mismatch = 100.0 * (t.risk_amount - t.stated_risk) / t.stated_risk
        rows = np.flatnonzero(t.has_stop & ~np.isnan(t.stated_risk)
                              & ~(np.abs(mismatch) <= self.config.risk_amount_tolerance_pct))
        if not len(rows):
            return []
        stated = t.stated_risk[rows]
        # a size is suggested only where there is a budget to size against
        stated_with_budget = np.where(np.isnan(t.risk_budget[rows]), np.nan, stated)
        return self._fire(
            t, "RISK_AMOUNT_MISMATCH", rows,
            severity_where(mismatch[rows] > 0, Severity.MEDIUM, Severity.LOW),
            risk_amount=t.risk_amount[rows], proposed_risk_amount=stated,
            risk_mismatch_pct=mismatch[rows],
            size_for_stated_risk=t.size_for(rows, stated_with_budget, t.stop_distance[rows]))

    def _stop_noise(self, t: _RiskColumns) -> list[IssueBlock]:
        cfg = self.config
        stop_distance_range = t.stop_distance / t.median_range
        inside_atr = t.has_stop & (t.stop_distance_atr < cfg.min_stop_atr)
        inside_range = t.has_stop & (stop_distance_range < cfg.min_stop_range)
        rows = np.flatnonzero(inside_atr | inside_range)
        if not len(rows):
            return []
        # One issue per row, with one suggested stop that clears both thresholds, keeping the
        # current risk (or the budget, when the risk is above it).
        suggested = t.stop_at(rows, t.noise_distance[rows], wider=True)
        kept = np.minimum(t.risk_amount[rows], t.risk_budget[rows])  # NaN without a budget
        values: dict[str, Any] = dict(
            stop_distance_atr=t.stop_distance_atr[rows], min_stop_atr=cfg.min_stop_atr,
            stop_distance_range=stop_distance_range[rows], min_stop_range=cfg.min_stop_range,
            stop_distance=t.stop_distance[rows], atr_14=t.atr[rows],
            median_range=t.median_range[rows], lookback_bars=cfg.lookback_bars,
            suggested_stop=suggested, risk_amount=kept,
            suggested_size=t.size_for(rows, kept, np.abs(t.entry[rows] - suggested)))
        atr = inside_atr[rows]
        by_atr = {k: _at(v, atr) for k, v in values.items()}
        by_range = {k: _at(v, ~atr) for k, v in values.items()}
        return [
            *self._fire(t, "STOP_INSIDE_NOISE", rows[atr], severity_where(
                t.stop_distance_atr[rows[atr]] < 0.5 * cfg.min_stop_atr, Severity.HIGH,
                Severity.MEDIUM), **by_atr),
            *self._fire(t, "STOP_INSIDE_RECENT_RANGE", rows[~atr], Severity.MEDIUM,
                        **by_range),
        ]

    def _stop_too_wide(self, t: _RiskColumns) -> list[IssueBlock]:
        cfg = self.config
        min_size = cfg.min_position_lots * t.lot_size
        beyond_atr = t.has_stop & (t.stop_distance_atr > cfg.max_stop_atr)
        too_small = (min_size > 0) & (t.budget_size < min_size - 1e-9)
        rows = np.flatnonzero(beyond_atr | too_small)
        if not len(rows):
            return []
        # The stop that clears both limits: within max_stop_atr, and leaving room for the
        # smallest position inside the budget.
        within_atr = cfg.max_stop_atr * t.atr[rows]
        min_rows = min_size[rows]
        within_budget = np.where(min_rows > 0, t.risk_budget[rows]
                                 / (min_rows * t.multiplier[rows]), np.nan)
        distance = np.fmin(_nonzero(within_atr), _nonzero(within_budget))
        return self._fire(
            t, "STOP_TOO_WIDE", rows, Severity.MEDIUM,
            stop_distance_atr=t.stop_distance_atr[rows], max_stop_atr=cfg.max_stop_atr,
            stop_distance=t.stop_distance[rows], budget_size=t.budget_size[rows],
            min_position_size=min_rows,
            suggested_stop=t.stop_at(rows, distance, wider=False))

    def _slippage(self, t: _RiskColumns) -> list[IssueBlock]:
        limit = self.config.max_slippage_share_pct
        share = t.slippage_share_pct
        rows = np.flatnonzero(~np.isnan(t.expected_slippage) & t.has_stop
                              & (t.stop_distance != 0) & ~(share <= limit))
        if not len(rows):
            return []
        slippage = t.expected_slippage[rows]
        return self._fire(
            t, "SLIPPAGE_RISK", rows,
            severity_where(share[rows] > 2 * limit, Severity.MEDIUM, Severity.LOW),
            slippage_share_pct=share[rows], max_slippage_share_pct=limit,
            expected_slippage=slippage, spread_pct=100.0 * t.spread[rows],
            stop_distance=t.stop_distance[rows],
            suggested_stop=t.stop_at(rows, slippage / (limit / 100.0), wider=True),
            slippage_cost=slippage * t.size[rows] * t.multiplier[rows])

    def _participation(self, t: _RiskColumns) -> list[IssueBlock]:
        limit = self.config.max_participation_pct
        pct = t.participation_pct
        rows = np.flatnonzero(~np.isnan(pct) & ~(pct <= limit))
        if not len(rows):
            return []
        volume = t.average_volume[rows]
        return self._fire(
            t, "HIGH_PARTICIPATION", rows,
            severity_where(pct[rows] > 5 * limit, Severity.HIGH, Severity.MEDIUM),
            participation_pct=pct[rows], max_participation_pct=limit, average_volume=volume,
            size=t.size[rows], lookback_bars=t.volume_bars[rows],
            participation_size_limit=_lots(limit / 100.0 * volume, t.lot_size[rows]))

    def _buying_power(self, t: _RiskColumns) -> list[IssueBlock]:
        rows = np.flatnonzero(~np.isnan(t.buying_power) & t.same_currency
                              & ~(t.notional <= t.buying_power * (1 + 1e-9)))
        if not len(rows):
            return []
        buying_power = t.buying_power[rows]
        return self._fire(
            t, "NOTIONAL_ABOVE_BUYING_POWER", rows, Severity.HIGH,
            thresholds={"notional": buying_power}, notional=t.notional[rows],
            buying_power=buying_power, size=t.size[rows],
            buying_power_size_limit=_lots(np.maximum(buying_power, 0.0)
                                          / (t.entry[rows] * t.multiplier[rows]),
                                          t.lot_size[rows]))

    def _entry_distance(self, t: _RiskColumns) -> list[IssueBlock]:
        distance = t.entry_distance_atr
        rows = np.flatnonzero(~np.isnan(distance)
                              & ~(distance <= self.config.max_entry_distance_atr))
        if not len(rows):
            return []
        return self._fire(
            t, "ENTRY_FAR_FROM_MARKET", rows, Severity.HIGH,
            entry_distance_atr=distance[rows],
            max_entry_distance_atr=self.config.max_entry_distance_atr, entry=t.entry[rows],
            last_close=t.last_close[rows], atr_14=t.atr[rows])


@dataclass(frozen=True, slots=True, kw_only=True)
class _RiskColumns:
    """The numbers every rule shares, one per row: NaN where a number cannot be had (no stop,
    no ATR, no equity in the instrument's currency, no bars)."""

    entry: np.ndarray
    sign: np.ndarray  # +1 long, -1 short
    size: np.ndarray
    lot_size: np.ndarray
    tick_size: np.ndarray
    multiplier: np.ndarray
    currency: np.ndarray  # int64: the instrument's currency (the money unit) in currencies
    currencies: np.ndarray  # object: the distinct instrument currencies
    in_shares: np.ndarray  # sizes in 'shares' (equities), else in 'units'
    account_currency: np.ndarray  # object
    same_currency: np.ndarray
    stop_required: np.ndarray
    min_reward_risk: np.ndarray
    max_risk_pct: np.ndarray
    equity_snapshot: np.ndarray  # as on file (NaN: none)
    has_equity: np.ndarray  # an equity to size against: same currency and snapshot > 0
    equity: np.ndarray
    risk_budget: np.ndarray
    buying_power: np.ndarray  # NaN: none
    has_stop: np.ndarray
    stop_distance: np.ndarray
    has_target: np.ndarray
    reward_distance: np.ndarray
    reward_risk: np.ndarray
    stated_risk: np.ndarray  # NaN: none stated
    last_close: np.ndarray
    atr: np.ndarray  # positive, else NaN
    median_range: np.ndarray  # positive, else NaN
    noise_distance: np.ndarray  # the stop distance that clears both noise thresholds
    spread: np.ndarray  # fraction of price
    expected_slippage: np.ndarray  # price: spread crossings plus slippage_atr x ATR
    average_volume: np.ndarray  # positive volumes only
    volume_bars: np.ndarray  # int64: bars behind average_volume
    unit_risk: np.ndarray  # money lost per unit of size at the stop
    risk_amount: np.ndarray
    risk_pct_equity: np.ndarray
    budget_size: np.ndarray
    stop_distance_atr: np.ndarray
    slippage_share_pct: np.ndarray
    participation_pct: np.ndarray
    notional: np.ndarray
    entry_distance_atr: np.ndarray

    @classmethod
    def of(cls, ctx: BatchContext, cfg: RiskRewardConfig) -> _RiskColumns:
        """Return the columns of ``ctx``'s rows."""
        intents, inst = ctx.intents, ctx.instrument
        entry = intents["proposed_entry"].to_numpy(np.float64)
        size = intents["proposed_size"].to_numpy(np.float64)
        stop_distance = intents["stop_distance"].to_numpy(np.float64)
        multiplier = inst["contract_multiplier"].to_numpy(np.float64)
        currency, currencies = _factorize(inst["currency"])
        account = _accounts(ctx, currencies)
        same_currency = currency == account["currency"]
        snapshot = account["equity_snapshot"]
        has_equity = same_currency & (snapshot > 0)
        equity = np.where(has_equity, snapshot, np.nan)
        risk_budget = equity * account["max_risk_per_trade_pct"] / 100.0
        atr = (ctx.latest["atr_14"].to_numpy(np.float64) if "atr_14" in ctx.latest.columns
               else np.full(ctx.n, np.nan))
        atr = _positive(atr)
        median_range, spread, average_volume, volume_bars = _window_stats(ctx.bars,
                                                                          cfg.lookback_bars)
        noise = np.fmax(_nonzero(cfg.min_stop_atr * atr),
                        _nonzero(cfg.min_stop_range * median_range))
        # The stop exit crosses half the spread; a market or stop entry the other half.
        order_type, order_types = _factorize(intents["order_type"])
        market_like = np.isin(order_types, [OrderType.MARKET.value,
                                            OrderType.STOP.value])[order_type]
        slippage = (np.where(market_like, 1.0, 0.5) * spread * entry
                    + cfg.slippage_atr * np.nan_to_num(atr))
        unit_risk = stop_distance * multiplier
        risk_amount = unit_risk * size
        lot_size = inst["lot_size"].to_numpy(np.float64)
        last_close = ctx.market["last_close"].to_numpy(np.float64)
        return cls(
            entry=entry, sign=intents["sign"].to_numpy(np.float64), size=size,
            lot_size=lot_size, tick_size=inst["tick_size"].to_numpy(np.float64),
            multiplier=multiplier, currency=currency, currencies=currencies,
            in_shares=_is(inst["asset_class"], "equity"),
            account_currency=account["base_currency"], same_currency=same_currency,
            stop_required=account["stop_required"].astype(bool),
            min_reward_risk=account["min_reward_risk"],
            max_risk_pct=account["max_risk_per_trade_pct"], equity_snapshot=snapshot,
            has_equity=has_equity, equity=equity, risk_budget=risk_budget,
            buying_power=account["buying_power_snapshot"],
            has_stop=~np.isnan(stop_distance), stop_distance=stop_distance,
            has_target=~np.isnan(intents["proposed_target"].to_numpy(np.float64)),
            reward_distance=intents["reward_distance"].to_numpy(np.float64),
            reward_risk=intents["reward_risk"].to_numpy(np.float64),
            stated_risk=intents["proposed_risk_amount"].to_numpy(np.float64),
            last_close=last_close, atr=atr, median_range=median_range,
            noise_distance=noise, spread=spread, expected_slippage=slippage,
            average_volume=average_volume, volume_bars=volume_bars, unit_risk=unit_risk,
            risk_amount=risk_amount, risk_pct_equity=100.0 * risk_amount / equity,
            budget_size=_lots(risk_budget / unit_risk, lot_size),
            stop_distance_atr=stop_distance / atr,
            slippage_share_pct=100.0 * slippage / _nonzero(stop_distance),
            participation_pct=100.0 * size / _nonzero(average_volume),
            notional=entry * size * multiplier,
            entry_distance_atr=np.abs(entry - last_close) / atr)

    def size_for(self, rows: np.ndarray, risk: np.ndarray, stop_distance: np.ndarray
                 ) -> np.ndarray:
        """Return the whole-lot sizes of ``rows`` whose loss at ``stop_distance`` stays
        within ``risk`` (NaN where either is NaN)."""
        return _lots(risk / (stop_distance * self.multiplier[rows]), self.lot_size[rows])

    def units(self, rows: np.ndarray | slice) -> dict[str, np.ndarray]:
        """Return each of ``rows``' money unit (its currency) and size unit."""
        return {MONEY: self.currencies[self.currency[rows]],
                SIZE: _SIZE_UNITS[self.in_shares[rows].astype(np.intp)]}

    def stop_at(self, rows: np.ndarray, distance: np.ndarray, *, wider: bool) -> np.ndarray:
        """Return the stops ``distance`` from the entries of ``rows``, on the tick grid:
        rounded away from the entry when the stop must be at least this far (``wider``),
        towards it when at most this far. NaN without a distance or a positive price."""
        sign = self.sign[rows]
        price = _to_tick(self.entry[rows] - sign * distance, self.tick_size[rows],
                         down=(sign > 0) == wider)
        return np.where(price > 0, price, np.nan)


#: A size's unit, indexed by ``in_shares``.
_SIZE_UNITS = np.array(["units", "shares"], dtype=object)


def _at(value: Any, at: np.ndarray | slice) -> Any:
    """Return a per-row array's values at ``at``; a scalar as is."""
    return value[at] if isinstance(value, np.ndarray) else value


def _accounts(ctx: BatchContext, currencies: np.ndarray) -> dict[str, np.ndarray]:
    """Return the account fields the rules read, per row (read once per distinct piece);
    ``currency``: the base currency's number in ``currencies`` (-1: none of them)."""
    codes, pieces = ctx.distinct_pieces("account")
    if any(not isinstance(p, AccountContext) for p in pieces):
        raise ValueError("risk_reward needs the account piece on every row")
    users = [p.account for p in pieces]
    rules = [p.rules for p in pieces]
    position = {c: i for i, c in enumerate(currencies.tolist())}
    fields = {
        "base_currency": np.array([u.base_currency for u in users], dtype=object),
        "currency": np.array([position.get(u.base_currency, -1) for u in users],
                             dtype=np.int64),
        "equity_snapshot": _floats([u.equity_snapshot for u in users]),
        "buying_power_snapshot": _floats([u.buying_power_snapshot for u in users]),
        "max_risk_per_trade_pct": _floats([r.max_risk_per_trade_pct for r in rules]),
        "min_reward_risk": _floats([r.min_reward_risk for r in rules]),
        "stop_required": np.array([bool(r.stop_required) for r in rules], dtype=bool),
    }
    return {name: values[codes] for name, values in fields.items()}


def _factorize(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Return each row's number among the column's distinct values, and those values."""
    if len(column) < 256:  # a sort of a few strings costs less than pandas' hash table
        uniques, codes = np.unique(column.to_numpy(object), return_inverse=True)
        return codes.astype(np.int64).reshape(-1), uniques.astype(object)
    codes, uniques = pd.factorize(column)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _is(column: pd.Series, value: str) -> np.ndarray:
    codes, uniques = _factorize(column)
    return (uniques == value)[codes] if len(uniques) else np.zeros(len(codes), dtype=bool)


def _floats(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _positive(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def _nonzero(values: np.ndarray) -> np.ndarray:
    """Return ``values`` with 0 and non-finite values as NaN (a zero distance or volume
    is no distance or volume)."""
    return np.where(np.isfinite(values) & (values != 0), values, np.nan)


def _lots(units: np.ndarray, lot: np.ndarray) -> np.ndarray:
    """Return ``units`` rounded down to whole lots, never negative (NaN stays NaN); a size
    within 1e-9 lot below a whole number of lots is that number."""
    return np.maximum(0.0, np.floor(np.round(units / lot, 9)) * lot)


def _to_tick(price: np.ndarray, tick: np.ndarray, *, down: np.ndarray | bool) -> np.ndarray:
    """Return ``price`` on the tick grid, rounded down where ``down`` and up elsewhere."""
    return to_tick(price, tick, up=np.logical_not(down))


def _window_stats(bars: Windows, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                   np.ndarray]:
    """Return per row, over its last ``k`` bars: the median positive high-low range, the
    Corwin-Schultz spread (fraction of price), the average positive volume (NaN: none) and
    the number of bars behind it (int64). Rows ending on the same bars share one computation
    (in a replay, an intent and its mirror, or many intents on one bar), and windows over
    one series share its two-bar spread estimates."""
    n = len(bars.stop)
    if not len(bars.data):  # no bars at all: every window is empty
        return (np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan),
                np.zeros(n, dtype=np.int64))
    first = np.maximum(bars.start, bars.stop - k)
    rows = None
    if len(bars.stop) > 1:
        _, unique, rows = np.unique(first * (len(bars.data) + 1) + bars.stop,
                                    return_index=True, return_inverse=True)
        if len(unique) < len(first):
            first, bars = first[unique], bars.take(unique)
        else:
            rows = None
    stop = bars.stop
    at = stop[:, None] + np.arange(-k, 0)[None, :]  # each slot's bar, oldest first
    inside = None  # every window holds k bars, else NaN in the slots before its first
    if (stop - first < k).any():
        inside = at >= first[:, None]
        at = np.where(inside, at, 0)
    high, low = bars.column("high"), bars.column("low")
    ranges = high[at] - low[at]
    median = _positive(_row_medians(ranges if inside is None else
                                    np.where(inside, ranges, np.nan)))
    spread, _ = corwin_schultz_windows(high, low, bars.column("close"), first, stop, k)
    volume = bars.column("volume")[at]
    valid = np.isfinite(volume) & (volume > 0)
    if inside is not None:
        valid &= inside
    count = valid.sum(axis=1).astype(np.int64)
    average_volume = np.where(valid, volume, 0.0).sum(axis=1) / np.where(count, count, 1)
    average_volume[count == 0] = np.nan
    stats = (median, spread, average_volume, count)
    return stats if rows is None else tuple(s[rows] for s in stats)  # type: ignore[return-value]


def _row_medians(values: np.ndarray) -> np.ndarray:
    """Return each row's median of its finite values (NaN when none)."""
    values = np.where(np.isfinite(values), values, np.nan)
    ordered = np.sort(values, axis=1)  # NaN last
    count = (~np.isnan(values)).sum(axis=1)
    at = np.arange(len(values))
    median = (ordered[at, np.maximum(count - 1, 0) // 2]
              + ordered[at, np.minimum(count // 2, values.shape[1] - 1)]) / 2.0
    median[count == 0] = np.nan
    return median
