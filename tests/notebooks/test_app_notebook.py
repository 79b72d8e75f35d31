"""The workbench notebook runs through papermill with tiny parameters and shows the app."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import papermill as pm

from buddy.store import Store

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_the_app_notebook_opens_the_workbench_and_logs_nothing(sample_store: Store,
                                                               tmp_path: Path) -> None:
    db = tmp_path / "nb.duckdb"
    shutil.copy(sample_store.path, db)
    out = tmp_path / "00_evaluate_idea.out.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "00_evaluate_idea.ipynb"), str(out),
                        parameters={"db_path": str(db), "user": "nb-app"},
                        cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False)
    cells = json.loads(out.read_text())["cells"]
    views = [o["data"][WIDGET_VIEW] for c in cells if c["cell_type"] == "code"
             for o in c.get("outputs", []) if WIDGET_VIEW in o.get("data", {})]
    assert len(views) == 1 and views[0]["model_id"]
    logged = Store(db).query("SELECT count(*) AS n FROM trade_evaluations WHERE user_id = "
                             "'nb-app'")
    assert logged["n"].iloc[0] == 0  # opening the app evaluates nothing
