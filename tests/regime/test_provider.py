"""The regime provider reads the stored row when it is current and computes the same snapshot
on demand otherwise; the CLI prints it; missing regimes say why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from buddy.cli import cli
from buddy.context.builder import ContextPackBuilder
from buddy.context.pieces import RegimeSnapshot
from buddy.jobs.features import run_features_job
from buddy.jobs.load import synth_into
from buddy.jobs.regime import run_regime_job
from buddy.regime import provider
from buddy.regime.provider import compute_regime_at, regime_at, regime_provider
from buddy.store import Store
from buddy.timeframes import Timeframe

SYMBOL = "SYN0001"


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Return a store with two years of one synthetic symbol and its features, no regimes."""
    store = Store(tmp_path_factory.mktemp("provider") / "bare.duckdb")
    synth_into(store, n_symbols=1, years=2, timeframe=Timeframe.D1, seed=3)
    run_features_job(store, progress=False)
    return store


@pytest.fixture(scope="module")
def done(bare: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Return a copy of ``bare`` after the regime job."""
    path = tmp_path_factory.mktemp("provider") / "done.duckdb"
    shutil.copy(bare.path, path)
    store = Store(path)
    run_regime_job(store, workers=1, progress=False)
    return store


def bar_close(store: Store, position: int) -> pd.Timestamp:
    return pd.Timestamp(store.bars(SYMBOL, "1d")["ts_close"].iloc[position])


@pytest.mark.parametrize("position", [100, 251, 300, -1])
def test_stored_and_on_demand_snapshots_are_equal(bare: Store, done: Store,
                                                  position: int) -> None:
    as_of = bar_close(bare, position) + pd.Timedelta(minutes=5)
    from_row, _ = regime_at(done, SYMBOL, "1d", as_of)
    assert isinstance(from_row, RegimeSnapshot)
    assert regime_at(bare, SYMBOL, "1d", as_of) == (from_row, None)  # nothing stored: fit
    assert compute_regime_at(done, SYMBOL, "1d", as_of) == (from_row, None)  # stored fit
    assert (from_row.hmm_state_id is None) == (position == 100)


def test_a_current_row_is_read_not_recomputed(done: Store,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("recomputed although the row is stored")

    monkeypatch.setattr(provider, "compute_series", refuse)
    snapshot, reason = regime_at(done, SYMBOL, "1d", bar_close(done, -1))
    assert snapshot is not None and reason is None


def test_a_row_of_another_version_is_recomputed(done: Store, tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    shutil.copy(done.path, path)
    old = Store(path)
    with old.transaction() as con:
        con.execute("UPDATE regime_snapshots SET version = '0.0.1', trend_state = 'bogus'")
    snapshot, _ = regime_at(old, SYMBOL, "1d", bar_close(old, -1))
    assert snapshot == regime_at(done, SYMBOL, "1d", bar_close(done, -1))[0]
    assert snapshot is not None and snapshot.trend_state != "bogus"


def test_missing_regimes_say_why(done: Store) -> None:
    first = bar_close(done, 0)
    snapshot, reason = regime_at(done, SYMBOL, "1d", first - pd.Timedelta(days=1))
    assert snapshot is None and "no 1d bars of SYN0001 closed at or before" in reason
    snapshot, reason = regime_at(done, SYMBOL, "1d", bar_close(done, 10))
    assert snapshot is None and "not yet defined" in reason and "vol_state" in reason


def test_the_builder_fills_the_regime_piece(done: Store) -> None:
    builder = ContextPackBuilder(done, providers={"regime": regime_provider})
    pack = builder.build("u1", SYMBOL, Timeframe.D1, bar_close(done, -1).to_pydatetime())
    assert isinstance(pack.regime, RegimeSnapshot) and "regime" not in pack.missing
    assert pack.regime.ts == pack.market.bars["ts"].iloc[-1]
    early = builder.build("u1", SYMBOL, Timeframe.D1, bar_close(done, 10).to_pydatetime())
    assert early.regime is None and "not yet defined" in early.missing["regime"]


def test_cli_prints_the_regime_and_runs_the_job(done: Store) -> None:
    runner = CliRunner()
    db = ["--db", str(done.path)]
    as_of = bar_close(done, -1).isoformat()
    shown = runner.invoke(cli, [*db, "context", "regime", SYMBOL.lower(), "--tf", "1d",
                                "--as-of", as_of])
    assert shown.exit_code == 0, shown.output
    snapshot = regime_at(done, SYMBOL, "1d", bar_close(done, -1))[0]
    assert f"trend      {snapshot.trend_state}" in shown.output
    assert f"HMM        {snapshot.hmm_state_label}" in shown.output
    as_json = runner.invoke(cli, [*db, "context", "regime", SYMBOL, "--tf", "1d", "--as-of",
                                  as_of, "--json"])
    payload = json.loads(as_json.output)
    assert payload["hmm_probs"] == list(snapshot.hmm_probs)
    assert payload["transition_risk"]["10"] == snapshot.transition_risk(10)
    early = runner.invoke(cli, [*db, "context", "regime", SYMBOL, "--tf", "1d", "--as-of",
                                "2020-01-01"])
    assert early.exit_code == 2 and "no regime" in early.output
    unknown = runner.invoke(cli, [*db, "context", "regime", "NOPE", "--tf", "1d"])
    assert unknown.exit_code == 2 and "NOPE" in unknown.output
    job = runner.invoke(cli, [*db, "jobs", "regime", "--workers", "1", "--quiet"])
    assert job.exit_code == 0, job.output
    assert "regime: 0 of 1 series updated" in job.output
