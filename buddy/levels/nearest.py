"""The nearest key level to a price, on one side of it, over rows of padded level tables.

Row i holds its levels in ``price[i]`` (NaN pads a row with fewer levels) with a tie-break
rank in ``rank[i]`` (the smaller wins: give names' sort order to break ties by name).
"Ahead" of an entry is where the trade heads (above a long's entry, below a short's), a
level at the entry itself included; "behind" is the other side, the entry excluded.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

#: Rank of padding cells: never picked over a real level.
NO_RANK = np.iinfo(np.int64).max


def nearest_level(price: np.ndarray, rank: np.ndarray, entry: np.ndarray, sign: np.ndarray,
                  *, side: Literal["ahead", "behind"], within: np.ndarray | float = np.inf
                  ) -> np.ndarray:
    """Return per row the column of the level nearest ``entry`` on ``side`` (-1: none).

    ``price``, ``rank``: (N, k); ``entry``: (N,) price; ``sign``: (N,) +1 long, -1 short;
    ``within``: the largest distance (price units, per row or one) a level may lie away.
    Ties in distance go to the smaller rank.
    """
    e, s = entry[:, None], sign[:, None]
    limit = np.broadcast_to(np.asarray(within, dtype=np.float64), entry.shape)[:, None]
    with np.errstate(invalid="ignore"):
        distance = np.abs(price - e)
        toward = s * (price - e)
        mask = ((toward >= 0) if side == "ahead" else (toward < 0)) & (distance <= limit)
    nearest = np.where(mask, distance, np.inf).min(axis=1, initial=np.inf)
    tied = mask & (distance == nearest[:, None])
    column = np.where(tied, rank, NO_RANK).argmin(axis=1) if price.shape[1] else np.zeros(
        len(entry), dtype=np.int64)
    return np.where(mask.any(axis=1), column, -1)
