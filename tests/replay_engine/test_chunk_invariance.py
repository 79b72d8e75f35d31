"""A run's stored results do not depend on how it is cut into chunks: the same intents
replayed in one chunk or in chunks of any size, or in one chunk evaluated in parts
(``EVALUATION_BATCH_SIZE``), store the same values, bit for bit (-0.0 is not 0.0, NaN is not
NULL), in the result rows (module scores of skipped modules and outcome columns included) and
in the issues with their evidence."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import replay.engine
from buddy.config import ScoringConfig
from buddy.store import Store
from replay.engine import issues_frame, results_frame, run_replay
from replay.executors import SerialExecutor
from replay.intents import generate_intents

from .conftest import ACCOUNT, Reference, copy_store

#: Chunk sizes besides one chunk for the whole run: a few chunks, many odd ones.
CHUNK_SIZES = (250, 13)
#: Intents a worker evaluates at once, in a run of one chunk: many parts, the last short.
EVALUATION_PARTS = 97


def _bits(value: Any) -> Any:
    """Return a stored value as compared: floats by their bits, NaT as None."""
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, list):
        return [_bits(v) for v in value]
    return None if value is pd.NaT else value


def _is_nan(value: Any) -> bool:
    return value is not None and math.isnan(struct.unpack("<d", value[1])[0])


def _stored(store: Store, run_id: str) -> dict[str, dict[str, list[Any]]]:
    """Return what the run stored, by intent: its result rows as stored (run key apart),
    and its results and issues (with their evidence) as the public readers give them."""
    with store.connect(read_only=True) as con:
        rows = con.sql(
            "SELECT r.* EXCLUDE (run_key) FROM replay_results r JOIN replay_runs u "
            "ON u.run_key = r.run_key WHERE u.run_id = ? ORDER BY r.intent_no",
            params=[run_id]).to_arrow_table()
    frames = {"results": results_frame(store, run_id),
              "issues": issues_frame(store, run_id, evidence=True)}
    stored = {"rows": {name: [_bits(v) for v in rows.column(name).to_pylist()]
                       for name in rows.column_names}}
    for part, frame in frames.items():
        frame = frame.drop(columns=["run_id"])
        stored[part] = {str(c): [_bits(v) for v in frame[c].astype(object).tolist()]
                        for c in frame.columns}
    return stored


@pytest.fixture(scope="module")
def many(reference: Reference) -> pd.DataFrame:
    """The reference's real intents three times over (new ids): past the row count from
    which a chunk encodes shared facts once; and every bar of MSFT's last weeks, whose
    trades the data ends inside (outcome columns NULL)."""
    parts = []
    for copy in range(3):
        part = reference.intents.copy()
        part["intent_id"] = part["intent_id"] + f"-copy{copy}"
        parts.append(part)
    coverage = reference.store.bar_coverage().set_index(["symbol", "timeframe"])
    end = pd.Timestamp(coverage.loc[("MSFT", "1d"), "last_ts_close"])
    parts.append(generate_intents(reference.store, "random", symbols=["MSFT"], timeframe="1d",
                                  start=end - pd.Timedelta(days=30), end=end, seed=5,
                                  entry_probability=1.0))
    return pd.concat(parts, ignore_index=True)


def test_the_chunk_size_changes_nothing_a_run_stores(
        reference: Reference, many: pd.DataFrame, config: ScoringConfig,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = copy_store(reference.store, tmp_path)
    runs: dict[int | str, Any] = {}
    for chunk_size in (len(many), *CHUNK_SIZES):
        run = run_replay(store, many, config=config, name=f"chunks-{chunk_size}",
                         mode="batch", executor=SerialExecutor(), chunk_size=chunk_size,
                         providers=ACCOUNT, progress=False)
        runs[chunk_size] = _stored(store, run.run_id)
    assert len(many) > 3 * EVALUATION_PARTS and len(many) % EVALUATION_PARTS
    monkeypatch.setattr(replay.engine, "EVALUATION_BATCH_SIZE", EVALUATION_PARTS)
    run = run_replay(store, many, config=config, name="parts", mode="batch",
                     executor=SerialExecutor(), chunk_size=len(many), providers=ACCOUNT,
                     progress=False)
    runs["parts"] = _stored(store, run.run_id)
    whole = runs[len(many)]
    rows = whole["rows"]
    assert len(rows["intent_no"]) == len(many)
    # the comparison covers what differed once: skipped modules' NaN scores beside NULL
    # ones, outcome columns with NULLs, many issues of one code sharing facts
    scores = [s for row in rows["module_scores"] for s in row]
    assert any(_is_nan(s) for s in scores)
    assert None in rows["exit_ts"] and None in rows["realized_r"]
    assert any(v is not None for v in rows["realized_r"])
    assert len(whole["issues"]["code"]) > 512
    for cut in (*CHUNK_SIZES, "parts"):
        for part in ("rows", "results", "issues"):
            for column, values in whole[part].items():
                assert runs[cut][part][column] == values, (cut, part, column)
