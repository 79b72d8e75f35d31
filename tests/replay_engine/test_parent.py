"""The run's parent process: the workers label their chunk's outcomes (the parent only
writes), and a new run is written once its first chunk is back, whole, as failed when that
chunk fails."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from buddy.config import ScoringConfig, default_scoring_config
from buddy.context.builder import DEFAULT_LOOKBACK_BARS
from buddy.store import Store
from buddy.store.core import insert_frame
from replay.engine import (
    ChunkTask,
    ReplayError,
    config_codes,
    config_numbering,
    context_spec,
    evaluate_chunk,
    intents_hash,
    normalize_intents,
    replay_run_id,
    result_table_hash,
    results_frame,
    run_replay,
    write_chunk,
)
from replay.executors import LocalProcessExecutor, SerialExecutor
from replay.intents import TRADE_COLUMNS, load_outcome_inputs
from replay.model import EXIT_REASONS, INTENT_COLUMNS, OUTCOME_COLUMNS
from replay.outcomes import OutcomeRules, label_outcomes, label_with_trades

from .conftest import ACCOUNT, Reference, copy_store

OUTCOMES = [c for c in OUTCOME_COLUMNS if c != "intent_id"]


def _trades(intents: pd.DataFrame) -> pd.DataFrame:
    """Two closed trades: one naming its intent (linked_intent_id), one named by its intent
    (the intents' linked_trade_id, set by the caller on ``intents.iloc[5]``)."""
    first, fifth = intents.iloc[0], intents.iloc[5]
    rows = []
    for trade_id, intent, linked, exit_move in (("t-0", first, first["intent_id"], 2.0),
                                                ("t-5", fifth, None, -1.0)):
        sign = 1.0 if intent["side"] == "long" else -1.0
        risk = abs(intent["proposed_entry"] - intent["proposed_stop"])
        rows.append({
            "trade_id": trade_id, "user_id": intent["user_id"], "symbol": intent["symbol"],
            "side": intent["side"], "open_ts": pd.Timestamp(intent["as_of"]),
            "close_ts": pd.Timestamp(intent["as_of"]) + pd.Timedelta(days=3),
            "avg_entry": intent["proposed_entry"],
            "avg_exit": intent["proposed_entry"] + sign * exit_move * risk, "qty": 1.0,
            "pnl": exit_move * risk, "pnl_r": np.nan, "fees": 0.0, "slippage_est": 0.0,
            "outcome_label": None, "tags_json": None, "linked_intent_id": linked})
    return pd.DataFrame(rows, columns=list(TRADE_COLUMNS))


def test_outcomes_labelled_chunk_by_chunk_in_the_workers_equal_one_labelling_of_the_run(
        subset_reference: Reference, config: ScoringConfig, tmp_path: Path,
        local_executor: LocalProcessExecutor) -> None:
    store = copy_store(subset_reference.store, tmp_path)
    intents = subset_reference.intents.copy()
    intents["linked_trade_id"] = None
    intents.loc[5, "linked_trade_id"] = "t-5"
    trades = _trades(intents)
    rules = OutcomeRules(fill_window=2, gap_rule="conservative")
    # chunks of 7 cut series apart; two processes label them
    run = run_replay(store, intents, config=config, name="labelled", mode="batch",
                     executor=local_executor, chunk_size=7, providers=ACCOUNT,
                     progress=False, trades=trades, outcome_rules=rules)
    stored = results_frame(store, run.run_id).set_index("intent_id")

    # the oracle: every intent at once, over each series' bars from the run's first as_of
    frame = normalize_intents(intents)
    bars, actions = load_outcome_inputs(store, frame)
    expected = label_with_trades(label_outcomes(frame, bars, actions, rules=rules), trades,
                                 frame).set_index("intent_id")
    assert (expected["outcome_source"] == "trade").sum() == 2
    pd.testing.assert_frame_equal(
        stored.loc[expected.index, OUTCOMES].reset_index(drop=True),
        expected.loc[:, OUTCOMES].reset_index(drop=True), check_dtype=False)


def test_a_chunk_labelled_by_its_worker_is_written_as_it_comes(
        subset_reference: Reference, empty_store: Store) -> None:
    config = default_scoring_config()
    chunk = normalize_intents(subset_reference.intents).iloc[:4].reset_index(drop=True)
    chunk["intent_no"] = np.arange(4, dtype=np.int32)
    task = ChunkTask(chunk_no=0, db_path=str(subset_reference.store.path), mode="batch",
                     config_json=config.to_json(), lookback_bars=100,
                     providers=tuple(ACCOUNT.items()), intents=chunk,
                     outcome_rules=OutcomeRules())
    rows = evaluate_chunk(task)
    bars, actions = load_outcome_inputs(subset_reference.store, chunk)
    expected = label_outcomes(chunk.loc[:, list(INTENT_COLUMNS)], bars, actions)
    coded = [EXIT_REASONS.index(reason) for reason in expected["exit_reason"]]
    carried = rows.results.select(["exit_reason", "realized_r", "bars_held"]).to_pandas()
    assert carried["exit_reason"].tolist() == coded
    np.testing.assert_array_equal(carried["realized_r"], expected["realized_r"])
    assert carried["bars_held"].tolist() == expected["bars_held"].tolist()
    unlabelled = evaluate_chunk(replace(task, outcome_rules=None))
    assert "exit_reason" not in unlabelled.results.column_names
    # the writer refuses to label them a second time, and takes them as they are
    given = expected.assign(intent_no=chunk["intent_no"])
    with pytest.raises(ReplayError, match="carry their outcomes"):
        write_chunk(empty_store, 1, rows, given)
    codes = config_codes(config)
    with empty_store.transaction() as con:  # the run's codes, as its creation writes them
        insert_frame(con, "replay_codes", codes.append_column(
            "run_key", pa.array(np.ones(codes.num_rows, dtype=np.int32))))
    write_chunk(empty_store, 1, rows, None)
    stored = empty_store.query("SELECT exit_reason, realized_r FROM replay_results "
                               "ORDER BY intent_no")
    assert stored["exit_reason"].tolist() == coded
    np.testing.assert_array_equal(stored["realized_r"], expected["realized_r"])


class _Watching:
    """A serial executor that notes, as each task starts, how many runs named ``name`` the
    store holds; ``fail_first``: the first task's result is an error."""

    def __init__(self, store: Store, name: str, *, fail_first: bool = False) -> None:
        self.store, self.name, self.fail_first = store, name, fail_first
        self.runs_seen: list[int] = []

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        for index, task in enumerate(tasks):
            self.runs_seen.append(int(self.store.query(
                "SELECT count(*) AS n FROM replay_runs WHERE name = ?", [self.name]
            )["n"].iloc[0]))
            if self.fail_first and index == 0:
                raise RuntimeError("a worker died")
            yield index, fn(task)

    def close(self) -> None:
        pass

    def __enter__(self) -> _Watching:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_a_new_run_is_written_while_its_next_chunks_evaluate(
        subset_reference: Reference, config: ScoringConfig, tmp_path: Path) -> None:
    store = copy_store(subset_reference.store, tmp_path)
    watching = _Watching(store, "watched")
    run = run_replay(store, subset_reference.intents, config=config, name="watched",
                     executor=watching, chunk_size=10, mode="batch", providers=ACCOUNT,
                     progress=False)
    # the first chunk started before the run was written; the run was there for the next
    assert watching.runs_seen[0] == 0 and set(watching.runs_seen[1:]) == {1}
    assert len(watching.runs_seen) == -(-len(subset_reference.intents) // 10)
    assert result_table_hash(store, run.run_id) == subset_reference.hash


def test_a_new_run_whose_first_chunk_fails_is_stored_whole_as_failed_and_resumes(
        subset_reference: Reference, config: ScoringConfig, tmp_path: Path) -> None:
    store = copy_store(subset_reference.store, tmp_path)
    intents = subset_reference.intents
    with pytest.raises(RuntimeError, match="a worker died"):
        run_replay(store, intents, config=config, name="first-fails", mode="batch",
                   executor=_Watching(store, "first-fails", fail_first=True), chunk_size=10,
                   providers=ACCOUNT, progress=False)
    run = store.query("SELECT run_id, run_key, status, n_intents FROM replay_runs "
                      "WHERE name = 'first-fails'")
    assert run["status"].tolist() == ["failed"]
    run_id, run_key = run["run_id"].iloc[0], int(run["run_key"].iloc[0])
    counts = {table: int(store.query(f"SELECT count(*) AS n FROM {table} WHERE {key} = ?",
                                     [value])["n"].iloc[0])
              for table, key, value in (("replay_intents", "run_id", run_id),
                                        ("replay_modules", "run_key", run_key),
                                        ("replay_results", "run_key", run_key))}
    assert counts == {"replay_intents": len(intents),
                      "replay_modules": len(config_numbering(config).modules),
                      "replay_results": 0}
    again = run_replay(store, intents, config=config, name="first-fails", mode="batch",
                       executor=SerialExecutor(), chunk_size=10, providers=ACCOUNT,
                       progress=False)
    assert (again.run_id, again.status, again.n_evaluated) == (run_id, "done", len(intents))
    assert result_table_hash(store, run_id) == subset_reference.hash


class _Racing(_Watching):
    """A serial executor during whose first chunk another process writes run ``run_id``."""

    def __init__(self, store: Store, name: str, run_id: str) -> None:
        super().__init__(store, name)
        self.run_id = run_id

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        for index, result in super().map(fn, tasks):
            if index == 0:
                with self.store.transaction() as con:
                    con.execute(
                        "INSERT INTO replay_runs (run_id, name, config_name, config_version, "
                        "config_hash, config_json, intent_source, intents_hash, context_json, "
                        "market_data_version, n_intents, status, created_at, run_key) VALUES "
                        "(?, 'theirs', 'c', 'v', 'h', '{}', 's', 'x', '{}', 0, 0, 'running', "
                        "now(), 9999)", [self.run_id])
            yield index, result


def test_a_run_written_by_another_process_meanwhile_is_left_as_it_is(
        subset_reference: Reference, config: ScoringConfig, tmp_path: Path) -> None:
    store = copy_store(subset_reference.store, tmp_path)
    intents = subset_reference.intents
    context = context_spec(DEFAULT_LOOKBACK_BARS, ACCOUNT, OutcomeRules())
    run_id = replay_run_id(config.hash, intents_hash(normalize_intents(intents)), "raced",
                           context)
    with pytest.raises(duckdb.ConstraintException):
        run_replay(store, intents, config=config, name="raced", mode="batch",
                   executor=_Racing(store, "raced", run_id), chunk_size=10,
                   providers=ACCOUNT, progress=False)
    theirs = store.query("SELECT name, status FROM replay_runs WHERE run_id = ?", [run_id])
    assert theirs.to_dict("records") == [{"name": "theirs", "status": "running"}]
    assert store.query("SELECT count(*) AS n FROM replay_intents WHERE run_id = ?",
                       [run_id])["n"].iloc[0] == 0


def test_a_batch_runs_commits_keep_their_row_groups_and_the_per_intent_paths_merge(
        subset_reference: Reference, config: ScoringConfig, tmp_path: Path) -> None:
    """Each chunk's commit leaves a part-filled row group per table. A batch run keeps them:
    no checkpoint of the run (its chunks', nor that of its last write, the status) merges
    them, so it ends when its last chunk is written, not after a rewrite of every table.
    The per-intent path's chunks of a few dozen intents are merged as they come."""
    tables = ("replay_results", "replay_issues", "replay_facts")
    chunks = -(-len(subset_reference.intents) // 10)
    assert chunks > 2
    for mode in ("batch", "intent"):
        store = copy_store(subset_reference.store, tmp_path / mode)

        def row_groups(store: Store = store) -> dict[str, int]:
            return {t: int(store.query("SELECT count(DISTINCT row_group_id) AS n FROM "
                                       f"pragma_storage_info('{t}')")["n"][0])
                    for t in tables}

        before = row_groups()
        run = run_replay(store, subset_reference.intents, config=config, name="row groups",
                         executor=SerialExecutor(), chunk_size=10, mode=mode,
                         providers=ACCOUNT, progress=False)
        after = row_groups()
        if mode == "batch":
            assert after == {t: before[t] + chunks for t in tables}
        else:
            assert all(after[t] < before[t] + chunks for t in tables), (before, after)
        assert result_table_hash(store, run.run_id) == subset_reference.hash
