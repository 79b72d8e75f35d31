"""The replay floor's numpy joins and windows against plain loops (the oracles)."""

from __future__ import annotations

import numpy as np

from benchmarks.replay_floor import last_at_or_before, window_mean


def _oracle_last(table_key: np.ndarray, table_codes: np.ndarray, codes: np.ndarray,
                 probe: np.ndarray) -> np.ndarray:
    out = np.full(len(probe), -1)
    for i, (code, key) in enumerate(zip(codes, probe, strict=True)):
        best = None
        for row, (c, k) in enumerate(zip(table_codes, table_key, strict=True)):
            if c == code and k <= key and (best is None or k >= table_key[best]):
                best = row
        if best is not None:
            out[i] = best
    return out


def test_last_at_or_before_matches_a_loop_in_stored_and_shuffled_order() -> None:
    rng = np.random.default_rng(4)
    span = 1_000
    table_codes = np.sort(rng.integers(0, 4, 60))
    times = np.concatenate([np.sort(rng.choice(span - 1, (table_codes == c).sum(),
                                               replace=False)) for c in range(4)])
    table_key = table_codes * span + times
    codes = rng.integers(-1, 5, 200)  # -1: a series the table lacks; 4: one it has no rows of
    probe = codes * span + rng.integers(0, span - 1, 200)
    expected = _oracle_last(table_key, table_codes, codes, probe)
    assert (last_at_or_before(table_key, table_codes, codes, probe) == expected).all()
    shuffle = rng.permutation(len(table_key))
    found = last_at_or_before(table_key[shuffle], table_codes[shuffle], codes, probe)
    assert (np.where(found >= 0, shuffle[np.maximum(found, 0)], -1) == expected).all()
    assert (expected == -1).any() and (expected >= 0).any()


def test_window_mean_stays_inside_its_series() -> None:
    values = np.arange(1.0, 11.0)
    series_start = np.array([0, 0, 0, 0, 4, 4, 4, 4, 4, 4])
    end = np.arange(10)
    got = window_mean(np.cumsum(values), end, series_start, 3)
    expected = [values[max(e - 2, s):e + 1].mean() for e, s in zip(end, series_start,
                                                                     strict=True)]
    assert np.allclose(got, expected)
