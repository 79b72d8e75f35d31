"""Post-trade reviews on a hand-built store: MAE/MFE, exit efficiency, process grade, lessons."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from buddy.domain import Fact
from buddy.guardrails import check_text
from buddy.jobs.reviews import run_reviews_job
from buddy.store import Store
from buddy.store.trades import read_reviews, read_trades
from buddy.trades.review import REVIEW_VERSION, excursions
from tests.trades.conftest import T0, bars_1h


def _review(store: Store, symbol: str, open_minute: int) -> tuple[dict, dict]:
    trades = read_trades(store, "u1")
    trade = trades[(trades["symbol"] == symbol)
                   & (trades["open_ts"] == T0 + pd.Timedelta(minutes=open_minute))].iloc[0]
    (review,) = read_reviews(store, "u1", trade_ids=[trade["trade_id"]]).to_dict("records")
    return trade.to_dict(), review


def test_mae_mfe_and_exit_efficiency_match_the_hand_computed_case(reviewed_store: Store) -> None:
    _, review = _review(reviewed_store, "AAPL", 0)
    # bars 14:30..17:30 overlap the trade: high 104, low 98.5; entry 100, stop 98 (2 a unit)
    assert review["bars_held"] == 4 and review["bars_timeframe"] == "1h"
    assert review["mae_price"] == pytest.approx(1.5) and review["mfe_price"] == pytest.approx(4)
    assert review["mae_r"] == pytest.approx(0.75) and review["mfe_r"] == pytest.approx(2.0)
    assert review["mae_position"] == pytest.approx(150) and review["mfe_position"] == 400
    # window 14:30 .. session end, cut before the 19:30 bar whose low 96 is past 100 - 2:
    # best exit 105 (not the later 110); captured (103 - 100) / (105 - 100)
    assert review["exit_efficiency"] == pytest.approx(0.6)
    assert json.loads(review["review_json"])["numbers"]["best_exit"] == 105


def test_process_grade_counts_checks_and_keeps_outcome_apart(reviewed_store: Store) -> None:
    _, review = _review(reviewed_store, "AAPL", 0)
    checks = json.loads(review["review_json"])["checks"]
    assert checks == {"stop_honoured": 1.0, "risk_within_budget": 1.0, "size_as_planned": 1.0,
                      "exit_by_plan": 0.0, "top_issues_acted_on": 0.0}
    assert review["process_score"] == pytest.approx(0.6) and review["process_grade"] == "C"
    assert review["process_outcome"] == "bad_process_good_outcome"
    improve = [x["code"] for x in json.loads(review["what_to_improve_json"])]
    assert improve == ["EXIT_OFF_PLAN", "ISSUES_NOT_ACTED_ON"]


def test_a_stopped_out_plan_is_good_process_and_not_a_mistake(reviewed_store: Store) -> None:
    trade, review = _review(reviewed_store, "MSFT", 0)
    assert trade["pnl_r"] == pytest.approx(-1.0) and trade["outcome_label"] == "loss"
    checks = json.loads(review["review_json"])["checks"]
    assert checks["stop_honoured"] == 1.0 and checks["exit_by_plan"] == 1.0
    assert checks["top_issues_acted_on"] is None  # no issues: not checked, not passed
    assert review["process_grade"] == "A" and review["outcome"] == "bad"
    assert review["process_outcome"] == "good_process_bad_outcome"
    (key,) = json.loads(review["key_lessons_json"])
    assert key["code"] == "GOOD_PROCESS_BAD_OUTCOME" and "not a mistake" in key["text"]


def test_a_trade_inside_one_bar_is_not_measured_and_says_so(reviewed_store: Store) -> None:
    _, review = _review(reviewed_store, "AAPL", 365)
    assert review["bars_held"] == 1 and pd.isna(review["mae_price"])
    assert pd.isna(review["exit_efficiency"]) and review["process_grade"] == "not graded"
    codes = [x["code"] for x in json.loads(review["what_to_improve_json"])]
    assert codes == ["NO_STOP_KNOWN", "EXCURSIONS_NOT_MEASURED"]


def test_every_review_text_passes_the_no_prediction_guardrail(reviewed_store: Store) -> None:
    reviews = read_reviews(reviewed_store, "u1")
    assert len(reviews) == 3 and set(reviews["version"]) == {REVIEW_VERSION}
    texts = 0
    for column in ("key_lessons_json", "what_went_well_json", "what_to_improve_json"):
        for items in reviews[column]:
            for item in json.loads(items):
                facts = [Fact(**f) for f in item["facts"]]
                verdict = check_text(item["text"], facts)
                assert verdict.ok, (item["text"], verdict.reasons)
                texts += 1
    assert texts >= 12


def test_the_job_reviews_each_closed_trade_once_per_version(reviewed_store: Store) -> None:
    again = run_reviews_job(reviewed_store, "u1")
    assert again.n_reviewed == 0
    assert len(read_reviews(reviewed_store, "u1")) == 3


def test_excursions_of_a_short_use_highs_as_adverse() -> None:
    trades = pd.DataFrame({"symbol": ["X"], "timeframe": ["1h"], "side": ["short"],
                           "open_ts": [T0], "close_ts": [T0 + pd.Timedelta(minutes=150)],
                           "last_exec_ts": [T0], "avg_entry": [100.0], "avg_exit": [97.0],
                           "initial_stop": [102.0], "max_position": [10.0],
                           "multiplier": [1.0]})
    bars = bars_1h("X", [(101, 99), (100.5, 96), (99, 95)]).assign(symbol="X")
    moves = excursions(trades, bars).iloc[0]
    assert moves["mae_price"] == pytest.approx(1.0) and moves["mfe_price"] == pytest.approx(5)
    assert moves["mae_r"] == pytest.approx(0.5) and moves["bars_held"] == 3
    assert moves["exit_efficiency"] == pytest.approx(3 / 5)
