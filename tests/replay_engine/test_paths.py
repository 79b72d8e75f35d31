"""The batch path (one read per series, packs served from memory) gives exactly the
per-intent path's results: every module, every issue with its evidence, every outcome."""

from __future__ import annotations

import pandas as pd
import pytest

from buddy.config import ScoringConfig
from buddy.context.builder import PieceRequest
from buddy.events.provider import schedule_provider
from buddy.mtfa.provider import mtfa_provider
from buddy.users.provider import account_provider
from replay.engine import (
    ReplayError,
    issues_frame,
    module_results_frame,
    result_table_hash,
    results_frame,
    run_replay,
)
from replay.executors import SerialExecutor

from .conftest import ACCOUNT, Reference


def _without_run_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="run_id").reset_index(drop=True)


def assert_same_results(store, first: str, second: str) -> None:
    """Compare two runs table by table (so a failure names the table), then by hash."""
    for read in (results_frame, module_results_frame, issues_frame):
        pd.testing.assert_frame_equal(_without_run_id(read(store, first)),
                                      _without_run_id(read(store, second)))
    assert result_table_hash(store, first) == result_table_hash(store, second)


@pytest.mark.slow
def test_batch_equals_per_intent_on_every_module_and_issue(
        reference: Reference, config: ScoringConfig, record_property) -> None:
    store, intents = reference.store, reference.intents
    assert len(intents) >= 200
    per_intent = run_replay(store, intents, config=config, name="per-intent", mode="intent",
                            executor=SerialExecutor(), providers=ACCOUNT, progress=False)
    print(f"\n{len(intents)} intents in one process: per-intent {per_intent.elapsed_s:.1f} s, "
          f"batch {reference.elapsed_s:.1f} s: batch speedup "
          f"x{per_intent.elapsed_s / reference.elapsed_s:.2f}")
    record_property("per_intent_s", round(per_intent.elapsed_s, 2))
    record_property("batch_s", round(reference.elapsed_s, 2))

    assert_same_results(store, reference.run_id, per_intent.run_id)
    modules = module_results_frame(store, per_intent.run_id)
    assert {"data_quality", "risk_reward", "exit_plan"} <= set(
        modules[modules["status"] == "ok"]["module"])
    assert len(issues_frame(store, per_intent.run_id)) > len(intents)


def test_batch_equals_per_intent_with_every_installed_piece(
        reference: Reference, config: ScoringConfig) -> None:
    providers = {"account": account_provider, "mtfa": mtfa_provider,
                 "schedule": schedule_provider}
    intents = reference.intents.iloc[::30]
    runs = [run_replay(reference.store, intents, config=config, name=f"pieces-{mode}",
                       mode=mode, executor=SerialExecutor(), providers=providers,
                       progress=False, label=False) for mode in ("batch", "intent")]
    assert_same_results(reference.store, runs[0].run_id, runs[1].run_id)
    modules = module_results_frame(reference.store, runs[0].run_id)
    assert {"mtfa", "missing_scanner"} <= set(modules[modules["status"] == "ok"]["module"])


def test_results_frame_has_the_result_contract_a_score_per_module_and_the_outcome(
        reference: Reference, config: ScoringConfig) -> None:
    frame = results_frame(reference.store, reference.run_id)
    assert len(frame) == len(reference.intents)
    modules = [f"score__{name}" for name in sorted(m.name for m in config.modules)]
    from replay.model import OUTCOME_COLUMNS, RESULT_COLUMNS
    assert list(frame.columns) == [*RESULT_COLUMNS, *modules, *OUTCOME_COLUMNS[1:]]
    assert frame["exit_reason"].notna().all()
    assert frame["score__risk_reward"].notna().any()
    assert frame["score__regime_fit"].isna().all()  # no regime piece installed: skipped


@pytest.mark.parametrize("bad, field", [
    ({"proposed_size": 0.0}, "proposed_size"),
    ({"symbol": "NOPE"}, "symbol"),
])
def test_an_invalid_intent_stops_the_run_before_anything_is_written(
        reference: Reference, config: ScoringConfig, bad: dict, field: str) -> None:
    from buddy.errors import IntentValidationError

    intents = reference.intents.head(3).copy()
    for key, value in bad.items():
        intents.loc[1, key] = value
    before = reference.store.query("SELECT count(*) AS n FROM replay_runs")["n"].iloc[0]
    with pytest.raises(IntentValidationError) as caught:
        run_replay(reference.store, intents, config=config, name=f"bad-{field}",
                   executor=SerialExecutor(), progress=False)
    assert any(e.field.endswith(field) for e in caught.value.errors)
    assert intents.loc[1, "intent_id"] in str(caught.value)
    after = reference.store.query("SELECT count(*) AS n FROM replay_runs")["n"].iloc[0]
    assert after == before


def _writing_provider(request: PieceRequest) -> tuple[None, str]:
    with request.store.transaction() as con:
        con.execute("DELETE FROM replay_results")
    return None, "wrote"


def test_a_worker_cannot_write_to_the_store(reference: Reference, config: ScoringConfig
                                            ) -> None:
    store = reference.store
    before = store.query("SELECT count(*) AS n FROM replay_results")["n"].iloc[0]
    with pytest.raises(ReplayError, match="may not write"):
        run_replay(store, reference.intents.head(2), config=config, name="writer",
                   executor=SerialExecutor(), providers={"levels": _writing_provider},
                   progress=False, label=False)
    status = store.query("SELECT status FROM replay_runs WHERE name = 'writer'")["status"]
    assert list(status) == ["failed"]
    assert store.query("SELECT count(*) AS n FROM replay_results")["n"].iloc[0] == before
