"""notebooks/50_nudge_experiment.ipynb runs through papermill on the demo trader's intents
under a three-arm experiment and prints what the library computes, per arm with n."""

from __future__ import annotations

import json
from pathlib import Path

import papermill as pm

from buddy.api import resolve_as_of
from buddy.behavior.experiment_analysis import arm_rates, experiment_units
from buddy.store import Store
from tests.behavior.experiment_data import EXPERIMENT_ID, build_experiment_store

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "50_nudge_experiment.ipynb"


def test_nudge_experiment_notebook_shows_each_arm_with_its_n(demo_store: Store,
                                                             tmp_path: Path) -> None:
    store = build_experiment_store(demo_store, tmp_path / "exp.duckdb", n_intents=120)
    as_of = "2002-11-06"  # about half the decisions: the notebook reads as of then
    out = tmp_path / "50_nudge_experiment.out.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out),
                        parameters={"db_path": str(store.path), "experiment_id": EXPERIMENT_ID,
                                    "as_of": as_of, "window_hours": 24.0, "confidence": 0.9},
                        cwd=str(NOTEBOOK.parent), kernel_name="python3", progress_bar=False)
    cells = json.loads(out.read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]]
    text = json.dumps(outputs)
    experiment, decisions, items = experiment_units(store, EXPERIMENT_ID,
                                                    as_of=resolve_as_of(as_of, "UTC"))
    assert 0 < len(decisions) < 120
    assert f"{len(decisions)} decision points" in text
    rates = arm_rates(experiment, decisions, items, confidence=0.9)
    for arm in experiment.arms:
        n = int((decisions["arm"] == arm.name).sum())
        assert f"arm {arm.name}: " in text and f"n={n}" in text
    for row in rates[rates["measure"] == "dismissed"].itertuples():
        assert f"n={row.n} shown items" in text
    assert "[90% interval]" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3
