"""The nudge library: every detector worded at every severity, every wording through the
guardrails, every number a fact, the steps supportive and distinct per severity."""

from __future__ import annotations

import re

import pytest

from buddy.behavior.nudges import (
    LIBRARY,
    SEVERITIES,
    check_library,
    detector_of,
    render_nudge,
    sample_facts,
    step_for,
)
from buddy.behavior.params import DETECTORS
from buddy.domain import Fact, Severity
from buddy.guardrails import check_text, predictive_phrases


def test_every_detector_has_its_wording_and_codes_name_their_detector() -> None:
    assert {w.detector for w in LIBRARY.values()} == set(DETECTORS)
    for code, wording in LIBRARY.items():
        assert code == wording.code and code.lower().startswith(wording.detector)
        assert detector_of(code) == wording.detector
    assert detector_of("STOP_TOO_TIGHT") is None


def test_every_wording_passes_the_guardrails() -> None:
    assert check_library() == []


def test_the_guardrails_would_catch_a_number_no_fact_gives() -> None:
    facts = sample_facts("REVENGE_TRADING")
    text = render_nudge("REVENGE_TRADING", Severity.MEDIUM, facts).explanation
    allowed = (LIBRARY["REVENGE_TRADING"].explanation,)
    assert check_text(text, facts, allowed=allowed).ok
    assert not check_text(text + " Your usual is 777.", facts, allowed=allowed).ok
    assert not check_text(text + " It will rally.", facts, allowed=allowed).ok


@pytest.mark.parametrize("code", sorted(LIBRARY))
def test_steps_are_distinct_per_severity_and_number_free(code: str) -> None:
    steps = [step_for(code, s) for s in SEVERITIES]
    assert len(set(steps)) == len(steps)
    for step in steps:
        assert not re.search(r"\d", step) and not predictive_phrases(step), step
    assert step_for(code, Severity.CRITICAL) == step_for(code, Severity.HIGH)


@pytest.mark.parametrize("code", sorted(LIBRARY))
def test_every_placeholder_is_a_declared_fact_and_rendered(code: str) -> None:
    wording = LIBRARY[code]
    declared = {e.name for e in wording.evidence}
    used = set(re.findall(r"{([a-z_0-9]+)}", wording.title + wording.explanation))
    assert used == declared, used ^ declared  # no fact carried that the trader never reads
    rendered = render_nudge(code, Severity.LOW, sample_facts(code)).explanation
    assert "{" not in rendered


def test_a_missing_fact_is_an_error_not_a_blank() -> None:
    facts = [f for f in sample_facts("REVENGE_TRADING") if f.name != "loss_symbol"]
    with pytest.raises(KeyError, match="loss_symbol"):
        render_nudge("REVENGE_TRADING", Severity.HIGH, facts)


def test_the_trader_reads_their_own_figures() -> None:
    facts = [Fact(name=f.name, value=f.value, unit=f.unit)
             for f in sample_facts("REVENGE_TRADING")]
    text = render_nudge("REVENGE_TRADING", Severity.HIGH, facts).explanation
    assert "EURUSD" in text and "USD" in text and "95% interval" in text
