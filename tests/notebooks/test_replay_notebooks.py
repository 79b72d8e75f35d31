"""The replay notebooks run end to end, the way ``make replay`` runs them, on a real database."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from buddy.cli import cli
from buddy.store import Store
from replay.engine import list_runs
from replay.reports import load_intents, load_runs, run_id_of, scoring_config

ROOT = Path(__file__).resolve().parents[2]
#: A small replay, as `make replay SOURCE=... SYMBOLS=... START=... END=...` passes it.
TINY_REPLAY = ["--source", "corpus", "--symbols", "AAPL", "--timeframe", "1d", "--start",
               "2011-01-01", "--end", "2012-12-31", "--name", "nb-test", "--executor",
               "serial", "--n-boot", "100"]


def _outputs(path: Path) -> list[dict]:
    cells = json.loads(path.read_text())["cells"]
    return [out for cell in cells if cell["cell_type"] == "code" for out in cell["outputs"]]


def _pngs(path: Path) -> int:
    return sum("image/png" in out.get("data", {}) for out in _outputs(path))


@pytest.mark.slow
def test_replay_report_runs_both_notebooks_into_readable_reports(
        sample_store: Store, tmp_path: Path) -> None:
    db = tmp_path / "replay.duckdb"
    shutil.copy(sample_store.path, db)
    out = tmp_path / "reports"
    ran = CliRunner().invoke(cli, ["--db", str(db), "replay", "report", *TINY_REPLAY,
                                   "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    assert "replay nb-test" in ran.stderr  # the replay's own bar, on the terminal

    runs = list_runs(Store(db))
    run_id = runs["run_id"].iloc[0]
    assert runs["run_id"].tolist() == [run_id] and f"replay run {run_id}" in ran.stdout
    assert runs["status"].tolist() == ["done"] and runs["name"].tolist() == ["nb-test"]
    replay_nb, calibration_nb = out / "10_replay.ipynb", out / "20_calibration.ipynb"
    assert run_id_of(replay_nb) == run_id
    assert _pngs(replay_nb) >= 1  # the first decile plot
    assert _pngs(calibration_nb) >= 5  # deciles, reliability, ablation, flags, walk-forward
    assert run_id in json.dumps(_outputs(calibration_nb))
    # the tqdm bars of the jobs and the replay (notebook widgets, or text without them)
    bars = [shown for shown in _outputs(replay_nb) if "application/vnd.jupyter.widget-view+json"
            in shown.get("data", {}) or "it/s" in str(shown.get("text", ""))]
    assert bars, "the replay notebook showed no progress"
    for html in (out / "10_replay.html", out / "20_calibration.html"):
        text = html.read_text()
        assert html.suffix == ".html" and "data:image/png;base64" in text
        # a reader's report: outputs only, and no path of this machine
        assert "run_replay(" not in text and "load_runs(" not in text
        assert str(tmp_path) not in text and str(ROOT) not in text
    assert "run_replay(" in replay_nb.read_text()  # the executed notebook keeps its code


def test_run_id_of_refuses_a_notebook_that_printed_none(tmp_path: Path) -> None:
    import nbformat

    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), path)
    with pytest.raises(ValueError, match="run_id"):
        run_id_of(path)


def test_notebook_inputs_refuse_unknown_sources_configs_and_missing_runs(
        empty_store: Store) -> None:
    with pytest.raises(ValueError, match="intent_source"):
        load_intents(empty_store, "somewhere:else")
    assert scoring_config("default").name == "default"
    with pytest.raises(ValueError, match="config_ref"):
        scoring_config("no-such-config")
    with pytest.raises(ValueError, match="no finished replay run"):
        load_runs(empty_store, [])
