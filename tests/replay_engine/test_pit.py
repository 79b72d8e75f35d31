"""Point-in-time: a replay reads nothing after each intent's as_of. Replaying the intents
up to a cut on a store that holds only the bars closed by then (features recomputed from that
truncated history) gives the same verdicts, module by module and issue by issue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from buddy.config import ScoringConfig
from buddy.store import Store
from replay.engine import issues_frame, module_results_frame, results_frame, run_replay
from replay.executors import SerialExecutor

from .conftest import ACCOUNT, Reference, copy_store, with_replay_user

CONTEXT_COLUMNS = ["intent_id", "overall_score", "overall_severity", "n_issues"]


@pytest.mark.parametrize("symbol, cut", [
    ("AAPL", "2005-03-01"),  # the first session after the 2:1 split of 2005-02-28
    ("MSFT", None),  # the median intent's as_of
])
@pytest.mark.parametrize("mode", ["batch", "intent"])
def test_a_store_cut_at_the_last_as_of_gives_the_same_verdicts(
        reference: Reference, config: ScoringConfig,
        truncated_store: Callable[[str, datetime], Store], tmp_path: Path,
        symbol: str, cut: str | None, mode: str) -> None:
    intents = reference.intents
    series = intents[(intents["symbol"] == symbol) & (intents["timeframe"] == "1d")]
    as_ofs = sorted(series["as_of"].unique())
    last_as_of = (as_ofs[len(as_ofs) // 2] if cut is None else
                  next(t for t in as_ofs if t.normalize() == pd.Timestamp(cut, tz="UTC")))
    # the intents of the last six decision times up to the cut, the cut's own bar included
    chosen = [t for t in as_ofs if t <= last_as_of][-6:]
    mine = series[series["as_of"].isin(chosen)]
    store = with_replay_user(copy_store(truncated_store(symbol, last_as_of.to_pydatetime()),
                                        tmp_path))
    assert store.bars(symbol, "1d")["ts_close"].max() == last_as_of

    cut_run = run_replay(store, mine, config=config, name="cut", mode=mode,
                         executor=SerialExecutor(), providers=ACCOUNT, progress=False,
                         label=False)

    ids = set(mine["intent_id"])

    def rows(read: Callable[[Store, str], pd.DataFrame], of: Store, run_id: str,
             columns: list[str] | None = None) -> pd.DataFrame:
        frame = read(of, run_id)
        frame = frame[frame["intent_id"].isin(ids)].drop(columns="run_id")
        frame = frame[columns] if columns else frame
        return frame.sort_values(list(frame.columns[:3])).reset_index(drop=True)

    for read, columns in ((results_frame, CONTEXT_COLUMNS), (module_results_frame, None),
                          (issues_frame, None)):
        pd.testing.assert_frame_equal(rows(read, store, cut_run.run_id, columns),
                                      rows(read, reference.store, reference.run_id, columns))
    assert len(mine) >= 4
