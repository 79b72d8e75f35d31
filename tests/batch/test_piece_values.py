"""BatchContext.piece_values: one value per row from each distinct piece, numeric or object."""

from __future__ import annotations

import numpy as np

from buddy.batch.context import from_packs
from tests import factories as f


def test_piece_values_object_dtype_reads_each_row_and_the_default_where_missing() -> None:
    packs = [f.pack(regime=f.regime(trend_state="up")),
             f.pack(missing={"regime": "no snapshot"}),
             f.pack(regime=f.regime(trend_state="down"))]
    ctx = from_packs([f.intent()] * 3, packs)

    states = ctx.piece_values("regime", lambda r: r.trend_state, dtype=object, default=None)

    assert states.dtype == object
    assert states.tolist() == ["up", None, "down"]


def test_piece_values_float_dtype_gives_nan_where_missing() -> None:
    packs = [f.pack(regime=f.regime(vol_z=1.5)), f.pack(missing={"regime": "no snapshot"})]
    ctx = from_packs([f.intent()] * 2, packs)

    vol_z = ctx.piece_values("regime", lambda r: r.vol_z)

    assert vol_z[0] == 1.5
    assert np.isnan(vol_z[1])
