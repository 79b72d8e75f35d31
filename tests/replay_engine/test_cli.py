"""``replay run / list / show`` through click, on a copy of the sample store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from buddy.config import ScoringConfig
from buddy.store import Store
from replay.cli import replay
from replay.engine import ChunkCommitted, result_table_hash, run_replay
from replay.executors import SerialExecutor

from .conftest import Reference, copy_store


@pytest.fixture(scope="module")
def cli_store(subset_reference: Reference, tmp_path_factory: pytest.TempPathFactory) -> Store:
    return copy_store(subset_reference.store, tmp_path_factory.mktemp("replay-cli"))


def _invoke(store: Store, *args: str) -> str:
    result = CliRunner().invoke(replay, ["--db", str(store.path), *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _run_id(output: str) -> str:
    found = re.search(r"\brun (rp_[0-9a-f]+) ", output)
    assert found, output
    return found.group(1)


def test_run_from_a_generator_then_list_and_show(cli_store: Store) -> None:
    out = _invoke(cli_store, "run", "--source", "random", "--symbols", "IBM", "--start",
                  "2006-01-01", "--end", "2006-03-31", "--param", "entry_probability=0.2",
                  "--name", "cli-random", "--executor", "serial", "--providers", "none",
                  "--chunk-size", "4")
    run_id = _run_id(out)
    assert " done: " in out

    listed = _invoke(cli_store, "list")
    assert run_id in listed and "cli-random" in listed

    shown = json.loads(_invoke(cli_store, "show", run_id, "--json"))
    assert shown["status"] == "done" and shown["name"] == "cli-random"
    assert shown["summary"]["evaluated"] == shown["n_intents"] > 0
    assert shown["summary"]["result_table_hash"] == result_table_hash(cli_store, run_id)
    assert shown["intent_source"] == "generator:random"
    human = _invoke(cli_store, "show", run_id)
    assert run_id in human and "done" in human and "score__risk_reward" in human


def test_the_same_command_again_resumes_nothing_and_keeps_the_run(cli_store: Store) -> None:
    args = ["run", "--source", "random", "--symbols", "IBM", "--start", "2007-01-01",
            "--end", "2007-02-28", "--name", "twice", "--executor", "serial", "--providers",
            "none", "--no-progress"]
    first = _invoke(cli_store, *args)
    second = _invoke(cli_store, *args)
    assert _run_id(first) == _run_id(second)
    assert "0 evaluated now" in second


def test_a_csv_of_intents_runs_and_a_bad_config_path_fails_with_exit_code_2(
        cli_store: Store, subset_reference: Reference, tmp_path: Path) -> None:
    csv = tmp_path / "intents.csv"
    subset_reference.intents.to_csv(csv, index=False)
    out = _invoke(cli_store, "run", "--source", f"csv:{csv}", "--timeframe", "1h",
                  "--executor", "serial", "--providers", "none", "--name", "csv")
    hourly = subset_reference.intents["timeframe"].eq("1h").sum()
    assert f"{hourly} intents" in out

    bad = CliRunner().invoke(replay, ["--db", str(cli_store.path), "run", "--source",
                                      f"csv:{csv}", "--config", str(tmp_path / "nope.json")])
    assert bad.exit_code == 2 and "--config" in bad.output


def test_show_of_an_unknown_run_fails_naming_it(cli_store: Store) -> None:
    result = CliRunner().invoke(replay, ["--db", str(cli_store.path), "show", "rp_nope"])
    assert result.exit_code == 2 and "rp_nope" in result.output


class _Stop(Exception):
    pass


def _stop(chunk: ChunkCommitted) -> None:
    raise _Stop


def test_resume_run_continues_a_stopped_run(cli_store: Store, subset_reference: Reference,
                                            config: ScoringConfig) -> None:
    intents = subset_reference.intents.head(10)
    with pytest.raises(_Stop):
        run_replay(cli_store, intents, config=config, name="to-resume", chunk_size=5,
                   executor=SerialExecutor(), progress=False, on_chunk=_stop)
    run_id = cli_store.query("SELECT run_id FROM replay_runs WHERE name = 'to-resume'"
                             )["run_id"].iloc[0]
    out = _invoke(cli_store, "run", "--resume-run", run_id, "--executor", "serial",
                  "--no-progress")
    assert _run_id(out) == run_id
    assert "done: 10 intents (5 evaluated now, 5 already done)" in out
