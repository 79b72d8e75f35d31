"""Evidence helpers: numbers an evaluator puts behind an issue, and how they read.

All functions are pure. Trailing statistics use only the window given (callers pass values
up to as_of), and say how many observations they rest on.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from buddy.domain import Fact


@dataclass(frozen=True, slots=True)
class TrailingStat:
    """A value placed against its trailing window: z-score and percentile rank, with n."""

    value: float
    mean: float
    std: float
    z: float
    pctile: float  # 0-100: share of window values <= value
    n: int


def trailing_stat(window: Sequence[float] | np.ndarray, value: float) -> TrailingStat | None:
    """Return ``value``'s z-score and percentile rank against ``window`` (NaNs dropped).

    None when fewer than 2 finite window values exist (a z-score would be a guess). The
    standard deviation is the sample one (ddof=1); a flat window gives z = 0.
    """
    arr = np.asarray(window, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size < 2 or not math.isfinite(value):
        return None
    mean = float(arr.mean())
    std = float(arr.std(ddof=1))
    z = 0.0 if std == 0 else (value - mean) / std
    pctile = 100.0 * float(np.count_nonzero(arr <= value)) / arr.size
    return TrailingStat(value=float(value), mean=mean, std=std, z=z, pctile=pctile, n=arr.size)


def breaches(value: float, threshold: float, *, above: bool) -> bool:
    """Return True when ``value`` is beyond ``threshold`` (above it, or below it)."""
    return value > threshold if above else value < threshold


def delta_pct(value: float, reference: float) -> float:
    """Return (value - reference) / |reference| in percent (NaN for a zero reference)."""
    return math.nan if reference == 0 else 100.0 * (value - reference) / abs(reference)


_TICK_DIRECTIONS = ("nearest", "down", "up")


def round_to_tick(price: float, tick: float, *, direction: str = "nearest") -> float:
    """Return ``price`` on the tick grid: 'nearest', 'down' or 'up'."""
    if direction not in _TICK_DIRECTIONS:
        raise KeyError(direction)
    up = None if direction == "nearest" else direction == "up"
    return float(to_tick(np.array([price], dtype=np.float64), tick, up=up)[0])


def to_tick(prices: Any, tick: Any, *, up: Any = None) -> np.ndarray:
    """Return ``prices`` on the tick grid (``tick``: one or one per price), rounded up where
    ``up``, down where not (``up``: one flag or one per price; None: to the nearest tick),
    written to two decimals finer than the tick so that float noise never shows."""
    prices = np.asarray(prices, dtype=np.float64)
    tick = np.broadcast_to(np.asarray(tick, dtype=np.float64), prices.shape)
    steps = np.round(prices / tick, 9)  # a price a hair off its tick stays on it
    on_grid = (np.rint(steps) if up is None else np.where(up, np.ceil(steps), np.floor(steps))
               ) * tick
    decimals = np.maximum(0, 2 - np.floor(np.log10(tick))).astype(np.int64)
    out = np.empty_like(on_grid)
    for d in np.unique(decimals).tolist():
        at = decimals == d
        out[at] = np.round(on_grid[at], d)
    return out


#: Below this many ticks the float quotient is exact to far better than the 1e-6 tolerance.
_FLOAT_TICK_STEPS = 1e9
_TICK_TOLERANCE = 1e-6


def is_on_tick(price: float, tick: float) -> bool:
    """Return True when ``price`` is a whole number of ticks (to 1e-6 of a tick).

    Large quotients (``price / tick`` of 1e9 or more, e.g. 500000000.0 on a 0.00001 tick) are
    judged in exact decimal arithmetic on the numbers as written (their shortest repr), where
    float division has lost the fraction; a non-finite price is on no tick. Raises ValueError
    for a tick that is not a finite number above 0.
    """
    if not (math.isfinite(tick) and tick > 0):
        raise ValueError(f"tick: must be a finite number above 0 (got {tick!r})")
    if not math.isfinite(price):
        return False
    steps = price / tick
    if abs(steps) < _FLOAT_TICK_STEPS:
        return abs(steps - round(steps)) < _TICK_TOLERANCE
    with decimal.localcontext() as context:
        context.prec = 60
        exact = decimal.Decimal(repr(float(price))) / decimal.Decimal(repr(float(tick)))
        return abs(exact - exact.to_integral_value()) < decimal.Decimal(repr(_TICK_TOLERANCE))


_UNIT_FORMATS = {
    "%": "{:.2f}%",
    "ATR": "{:.2f} ATR",
    "R": "{:.2f}R",
    "bars": "{:g} bars",
    "days": "{:g} days",
    "sessions": "{:g} sessions",
    "z": "z={:.2f}",

    "ratio": "{:.2f}x",
    "shares": "{:,.0f} shares",
    "units": "{:,.0f} units",
    "features": "{:g} features",
}


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


_COUNT_UNITS = {"bars": "bar", "days": "day", "sessions": "session", "features": "feature"}


def format_value(value: float | int | str | bool | None, unit: str = "") -> str:
    """Return a value with its unit as a trader reads it ('0.40 ATR', '1.8R', 'USD 1,250')."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    if unit == "pctile":
        if round(value) == 0 and value != 0:  # keep a small non-zero rank visibly non-zero
            return f"{value:.1f} pctile"
        return f"{_ordinal(round(value))} pctile"
    if unit in _COUNT_UNITS and value == 1:
        return f"1 {_COUNT_UNITS[unit]}"
    if unit in _UNIT_FORMATS:
        return _UNIT_FORMATS[unit].format(value)
    if unit == "price":
        return f"{value:,.{_price_decimals(value)}f}"
    if len(unit) == 3 and unit.isupper():  # a currency
        return f"{unit} {value:,.2f}"
    text = f"{value:,.4g}" if isinstance(value, float) else f"{value:,}"
    return f"{text} {unit}".strip()


def _price_decimals(value: float) -> int:
    magnitude = abs(value)
    cap = 2 if magnitude >= 100 else 3 if magnitude >= 10 else 5
    for decimals in range(cap + 1):
        if abs(round(value, decimals) - value) < 1e-9:
            return max(decimals, 2 if magnitude >= 1 else decimals)
    return cap


def format_fact_value(fact: Fact) -> str:
    """Return the fact's value as text, never reading equal to its threshold when it is not
    (1.998R against a 2R minimum reads '1.998R', not '2.00R')."""
    text = format_value(fact.value, fact.unit)
    value, threshold = fact.value, fact.threshold
    if (threshold is None or not isinstance(value, int | float) or isinstance(value, bool)
            or value == threshold or text != format_value(threshold, fact.unit)):
        return text
    for decimals in range(3, 9):
        nearer = round(float(value), decimals)
        if nearer != round(float(threshold), decimals):
            return format_value(nearer, fact.unit).replace(
                f"{round(nearer, 2):.2f}", f"{nearer:.{decimals}f}", 1)
    return text


def format_fact(fact: Fact) -> str:
    """Return 'name value unit' with the threshold when there is one."""
    text = f"{fact.name} {format_fact_value(fact)}"
    if fact.threshold is not None:
        text += f" (threshold {format_value(fact.threshold, fact.unit)})"
    return text
