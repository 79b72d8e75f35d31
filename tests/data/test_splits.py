from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from buddy.data.calendars import get_calendar
from buddy.data.frames import CORPORATE_ACTIONS_COLUMNS
from buddy.data.importer import daily_bars
from buddy.data.sample import load_sample
from buddy.data.splits import adjust_bars, detect_splits, split_factor_as_of

XNYS = get_calendar("XNYS")


def bars_with_events(events: dict[int, tuple[float, float]], count: int = 60) -> pd.DataFrame:
    """Bars whose raw close moves by ``price_move`` and adjustment factor by ``factor_jump``.

    ``events`` maps a bar position to (price_move, factor_jump).
    """
    sessions = XNYS.sessions("2010-01-04", "2010-06-30")[:count]
    rng = np.random.default_rng(0)
    moves = np.exp(rng.normal(0, 0.01, count))
    factor_steps = np.ones(count)
    for position, (price_move, factor_jump) in events.items():
        moves[position] = price_move
        factor_steps[position] = factor_jump
    close = 100.0 * np.cumprod(moves)
    factor = np.cumprod(factor_steps)
    factor = factor / factor[-1] * 0.25
    prices = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99,
                           "close": close, "volume": 1e6, "adj_close": close * factor})
    return daily_bars("AAA", sessions, prices, XNYS)


def test_detects_a_three_for_two_split_and_ignores_dividends() -> None:
    bars = bars_with_events({20: (1 / 1.5, 1.5), 35: (0.99, 1.01), 45: (0.89, 1.11)})
    actions = detect_splits("AAA", bars)
    assert list(actions.columns) == list(CORPORATE_ACTIONS_COLUMNS)
    assert actions["ratio"].tolist() == [1.5]
    assert actions["ex_date"].iloc[0] == bars["session"].iloc[20]
    assert actions["action"].tolist() == ["split"]


def test_detects_a_reverse_split() -> None:
    actions = detect_splits("AAA", bars_with_events({30: (10.0, 0.1)}))
    assert actions["ratio"].tolist() == pytest.approx([0.1])


def test_factor_jump_without_a_raw_price_jump_is_not_a_split() -> None:
    assert detect_splits("AAA", bars_with_events({30: (1.0, 2.0)})).empty


def test_split_factor_as_of_applies_only_splits_known_by_then() -> None:
    actions = pd.DataFrame({
        "symbol": ["AAA", "AAA"],
        "ex_date": pd.to_datetime(["2010-03-01", "2010-06-01"]),
        "action": ["split", "split"],
        "ratio": [2.0, 3.0],
        "source": ["test", "test"],
    })
    sessions = pd.to_datetime(["2010-02-26", "2010-03-01", "2010-05-28", "2010-06-01"])
    assert split_factor_as_of(sessions, actions, "2010-02-27").tolist() == [1, 1, 1, 1]
    assert split_factor_as_of(sessions, actions, "2010-03-01").tolist() == [2, 1, 1, 1]
    assert split_factor_as_of(sessions, actions, "2010-05-31").tolist() == [2, 1, 1, 1]
    as_of = pd.Timestamp("2010-06-01 15:00", tz="UTC")
    assert split_factor_as_of(sessions, actions, as_of).tolist() == [6, 3, 3, 1]


def test_adjust_bars_makes_the_series_continuous() -> None:
    bars = bars_with_events({20: (0.5, 2.0)})
    actions = detect_splits("AAA", bars)
    adjusted = adjust_bars(bars, actions, "2011-01-01")
    step = adjusted["close"].iloc[20] / adjusted["close"].iloc[19]
    assert 0.9 < step < 1.1
    assert adjusted["volume"].iloc[0] == pytest.approx(2e6)
    assert adjusted["close"].iloc[25] == bars["close"].iloc[25]
    before = adjust_bars(bars, actions, bars["session"].iloc[19])
    pd.testing.assert_frame_equal(before, bars)


def test_aapl_splits_in_the_real_data() -> None:
    sample = load_sample()
    aapl = sample.corporate_actions[sample.corporate_actions["symbol"] == "AAPL"]
    assert aapl["ex_date"].dt.strftime("%Y-%m-%d").tolist() == ["2000-06-21", "2005-02-28"]
    assert aapl["ratio"].tolist() == [2.0, 2.0]
    msft = sample.corporate_actions[sample.corporate_actions["symbol"] == "MSFT"]
    assert msft["ex_date"].dt.strftime("%Y-%m-%d").tolist() == ["2003-02-18"]
    assert set(sample.corporate_actions["symbol"]) == {"AAPL", "MSFT"}


def test_aapl_point_in_time_adjustment() -> None:
    sample = load_sample()
    bars = sample.bars[sample.bars["symbol"] == "AAPL"].reset_index(drop=True)
    first_split = bars.index[bars["session"] == pd.Timestamp("2000-06-21")][0]
    raw_step = bars["close"].iloc[first_split] / bars["close"].iloc[first_split - 1]
    assert raw_step < 0.6
    in_2003 = adjust_bars(bars, sample.corporate_actions, "2003-01-01")
    adjusted_step = in_2003["close"].iloc[first_split] / in_2003["close"].iloc[first_split - 1]
    assert 0.9 < adjusted_step < 1.1
    assert in_2003["close"].iloc[0] == pytest.approx(bars["close"].iloc[0] / 2)
    in_2013 = adjust_bars(bars, sample.corporate_actions, "2013-03-01")
    assert in_2013["close"].iloc[0] == pytest.approx(bars["close"].iloc[0] / 4)


def test_adjust_bars_without_actions_is_a_copy() -> None:
    bars = bars_with_events({})
    adjusted = adjust_bars(bars, pd.DataFrame(), "2011-01-01")
    pd.testing.assert_frame_equal(adjusted, bars)
    assert adjusted is not bars
