"""The replay notebooks run end to end, the way ``make replay`` runs them, on a real database."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from buddy.store import Store
from replay.engine import list_runs
from replay.reports import (
    load_intents,
    load_runs,
    run_id_of,
    run_replay_reports,
    scoring_config,
)

TINY_REPLAY = {"symbols": ["AAPL"], "timeframe": "1d", "start": "2011-01-01",
               "end": "2012-12-31", "run_name": "nb-test", "executor": "serial",
               "n_boot": 100}


def _outputs(path: Path) -> list[dict]:
    cells = json.loads(path.read_text())["cells"]
    return [out for cell in cells if cell["cell_type"] == "code" for out in cell["outputs"]]


def _pngs(path: Path) -> int:
    return sum("image/png" in out.get("data", {}) for out in _outputs(path))


@pytest.mark.slow
def test_replay_then_calibration_notebooks_write_reports_with_plots(
        sample_store: Store, tmp_path: Path) -> None:
    db = tmp_path / "replay.duckdb"
    shutil.copy(sample_store.path, db)
    reports = run_replay_reports(db, tmp_path / "reports", replay_parameters=TINY_REPLAY,
                                 calibration_parameters={"n_boot": 100})

    runs = list_runs(Store(db))
    assert runs["run_id"].tolist() == [reports.run_id]
    assert runs["status"].tolist() == ["done"] and runs["name"].tolist() == ["nb-test"]
    replay_nb, calibration_nb = reports.notebooks
    assert [p.name for p in reports.notebooks] == ["10_replay.ipynb", "20_calibration.ipynb"]
    assert run_id_of(replay_nb) == reports.run_id
    assert _pngs(replay_nb) >= 1  # the first decile plot
    assert _pngs(calibration_nb) >= 5  # deciles, reliability, ablation, flags, walk-forward
    assert reports.run_id in json.dumps(_outputs(calibration_nb))
    for html in reports.html:
        assert html.suffix == ".html" and "data:image/png;base64" in html.read_text()


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
