"""Regime snapshots built over columns (``snapshots_from_table``, the batch form's and the
on-demand path's builder) equal the row-by-row ``incomplete_reason`` + ``snapshot_from_row``
bit for bit: warming-up rows with each set of missing states, rows with and without an HMM,
times in other zones and with microseconds, JSON text and list probabilities."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from buddy.regime.snapshots import (
    incomplete_reason,
    snapshot_from_row,
    snapshots_from_table,
)

T0 = datetime(2019, 3, 8, 21, 0, 0, tzinfo=UTC)
FIT_A = "[[0.9387891223465176, 0.06121087765348244], [0.03115289819215104, 1]]"
FIT_B = "[[0.5, 0.5], [0.1, 0.9]]"


def _rows() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i in range(12):
        hmm = i % 4 != 3  # every fourth row has no model in force
        rows.append({
            "symbol": "S", "timeframe": "1d",
            "ts": T0 + timedelta(days=i, microseconds=123_457 * (i % 2)),
            "trend_state": None if i == 1 else "up", "trend_strength": 25.5 + i,
            "vol_state": None if i in (1, 2) else "calm", "vol_z": -0.25 * i,
            "vol_expansion_flag": None if i == 5 else bool(i % 2),
            "liquidity_state": "normal", "spread_proxy": 0.01, "relvol": 1.1,
            "hmm_state_id_optional": i % 2 if hmm else None,
            "hmm_probs_json": f"[{0.25 + i / 100}, {0.75 - i / 100}]" if hmm else None,
            "hmm_state_labels_json": '["calm", "volatile"]' if hmm else None,
            "transition_json": (FIT_A if i < 6 else FIT_B) if hmm else None,
            "model_version": "hmm-x" if hmm else None,
            "fitted_through": datetime(2019, 1, 2, 14, 30, tzinfo=UTC) if hmm else None})
    return rows


def _table(rows: list[dict[str, object]], tz: str = "UTC", probs_as_lists: bool = False,
           ts: str = "ts") -> pa.Table:
    stamp = pa.timestamp("us", tz=tz)
    columns = {name: [r[name] for r in rows] for name in rows[0]}
    probs = columns["hmm_probs_json"]
    arrays = {
        "symbol": pa.array(columns["symbol"]), "timeframe": pa.array(columns["timeframe"]),
        ts: pa.array(columns["ts"], stamp),
        **{c: pa.array(columns[c], pa.string()) for c in (
            "trend_state", "vol_state", "liquidity_state", "hmm_state_labels_json",
            "transition_json", "model_version")},
        **{c: pa.array(columns[c], pa.float64()) for c in (
            "trend_strength", "vol_z", "spread_proxy", "relvol")},
        "vol_expansion_flag": pa.array(columns["vol_expansion_flag"], pa.bool_()),
        "hmm_state_id_optional": pa.array(columns["hmm_state_id_optional"], pa.int32()),
        "hmm_probs_json": (pa.array([None if p is None else eval(str(p)) for p in probs],
                                    pa.list_(pa.float64())) if probs_as_lists
                           else pa.array(probs, pa.string())),
        "fitted_through": pa.array(columns["fitted_through"], stamp),
    }
    return pa.table(arrays)


def _alone(row: dict[str, object]) -> tuple[object, object]:
    reason = incomplete_reason(row)
    return (None, reason) if reason else (snapshot_from_row(row), None)


@pytest.mark.parametrize(("tz", "probs_as_lists"), [
    ("UTC", False), ("America/New_York", False), ("UTC", True)])
def test_columns_equal_rows_built_alone(tz: str, probs_as_lists: bool) -> None:
    table = _table(_rows(), tz=tz, probs_as_lists=probs_as_lists)
    made = snapshots_from_table(table)
    alone = [_alone(row) for row in table.to_pylist()]
    assert [pickle.dumps(m) for m in made] == [pickle.dumps(a) for a in alone]
    assert sum(p is None for p, _ in made) == 3  # rows 1, 2 and 5 are warming up
    assert made[1][1] != made[2][1]  # a reason names the states it misses
    assert made[3][0] is not None and made[3][0].hmm_state_id is None
    assert made[4][0] is not None and made[4][0].ts.tzinfo is UTC


def test_columns_share_a_fits_parts_and_read_the_bar_time_column_named() -> None:
    made = snapshots_from_table(_table(_rows(), ts="bar_ts"), {}, ts="bar_ts")
    pieces = [p for p, _ in made]
    assert pieces[0] is not None and pieces[4] is not None and pieces[6] is not None
    assert pieces[0].transition_matrix is pieces[4].transition_matrix
    assert pieces[0].transition_matrix is not pieces[6].transition_matrix
    assert pieces[0].fitted_through is pieces[6].fitted_through
    assert pieces[4].ts == T0 + timedelta(days=4)


def test_a_null_number_in_a_complete_row_fails_as_the_row_does() -> None:
    rows = _rows()
    rows[0]["relvol"] = None
    with pytest.raises(TypeError):
        _alone(_table(rows).to_pylist()[0])
    with pytest.raises(TypeError):
        snapshots_from_table(_table(rows))


def test_an_empty_table_gives_no_rows() -> None:
    assert snapshots_from_table(_table(_rows()).slice(0, 0)) == []
