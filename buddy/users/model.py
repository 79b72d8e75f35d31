"""Values describing a trader: account snapshot, risk rules, exit templates, preferences.

``AccountContext`` is the ContextPack's ``account`` piece: what the risk and exit evaluators
read about the user, as of the evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

from buddy.config import ModuleConfig, param


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskRules(ModuleConfig):
    """A user's risk defaults (validated: unknown keys get the closest valid name)."""

    config_name = "rules"

    max_risk_per_trade_pct: float = param(1.0, lo=0.01, hi=10.0, unit="% of equity",
                                          doc="largest loss at the stop, as % of equity")
    max_daily_loss_pct: float = param(3.0, lo=0.1, hi=50.0, unit="% of equity",
                                      doc="stop trading for the day past this loss")
    max_open_heat_pct: float = param(6.0, lo=0.1, hi=100.0, unit="% of equity",
                                     doc="sum of open risk at stops across positions")
    max_cluster_weight_pct: float = param(
        50.0, lo=1.0, hi=1000.0, unit="% of equity",
        doc="gross market value held the same way in one correlation cluster")
    max_beta_net_exposure_pct: float = param(
        150.0, lo=1.0, hi=5000.0, unit="% of equity",
        doc="net exposure weighted by each position's beta to its benchmark, either way")
    min_reward_risk: float = param(1.5, lo=0.1, hi=20.0, unit="R",
                                   doc="smallest acceptable target distance over stop distance")
    stop_required: bool = param(True, choices=(True, False),
                                doc="every intent must carry a stop")
    allowed_symbols: tuple[str, ...] = param((), doc="empty means any symbol")
    allowed_timeframes: tuple[str, ...] = param((), doc="empty means any timeframe")
    trading_windows: tuple[str, ...] = param(
        (), doc="'HH:MM-HH:MM' windows in the exchange's time zone; empty means any time")
    default_exit_template: str | None = param(None, doc="exit template used when the intent "
                                                        "names none")


@dataclass(frozen=True, slots=True, kw_only=True)
class UserAccount:
    """The user_accounts row: base currency and equity/buying-power snapshots."""

    user_id: str
    base_currency: str = "USD"
    equity_snapshot: float | None = None  # account currency
    buying_power_snapshot: float | None = None  # account currency


@dataclass(frozen=True, slots=True, kw_only=True)
class PartialExit:
    """Take ``fraction`` of the position off at ``at_r`` R."""

    at_r: float
    fraction: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitTemplate:
    """A saved exit plan, e.g. '2R target, time stop after 5 bars, break-even at 1R'."""

    name: str
    target_r: float | None = None  # target distance in R
    time_stop_bars: int | None = None
    breakeven_at_r: float | None = None  # move the stop to entry once price is this many R
    partials: tuple[PartialExit, ...] = ()
    trailing_atr: float | None = None  # trail the stop this many ATR behind


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountContext:
    """The ``account`` piece of a ContextPack."""

    account: UserAccount
    rules: RiskRules
    rules_version: int
    exit_templates: tuple[ExitTemplate, ...] = ()
    disabled_modules: tuple[str, ...] = ()
    disclosures_off: tuple[str, ...] = ()

    def exit_template(self, name: str | None) -> ExitTemplate | None:
        """Return the template called ``name`` (or the rules' default when None)."""
        name = name or self.rules.default_exit_template
        return next((t for t in self.exit_templates if t.name == name), None)
