"""Every notebook runs through papermill with small parameters on a real database."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import papermill as pm
import pytest

from buddy.store import Store

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _first_code_cell(path: Path) -> dict:
    cells = json.loads(path.read_text())["cells"]
    return next(c for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_is_committed_clean_with_a_literal_parameters_cell(path: Path) -> None:
    nb = json.loads(path.read_text())
    assert all(not c.get("outputs") and not c.get("execution_count")
               for c in nb["cells"] if c["cell_type"] == "code"), "commit notebooks stripped"
    first = _first_code_cell(path)
    assert "parameters" in first["metadata"].get("tags", [])
    source = "".join(first["source"])
    assert "def " not in source and "import" not in source and "(" not in source
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        assert "\ndef " not in f"\n{text}" and "\nclass " not in f"\n{text}"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_quickstart_runs_and_logs_an_evaluation(sample_store: Store, tmp_path: Path) -> None:
    db = tmp_path / "nb.duckdb"
    shutil.copy(sample_store.path, db)
    out = tmp_path / "01_quickstart.out.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "01_quickstart.ipynb"), str(out),
                        parameters={"db_path": str(db), "symbol": "MSFT", "as_of": "2008-10-10",
                                    "user": "nb-user"},
                        cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False)
    logged = Store(db).query("SELECT symbol FROM trade_evaluations WHERE user_id = 'nb-user'")
    assert logged["symbol"].tolist() == ["MSFT"]
    html = json.dumps(json.loads(out.read_text())["cells"])
    assert "Buddy Report" in html
