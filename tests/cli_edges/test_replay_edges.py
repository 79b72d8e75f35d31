"""``buddy replay run`` edges: nothing to replay is refused, the README's generator:NAME
source works, and a --config file that is no config names the option, rule and file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from buddy.cli import cli
from buddy.config import default_scoring_config
from buddy.store import Store
from replay.engine import ReplayError, list_runs, run_replay
from replay.executors import SerialExecutor

#: A small, fast replay: one symbol, one year, in this process, market data only.
SMALL = ["--symbols", "AAPL", "--timeframe", "1d", "--start", "2010-01-01", "--end",
         "2010-12-31", "--executor", "serial", "--providers", "none", "--no-progress",
         "--no-outcomes"]


def _replay(db: Path, *args: str) -> tuple[int, str, str]:
    run = CliRunner().invoke(cli, ["--db", str(db), "replay", "run", *args])
    return run.exit_code, run.stdout, run.stderr


def test_a_database_source_with_no_intents_for_the_user_is_refused(edge_db: Path) -> None:
    before = len(list_runs(Store(edge_db)))
    code, out, err = _replay(edge_db, "--source", "database", "--user", "nobody-at-all")
    assert code == 2, out + err
    assert "nothing to replay" in err and "'database'" in err and "'nobody-at-all'" in err
    assert len(list_runs(Store(edge_db))) == before  # no "done" run of 0 intents


def test_the_engine_refuses_zero_intents(edge_db: Path) -> None:
    import pandas as pd

    from replay.model import INTENT_COLUMNS

    with pytest.raises(ReplayError, match="nothing to replay"):
        run_replay(Store(edge_db), pd.DataFrame(columns=list(INTENT_COLUMNS)),
                   config=default_scoring_config(), name="empty",
                   executor=SerialExecutor(), progress=False)


def test_the_readme_generator_source_runs(edge_db: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "--source generator:ma_cross" in readme  # the example this test stands for
    code, out, err = _replay(edge_db, "--source", "generator:ma_cross", "--name",
                             "readme-example", *SMALL)
    assert code == 0, out + err
    assert " done: " in out
    runs = list_runs(Store(edge_db))
    run = runs[runs["name"] == "readme-example"].iloc[0]
    assert run["n_intents"] > 0 and run["intent_source"] == "generator:ma_cross"


@pytest.mark.parametrize(("content", "rule"), [
    ("root:x:0:0:root:/root:/bin/bash\n", "not JSON"),
    ("[1, 2]", "holds a JSON list"),
    ('{"min_issues": "three"}', "min_issues"),
    (b"\xff\xfe\x00binary", "UTF-8"),
], ids=["passwd", "list", "bad-setting", "binary"])
def test_a_config_file_that_is_no_config_names_option_rule_and_file(
        edge_db: Path, tmp_path: Path, content: str | bytes, rule: str) -> None:
    path = tmp_path / "passwd"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, out, err = _replay(edge_db, "--source", "ma_cross", "--config", str(path), *SMALL)
    assert code == 2, out + err
    assert "--config" in err and str(path) in err and rule in err
