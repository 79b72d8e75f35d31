"""20_calibration runs through papermill on a real replay run and judges every warning."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import papermill as pm
import pytest

from buddy.config import default_scoring_config
from buddy.store import Store
from replay.engine import run_replay
from replay.executors import make_executor
from replay.reports import load_intents

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "20_calibration.ipynb"


def _replay(store: Store, *, start: str, end: str, name: str, purpose: str) -> str:
    intents, trades = load_intents(store, "generator:ma_cross", symbols=["AAPL", "MSFT"],
                                   timeframe="1d", start=start, end=end)
    run = run_replay(store, intents, config=default_scoring_config(), name=name,
                     executor=make_executor("serial"), progress=False, mode="batch",
                     trades=trades, purpose=purpose)
    return run.run_id


def _text(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return json.dumps([out for c in cells if c["cell_type"] == "code" for out in c["outputs"]])


@pytest.mark.slow
def test_calibration_notebook_judges_each_warning_on_the_latest_research_run(
        demo_store: Store, tmp_path: Path) -> None:
    db = tmp_path / "calibration.duckdb"
    shutil.copy(demo_store.path, db)  # the real data and the demo trader's history
    store = Store(db)
    research = _replay(store, start="2009-01-01", end="2012-12-31", name="nb-research",
                       purpose="research")
    gate = _replay(store, start="2011-01-01", end="2012-12-31", name="nb-gate",
                   purpose="gate")  # newer, but a gate's holdout is never the default
    out = tmp_path / "20.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out),
                        parameters={"db_path": str(db), "n_boot": 50, "min_samples": 10},
                        cwd=str(NOTEBOOK.parent), kernel_name="python3", progress_bar=False)
    text = _text(out)
    assert f"runs {research}:" in text and gate not in text
    assert "The data support" in text and "They cannot judge" in text
    for verdict_column in ("verdict", "n_fired", "diff_low", "measure"):
        assert verdict_column in text
    assert "left out of R statistics" in text
    # the playbooks against the demo trader's injected setups, each figure with n and interval
    found = re.search(r"ARI \(no playbook counted as one label\): (\d\.\d+) \(95% \[", text)
    assert found is not None and float(found[1]) >= 0.8, text[:2000]
    assert "false OOD (p < 0.05)" in text and "in their setup's playbook" in text
    cells = json.loads(out.read_text())["cells"]
    pngs = sum("image/png" in o.get("data", {}) for c in cells if c["cell_type"] == "code"
               for o in c["outputs"])
    assert pngs >= 7  # claims, deciles, severity, ablation, flags, walk-forward, playbooks
