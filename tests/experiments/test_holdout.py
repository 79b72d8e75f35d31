"""The gate on real replays of the bundled data: its runs are never "the latest run", a
holdout overlapping the fit is refused before anything is written, a no-worse challenger is
promoted on paired evidence and a thin holdout is refused as not enough evidence; migration
0013 marks the holdout runs of an older file."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from buddy.config import ScoringConfig, default_scoring_config
from buddy.store import Store
from buddy.store.core import migrations
from experiments.gate import GateConfig, HoldoutWindow, ReplayHoldoutScorer, WindowOverlapError
from experiments.registry import PRODUCTION, alias_version, promote, register_config
from experiments.tracking import PROMOTIONS_EXPERIMENT, ensure_store
from experiments.weights import resolve_run_id, search_weights
from replay.engine import latest_run_id, run_info
from replay.executors import SerialExecutor
from replay.reports import load_runs

#: A small real holdout after the fit window: every generator on two daily equities.
SMALL = HoldoutWindow(intent_source="corpus", symbols=("AAPL", "MSFT"), timeframe="1d",
                      start="2011-07-01", end="2013-03-01")


def doubled_weights() -> ScoringConfig:
    """Return the default config with every weight doubled: another hash, the same ranking."""
    base = default_scoring_config()
    return dataclasses.replace(base, modules=tuple(
        dataclasses.replace(m, weight=m.weight * 2) for m in base.modules))


@pytest.fixture(scope="module")
def scorer(replay_store: Store) -> ReplayHoldoutScorer:
    """Return a gate scorer on ``replay_store``, whose demo trader has an account (the
    generated ideas are theirs): risk and exit modules score, so scores differ by intent.

    The regime and levels jobs run first on the holdout's series, as before any real replay:
    without their snapshots each of the ~180 as-of points of a replay fitted its own HMM and
    searched its own levels (two thirds of the module's CPU; the pieces are the same, as
    tests/regime and tests/levels check point in time).
    """
    from buddy.demo import ensure_demo_user
    from buddy.jobs.levels import run_levels_job
    from buddy.jobs.regime import run_regime_job

    ensure_demo_user(replay_store)
    for job in (run_regime_job, run_levels_job):
        job(replay_store, list(SMALL.symbols or ()), [SMALL.timeframe], workers=1,
            progress=False)
    return ReplayHoldoutScorer(replay_store, executor=SerialExecutor(), n_boot=20,
                               track=False)


def test_gate_replays_are_never_the_latest_run_and_are_not_fitted_on(
        replay_store: Store, research_run: str, scorer: ReplayHoldoutScorer) -> None:
    scorer(default_scoring_config(), SMALL)
    gate_run, _ = scorer.runs[default_scoring_config().hash]
    assert run_info(replay_store, gate_run)["purpose"] == "gate"
    assert run_info(replay_store, research_run)["purpose"] == "research"
    assert latest_run_id(replay_store) == research_run  # although the gate run is newer
    assert latest_run_id(replay_store, "gate") == gate_run
    assert resolve_run_id(replay_store) == research_run
    assert load_runs(replay_store).run_ids == (research_run,)
    with pytest.raises(ValueError, match=r"run_id: must be a research replay run"):
        search_weights(replay_store, gate_run, method="grid", log=False)


def test_a_holdout_overlapping_the_fit_is_refused_before_anything_is_written(
        replay_store: Store, research_run: str, tracking_store: str) -> None:
    (_, candidate) = search_weights(replay_store, research_run, method="grid", top=1,
                                    register=True, log=False, n_boot=20)
    experiments = ensure_store()
    overlapping = GateConfig(window=HoldoutWindow(start="2012-06-01", end="2012-12-31"))
    with pytest.raises(WindowOverlapError) as caught:
        promote(candidate.version, gate=overlapping, experiments=experiments)
    (error,) = caught.value.errors
    assert error.field == "gate.window" and error.value == "2012-06-01..2012-12-31"
    assert candidate.fit.span() in error.rule and research_run in error.rule
    assert not experiments.client.search_runs(
        [experiments.experiment_id(PROMOTIONS_EXPERIMENT)])  # nothing recorded
    assert alias_version("buddy-scoring", PRODUCTION) is None
    after = GateConfig(window=HoldoutWindow(start="2012-07-01", end="2013-03-01"))
    assert promote(candidate.version, gate=after, experiments=experiments).moved  # first


def test_on_a_real_holdout_a_thin_sample_is_refused_and_a_no_worse_challenger_passes(
        scorer: ReplayHoldoutScorer, tracking_store: str) -> None:
    experiments = ensure_store()
    v1 = register_config(default_scoring_config(), experiments=experiments)
    v2 = register_config(doubled_weights(), experiments=experiments)
    gate = GateConfig(window=SMALL, min_n=30, n_boot=200)
    assert promote(v1, gate=gate, scorer=scorer, experiments=experiments).moved  # first
    thin = promote(v2, gate=dataclasses.replace(gate, min_n=200), scorer=scorer,
                   experiments=experiments)
    evidence = thin.comparison.evidence
    assert not thin.moved and thin.comparison.outcome == "refused"
    assert thin.comparison.reason.startswith(
        f"not enough evidence: {evidence.n} resolved trades paired on the holdout window")
    assert 30 <= evidence.n < 200 and evidence.n_clusters >= 4
    assert alias_version("buddy-scoring", PRODUCTION) == str(v1)
    passed = promote(v2, gate=gate, scorer=scorer, experiments=experiments)
    comparison = passed.comparison
    assert passed.moved and comparison.outcome == "passed", str(comparison)
    assert comparison.evidence == evidence  # the same paired trades, read back
    (auc_check,) = [c for c in comparison.checks if c.metric == "auc"]
    assert auc_check.paired and auc_check.low == auc_check.high == pytest.approx(0.0)
    assert not math.isnan(auc_check.production)  # the scores do differ between intents
    run = experiments.client.get_run(passed.run_id)
    assert run.data.metrics["paired_n"] == evidence.n
    assert run.data.metrics["delta_low__auc"] == pytest.approx(0.0)
    assert alias_version("buddy-scoring", PRODUCTION) == str(v2)


def test_migration_0013_marks_the_holdout_runs_of_an_older_file(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR "
                "NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
    for version, name, sql in migrations():
        if version < 13:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
    for run_id, name, finished in (("rp_fit", "sample", "2024-01-01"),
                                   ("rp_gate", "holdout-0123456789", "2024-01-02")):
        con.execute("INSERT INTO replay_runs VALUES (?, ?, 'default', '1', 'h', '{}', "
                    "'generator:ma_cross', 'ih', '{}', 1, NULL, NULL, 0, 'done', ?, ?)",
                    [run_id, name, pd.Timestamp(finished, tz="UTC"),
                     pd.Timestamp(finished, tz="UTC")])
    con.close()
    store = Store(path)
    purposes = store.query("SELECT run_id, purpose FROM replay_runs ORDER BY run_id")
    assert purposes.to_dict("records") == [{"run_id": "rp_fit", "purpose": "research"},
                                           {"run_id": "rp_gate", "purpose": "gate"}]
    assert latest_run_id(store) == "rp_fit"  # the newer holdout replay is not "latest"
    with pytest.raises(Exception, match="purpose"), store.transaction() as write:
        write.execute("UPDATE replay_runs SET purpose = 'other'")
