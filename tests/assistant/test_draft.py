"""TradeIdeaDraft: what is missing, what contradicts, and the JSON round trip."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buddy.assistant.draft import (
    REQUIRED_SLOTS,
    SLOTS,
    DraftError,
    TradeIdeaDraft,
    format_number,
)
from buddy.errors import FieldError

COMPLETE = TradeIdeaDraft(symbol="AAPL", side="long", entry=555.0, stop=540.0, target=600.0,
                          risk_pct=0.5)


def test_an_empty_draft_misses_every_required_slot_in_slot_order() -> None:
    assert TradeIdeaDraft().missing() == ("symbol", "side", "entry", "stop", "target", "size")
    assert tuple(s for s in SLOTS if s in REQUIRED_SLOTS) == REQUIRED_SLOTS
    assert TradeIdeaDraft().problems() == ()
    assert not TradeIdeaDraft().is_complete()


@pytest.mark.parametrize("size_field, value", [("size", 100.0), ("risk_pct", 0.5),
                                               ("risk_amount", 250.0)])
def test_size_is_one_slot_said_three_ways(size_field: str, value: float) -> None:
    d = TradeIdeaDraft(symbol="AAPL", side="long", entry=555.0, stop=540.0, target=600.0
                       ).with_updates(**{size_field: value})
    assert d.missing() == ()
    assert d.is_complete()


def test_a_target_in_r_or_declined_is_not_missing() -> None:
    base = TradeIdeaDraft(symbol="AAPL", side="long", entry=555.0, stop=540.0, size=10.0)
    assert base.missing() == ("target",)
    assert TradeIdeaDraft(**{**base.to_dict(), "target_r": 2.0, "declined": ()}
                          ).missing() == ()
    assert base.with_updates(declined=("target",)).missing() == ()


@pytest.mark.parametrize("draft, field, rule_words, value", [
    (COMPLETE.with_updates(stop=560.0), "stop", "a long's stop must be below its entry", 560.0),
    (COMPLETE.with_updates(target=550.0), "target", "a long's target must be above its entry",
     550.0),
    (TradeIdeaDraft(side="short", entry=100.0, stop=95.0), "stop",
     "a short's stop must be above its entry", 95.0),
    (TradeIdeaDraft(side="short", entry=100.0, target=104.0), "target",
     "a short's target must be below its entry", 104.0),
    (TradeIdeaDraft(side="long", stop=540.0, target=530.0), "target",
     "a long's target must be above its stop", 530.0),
    (COMPLETE.with_updates(stop=555.0), "stop", "below its entry", 555.0),
])
def test_prices_on_the_wrong_side_are_problems_naming_field_rule_and_value(
        draft: TradeIdeaDraft, field: str, rule_words: str, value: float) -> None:
    problems = draft.problems()
    assert len(problems) == 1
    p = problems[0]
    assert (p.field, p.value) == (field, value)
    assert rule_words in p.rule
    assert not draft.is_complete()


@pytest.mark.parametrize("changes, field", [
    ({"side": "sideways"}, "side"), ({"entry": -5.0}, "entry"), ({"size": 0.0}, "size"),
    ({"risk_pct": 150.0}, "risk_pct"), ({"risk_pct": 0.0}, "risk_pct"),
    ({"horizon": 0}, "horizon"), ({"timeframe": "2d"}, "timeframe"),
    ({"order_type": "iceberg"}, "order_type"), ({"risk_amount": float("nan")}, "risk_amount"),
])
def test_values_out_of_range_are_problems(changes: dict[str, object], field: str) -> None:
    d = COMPLETE.with_updates(**changes)
    assert [p.field for p in d.problems()] == [field]
    assert d.problems()[0].value is changes[field] or d.problems()[0].value == changes[field]


def test_the_turns_conflicts_come_first() -> None:
    clash = FieldError("entry", "two different values in one turn (555 and 560)", [555.0, 560.0])
    d = COMPLETE.with_updates(stop=560.0, conflicts=(clash,))
    assert d.problems()[0] == clash
    assert [p.field for p in d.problems()] == ["entry", "stop"]


def test_summary_says_only_the_draft_numbers() -> None:
    d = COMPLETE.with_updates(horizon=10, as_of="2012-06-01", thesis="on a pullback to 555",
                              order_type="limit")
    text = d.summary()
    assert text.startswith("long AAPL")
    own = {"555", "540", "600", "0.5", "10", "2012", "06", "01"}
    assert set(re.findall(r"\d+(?:\.\d+)?", text)) <= own
    assert TradeIdeaDraft().summary() == ""
    assert "thesis" not in d.summary(thesis=False)
    assert "2R (585)" in TradeIdeaDraft(side="long", entry=555.0, stop=540.0, target=585.0,
                                        target_r=2.0).summary()


# ------------------------------------------------------------------------- round trip
_prices = st.one_of(st.none(), st.floats(min_value=0.0001, max_value=1e6, allow_nan=False))
_drafts = st.builds(
    TradeIdeaDraft,
    symbol=st.one_of(st.none(), st.sampled_from(["AAPL", "MSFT", "EURUSD"])),
    side=st.one_of(st.none(), st.sampled_from(["long", "short"])),
    thesis=st.one_of(st.none(), st.text(max_size=40)),
    entry=_prices, stop=_prices, target=_prices, size=_prices, risk_pct=_prices,
    risk_amount=_prices,
    horizon=st.one_of(st.none(), st.integers(min_value=1, max_value=500)),
    timeframe=st.one_of(st.none(), st.sampled_from(["1d", "1h"])),
    order_type=st.one_of(st.none(), st.sampled_from(["limit", "market", "stop"])),
    as_of=st.one_of(st.none(), st.just("2012-06-01"), st.just("2012-06-01T15:30")),
    target_r=_prices,
    declined=st.lists(st.sampled_from(["target", "horizon", "thesis"]), unique=True
                      ).map(tuple),
    conflicts=st.lists(st.builds(FieldError, st.sampled_from(["entry", "stop", "as_of"]),
                                 st.text(max_size=20),
                                 st.one_of(st.text(max_size=10), st.floats(0, 1e3),
                                           st.lists(st.floats(0, 1e3), max_size=2))),
                       max_size=2).map(tuple),
)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(_drafts)
def test_a_draft_survives_json_and_back(draft: TradeIdeaDraft) -> None:
    data = json.loads(json.dumps(draft.to_dict()))
    assert TradeIdeaDraft.from_dict(data) == draft


def test_from_dict_names_every_bad_field_at_once() -> None:
    with pytest.raises(DraftError) as err:
        TradeIdeaDraft.from_dict({"symbl": "AAPL", "entry": "555", "horizon": 2.5,
                                  "declined": ["stopp"], "side": 3})
    assert set(err.value.fields) == {"symbl", "entry", "horizon", "declined", "side"}
    assert "is not a draft field" in str(err.value)
    with pytest.raises(DraftError):
        TradeIdeaDraft.from_dict([1, 2])  # type: ignore[arg-type]


@given(st.floats(min_value=1e-6, max_value=1e9, allow_nan=False))
def test_format_number_keeps_the_value(x: float) -> None:
    assert float(format_number(x)) == pytest.approx(x, rel=1e-9)
    assert not format_number(float(round(x))).endswith(".0")


def test_facts_hold_every_number_the_trader_gave_and_nothing_else() -> None:
    d = COMPLETE.with_updates(horizon=10, as_of="2012-06-01", timeframe="1d", target_r=3.0,
                              conflicts=(FieldError("stop", "two different values", [540.0,
                                                                                       545.5]),))
    facts = {f.name: (f.value, f.unit) for f in d.facts()}
    assert facts == {
        "draft_entry": (555.0, "price"), "draft_stop": (540.0, "price"),
        "draft_target": (600.0, "price"), "draft_risk_pct": (0.5, "%"),
        "draft_horizon": (10, "bars"), "draft_target_r": (3.0, "R"),
        "max_risk_pct": (100.0, "%"), "draft_as_of": ("2012-06-01", ""),
        "draft_timeframe": ("1d", ""), "said_stop": ("540 545.5", "")}
    assert TradeIdeaDraft().facts() == ()


def test_an_as_of_that_is_not_iso_is_a_problem() -> None:
    assert [p.field for p in COMPLETE.with_updates(as_of="June").problems()] == ["as_of"]
    assert COMPLETE.with_updates(as_of="2012-06-01T15:30").problems() == ()

