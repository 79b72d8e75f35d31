"""TradeIntent validation: every bad field named with its rule and value."""

from __future__ import annotations

import math

import pytest

from buddy.domain import Severity, Side, TradeIntent
from buddy.errors import IntentValidationError
from tests.factories import intent


def test_a_valid_intent_has_its_reward_risk() -> None:
    i = intent()
    assert i.stop_distance == 5.0 and i.reward_distance == 10.0 and i.reward_risk == 2.0


@pytest.mark.parametrize(("overrides", "field", "rule"), [
    ({"proposed_stop": 101.0}, "proposed_stop", "below the entry"),
    ({"side": Side.SHORT}, "proposed_stop", "above the entry"),
    ({"proposed_target": 99.0}, "proposed_target", "above the entry"),
    ({"proposed_size": 0.0}, "proposed_size", "> 0"),
    ({"proposed_entry": math.nan}, "proposed_entry", "finite"),
    ({"proposed_entry": math.inf}, "proposed_entry", "finite"),
    ({"proposed_stop": -1.0}, "proposed_stop", "> 0"),
    ({"holding_horizon": 0}, "holding_horizon", "between 1 and"),
])
def test_bad_fields_are_named_with_rule_and_value(overrides, field, rule) -> None:
    with pytest.raises(IntentValidationError) as err:
        intent(**overrides)
    assert field in err.value.fields
    message = str(err.value)
    assert field in message and rule in message


def test_create_parses_loose_input_and_collects_every_error() -> None:
    with pytest.raises(IntentValidationError) as err:
        TradeIntent.create(user_id="u", symbol="aapl", side="sideways", timeframe="2d",
                           proposed_entry="abc", proposed_stop=None, proposed_target=None,
                           proposed_size=1, as_of="2012-06-01T20:00")
    assert set(err.value.fields) == {"side", "timeframe", "proposed_entry", "as_of"}
    assert "timezone" in str(err.value)


def test_create_suggests_the_closest_field_for_a_typo() -> None:
    with pytest.raises(IntentValidationError, match="did you mean 'proposed_stop'"):
        TradeIntent.create(user_id="u", symbol="X", side="long", timeframe="1d",
                           proposed_entry=10, proposed_sotp=9, proposed_size=1,
                           as_of="2012-06-01T20:00Z")


def test_create_normalises_symbol_and_time() -> None:
    i = TradeIntent.create(user_id="u", symbol=" aapl ", side="LONG", timeframe="1D",
                           proposed_entry="10", proposed_size="5",
                           as_of="2012-06-01T16:00-04:00")
    assert i.symbol == "AAPL" and i.side is Side.LONG
    assert i.as_of.isoformat() == "2012-06-01T20:00:00+00:00"


def test_severity_orders() -> None:
    assert Severity.highest([Severity.LOW, Severity.CRITICAL, Severity.MEDIUM]) is (
        Severity.CRITICAL)
    assert Severity.highest([]) is Severity.INFO
