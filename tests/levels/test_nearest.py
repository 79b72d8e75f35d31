"""The nearest-level search equals a plain min over each row's levels (ties by rank), on
random tables with padding, ties, levels at the entry and a distance limit."""

from __future__ import annotations

import numpy as np

from buddy.levels.nearest import NO_RANK, nearest_level


def plain(prices: list[float], ranks: list[int], entry: float, sign: int, side: str,
          within: float) -> int:
    """The loop the column form must equal."""
    found = [(abs(p - entry), r, k) for k, (p, r) in enumerate(zip(prices, ranks, strict=True))
             if not np.isnan(p) and abs(p - entry) <= within
             and (sign * (p - entry) >= 0 if side == "ahead" else sign * (entry - p) > 0)]
    return min(found)[2] if found else -1


def test_equals_a_plain_min_over_each_rows_levels() -> None:
    rng = np.random.default_rng(7)
    n, k = 400, 9
    entry = np.round(rng.uniform(95, 105, n), 1)
    price = np.round(rng.uniform(90, 110, (n, k)), 1)  # one decimal: ties and hits happen
    price[:, -1] = entry  # a level at the entry: ahead, never behind
    price[rng.random((n, k)) < 0.3] = np.nan
    rank = np.argsort(rng.random((n, k)), axis=1).astype(np.int64)
    rank[np.isnan(price)] = NO_RANK
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    within = rng.uniform(0.5, 8, n)
    for side in ("ahead", "behind"):
        for limit in (within, np.inf):
            got = nearest_level(price, rank, entry, sign, side=side, within=limit)
            lim = np.broadcast_to(limit, (n,))
            want = [plain(price[i].tolist(), rank[i].tolist(), entry[i], int(sign[i]), side,
                          lim[i]) for i in range(n)]
            assert got.tolist() == want, side


def test_no_levels_at_all() -> None:
    entry = np.array([100.0, 50.0])
    got = nearest_level(np.empty((2, 0)), np.empty((2, 0), dtype=np.int64), entry,
                        np.array([1.0, -1.0]), side="ahead")
    assert got.tolist() == [-1, -1]
