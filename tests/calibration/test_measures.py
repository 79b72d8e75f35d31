"""Each code's claim tested with its own measure: per-intent measures, verdicts, clusters."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from buddy.store import Store
from buddy.store.core import insert_frame
from buddy.users.store import set_user
from replay import calibration as cal
from replay.measures import (
    account_inputs,
    claim_summary,
    claim_table,
    declared_codes,
    intent_measures,
)
from tests.calibration.synthetic import issues_frame

N_BOOT = 300


@dataclass(frozen=True)
class Claim:
    """A declared code as claim_table reads it."""

    measure: str | None
    kind: str = "issue"
    harm: str = "a harm"


def _outcomes(rows: list[tuple[str, float, float, int]], **extra: object) -> pd.DataFrame:
    """Return a results frame from (exit_reason, realized_r, mae_r, bars_held) rows."""
    frame = pd.DataFrame(rows, columns=["exit_reason", "realized_r", "mae_r", "bars_held"])
    frame.insert(0, "intent_id", [f"i{k}" for k in range(len(rows))])
    frame.insert(0, "run_id", "run-1")
    frame["symbol"] = "TEST"
    frame["as_of"] = pd.Timestamp("2010-01-04", tz="UTC") + pd.to_timedelta(
        np.arange(len(rows)) * 40, unit="D")
    for name, value in extra.items():
        frame[name] = value
    return frame


def test_each_measure_per_intent_from_its_outcome() -> None:
    frame = _outcomes([("stop", -1.0, -1.0, 2), ("stop", -1.4, -1.4, 5),
                       ("target", 2.0, -0.3, 7), ("time", 0.4, -0.6, 10),
                       ("open", 0.1, -0.2, 3), ("trade", -0.5, -0.8, 4),
                       ("not_filled", math.nan, math.nan, 0)],
                      filled=[True, True, True, True, True, True, False])
    m = intent_measures(frame)
    nan = math.nan
    expected = {
        "not_filled": [0, 0, 0, 0, 0, 0, 1],
        "stopped_early": [1, 0, 0, 0, nan, nan, nan],
        "stopped_out": [1, 1, 0, 0, nan, nan, nan],
        "target_reached": [0, 0, 1, 0, nan, nan, nan],
        "time_stopped": [0, 0, 0, 1, nan, nan, nan],
        "loss_beyond_stop": [0, 1, 0, 0, nan, 0, nan],
        "adverse_excursion": [1.0, 1.4, 0.3, 0.6, nan, 0.8, nan],
        "realized_r": [-1.0, -1.4, 2.0, 0.4, nan, -0.5, nan],
        "equity_loss": [nan] * 7,  # no account inputs: unknown
    }
    for name, values in expected.items():
        np.testing.assert_allclose(m[name].to_numpy(float), values, err_msg=name)
    # a real trade is in scope of the stop measures with its reason unknown; open is not
    assert m["stopped_out_applies"].tolist() == [True] * 4 + [False, True, False]
    assert m["equity_loss_applies"].tolist() == [True, True, False, False, False, True, False]
    assert m["not_filled_applies"].all()


def test_without_a_filled_column_every_row_but_open_counts_as_filled() -> None:
    m = intent_measures(_outcomes([("stop", -1.0, -1.0, 1), ("open", 0.2, -0.1, 4)]))
    np.testing.assert_allclose(m["not_filled"], [0.0, math.nan])
    assert m["not_filled_applies"].tolist() == [True, False]


def test_equity_loss_uses_the_equity_known_at_the_decision(empty_store: Store) -> None:
    set_user(empty_store, "trader", base_currency="USD", equity=50_000.0)
    future = datetime.now(UTC) + timedelta(days=2)
    intents = pd.DataFrame({
        "run_id": "run-1", "intent_id": ["past", "later", "nobody"],
        "user_id": ["trader", "trader", "nobody"], "symbol": "TEST", "side": "long",
        "timeframe": "1d",
        "as_of": [pd.Timestamp("2012-06-01", tz="UTC"), pd.Timestamp(future)] * 1
        + [pd.Timestamp(future)],
        "proposed_entry": 100.0, "proposed_stop": 95.0, "proposed_target": 110.0,
        "proposed_size": 200.0, "holding_horizon": 10, "order_type": "limit",
        "source": "test", "linked_trade_id": None, "intent_no": [0, 1, 2]})
    tickers = pd.DataFrame({"symbol": ["TEST"], "name": ["Test"], "asset_class": ["equity"],
                            "exchange": ["XNYS"], "currency": ["USD"], "tick_size": [0.01],
                            "lot_size": [1.0], "contract_multiplier": [1.0],
                            "trading_calendar": ["XNYS"], "timezone": ["America/New_York"]})
    with empty_store.transaction() as con:
        insert_frame(con, "replay_intents", intents)
        insert_frame(con, "tickers", tickers)
    accounts = account_inputs(empty_store, ["run-1"]).set_index("intent_id")
    assert accounts["risk_money"].tolist() == [1000.0, 1000.0, 1000.0]
    # the snapshot was written now: unknown at a 2012 decision, known at a later one
    assert math.isnan(accounts.loc["past", "equity"])
    assert accounts.loc["later", "equity"] == 50_000.0
    assert math.isnan(accounts.loc["nobody", "equity"])
    results = _outcomes([("stop", -1.5, -1.5, 3)] * 3)
    results["intent_id"] = ["past", "later", "nobody"]
    m = intent_measures(results, accounts.reset_index())
    np.testing.assert_allclose(m["equity_loss"], [math.nan, 1.5 * 1000 / 50_000 * 100,
                                                  math.nan])
    assert m["equity_loss_applies"].all()


def _corpus(n: int = 800, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    reason = rng.choice(["stop", "target", "time"], n, p=[0.4, 0.3, 0.3])
    r = np.select([reason == "stop", reason == "target"], [-1.0, 2.0], rng.normal(0, 0.5, n))
    frame = _outcomes(list(zip(reason, r, -rng.uniform(0, 1, n), rng.integers(1, 12, n),
                               strict=True)))
    frame["symbol"] = rng.choice(["AAA", "BBB", "CCC", "DDD"], n)
    frame["as_of"] = pd.Timestamp("2008-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 4 * 365, n), unit="D")
    return frame


def test_claim_table_verdicts_follow_the_interval_side_and_the_sample_rule() -> None:
    frame = _corpus()
    stops = frame.index[frame["exit_reason"] == "stop"]
    others = frame.index[frame["exit_reason"] != "stop"]
    rng = np.random.default_rng(1)
    pick = {
        "MARKS_STOPS": list(stops[:150]) + list(others[:30]),  # stops far more often
        "MARKS_SAFE": list(others[:180]),  # stops never: the opposite of the claim
        "RANDOM": list(rng.choice(frame.index, 200, replace=False)),
        "RARE": list(stops[:10]),
        "NO_MEASURE": list(stops[:50]),
        "UNCHECKED": list(stops[:50]),
        "UNDECLARED": list(stops[:50]),
    }
    issues = issues_frame([(frame.loc[i, "intent_id"], "m", code)
                           for code, idx in pick.items() for i in idx])
    codes = {"MARKS_STOPS": Claim("stopped_out"), "MARKS_SAFE": Claim("stopped_out"),
             "RANDOM": Claim("realized_r"), "RARE": Claim("stopped_out"),
             "NO_MEASURE": Claim(None, harm="the report's own input"),
             "UNCHECKED": Claim(None, kind="not_checked"), "NEVER": Claim("target_reached")}
    table = claim_table(frame, issues, codes, n_boot=N_BOOT).set_index("code")
    assert table.loc["MARKS_STOPS", "verdict"] == "supported"
    assert table.loc["MARKS_STOPS", "diff_low"] > 0
    row = table.loc["MARKS_STOPS"]
    assert (row["n_fired"], row["n_not_fired"]) == (180, 620)
    assert row["fired"] == pytest.approx(150 / 180)
    assert row["diff"] == pytest.approx(150 / 180 - (len(stops) - 150) / 620)
    assert row["fired_low"] < row["fired"] < row["fired_high"]
    assert table.loc["MARKS_SAFE", "verdict"] == "contradicted"
    assert table.loc["RANDOM", "verdict"] == "cannot judge yet"
    assert table.loc["RANDOM", "reason"] == "interval covers 0"
    assert table.loc["RARE", "reason"] == "fewer than 30 fired (n=10)"
    assert table.loc["NO_MEASURE", "reason"] == ("no outcome measure declared "
                                                 "(the report's own input)")
    assert table.loc["UNCHECKED", "reason"].startswith("not checked")
    assert table.loc["UNDECLARED", "reason"] == "code not declared by any module"
    # the orchestrator's items are declared too: a skipped module checked nothing
    assert table.loc["CONTEXT_MISSING", "kind"] == "not_checked"
    assert table.loc["MODULE_ERROR", "kind"] == "issue"
    assert table.loc["NEVER", "n_fired"] == 0 and table.loc["NEVER", "verdict"] == (
        "cannot judge yet")
    assert table["verdict"].tolist()[:2] == ["supported", "contradicted"]
    text = claim_summary(table.reset_index())
    assert "support 1 warning(s): MARKS_STOPS (stopped_out" in text
    assert "contradict 1 warning(s): MARKS_SAFE" in text
    # six of the test codes and the two orchestrator items
    assert "cannot judge 8 yet" in text and "interval covers 0: RANDOM" in text


def test_open_and_unfilled_outcomes_never_enter_an_r_measure_and_are_counted() -> None:
    frame = _outcomes([("stop", -1.0, -1.0, 2)] * 40 + [("open", 5.0, -0.1, 3)] * 5
                      + [("not_filled", math.nan, math.nan, 0)] * 7,
                      filled=[True] * 45 + [False] * 7)
    issues = issues_frame([(i, "m", "ALL") for i in frame["intent_id"]])
    table = claim_table(frame, issues, {"ALL": Claim("realized_r")}, n_boot=20)
    assert table.loc[0, "n_fired"] == 40 and table.loc[0, "fired"] == -1.0
    assert cal.excluded_counts(frame) == {"open": 5, "not_filled": 7, "no_outcome": 0}
    assert len(cal.resolved_outcomes(frame.assign(win=frame["realized_r"] > 0), None)) == 40


def test_clusters_are_resampled_whole() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=60)
    independent = cal.mean_statistic(values, n_boot=2000, seed=1)
    repeated = np.repeat(values, 10)  # ten copies of each value: no new information
    naive = cal.mean_statistic(repeated, n_boot=2000, seed=1)
    clustered = cal.mean_statistic(repeated, n_boot=2000, seed=1,
                                   clusters=np.repeat(np.arange(60), 10))
    width = independent.high - independent.low
    assert clustered.high - clustered.low == pytest.approx(width, rel=0.15)
    assert naive.high - naive.low < 0.5 * width
    assert clustered.estimate == pytest.approx(values.mean())


def test_the_statistics_are_the_libraries() -> None:
    from sklearn.metrics import roc_auc_score
    from statsmodels.stats.proportion import proportion_confint

    rate = cal.rate_statistic([True] * 13 + [False] * 7)
    assert (rate.low, rate.high) == pytest.approx(proportion_confint(13, 20, method="wilson"))
    rng = np.random.default_rng(0)
    scores, wins = rng.normal(size=200), rng.random(200) > 0.5
    assert cal.auc_statistic(scores, wins, n_boot=10).estimate == pytest.approx(
        roc_auc_score(wins, scores))


def test_every_registered_code_is_listed() -> None:
    codes = declared_codes()
    table = claim_table(_corpus(60), issues_frame([]), codes, n_boot=10)
    assert sorted(table["code"]) == sorted({*codes, "CONTEXT_MISSING", "MODULE_ERROR"})
    assert set(table["verdict"]) <= {"supported", "contradicted", "cannot judge yet"}
