"""The interactive path, in fresh processes: `buddy --help` against `python -c "import click"`,
`buddy evaluate` on the demo database, and the same evaluate after a promotion (its config
then comes from the MLflow registry's pointer, not from importing mlflow).

Each figure is the median wall time of whole processes started the way a user starts them
(the venv's `buddy` script, the environment as given: PYTHONDONTWRITEBYTECODE included).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from benchmarks.suites import Line, Timer

BIN = Path(sys.executable).parent
EVALUATE = ["evaluate", "--user", "bench", "--symbol", "AAPL", "--side", "long",
            "--timeframe", "1d", "--entry", "560.99", "--stop", "537.68", "--target", "607.62",
            "--size", "100", "--as-of", "2012-06-01", "--json", "--no-log"]
#: Goals of issue 15, section 5.
HELP_RATIO_GOAL = 2.0
EVALUATE_GOAL_S = 1.5
PROMOTED_RATIO_GOAL = 1.2


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])}... failed: {done.stderr[-2000:]}")
    return done.stdout


def _line(label: str, seconds: float, detail: str, goal: str, met: bool) -> Line:
    return Line(f"{label:<58} {seconds * 1e3:9.1f} ms  {detail}  goal {goal}  "
                f"{'PASS' if met else 'MISS'}", met)


def startup_suite(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Time `buddy --help`, a cold `buddy evaluate`, and one after a promotion."""
    from buddy.demo import prepare_store
    from buddy.store import Store

    env = {k: v for k, v in os.environ.items() if k != "BUDDY_SCORING_MODEL"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'no-mlruns' / 'mlflow.db'}"
    buddy = str(BIN / "buddy")
    _run([buddy, "--help"], env)  # the file cache warm for both sides
    click_s = timer(lambda: _run([sys.executable, "-c", "import click"], env), repeat=7)
    help_s = timer(lambda: _run([buddy, "--help"], env), repeat=7)
    ratio = help_s / click_s
    yield _line("buddy --help (fresh process)", help_s,
                f"python -c 'import click' {click_s * 1e3:7.1f} ms  ratio {ratio:5.2f}x",
                f"<= {HELP_RATIO_GOAL}x", ratio <= HELP_RATIO_GOAL)

    db = workdir / "startup-demo.duckdb"
    prepare_store(Store(db), echo=lambda _: None, progress=False)
    evaluate = [buddy, "--db", str(db), *EVALUATE]
    _run(evaluate, env)
    before_s = timer(lambda: _run(evaluate, env), repeat=5)
    yield _line("buddy evaluate, demo database (fresh process, no promotion)", before_s, "",
                f"<= {EVALUATE_GOAL_S} s", before_s <= EVALUATE_GOAL_S)

    promoted_env = {**env, "MLFLOW_TRACKING_URI": _promote_default(workdir, env)}
    report = json.loads(_run(evaluate, promoted_env))
    label = f"{report['config']['name']}@{report['config']['version']}"
    if label != "buddy-scoring@1":
        raise RuntimeError(f"the promoted config was not used: {label}")
    after_s = timer(lambda: _run(evaluate, promoted_env), repeat=5)
    ratio = after_s / before_s
    yield _line(f"buddy evaluate after a promotion (config {label})", after_s,
                f"before {before_s * 1e3:7.1f} ms  ratio {ratio:5.2f}x",
                f"<= {PROMOTED_RATIO_GOAL}x", ratio <= PROMOTED_RATIO_GOAL)


def _promote_default(workdir: Path, env: dict[str, str]) -> str:
    """Register the packaged default config in a new MLflow store under ``workdir`` and
    promote it (the first promotion: no replay); return the store's URI."""
    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    code = ("from buddy.config import default_scoring_config\n"
            "from experiments.registry import promote, register_config\n"
            "from experiments.tracking import ensure_store\n"
            "store = ensure_store()\n"
            "promote(register_config(default_scoring_config(), experiments=store), "
            "experiments=store)\n")
    _run([sys.executable, "-c", code], {**env, "MLFLOW_TRACKING_URI": uri})
    return uri
