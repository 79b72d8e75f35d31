"""Behaviour detectors on small hand-made histories: what fires, what stays clear, what is
silent below its minimum sample, and what a sensitivity or an opt-out changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from buddy.behavior.detectors import HIT_COLUMNS, detect, stop_breaches
from buddy.behavior.history import TraderHistory
from buddy.behavior.params import DETECTORS, params_for
from buddy.errors import ConfigError
from tests.behavior.detector_factories import T0, history, intent, steady, trade

DAY, HOUR = pd.Timedelta(days=1), pd.Timedelta(hours=1)
LOSS_AT = T0 + 12 * DAY


def _after_loss(loss_symbol: str = "AAPL", loss_r: float = -1.0) -> list[dict]:
    return [*steady(12), trade(12, open_ts=LOSS_AT, symbol=loss_symbol, pnl_r=loss_r)]


def test_revenge_fires_on_a_bigger_entry_right_after_a_loss_with_the_users_figures() -> None:
    found = detect(history(_after_loss()), intent(LOSS_AT + 5 * HOUR, risk=2000.0),
                   params_for())
    hit = found.for_row(0).set_index("detector").loc["revenge"]
    assert list(found.hits.columns) == list(HIT_COLUMNS)
    assert hit["severity"] == "high"  # twice the median
    assert (hit["value"], hit["baseline"], hit["n"]) == (2000.0, 1000.0, 13)
    assert hit["difference"] == 1000.0
    assert hit["difference_lo"] <= hit["difference"] <= hit["difference_hi"]
    assert hit["linked_trade_id"] == "T012"
    facts = hit["evidence"]
    assert facts["loss_r"] == -1.0 and facts["ratio"] == 2.0
    assert facts["hours_since_loss"] == pytest.approx(3.0)


@pytest.mark.parametrize(("case", "rows", "when", "risk"), [
    ("a usual size", _after_loss(), LOSS_AT + 5 * HOUR, 1200.0),
    ("a loss in another asset class", _after_loss("EURUSD"), LOSS_AT + 5 * HOUR, 2000.0),
    ("a scratch, not a loss", _after_loss(loss_r=-0.1), LOSS_AT + 5 * HOUR, 2000.0),
    ("the loss long before", _after_loss(), LOSS_AT + 5 * DAY, 2000.0),
    ("the loss not closed yet", _after_loss(), LOSS_AT + HOUR, 2000.0),
])
def test_revenge_stays_clear(case: str, rows: list[dict], when: pd.Timestamp,
                             risk: float) -> None:
    found = detect(history(rows), intent(when, risk=risk), params_for())
    assert found.status("revenge")[0] == "clear", case
    assert found.rows("revenge").size == 0, case


def test_revenge_scope_any_counts_a_loss_in_another_asset_class() -> None:
    params = params_for(overrides={"revenge": {"scope": "any"}})
    found = detect(history(_after_loss("EURUSD")), intent(LOSS_AT + 5 * HOUR, risk=2000.0),
                   params)
    assert found.rows("revenge").tolist() == [0]


def test_revenge_is_silent_below_its_sample_and_not_checked_without_a_stop() -> None:
    short = [*steady(5), trade(5, open_ts=T0 + 5 * DAY, pnl_r=-1.0)]
    found = detect(history(short), intent(T0 + 5 * DAY + 5 * HOUR, risk=2000.0),
                   params_for())
    assert found.status("revenge")[0] == "silent"
    assert "6 earlier entries" in found.checks.query("detector == 'revenge'")["reason"].iloc[0]
    no_stop = detect(history(_after_loss()), intent(LOSS_AT + 5 * HOUR, risk=None),
                     params_for())
    assert no_stop.status("revenge")[0] == "not_checked"


def test_a_sensitivity_change_changes_what_fires() -> None:
    rows, when = _after_loss(loss_r=-0.5), LOSS_AT + 5 * HOUR
    one_and_a_third = intent(when, risk=1330.0)
    assert detect(history(rows), one_and_a_third, params_for("medium")).rows("revenge").size == 0
    assert detect(history(rows), one_and_a_third, params_for("high")).rows("revenge").size == 1
    doubled = intent(when, risk=2000.0)
    assert detect(history(rows), doubled, params_for("medium")).rows("revenge").size == 1
    # low asks for a loss of 0.9 R: half an R is not enough
    assert detect(history(rows), doubled, params_for({"revenge": "low"})).rows(
        "revenge").size == 0


def test_an_opt_out_removes_the_detector_and_says_it_was_not_checked() -> None:
    params = params_for(enabled=("overtrading", "stop_drift"))
    found = detect(history(_after_loss()), intent(LOSS_AT + 5 * HOUR, risk=2000.0), params)
    assert found.rows("revenge").size == 0
    assert found.status("revenge")[0] == "not_checked"
    assert set(found.checks["detector"]) == {"overtrading", "stop_drift"}


def _busy_day(start: pd.Timestamp, n: int, first: int, pnl_r: float) -> list[dict]:
    return [trade(first + k, open_ts=start + k * HOUR, hours=0.5, timeframe="1h",
                  symbol="EURUSD", pnl_r=pnl_r) for k in range(n)]


def test_overtrading_fires_low_while_the_users_results_on_such_days_are_unknown() -> None:
    rows = steady(25)
    today = T0 + 30 * DAY
    found = detect(history(rows), intent(today + 5 * HOUR, symbol="EURUSD", timeframe="1h"),
                   params_for())
    assert found.rows("overtrading").size == 0  # the first entry of the day
    rows += _busy_day(today, 5, 100, 0.5)
    found = detect(history(rows), intent(today + 6 * HOUR, symbol="EURUSD", timeframe="1h"),
                   params_for())
    hit = found.for_row(0).set_index("detector").loc["overtrading"]
    assert (hit["value"], hit["baseline"], hit["threshold"]) == (6.0, 1.0, 6.0)
    assert hit["severity"] == "low" and hit["evidence"]["results_checked"] is False


@pytest.mark.parametrize(("such_days_r", "fires"), [(-1.0, True), (1.0, False)])
def test_overtrading_follows_the_users_own_results_on_such_days(such_days_r: float,
                                                                fires: bool) -> None:
    rows = steady(25)
    for d in range(3):  # three earlier days of 6 entries each
        rows += _busy_day(T0 + (26 + d) * DAY, 6, 100 + 10 * d, such_days_r)
    today = T0 + 40 * DAY
    rows += _busy_day(today, 5, 200, 0.0)
    found = detect(history(rows), intent(today + 6 * HOUR, symbol="EURUSD", timeframe="1h"),
                   params_for())
    assert (found.rows("overtrading").size == 1) is fires
    if fires:
        facts = found.hits.iloc[0]["evidence"]
        assert facts["results_checked"] is True and facts["such_days"] == 3
        assert facts["result_difference"] < 0


def test_stop_breaches_tell_a_moved_stop_from_a_gap_through_it() -> None:
    touch = T0 + DAY
    rows = [
        # touched and still open after that bar closed: not honoured
        trade(0, open_ts=T0, hours=60, pnl_r=-1.0, stop_checked=True, stop_touch_ts=touch,
              stop_touch_open=100.5),
        # gapped through: filled at the open (98.0), 2 R lost, honoured
        trade(1, open_ts=T0, hours=20, pnl_r=-2.0, stop_checked=True, stop_touch_ts=touch,
              stop_touch_open=98.0),
        # closed in the touch bar 1 R beyond the stop: not honoured
        trade(2, open_ts=T0, hours=20, pnl_r=-2.0, stop_checked=True, stop_touch_ts=touch,
              stop_touch_open=100.5),
        # never touched
        trade(3, open_ts=T0, hours=20, pnl_r=1.0, stop_checked=True),
    ]
    frame = history(rows).trades
    breach_ns, beyond_r, _ = stop_breaches(frame)
    stayed = breach_ns != np.iinfo(np.int64).max
    assert stayed.tolist() == [True, False, False, False]
    assert beyond_r[1] == pytest.approx(0.0)
    assert beyond_r[2] == pytest.approx(1.0)
    assert beyond_r[3] == 0.0


def test_fatigue_is_not_checked_for_a_daily_entry() -> None:
    every = params_for(enabled=DETECTORS)  # fatigue is off by default
    found = detect(history(steady(12)), intent(T0 + 13 * DAY), every)
    assert found.status("fatigue")[0] == "not_checked"
    assert (found.checks["detector"] == "fatigue").sum() == 1  # it ran and could not judge
    assert not (detect(history(steady(12)), intent(T0 + 13 * DAY), params_for())
                .checks["detector"] == "fatigue").any()  # off by default: not run at all
    assert found.status("fomo")[0] == "not_checked"  # no extension given


def test_bad_input_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"intents: missing columns \['as_of'\]"):
        detect(history(steady(3)), intent(T0).drop(columns="as_of"), params_for())
    with pytest.raises(ConfigError, match=r"sensitivity.revenge: must be one of"):
        params_for({"revenge": "extreme"})
    with pytest.raises(ConfigError, match=r"size_margn.*did you mean 'size_margin'"):
        params_for(overrides={"revenge": {"size_margn": 2.0}})


def test_a_loss_without_a_stop_counts_against_the_users_median_risk() -> None:
    rows = [*steady(12), trade(12, open_ts=LOSS_AT, pnl_r=-1.0, risk=None)]
    assert np.isnan(history(rows).trades["pnl_r"].iloc[-1])  # no R: no stop on record
    found = detect(history(rows), intent(LOSS_AT + 5 * HOUR, risk=2000.0), params_for())
    assert found.for_row(0)["linked_trade_id"].tolist()[:1] == ["T012"]
    small = [*steady(12), trade(12, open_ts=LOSS_AT, pnl_r=-0.1, risk=None)]
    assert detect(history(small), intent(LOSS_AT + 5 * HOUR, risk=2000.0),
                  params_for()).rows("revenge").size == 0


def _stop_history(breaches_before: int, breaches_recent: int, n_before: int = 40,
                  n_recent: int = 20) -> TraderHistory:
    """Daily trades with a checked stop, the first ``breaches_before`` of the earlier ones
    and the last ``breaches_recent`` of the recent ones closing 1 R beyond their stop."""
    rows = []
    for k in range(n_before + n_recent):
        open_ts = T0 + k * DAY
        recent = k >= n_before
        breach = (k < breaches_before) or (recent and k >= n_before + n_recent
                                           - breaches_recent)
        rows.append(trade(k, open_ts=open_ts, hours=20, stop_checked=True,
                          **({"pnl_r": -2.0, "stop_touch_ts": open_ts + pd.Timedelta(hours=10),
                              "stop_touch_open": 100.5} if breach else {"pnl_r": 1.0})))
    return history(rows)


def test_stop_drift_nudges_a_change_not_the_traders_usual_rate() -> None:
    t = T0 + 61 * DAY
    usual = _stop_history(breaches_before=2, breaches_recent=1)  # 5% before, 5% recently
    assert detect(usual, intent(t), params_for()).status("stop_drift")[0] == "clear"
    # any one stop not honoured is enough at high sensitivity
    assert detect(usual, intent(t), params_for("high")).status("stop_drift")[0] == "fired"
    drifted = _stop_history(breaches_before=2, breaches_recent=7)  # 35% recently
    found = detect(drifted, intent(t), params_for())
    assert found.status("stop_drift")[0] == "fired"
    hit = found.hits.iloc[0]
    assert hit["value"] == pytest.approx(7 / 20) and hit["baseline"] == pytest.approx(2 / 40)
    assert hit["difference_lo"] > 0
