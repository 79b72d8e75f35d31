"""Behaviour detectors' settings: one config per detector, and what sensitivity changes.

Every detector (``buddy.behavior.detectors``) reads its own frozen config. The defaults are
the MEDIUM sensitivity; ``params_for(sensitivity)`` applies the documented LOW (fewer, surer
alerts) or HIGH (earlier, more alerts) thresholds of ``SENSITIVITY`` per detector. Every
detector has a minimum sample below which it stays silent (it says "not checked", never
"fine").

Why the medium values (measured on the demo trader, ``buddy behavior validate``):
- revenge: a loss of 0.25 R or more (a scratch is not a loss that provokes), then within 72
  hours an entry whose risk is 1.5 times the median of the user's last 20 entries or more, in
  the same asset class (a loss in EURUSD does not make an AAPL entry revenge);
- overtrading: a day with 6 times the user's median entries per active day (and at least
  4); clear when the user's own earlier days like it went as well or better, low severity
  while there are fewer than 3 such days to judge by;
- fatigue: an intraday entry 12 hours or more after the session's first entry and the third
  or later of that session, when the user's own entries that late in a session did worse
  (OFF by default, see below);
- stop drift: a trade that stayed open past its planned stop (the bar touched it and the
  trade was still open at that bar's close), or closed beyond it by more than 0.3 R that a
  gap does not explain (each such trade is an event); an idea is nudged when the share of
  the last 20 trades that did so is above the trader's own earlier share beyond chance (the
  difference's 95% interval above 0; any one such trade at high sensitivity);
- FOMO: an entry extended from the EMA20 (in ATR, the intent's side) at least 2 ATR and
  with a conformal p-value <= 0.005 among the user's own entries (at least 199 of them): a
  rule "beyond the user's own q-th percentile" fires on about (1 - q) of a steady trader's
  entries by construction (the 95th fired on 7 in 100 of the demo's, the 99th on 2.4 in
  100 of the clean trader's, most while the sample was small);
- rule drift: the mean process score of the last 30 days at least 0.15 below the 60 days
  before, with the difference's 95% interval below 0 (5 reviewed trades or more in each);
- sizing: the correlation of the risk taken with the previous trade's R over the last 50
  pairs (at least 30), |r| >= 0.3 with its 95% interval excluding 0 (30 pairs fired 6 times
  on the clean trader's 866 trades, 50 none).

Which detectors run by default (``DEFAULT_ENABLED``): every one but fatigue and FOMO. A
detector that fails its validation, or cannot be validated yet, must not nudge a trader
unasked. Measured at medium on the demo
trader's injected late-session entries (``buddy behavior validate``), fatigue reached
precision 3/13 (23%) and recall 3/6 on the default seed and 7-23% precision on other seeds,
against the issue's aims of 90% and 80%, and it fired on the clean trader (nothing injected)
at about the demo's rate (9 in 866 trades, 1.04 per 100, 95% 0.48-1.97, against 13 in 881
on the demo): most of what it flags is not the injected behaviour. Left out, the
clean trader's false alarms of the default set are 16 in 866 trades (1.85 per 100, 95%
1.06-3.00) against 25 (2.89 per 100, 95% 1.87-4.26) with every detector.
FOMO has no injected truth to be measured against, and alone it alerts 1.15 times per 100
trades on the clean trader (10 in 866), above the aim of 1 for every detector together: it
is off by default too, which leaves the default set at 6 in 866 (0.69 per 100; rule drift).
Revenge (15/16, 15/15) and stop drift (51/51, 51/61) meet both aims; overtrading flags 3
days, all true, and finds 3 of 4; rule drift and sizing have no injected truth (validate
prints their clean-trader rates). A trader may opt fatigue or FOMO in (``buddy nudges set
--opt-in fomo``); validation still measures them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from buddy.config import Config, ModuleConfig, did_you_mean, param
from buddy.errors import ConfigError, FieldError

__all__ = [
    "DEFAULT_ENABLED",
    "DEFAULT_OFF_REASONS",
    "DETECTORS",
    "SENSITIVITIES",
    "SENSITIVITY",
    "BehaviorParams",
    "FatigueConfig",
    "FomoConfig",
    "OvertradingConfig",
    "RevengeConfig",
    "RuleDriftConfig",
    "SizingConfig",
    "StopDriftConfig",
    "params_for",
]

#: The detectors, in the order their hits are listed.
DETECTORS: tuple[str, ...] = ("revenge", "overtrading", "fomo", "fatigue", "rule_drift",
                              "stop_drift", "sizing")
SENSITIVITIES: tuple[str, ...] = ("low", "medium", "high")
#: Why a detector is off by default (it runs only when the trader opts it in).
DEFAULT_OFF_REASONS: dict[str, str] = {
    "fatigue": ("failed its validation on the demo trader's injected late-session entries: "
                "precision 3/13 (23%), recall 3/6 at medium on the default seed (7-23% "
                "precision on other seeds; aims 90% / 80%), and it fires on the clean "
                "trader at about the demo's rate (9 in 866 trades against 13 in 881)"),
    "fomo": ("cannot be validated yet: the demo trader has no injected chasing entries to "
             "measure it against, and on the clean trader (nothing injected) it alerts 1.15 "
             "times per 100 trades (10 in 866), above the aim of 1 for all detectors together")}
#: The detectors that run unless the trader chooses otherwise: every one but those in
#: DEFAULT_OFF_REASONS (see the module docstring for the figures).
DEFAULT_ENABLED: tuple[str, ...] = tuple(d for d in DETECTORS if d not in DEFAULT_OFF_REASONS)


@dataclass(frozen=True, slots=True, kw_only=True)
class RevengeConfig(ModuleConfig):
    """Revenge: a bigger-than-usual entry soon after a loss in a related symbol."""

    config_name: ClassVar[str] = "behavior.revenge"
    min_loss_r: float = param(0.25, lo=0.0, hi=10.0, unit="R",
                              doc="a closed trade losing at least this much of its initial "
                                  "risk counts as a loss (a trade without a stop: this "
                                  "many times the user's median risk)")
    min_loss_pct_equity: float = param(0.25, lo=0.0, hi=100.0, unit="% equity",
                                       doc="the loss threshold for a trade without a known "
                                           "stop (no R), when the equity at t is known")
    window_hours: float = param(72.0, lo=0.0, hi=24.0 * 30, lo_open=True, unit="hours",
                                doc="the new entry comes within this long after the loss")
    size_margin: float = param(1.5, lo=1.0, hi=20.0, lo_open=True, unit="x",
                               doc="the entry's risk (else notional) is at least this multiple "
                                   "of the user's recent median")
    baseline_trades: int = param(20, lo=3, hi=1000, unit="trades",
                                 doc="the recent typical: median of the last N entries")
    min_trades: int = param(10, lo=3, hi=1000, unit="trades",
                            doc="fewer earlier entries with a size measure: silent")
    size_measure: str = param("risk", choices=("risk", "risk_else_notional"),
                              doc="what 'bigger' compares: the risk amount only (a position "
                                  "with a tighter stop is bigger in units, not in risk), or "
                                  "the notional in the same symbol when the risk is unknown")
    scope: str = param("asset_class", choices=("symbol", "asset_class", "any"),
                       doc="which losses count: the same symbol; any symbol of the same "
                           "asset class (the stated related symbols); any")


@dataclass(frozen=True, slots=True, kw_only=True)
class OvertradingConfig(ModuleConfig):
    """Overtrading: far more entries in a day than the user's own median, unless such days
    went as well or better for them."""

    config_name: ClassVar[str] = "behavior.overtrading"
    multiple: float = param(6.0, lo=1.0, hi=100.0, lo_open=True, unit="x",
                            doc="the day's entries (this one included) reach this multiple "
                                "of the user's median entries per active day")
    min_count: int = param(4, lo=2, hi=1000, unit="entries",
                           doc="and at least this many entries that day")
    baseline_days: int = param(250, lo=5, hi=5000, unit="days",
                               doc="the median is taken over the last N active days")
    min_days: int = param(20, lo=5, hi=5000, unit="days",
                          doc="fewer active days before the day: silent")
    min_such_days: int = param(3, lo=1, hi=1000, unit="days",
                               doc="earlier days that reached the threshold needed to compare "
                                   "their results with the other days'")
    require_results: bool = param(False, doc="stay silent (instead of a low-severity alert "
                                             "saying so) while the results on such days "
                                             "cannot be compared yet")


@dataclass(frozen=True, slots=True, kw_only=True)
class FomoConfig(ModuleConfig):
    """FOMO / chasing: an entry far more extended from the EMA20 than the user ever
    enters (the intent's ``extension_atr``), by a conformal p-value."""

    config_name: ClassVar[str] = "behavior.fomo"
    alpha: float = param(0.005, lo=0.0, hi=0.5, lo_open=True, unit="p",
                         doc="the conformal p-value of the extension among the user's own "
                             "entries, (1 + #{past >= it}) / (n + 1), is at most this (on a "
                             "steady trader it fires on about this share of entries)")
    min_extension_atr: float = param(2.0, lo=0.0, hi=20.0, unit="ATR",
                                     doc="and at least this far from the EMA20")
    min_trades: int = param(199, lo=5, hi=10000, unit="trades",
                            doc="fewer earlier entries with an extension: silent (a p-value "
                                "of alpha needs 1 / alpha - 1 of them)")


@dataclass(frozen=True, slots=True, kw_only=True)
class FatigueConfig(ModuleConfig):
    """Fatigue: an intraday entry late in a long session, where the user's own late entries
    did worse."""

    config_name: ClassVar[str] = "behavior.fatigue"
    min_session_hours: float = param(12.0, lo=0.0, hi=48.0, lo_open=True, unit="hours",
                                     doc="the entry comes this long after the session's first")
    min_entries: int = param(3, lo=1, hi=1000, unit="entries",
                             doc="and is at least the N-th entry of that session")
    min_late_trades: int = param(5, lo=1, hi=10000, unit="trades",
                                 doc="fewer earlier late entries with a result: silent")
    require_worse: bool = param(True, doc="fire only when the user's earlier late entries "
                                          "had a worse mean result than the others")


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleDriftConfig(ModuleConfig):
    """Rule drift: the process score (post-trade reviews) recently below the user's own."""

    config_name: ClassVar[str] = "behavior.rule_drift"
    recent_days: float = param(30.0, lo=1.0, hi=3650.0, unit="days",
                               doc="the recent window, ending at t")
    prior_days: float = param(60.0, lo=1.0, hi=3650.0, unit="days",
                              doc="the window before it the recent one is compared with")
    min_drop: float = param(0.15, lo=0.0, hi=1.0, lo_open=True, unit="score",
                            doc="the recent mean process score is lower by at least this")
    min_trades: int = param(5, lo=2, hi=10000, unit="trades",
                            doc="fewer reviewed trades in either window: silent")


@dataclass(frozen=True, slots=True, kw_only=True)
class StopDriftConfig(ModuleConfig):
    """Stop drift: planned stops not honoured (stayed in past the stop, or lost beyond it)."""

    config_name: ClassVar[str] = "behavior.stop_drift"
    min_past_stop_r: float = param(0.3, lo=0.0, hi=10.0, unit="R",
                                   doc="a loss beyond the planned stop (net of a gap) by more "
                                       "than this is a stop not honoured")
    recent_trades: int = param(20, lo=2, hi=10000, unit="trades",
                               doc="an intent is flagged when among the last N closed trades "
                                   "with a known stop ...")
    min_count: int = param(1, lo=1, hi=10000, unit="trades",
                           doc="... at least this many did not honour their stop")
    min_trades: int = param(10, lo=1, hi=10000, unit="trades",
                            doc="fewer closed trades with a known stop and bars: silent")
    require_increase: bool = param(
        True, choices=(True, False),
        doc="with at least min_trades earlier trades to compare, an intent is flagged only "
            "when the recent share's difference from the earlier share has its 95% interval "
            "above 0 (a change, not the trader's usual rate)")


@dataclass(frozen=True, slots=True, kw_only=True)
class SizingConfig(ModuleConfig):
    """Sizing after outcomes: the risk taken follows the previous trade's result."""

    config_name: ClassVar[str] = "behavior.sizing"
    window_pairs: int = param(50, lo=5, hi=10000, unit="trades",
                              doc="the last N (previous result, next risk) pairs")
    min_abs_r: float = param(0.3, lo=0.0, hi=1.0, hi_open=True, unit="r",
                             doc="|Pearson r| at least this, with its 95% interval "
                                 "excluding 0")
    min_pairs: int = param(30, lo=5, hi=10000, unit="trades",
                           doc="fewer pairs with both values: silent")


_CONFIGS: dict[str, type[ModuleConfig]] = {
    "revenge": RevengeConfig, "overtrading": OvertradingConfig, "fomo": FomoConfig,
    "fatigue": FatigueConfig, "rule_drift": RuleDriftConfig, "stop_drift": StopDriftConfig,
    "sizing": SizingConfig}

#: What each sensitivity sets per detector (medium: the defaults).
SENSITIVITY: dict[str, dict[str, dict[str, Any]]] = {
    "revenge": {"low": {"min_loss_r": 0.9, "min_loss_pct_equity": 0.8, "size_margin": 1.8},
                "medium": {},
                "high": {"min_loss_r": 0.0, "min_loss_pct_equity": 0.0, "size_margin": 1.25,
                         "window_hours": 120.0}},
    "overtrading": {"low": {"multiple": 8.0, "min_count": 6},
                    "medium": {},
                    # 4x fired on ordinary 4-entry days (precision 1/3 to 4/8 on three
                    # seeds); a lower threshold also makes more "such days" to compare with
                    "high": {"multiple": 5.0}},
    "fomo": {"low": {"alpha": 0.002, "min_trades": 499, "min_extension_atr": 2.5},
             "medium": {},
             "high": {"alpha": 0.01, "min_trades": 99, "min_extension_atr": 1.5}},
    "fatigue": {"low": {"min_session_hours": 14.0, "min_entries": 4},
                "medium": {},
                "high": {"min_session_hours": 10.0, "min_entries": 2}},
    "rule_drift": {"low": {"min_drop": 0.25}, "medium": {}, "high": {"min_drop": 0.1}},
    "stop_drift": {"low": {"min_past_stop_r": 0.5, "min_count": 2},
                   "medium": {},
                   "high": {"min_past_stop_r": 0.15, "require_increase": False}},
    "sizing": {"low": {"min_abs_r": 0.5}, "medium": {}, "high": {"min_abs_r": 0.2}},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class BehaviorParams(Config):
    """Every detector's config, and which detectors run (an opted-out one is not run)."""

    config_name: ClassVar[str] = "behavior"
    revenge: RevengeConfig = param(factory=RevengeConfig)  # noqa: RUF009
    overtrading: OvertradingConfig = param(factory=OvertradingConfig)  # noqa: RUF009
    fomo: FomoConfig = param(factory=FomoConfig)  # noqa: RUF009
    fatigue: FatigueConfig = param(factory=FatigueConfig)  # noqa: RUF009
    rule_drift: RuleDriftConfig = param(factory=RuleDriftConfig)  # noqa: RUF009
    stop_drift: StopDriftConfig = param(factory=StopDriftConfig)  # noqa: RUF009
    sizing: SizingConfig = param(factory=SizingConfig)  # noqa: RUF009
    enabled: tuple[str, ...] = param(DEFAULT_ENABLED, choices=DETECTORS,
                                     doc="the detectors that run (default: every one but "
                                         "fatigue, which failed its validation)")

    def config(self, detector: str) -> ModuleConfig:
        """Return ``detector``'s config."""
        if detector not in _CONFIGS:
            raise KeyError(f"detector: {detector!r} is not a detector "
                           f"({did_you_mean(detector, DETECTORS)})")
        value: ModuleConfig = getattr(self, detector)
        return value


def params_for(sensitivity: str | Mapping[str, str] = "medium", *,
               enabled: tuple[str, ...] | None = None,
               overrides: Mapping[str, Mapping[str, Any]] | None = None) -> BehaviorParams:
    """Return the params at ``sensitivity`` (one level for all, or detector -> level; a
    detector not named stays medium), then ``overrides`` (detector -> {field: value}), running
    the detectors ``enabled`` (None: DEFAULT_ENABLED, every one but fatigue and FOMO; pass DETECTORS
    to run them all).

    Unknown detectors, levels or fields raise a ConfigError naming them."""
    levels = ({d: sensitivity for d in DETECTORS} if isinstance(sensitivity, str)
              else {d: "medium" for d in DETECTORS} | dict(sensitivity))
    errors = [FieldError(f"sensitivity.{d}", f"is not a detector ({did_you_mean(d, DETECTORS)})",
                         d) for d in levels if d not in _CONFIGS]
    errors += [FieldError(f"sensitivity.{d}", f"must be one of {', '.join(SENSITIVITIES)}",
                          level) for d, level in levels.items()
               if d in _CONFIGS and level not in SENSITIVITIES]
    errors += [FieldError(f"overrides.{d}", f"is not a detector ({did_you_mean(d, DETECTORS)})",
                          d) for d in (overrides or {}) if d not in _CONFIGS]
    if errors:
        raise ConfigError(errors)
    configs: dict[str, Any] = {}
    for detector, cls in _CONFIGS.items():
        values = dict(SENSITIVITY[detector][levels[detector]])
        values.update((overrides or {}).get(detector, {}))
        configs[detector] = cls.from_mapping(values)
    return BehaviorParams(**configs,
                          enabled=DEFAULT_ENABLED if enabled is None else tuple(enabled))
