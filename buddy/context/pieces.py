"""Market-context pieces of a ContextPack: regime, key levels and multi-timeframe alignment.

These are the contracts between the snapshot jobs (which compute and store them), the
providers (which read them point-in-time into a pack) and the evaluators (which audit an
intent against them). All values are as of the pack's as_of and on its price basis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RegimeSnapshot:
    """The regime_snapshots row for the last closed bar at or before as_of.

    ``hmm_probs`` are FORWARD-ONLY (filtered) state probabilities at that bar, ordered like
    ``hmm_state_labels`` (states sorted by a stable statistic, so labels do not swap between
    refits); ``transition_matrix[i][j]`` is P(state j next | state i now).
    """

    symbol: str
    timeframe: str
    ts: datetime
    trend_state: str  # 'up' | 'down' | 'range'
    trend_strength: float  # ADX(14), 0-100
    vol_state: str  # 'calm' | 'normal' | 'volatile'
    vol_z: float  # z-score of realised volatility against its trailing window
    vol_expansion_flag: bool
    liquidity_state: str  # 'thin' | 'normal' | 'heavy'
    spread_proxy: float  # fraction of price
    relvol: float  # volume over the mean of the previous 20 bars
    hmm_state_id: int | None = None
    hmm_state_labels: tuple[str, ...] = ()
    hmm_probs: tuple[float, ...] = ()
    transition_matrix: tuple[tuple[float, ...], ...] = ()
    model_version: str = ""
    fitted_through: datetime | None = None  # last bar the HMM parameters were fitted on

    @property
    def hmm_state_label(self) -> str | None:
        """Return the label of the most probable state, if an HMM was fitted."""
        if self.hmm_state_id is None or not self.hmm_state_labels:
            return None
        return self.hmm_state_labels[self.hmm_state_id]

    def transition_risk(self, horizon_bars: int) -> float | None:
        """Return P(leaving the current state within ``horizon_bars``), from the filtered
        probabilities and the transition matrix: 1 - sum_i p_i * A_ii ** h. None without HMM."""
        if not self.hmm_probs or not self.transition_matrix:
            return None
        # the batch form on one row: the report's figure and the module's evidence are one
        # computation (numpy's power and Python's ** may differ in the last bit by CPU)
        import numpy as np

        from buddy.regime.markov import leave_probability

        stays = [self.transition_matrix[i][i] for i in range(len(self.hmm_probs))]
        return float(leave_probability(np.array([self.hmm_probs], dtype=np.float64),
                                       np.array([stays], dtype=np.float64),
                                       np.array([horizon_bars]))[0])


@dataclass(frozen=True, slots=True, kw_only=True)
class AnchoredVWAP:
    """A VWAP anchored at ``anchor_ts`` with +-1 and +-2 standard-deviation bands."""

    anchor: str  # 'session' | 'week' | 'month' | 'swing_high' | 'swing_low' | 'user:<name>'
    anchor_ts: datetime
    vwap: float
    upper_1: float
    lower_1: float
    upper_2: float
    lower_2: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceLevel:
    """A support or resistance level from clustered confirmed swing points."""

    price: float
    kind: str  # 'support' | 'resistance'
    touches: int
    last_touch: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyLevelsSnapshot:
    """The key_levels row for the last closed bar at or before as_of."""

    symbol: str
    timeframe: str
    ts: datetime
    prior_day_high: float | None
    prior_day_low: float | None
    prior_day_close: float | None
    pivots: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> name -> price
    anchored_vwaps: tuple[AnchoredVWAP, ...] = ()
    rolling_range_high: float | None = None
    rolling_range_low: float | None = None
    support_resistance: tuple[PriceLevel, ...] = ()
    version: str = ""

    def named_levels(self) -> dict[str, float]:
        """Return every level by a readable name ('prior_day_high', 'classic.R1', ...)."""
        out: dict[str, float] = {}
        for name in ("prior_day_high", "prior_day_low", "prior_day_close",
                     "rolling_range_high", "rolling_range_low"):
            value = getattr(self, name)
            if value is not None and math.isfinite(value):
                out[name] = value
        for method, levels in self.pivots.items():
            for name, price in levels.items():
                out[f"{method}.{name}"] = price
        for v in self.anchored_vwaps:
            out[f"avwap.{v.anchor}"] = v.vwap
        for n, level in enumerate(self.support_resistance):
            out[f"{level.kind}.{n}"] = level.price
        return out

    def between(self, low: float, high: float) -> dict[str, float]:
        """Return the named levels strictly between ``low`` and ``high``."""
        lo, hi = min(low, high), max(low, high)
        return {k: v for k, v in self.named_levels().items() if lo < v < hi}


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeframeTrend:
    """The trend read of one timeframe in the stack, from its last CLOSED bar at as_of."""

    timeframe: str
    bar_ts: datetime  # open time of the last closed bar used
    direction: str  # 'up' | 'down' | 'range'
    strength: float  # ADX(14), 0-100
    close_vs_ema50_atr: float  # (close - EMA50) / ATR14


@dataclass(frozen=True, slots=True, kw_only=True)
class MTFASnapshot:
    """Multi-timeframe alignment: the stack's trends, a score and the conflicts."""

    stack: tuple[TimeframeTrend, ...]
    alignment_score: float  # -1 (all down) .. +1 (all up), strength-weighted
    conflicts: tuple[str, ...] = ()  # e.g. '1d trend down vs 1h trend up'
