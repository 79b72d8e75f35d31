"""Resumable runs: a run stopped after any committed chunk, by an exception or by SIGKILL,
continues where it stopped, without duplicates, to the result an uninterrupted run gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from buddy.config import ScoringConfig
from buddy.context.builder import DEFAULT_LOOKBACK_BARS
from buddy.evaluators import registry
from buddy.store import Store
from replay.engine import (
    ChunkCommitted,
    ReplayError,
    context_spec,
    intents_hash,
    normalize_intents,
    replay_run_id,
    result_table_hash,
    resume_replay,
    run_replay,
)
from replay.executors import SerialExecutor

from ..config_identity import swapped_evaluator
from .conftest import ACCOUNT, Reference, copy_store

CHUNK = 5
KILLED_RESULTS_SQL = ("SELECT count(*) AS n FROM replay_results WHERE run_key IN "
                      "(SELECT run_key FROM replay_runs WHERE name = 'killed')")


class _Stop(Exception):
    pass


def _stop_now(chunk: ChunkCommitted) -> None:
    raise _Stop


_RUN_KEY = "(SELECT run_key FROM replay_runs WHERE run_id = ?)"


def _counts(store: Store, run_id: str) -> dict[str, int]:
    """Count the run's result rows, its module entries that ran, its labelled outcomes and
    the distinct intents its issues belong to."""
    row = store.query(
        "SELECT count(*) AS replay_results, "
        "coalesce(sum(len(list_filter(module_status, lambda s: s IS NOT NULL))), 0) AS modules, "
        "count(exit_reason) AS outcomes FROM replay_results "
        f"WHERE run_key = {_RUN_KEY}", [run_id]).iloc[0]
    return {key: int(row[key]) for key in ("replay_results", "modules", "outcomes")}


def _assert_whole_chunks(store: Store, run_id: str, n_modules: int) -> int:
    counts = _counts(store, run_id)
    n = counts["replay_results"]
    assert counts["modules"] == n * n_modules
    assert counts["outcomes"] == n
    orphans = store.query(  # no issue row of an intent without its result row
        "SELECT count(*) AS n FROM replay_issues i WHERE i.run_key = "
        f"{_RUN_KEY} AND NOT EXISTS (SELECT 1 FROM replay_results r WHERE r.run_key = "
        "i.run_key AND r.intent_no = i.intent_no)", [run_id])["n"].iloc[0]
    assert orphans == 0
    return n


def _duplicates(store: Store, run_id: str) -> int:
    return int(store.query("SELECT count(*) - count(DISTINCT intent_no) AS n FROM "
                           f"replay_results WHERE run_key = {_RUN_KEY}", [run_id]
                           )["n"].iloc[0]) + int(store.query(
        "SELECT count(*) - count(DISTINCT (intent_no, module_no, issue_no)) AS n FROM "
        f"replay_issues WHERE run_key = {_RUN_KEY}", [run_id])["n"].iloc[0])


def test_a_run_stopped_by_an_exception_resumes_to_the_uninterrupted_result(
        subset_reference: Reference, config: ScoringConfig, tmp_path: Path) -> None:
    store = copy_store(subset_reference.store, tmp_path)

    def stop_after_two_chunks(chunk: ChunkCommitted) -> None:
        if chunk.chunk_no == 1:
            raise _Stop

    with pytest.raises(_Stop):
        run_replay(store, subset_reference.intents, config=config, name="stopped",
                   executor=SerialExecutor(), chunk_size=CHUNK, providers=ACCOUNT,
                   progress=False, on_chunk=stop_after_two_chunks)
    run_id = store.query("SELECT run_id, status FROM replay_runs WHERE name = 'stopped'")
    assert run_id["status"].iloc[0] == "failed"
    run_id = run_id["run_id"].iloc[0]
    assert _assert_whole_chunks(store, run_id, len(config.modules)) == 2 * CHUNK

    again = run_replay(store, subset_reference.intents, config=config, name="stopped",
                       executor=SerialExecutor(), chunk_size=CHUNK, providers=ACCOUNT,
                       progress=False)
    assert again.run_id == run_id and again.status == "done"
    assert (again.n_skipped, again.n_evaluated) == (2 * CHUNK,
                                                    len(subset_reference.intents) - 2 * CHUNK)
    assert _duplicates(store, run_id) == 0
    assert result_table_hash(store, run_id) == subset_reference.hash


def test_a_done_run_is_not_run_twice(subset_reference: Reference,
                                     config: ScoringConfig) -> None:
    again = run_replay(subset_reference.store, subset_reference.intents, config=config,
                       name="subset-reference", executor=SerialExecutor(), providers=ACCOUNT,
                       progress=False)
    assert again.run_id == subset_reference.run_id
    assert (again.status, again.n_evaluated) == ("done", 0)


def test_a_run_id_cannot_be_reused_for_other_intents_or_another_config(
        subset_reference: Reference, config: ScoringConfig) -> None:
    import dataclasses

    with pytest.raises(ReplayError, match="other intents"):
        run_replay(subset_reference.store, subset_reference.intents.head(3), config=config,
                   name="x", run_id=subset_reference.run_id, progress=False)
    other = dataclasses.replace(config, max_issues=config.max_issues + 1)
    with pytest.raises(ReplayError, match=r"max_issues: 6 -> 7\); resuming would mix"):
        run_replay(subset_reference.store, subset_reference.intents, config=other,
                   name="x", run_id=subset_reference.run_id, progress=False)
    with pytest.raises(ReplayError, match="built packs with"):
        run_replay(subset_reference.store, subset_reference.intents, config=config,
                   name="x", run_id=subset_reference.run_id, progress=False)


def test_resuming_under_another_module_version_or_default_is_refused_naming_it(
        subset_reference: Reference, config: ScoringConfig, tmp_path: Path) -> None:
    store = copy_store(subset_reference.store, tmp_path)
    with pytest.raises(_Stop):
        run_replay(store, subset_reference.intents, config=config, name="identity",
                   executor=SerialExecutor(), chunk_size=CHUNK, providers=ACCOUNT,
                   progress=False, on_chunk=_stop_now)
    stopped = store.query("SELECT run_id, config_hash FROM replay_runs WHERE name = 'identity'")
    run_id = stopped["run_id"].iloc[0]
    digest = intents_hash(normalize_intents(subset_reference.intents))
    context = context_spec(DEFAULT_LOOKBACK_BARS, ACCOUNT)
    assert run_id == replay_run_id(config.hash, digest, "identity", context)
    with swapped_evaluator("data_quality", version="2.0.0", defaults={"max_gap_pct": 5.0}):
        with pytest.raises(ReplayError) as refused:
            resume_replay(store, run_id, executor=SerialExecutor(), progress=False)
        # the same call again derives another run id: a stored run is never passed off as new
        assert replay_run_id(config.hash, digest, "identity", context) != run_id
    message = str(refused.value)
    assert f"was started with config #{stopped['config_hash'].iloc[0]}" in message
    version = registry.get("data_quality").version  # the version the run started under
    assert f"module data_quality version: '{version}' -> '2.0.0'" in message
    assert "module data_quality param max_gap_pct: 2.0 -> 5.0" in message
    assert _counts(store, run_id)["replay_results"] == CHUNK  # nothing written on refusal
    again = resume_replay(store, run_id, executor=SerialExecutor(), progress=False)
    assert again.status == "done" and again.n_skipped == CHUNK  # same code: it resumes


def test_resuming_after_a_market_data_write_is_refused(
        subset_reference: Reference, config: ScoringConfig, tmp_path: Path) -> None:
    store = copy_store(subset_reference.store, tmp_path)
    with pytest.raises(_Stop):
        run_replay(store, subset_reference.intents, config=config, name="data-changed",
                   executor=SerialExecutor(), chunk_size=CHUNK, progress=False,
                   on_chunk=_stop_now)
    tickers = store.tickers().head(1)
    store.write_market_data(tickers=tickers)
    with pytest.raises(ReplayError, match="market data changed"):
        run_replay(store, subset_reference.intents, config=config, name="data-changed",
                   executor=SerialExecutor(), progress=False)


@pytest.mark.slow
def test_a_killed_command_line_run_resumes_without_duplicates(
        subset_reference: Reference, config: ScoringConfig, tmp_path: Path) -> None:
    store = copy_store(subset_reference.store, tmp_path / "db")
    csv = tmp_path / "intents.csv"
    subset_reference.intents.to_csv(csv, index=False)
    command = [sys.executable, "-m", "replay.cli", "--db", str(store.path), "run",
               "--source", f"csv:{csv}", "--name", "killed", "--mode", "batch",
               "--executor", "serial", "--chunk-size", str(CHUNK), "--providers", "account",
               "--no-progress"]
    n_total = len(subset_reference.intents)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if int(store.query(KILLED_RESULTS_SQL)["n"].iloc[0]) >= CHUNK:
                break
            time.sleep(0.05)
        assert process.poll() is None, (
            f"the run ended before it could be killed: {process.communicate()}")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    run = store.query("SELECT run_id, status FROM replay_runs WHERE name = 'killed'")
    run_id = run["run_id"].iloc[0]
    assert run["status"].iloc[0] == "running"  # nothing marked it: it was killed
    n_killed = _assert_whole_chunks(store, run_id, len(config.modules))
    assert CHUNK <= n_killed < n_total

    resumed = resume_replay(store, run_id, executor=SerialExecutor(), progress=False)
    assert resumed.status == "done"
    assert (resumed.n_skipped, resumed.n_evaluated) == (n_killed, n_total - n_killed)
    assert _duplicates(store, run_id) == 0
    assert result_table_hash(store, run_id) == subset_reference.hash
    finished = store.query("SELECT finished_at FROM replay_runs WHERE run_id = ?", [run_id])
    assert not pd.isna(finished["finished_at"].iloc[0])
