"""`buddy replay run` prints the figures it promises, `buddy replay report` checks its inputs
before any work, and the Makefile's lab and replay targets pass their variables on."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from buddy.cli import cli
from buddy.store import Store
from replay.engine import list_runs, results_frame

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def replay_db(sample_db: Path) -> Path:
    return sample_db


def test_replay_run_prints_its_figures_with_n_and_intervals(replay_db: Path) -> None:
    ran = CliRunner().invoke(cli, [
        "--db", str(replay_db), "replay", "run", "--source", "random", "--symbols", "IBM",
        "--timeframe", "1d", "--start", "2009-01-01", "--end", "2010-12-31", "--executor",
        "serial", "--providers", "none", "--no-progress", "--n-boot", "200"])
    assert ran.exit_code == 0, ran.output
    run_id = list_runs(Store(replay_db))["run_id"].iloc[0]
    results = results_frame(Store(replay_db), run_id)
    r = results["realized_r"].to_numpy(dtype=float)
    resolved = np.isfinite(r) & ~results["exit_reason"].isin(["open", "not_filled"]).to_numpy()
    assert resolved.sum() >= 30  # enough for an interval, so the test reads numbers

    lines = {line.strip().split(":")[0]: line.strip() for line in ran.stdout.splitlines()}
    assert lines["overall severity (n=" + str(len(results)) + ")"]
    mean_r = lines["mean realized R"]
    found = re.search(r"(-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\] \(n=(\d+)\)", mean_r)
    assert found is not None, mean_r
    estimate, low, high, n = (float(found[i]) for i in range(1, 5))
    assert n == resolved.sum() and low <= estimate <= high
    assert estimate == pytest.approx(r[resolved].mean(), abs=5e-3)
    win = re.search(r"([\d.]+) \[([\d.]+), ([\d.]+)\] \(n=(\d+)\)", lines["win rate"])
    assert win is not None and int(win[4]) == resolved.sum()
    assert float(win[1]) == pytest.approx(results["win"][resolved].astype(float).mean(),
                                          abs=5e-3)
    assert f"left out of R statistics: open {int((results['exit_reason'] == 'open').sum())}" \
        in lines["outcomes"]


@pytest.mark.parametrize(("args", "field"), [
    (["--source", "import:trades.csv"], "--source"),
    (["--source", "random_entry"], "--source"),
    (["--start", "2011-01-01T09:30"], "--start"),
    (["--end", "2011-02-30"], "--end"),
    (["--config", "no-such.json"], "--config"),
])
def test_report_refuses_bad_input_before_any_work(replay_db: Path, tmp_path: Path,
                                                  args: list[str], field: str) -> None:
    out = tmp_path / "reports"
    ran = CliRunner().invoke(cli, ["--db", str(replay_db), "replay", "report", *args,
                                   "--out", str(out)])
    assert ran.exit_code == 2, ran.output
    assert f"{field}:" in ran.stderr
    assert not out.exists() and list_runs(Store(replay_db)).empty


def test_report_never_starts_a_database_it_was_not_asked_for(tmp_path: Path) -> None:
    missing = tmp_path / "typo.duckdb"
    ran = CliRunner().invoke(cli, ["replay", "report", "--db", str(missing)])
    assert ran.exit_code == 2 and "--db:" in ran.stderr and str(missing) in ran.stderr
    assert not missing.exists()


def _make_n(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    # -n prints the recipe; the prerequisites (the venv stamps) are up to date here
    return subprocess.run(["make", "-n", "-s", "-C", str(ROOT), *args], capture_output=True,
                          text=True, check=True, env=env, timeout=60).stdout


def test_make_lab_passes_lab_args_and_allows_root_only_as_root() -> None:
    shown = _make_n("lab", "LAB_ARGS=--port 8899 --IdentityProvider.token=t0k")
    line = next(x for x in shown.splitlines() if "jupyter lab" in x)
    assert "--port 8899 --IdentityProvider.token=t0k" in line
    assert "--notebook-dir=notebooks" in line
    assert ("--allow-root" in line) == (os.geteuid() == 0)


def test_make_replay_passes_its_variables_to_buddy_replay_report() -> None:
    shown = _make_n("replay", "SOURCE=ma_cross", "SYMBOLS=AAPL,MSFT", "START=2011-01-01",
                    "END=2012-12-31")
    command = " ".join(shown.replace("\\\n", " ").split())
    assert ("buddy replay report --out reports --source \"ma_cross\" --symbols \"AAPL,MSFT\" "
            "--start \"2011-01-01\" --end \"2012-12-31\"") in command
    # the database and the experiment store are absolute, so a kernel in notebooks/ or a
    # papermill run from another folder reads the same files
    exported = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "--eval", "show:\n\t@echo $$BUDDY_DB $$MLFLOW_TRACKING_URI",
         "show"], capture_output=True, text=True, check=True, timeout=60,
        env={k: v for k, v in os.environ.items()
             if k not in ("BUDDY_DB", "MLFLOW_TRACKING_URI")}).stdout.split()
    assert exported == [f"{ROOT}/data/buddy.duckdb", f"sqlite:///{ROOT}/mlruns/mlflow.db"]
