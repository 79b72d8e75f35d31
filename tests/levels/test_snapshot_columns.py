"""Key-levels snapshots built column by column say exactly what the row form says of each row
(``snapshot_from_row`` over the row as Python values), NULLs and split divisors included, and
rows with the same stored support/resistance list and divisor share one tuple; the level
checks read the columns (``LevelColumns``) as they read the objects, and make none."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from buddy.context.piece_columns import PieceColumn
from buddy.context.pieces import KeyLevelsSnapshot
from buddy.levels import consolidate as cons
from buddy.levels.columns import LevelColumns, anchored_vwaps, as_utc
from buddy.levels.provider import (
    snapshot_columns,
    snapshot_from_row,
    snapshots_from_columns,
    utc_datetimes,
)

NS = 1_000_000_000
T0 = 1_545_402_600 * NS  # 2018-12-21T14:30Z
DAY = 86_400 * NS

PRICE = pa.float64()
SCHEMA = pa.schema([
    ("bar_symbol", pa.string()), ("bar_timeframe", pa.string()), ("bar_ts", pa.int64()),
    ("prior_day_high", PRICE), ("prior_day_low", PRICE), ("prior_day_close", PRICE),
    ("rolling_range_high", PRICE), ("rolling_range_low", PRICE), ("version", pa.string()),
    ("pivots", pa.struct([
        ("classic", pa.struct([("P", PRICE), ("R1", PRICE), ("S1", PRICE)])),
        ("camarilla", pa.struct([("R1", PRICE), ("S1", PRICE)]))])),
    ("anchored_vwap_levels", pa.list_(pa.struct([
        ("anchor", pa.string()), ("anchor_ts", pa.int64()), ("vwap", PRICE),
        ("upper_1", PRICE), ("lower_1", PRICE), ("upper_2", PRICE), ("lower_2", PRICE)]))),
    ("support_resistance", pa.list_(pa.struct([
        ("price", PRICE), ("kind", pa.string()), ("touches", pa.int32()),
        ("last_touch", pa.int64())]))),
])

SR = [{"price": 58.94, "kind": "support", "touches": 2, "last_touch": T0 - 300 * DAY},
      {"price": 69.7, "kind": "resistance", "touches": 6, "last_touch": T0 - 40 * DAY}]
VWAPS = [{"anchor": "week", "anchor_ts": T0 - 4 * DAY, "vwap": 73.25047771,
          "upper_1": 76.02507328, "lower_1": 70.47588213, "upper_2": 78.79966886,
          "lower_2": 67.70128655},
         {"anchor": "swing_low", "anchor_ts": -3 * DAY, "vwap": 77.36784861,
          "upper_1": 80.40199903, "lower_1": 74.3336982, "upper_2": 83.43614945,
          "lower_2": 71.29954778}]


def _row(bar: int, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "bar_symbol": "SYN", "bar_timeframe": "1d", "bar_ts": T0 + bar * DAY,
        "prior_day_high": 71.12, "prior_day_low": 69.02, "prior_day_close": 69.38,
        "rolling_range_high": 84.1, "rolling_range_low": 69.02, "version": "2.0.0",
        "pivots": {"classic": {"P": 69.84, "R1": 70.66, "S1": 68.56},
                   "camarilla": {"R1": 69.5725, "S1": 69.1875}},
        "anchored_vwap_levels": VWAPS, "support_resistance": SR}
    row.update(changes)
    return row


ROWS = [
    (_row(0), 1.0),
    (_row(1), 2.0),  # the same S/R list on another basis: its own tuple
    (_row(2), 1.0),  # the same S/R list and basis as row 0: one tuple
    (_row(3, prior_day_high=None, rolling_range_low=math.nan, version=None,
          pivots={"classic": {"P": 1.0, "R1": 2.0, "S1": 0.5}, "camarilla": None},
          anchored_vwap_levels=[], support_resistance=[]), 3.0),
    (_row(4, pivots=None, anchored_vwap_levels=None, support_resistance=None), 1.0),
    (_row(5, version="", support_resistance=[{**SR[0], "kind": None}, SR[1]]), 1.5),
    (_row(6, prior_day_close=math.inf, support_resistance=SR[1:]), 1.0),
]


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def test_each_snapshot_is_the_row_forms_and_equal_lists_share_a_tuple() -> None:
    rows = [row for row, _ in ROWS]
    divisor = np.array([d for _, d in ROWS])
    table = _table(rows)
    made = snapshots_from_columns(table, divisor, ["SYN"] * len(rows), ["1d"] * len(rows))
    for snapshot, row, d in zip(made, table.to_pylist(), divisor.tolist(), strict=True):
        alone = snapshot_from_row("SYN", "1d", row["bar_ts"], row, divisor=d)
        assert snapshot == alone
        assert repr(snapshot) == repr(alone)  # bit for bit, tzinfo included
    assert made[0].support_resistance is made[2].support_resistance
    assert made[0].support_resistance is not made[1].support_resistance
    assert made[1].support_resistance[0].price == 58.94 / 2.0
    assert made[3].pivots == {"classic": {"P": 1 / 3, "R1": 2 / 3, "S1": 0.5 / 3}}
    assert made[3].prior_day_high is None and made[3].rolling_range_low is None
    assert made[3].version == made[5].version == "2.0.0"
    assert made[4].pivots == {} and made[4].anchored_vwaps == ()
    assert made[5].support_resistance[0].kind is None  # built by the row form
    assert made[6].prior_day_close == math.inf


def test_a_null_price_fails_as_the_row_form_fails() -> None:
    row = _row(0, pivots={"classic": {"P": 1.0, "R1": None, "S1": 0.5}, "camarilla": None})
    table = _table([row])
    with pytest.raises(TypeError):
        snapshot_from_row("SYN", "1d", row["bar_ts"], table.to_pylist()[0])
    with pytest.raises(TypeError):
        snapshots_from_columns(table, np.ones(1), ["SYN"], ["1d"])


def test_no_rows_make_no_snapshots() -> None:
    assert snapshots_from_columns(_table([]), np.ones(0), [], []) == []


def test_utc_datetimes_are_the_scalar_conversions() -> None:
    ns = np.array([T0, T0, -3 * DAY, 0, T0 + 123_456_000, -1_000], dtype=np.int64)
    made = utc_datetimes(ns)
    assert [repr(x) for x in made] == [repr(as_utc(int(x))) for x in ns]
    assert made[0] is made[1]


def _table_arrays(table: cons.LevelTable) -> list[str]:
    # repr: NaN padding compares equal, and every float bit for bit
    return [repr(a.tolist()) for a in (table.code, table.price, table.strength,
                                       table.touches, table.rank, table.names)]


def _objects(columns: LevelColumns) -> list[Any]:
    # every snapshot the columns number, as objects of the row form's type
    return [columns.make(j) for j in range(columns.count)]


def _refuse(self: LevelColumns, i: int) -> KeyLevelsSnapshot:
    # in place of LevelColumns.snapshot: a check that reads the columns makes no object
    raise AssertionError(f"the snapshot of stored row {i} was made")


def _with_one_computed() -> tuple[LevelColumns, KeyLevelsSnapshot]:
    """Return the columns of ROWS followed by one snapshot computed on demand."""
    rows = [row for row, _ in ROWS]
    divisor = np.array([d for _, d in ROWS])
    alone = snapshot_from_row("SYN", "1d", rows[0]["bar_ts"], _table(rows).to_pylist()[0],
                              divisor=1.25)
    return snapshot_columns(_table(rows), divisor, ["SYN"] * len(rows), ["1d"] * len(rows),
                            [alone]), alone


@pytest.mark.parametrize("pivot_method", cons.PIVOT_METHODS)
def test_the_merge_reads_the_columns_as_it_reads_the_objects(pivot_method: str) -> None:
    columns, alone = _with_one_computed()
    assert columns.usable.tolist() == [True] * 5 + [False, True]  # row 5: the row form's
    assert list(columns.row_form) == [5] and columns.count == len(ROWS) + 1
    objects = _objects(columns)
    assert objects[-1] is alone and objects[5] is columns.row_form[5]
    # the rows: every snapshot, some twice, and rows without one (-1)
    code = np.array([6, 5, 4, 3, 2, 1, 0, 7, -1, 6, 3], dtype=np.int64)
    atr = np.array([0.5, 1.0, np.nan, 2.0, 0.0, 1.5, 0.25, 0.5, 1.0, 3.0, 2.0])
    given = {"pivot_method": pivot_method, "merge_atr": 0.25, "min_strength": 1.0}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LevelColumns, "snapshot", _refuse)
        cons._LAST_MATRICES.clear()
        from_columns = cons.level_table(columns, code, atr, **given)
        held = cons.level_table(columns, code[3:], atr[3:], **given)  # the held candidates
        assert cons._LAST_MATRICES[0][1] is columns
        every = cons._candidate_columns(columns, pivot_method)
    cons._LAST_MATRICES.clear()
    assert _table_arrays(held) == _table_arrays(cons.level_table(columns, code[3:], atr[3:],
                                                                 **given))
    cons._LAST_MATRICES.clear()
    from_objects = cons.level_table([*objects, None], np.where(code < 0, len(objects), code),
                                    atr, **given)
    assert _table_arrays(from_columns) == _table_arrays(from_objects)
    assert (from_columns.rank[from_columns.code[8]] == cons.NO_RANK).all()  # no snapshot
    by_objects = cons._candidate_columns(objects, pivot_method)
    # the same candidates (unsorted: compared by snapshot and position)
    by_place = [np.lexsort((c[1], c[0])) for c in (every, by_objects)]
    assert ([repr(c[by_place[0]].tolist()) for c in every]
            == [repr(c[by_place[1]].tolist()) for c in by_objects])
    # candidates of every source were compared (pivots of the families the rows hold)
    stored = pivot_method in ("classic", "camarilla")
    assert set(every[4].tolist()) == ({1, 2, 4, 8} if stored else {1, 2, 8})


@pytest.mark.parametrize("anchor", ["week", "swing_low", "month"])
def test_anchored_vwaps_read_the_columns_as_the_objects(anchor: str) -> None:
    columns, _ = _with_one_computed()
    objects = _objects(columns)
    code = np.array([7, 6, 5, 4, 3, 2, 1, 0, -1, 0], dtype=np.int64)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LevelColumns, "snapshot", _refuse)
        from_columns = anchored_vwaps(columns, code, anchor)
    from_objects = anchored_vwaps([*objects, None], np.where(code < 0, len(objects), code),
                                  anchor)
    assert repr([a.tolist() for a in from_columns]) == repr([a.tolist() for a in from_objects])
    found = np.isfinite(from_columns[0])
    # rows 3 and 4 (code 4, 3) hold no VWAPs; the computed one holds both of row 0's
    assert found.tolist() == ([False] * 10 if anchor == "month" else
                              [True, True, True, False, False, True, True, True, False, True])


#: Row 3: pivots R1 and S1 (P is no level), prior-day low and range high (its prior-day high
#: is NULL, its range low NaN); row 4: no pivots, prior-day low and range low at one price.
NAMES_WITHOUT_CLUSTERS = ["classic pivot R1", "classic pivot S1", "prior-day high",
                          "prior-day low", "prior-day low / range low", "range high"]


def test_the_merge_reads_columns_without_clusters_or_pivots() -> None:
    rows = [ROWS[3][0], ROWS[4][0]]
    columns = snapshot_columns(_table(rows), np.array([3.0, 1.0]), ["SYN"] * 2, ["1d"] * 2)
    code, atr = np.array([0, 1, 1]), np.array([1.0, np.nan, 0.5])
    given = {"pivot_method": "classic", "merge_atr": 0.25, "min_strength": 1.0}
    cons._LAST_MATRICES.clear()
    from_objects = cons.level_table(_objects(columns), code, atr, **given)
    cons._LAST_MATRICES.clear()
    from_columns = cons.level_table(columns, code, atr, **given)
    assert _table_arrays(from_columns) == _table_arrays(from_objects)
    assert from_columns.names.tolist() == NAMES_WITHOUT_CLUSTERS


def test_a_piece_column_makes_each_snapshot_once_as_the_row_form_makes_it() -> None:
    columns, alone = _with_one_computed()
    rows = [row for row, _ in ROWS]
    pieces = PieceColumn(np.array([1, -1, 1, 7, 0]), columns.count, columns.make, columns)
    assert pieces[1] is None and pieces[3] is alone
    assert pieces[0] is pieces[2]  # made once, kept
    assert type(pieces[0]) is KeyLevelsSnapshot
    assert pieces[0] == snapshot_from_row("SYN", "1d", rows[1]["bar_ts"],
                                          _table(rows).to_pylist()[1], divisor=2.0)
    assert pieces[4] != pieces[0]
    assert pieces[[4, 2]][1] is pieces[0]  # taken rows share the made objects
