"""notebooks/40_review.ipynb runs through papermill on a tiny store built in the test."""

from __future__ import annotations

import json
from pathlib import Path

import papermill as pm

from tests.trades.conftest import T0, build_reviewed_store

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "40_review.ipynb"


def test_review_notebook_prints_the_summary_and_draws_its_plots(
        tmp_path: Path) -> None:
    db = tmp_path / "nb.duckdb"
    build_reviewed_store(db)
    out = tmp_path / "40_review.out.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out),
                        parameters={"db_path": str(db), "user": "u1", "period": "week",
                                    "day": str(T0.date()), "n_boot": 200},
                        cwd=str(NOTEBOOK.parent), kernel_name="python3", progress_bar=False)
    cells = json.loads(out.read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]]
    text = json.dumps(outputs)
    assert "3 closed trades" in text and "bootstrap percentile 95%" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
    assert "EXIT_OFF_PLAN" in text and "RISK_ABOVE_BUDGET" in text
