"""The columnar reasonability rules against a plain loop that states them one bar at a time."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from buddy.data.reasonability import ReasonabilityConfig, check_reasonability

CFG = ReasonabilityConfig()


def _median_or_nan(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.median(finite)) if len(finite) >= CFG.min_history else math.nan


def oracle(bars: pd.DataFrame, allowed: set[pd.Timestamp]) -> set[tuple[int, str]]:
    """Return (row, rule) of one series in time order, every bar usable, no splits."""
    h, low, c, v = (bars[k].tolist() for k in ("high", "low", "close", "volume"))
    n = len(bars)
    exempt = [s in allowed for s in bars["session"]]
    start = [0] * n
    for i in range(1, n):
        start[i] = i if exempt[i] else start[i - 1]
    end = {s: max(i for i in range(n) if start[i] == s) + 1 for s in set(start)}

    def reference(values: list[float], i: int) -> float:
        s = start[i]
        prior = _median_or_nan(values[max(s, i - CFG.window):i])
        if not math.isnan(prior):
            return prior
        return _median_or_nan(values[s:min(s + CFG.window, end[s])])

    def log_range(i: int, prev: float | None) -> float:
        top = h[i] if prev is None else max(h[i], prev)
        bottom = low[i] if prev is None else min(low[i], prev)
        return math.log(top / bottom)

    ranges = [log_range(i, c[i - 1] if i else None) for i in range(n)]
    jump, far, found = [False] * n, [False] * n, set()
    refs = [reference(ranges, i) for i in range(n)]
    for i in range(n):
        ref_close = reference(c, i)
        if not exempt[i] and not math.isnan(refs[i]):
            jump[i] = ranges[i] / max(refs[i], CFG.min_reference_range) > CFG.jump_multiple
        if not exempt[i] and not math.isnan(ref_close):
            far[i] = max(h[i] / ref_close, ref_close / low[i]) > CFG.max_price_ratio
        ref_volume = reference(v, i)
        if not exempt[i] and ref_volume > 0 and v[i] / ref_volume > CFG.volume_multiple:
            found.add((i, "VOLUME_OUTLIER"))
    for i in range(n):
        if far[i]:
            found.add((i, "PRICE_FAR_FROM_SERIES"))
        if not jump[i]:
            continue
        if i and (jump[i - 1] or far[i - 1]):
            clean = [c[j] for j in range(i) if not (jump[j] or far[j])]
            back = log_range(i, clean[-1] if clean else None)
            if back / max(refs[i], CFG.min_reference_range) <= CFG.jump_multiple:
                continue
        found.add((i, "PRICE_JUMP"))
    return found


def random_series(seed: int) -> tuple[pd.DataFrame, set[pd.Timestamp]]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 160))
    sessions = pd.bdate_range("2020-01-01", periods=n)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.015, n)))
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, n)))
    volume = rng.lognormal(12, 0.4, n)
    for row in rng.choice(n, size=int(rng.integers(0, 5)), replace=False):
        factor = float(rng.choice([0.01, 0.2, 0.5, 3.0, 20.0, 100.0]))
        if rng.random() < 0.5:  # a whole bar keyed wrong
            open_[row], high[row], low[row], close[row] = (x * factor for x in (
                open_[row], high[row], low[row], close[row]))
        elif factor > 1:
            high[row] *= factor
        else:
            low[row] *= factor
    for row in rng.choice(n, size=int(rng.integers(0, 3)), replace=False):
        volume[row] *= float(rng.choice([50.0, 500.0]))
    if rng.random() < 0.5:  # a real level shift somewhere, sometimes named
        at = int(rng.integers(1, n))
        scale = float(rng.choice([0.25, 4.0]))
        open_[at:], high[at:], low[at:], close[at:] = (
            x[at:] * scale for x in (open_, high, low, close))
    allowed = {sessions[i] for i in rng.choice(n, size=int(rng.integers(0, 3)), replace=False)}
    bars = pd.DataFrame({
        "symbol": "RND", "timeframe": "1d", "ts": sessions.tz_localize("UTC"),
        "ts_close": sessions.tz_localize("UTC") + pd.Timedelta(hours=6),
        "session": sessions, "open": open_, "high": high, "low": low, "close": close,
        "volume": volume})
    return bars, allowed


@pytest.mark.parametrize("seed", range(40))
def test_the_rules_match_the_plain_loop(seed: int) -> None:
    bars, allowed = random_series(seed)
    result = check_reasonability(bars, allow=sorted(allowed))
    found = {(int(r), str(rule)) for r, rule in zip(result.report.violations["row"],
                                                     result.report.violations["rule"],
                                                     strict=True)}
    assert found == oracle(bars, allowed)


def test_the_oracle_corpus_exercises_every_relative_rule() -> None:
    fired: set[str] = set()
    for seed in range(40):
        fired |= {rule for _, rule in oracle(*random_series(seed))}
    assert fired == {"PRICE_JUMP", "PRICE_FAR_FROM_SERIES", "VOLUME_OUTLIER"}
