"""Exposure snapshots of the demo trader (buddy.portfolio.snapshot, buddy.jobs.portfolio):
the figures hold together, the positions regrouped for open trades equal a regroup of every
fill, a snapshot as of t is unchanged by deleting everything after t, and the job writes the
same rows twice."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from buddy.jobs.portfolio import build_demo_portfolio, run_portfolio_job, snapshot_times
from buddy.portfolio.positions import FillInputs
from buddy.portfolio.snapshot import (
    ExposureSnapshot,
    SnapshotConfig,
    build_snapshot,
    exposure_snapshot,
)
from buddy.portfolio.state import WEEKLY_2Y, portfolio_state
from buddy.store import Store
from buddy.store.core import insert_frame
from buddy.store.portfolio import read_snapshots, record_equity
from tests.portfolio.conftest import DEMO_EQUITY_FROM

#: The demo trader holds GOOG and IBM then (opened 2013-02-15 and 2013-02-08).
T = pd.Timestamp("2013-02-20T21:30Z")


@pytest.fixture(scope="module")
def snapshot_at_t(portfolio_demo: Store) -> ExposureSnapshot:
    snapshot, reason = exposure_snapshot(portfolio_demo, "demo", T)
    assert snapshot is not None, reason
    return snapshot


def test_the_snapshot_holds_together(snapshot_at_t: ExposureSnapshot, portfolio_demo: Store
                                    ) -> None:
    snap = snapshot_at_t
    state = portfolio_state(portfolio_demo, "demo", T)
    assert state is not None
    pos = snap.positions
    assert list(pos["symbol"]) == ["GOOG", "IBM"]
    # Euler contributions sum to the volatility
    assert pos["contribution_pct"].sum() == pytest.approx(snap.vol_pct, rel=1e-9)
    # heat: the open risk to the stops, % of equity, against the rules' limit
    assert snap.heat_pct == pytest.approx(pos["open_risk_pct"].sum())
    assert snap.heat_limit_pct == state.rules.max_open_heat_pct
    assert snap.gross_pct == pytest.approx(pos["weight_pct"].abs().sum())
    assert snap.sectors["Technology"]["net_pct"] == pytest.approx(snap.net_pct)
    # parametric VaR is z sigma on the same figures; the historical one has its n and bounds
    assert snap.var_parametric_pct == pytest.approx(1.6448536269514722 * snap.vol_pct)
    assert snap.var_historical_n == snap.n_returns > 200
    assert snap.var_historical_low_pct <= snap.var_historical_pct <= snap.var_historical_high_pct
    assert snap.vol_low_pct < snap.vol_pct < snap.vol_high_pct
    # betas on two years of weekly returns, each with its n and interval
    assert (pos["beta_n"] >= 100).all()
    assert ((pos["beta_low"] < pos["beta"]) & (pos["beta"] < pos["beta_high"])).all()
    assert snap.beta_net_exposure_pct == pytest.approx((pos["weight_pct"] * pos["beta"]).sum())
    assert set(pos["cluster"]) <= {c["cluster"] for c in snap.clusters}
    assert snap.not_checked == {}
    # the stored row is plain JSON, NaN-free, with the stated windows
    row = snap.row(computed_at=pd.Timestamp("2026-01-01T00:00Z"), trigger="on_demand")
    assert row["returns_window"] == "1 year of daily log returns"
    assert json.loads(row["risk_contributions_json"])["GOOG"] == pytest.approx(
        pos["contribution_pct"].iloc[0])


def test_blume_betas_and_a_daily_window(portfolio_demo: Store) -> None:
    state = portfolio_state(portfolio_demo, "demo", T)
    assert state is not None
    raw = build_snapshot(state).positions["beta"].to_numpy()
    blume = build_snapshot(state, SnapshotConfig(blume=True)).positions["beta"].to_numpy()
    assert np.allclose(blume, 0.67 * raw + 0.33)
    daily = build_snapshot(state, SnapshotConfig(beta_frequency="daily", beta_years=1.0))
    assert daily.beta_window == "1 year of daily log returns"
    assert (daily.positions["beta_n"] > 200).all()
    assert state.returns(["SP500"], window=WEEKLY_2Y).index.max() == pd.Timestamp("2013-02-15")


def _truncated(source: Store, folder: Path, t: pd.Timestamp) -> Store:
    """Return a store holding only what ``source`` knew at t: bars closed by t, fills and
    intents by t, the corporate actions with ex-date by t, and the account."""
    store = Store(folder / "buddy.duckdb")
    cut = t.to_pydatetime()
    tables = {
        "tickers": source.query("SELECT * FROM tickers"),
        "bars": source.query("SELECT * FROM bars WHERE ts_close <= ?", [cut]),
        "corporate_actions": source.query("SELECT * FROM corporate_actions WHERE ex_date <= "
                                          "CAST(? AS DATE)", [cut]),
        "broker_fills": source.query("SELECT * FROM broker_fills WHERE ts <= ?", [cut]),
        "trade_intents": source.query("SELECT * FROM trade_intents WHERE as_of <= ?", [cut]),
        "user_accounts": source.query("SELECT * FROM user_accounts"),
        "user_rules": source.query("SELECT * FROM user_rules"),
        "user_rules_history": source.query("SELECT * FROM user_rules_history"),
        "user_preferences": source.query("SELECT * FROM user_preferences")}
    with store.transaction() as con:
        for table, frame in tables.items():
            insert_frame(con, table, frame)
    record_equity(store, "demo", DEMO_EQUITY_FROM.to_pydatetime(), 100_000.0, "USD",
                  "demo account (simulated at constant equity)")
    return store


def test_deleting_everything_after_t_changes_nothing_in_the_snapshot_at_t(
        snapshot_at_t: ExposureSnapshot, portfolio_demo: Store, tmp_path: Path) -> None:
    truncated = _truncated(portfolio_demo, tmp_path, T)
    again, reason = exposure_snapshot(truncated, "demo", T)
    assert again is not None, reason
    assert again.as_dict() == snapshot_at_t.as_dict()


def test_the_job_writes_each_close_and_position_change_once(
        demo_store_copy: Callable[[], Store]) -> None:
    store = demo_store_copy()
    start, end = pd.Timestamp("2013-02-13T00:00Z"), pd.Timestamp("2013-02-22T23:59Z")
    times = snapshot_times(store, "demo", start, end)
    assert times["ts"].is_monotonic_increasing and times["ts"].is_unique
    fills = FillInputs.read(store, "demo").fills
    fill_ts = pd.to_datetime(fills["ts"], utc=True)
    in_range = fill_ts[(fill_ts >= start) & (fill_ts <= end)]
    assert len(in_range) and set(in_range) <= set(times["ts"])  # every position change
    assert (times["trigger"] == "close").sum() >= 7  # the sessions' closes
    printed: list[str] = []
    first = build_demo_portfolio(store, "demo", start=start, end=end, show_at=T,
                                 echo=printed.append)  # the demo's call: equity on record
    assert "cluster 1: GOOG" in printed[-1] and "heat: 1.32% of equity" in printed[-1]
    rows = read_snapshots(store, "demo")
    assert first.snapshots == len(rows) == len(times)
    second = run_portfolio_job(store, "demo", start=start, end=end)
    again = read_snapshots(store, "demo")
    assert second.snapshots == len(again) == len(rows)
    same = [c for c in rows.columns if c != "computed_at"]
    pd.testing.assert_frame_equal(rows[same], again[same])
    at_t = again[again["ts"] == again["ts"][again["ts"] <= T].max()].iloc[0]
    state = portfolio_state(store, "demo", at_t["ts"])
    assert state is not None
    assert at_t["portfolio_heat_score"] == pytest.approx(state.heat_pct)
    assert at_t["n_positions"] == len(state.positions)
    assert not math.isnan(at_t["var_historical_pct"])
