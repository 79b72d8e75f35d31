"""Prices on the tick grid, exactly, however many ticks a price holds (issue #16, section 3)."""

from __future__ import annotations

import math
import timeit

import pytest

from buddy.evidence import is_on_tick
from buddy.validation import Catalogue, catalogue_errors
from tests import factories


@pytest.mark.parametrize(("price", "tick"), [
    (500000000.0, 0.00001),        # EURUSD at 5e8: 5e13 ticks
    (500000000.00001, 0.00001),
    (123456789012.34, 0.01),       # 1.2e13 cents
    (1e15, 0.25),
    (1.2345, 0.0001),
    (0.1 + 0.2, 0.01),             # float noise on a normal price stays on its tick
])
def test_exact_multiples_are_on_tick(price: float, tick: float) -> None:
    assert is_on_tick(price, tick)


@pytest.mark.parametrize(("price", "tick"), [
    (500000000.000005, 0.00001),   # half a tick off, at 5e13 ticks
    (123456789012.345, 0.01),
    (1e15 + 0.125, 0.25),
    (1.23455, 0.0001),
    (math.inf, 0.01),
    (math.nan, 0.01),
])
def test_prices_between_ticks_are_not_on_tick(price: float, tick: float) -> None:
    assert not is_on_tick(price, tick)


@pytest.mark.parametrize("tick", [0.0, -0.01, math.nan, math.inf])
def test_a_tick_that_is_not_a_positive_number_is_refused(tick: float) -> None:
    with pytest.raises(ValueError, match="tick: must be a finite number above 0"):
        is_on_tick(1.0, tick)


def test_normal_prices_stay_on_the_fast_path() -> None:
    normal = min(timeit.repeat(lambda: is_on_tick(123.45, 0.01), number=2000, repeat=3))
    exact = min(timeit.repeat(lambda: is_on_tick(5e8, 1e-5), number=2000, repeat=3))
    assert normal < exact  # the decimal path is taken only past 1e9 ticks


def test_intent_validation_accepts_an_exact_multiple_far_out() -> None:
    eurusd = factories.instrument(symbol="EURUSD", tick_size=0.00001, lot_size=1.0)
    catalogue = Catalogue(stamp=0, instruments={"EURUSD": eurusd})
    on = factories.intent(symbol="EURUSD", proposed_entry=500000000.0,
                          proposed_stop=499999999.0, proposed_target=500000002.0)
    off = factories.intent(symbol="EURUSD", proposed_entry=500000000.000005,
                           proposed_stop=499999999.0, proposed_target=500000002.0)
    reads = ("intent", "instrument")
    assert [e.field for e in catalogue_errors(on, catalogue, reads=reads)] == []
    assert [e.field for e in catalogue_errors(off, catalogue, reads=reads)] == [
        "proposed_entry"]
