"""A fact is rendered with its unit ("ADX 35.2", "USD 1,000.00"), so no template may write
the unit again in front of the fact's placeholder ("with ADX {trend_strength}" read "with
ADX ADX 35.20" in the demo's report)."""

from __future__ import annotations

import re

from buddy.evaluators.registry import available


def _unit_repeats() -> list[str]:
    found = []
    for name, cls in sorted(available().items()):
        for code_name, code in cls.codes.items():
            for fact in (*code.evidence, *code.action_facts):
                if not fact.unit.strip():
                    continue
                pattern = re.compile(rf"\b{re.escape(fact.unit.strip())}\s*\{{{fact.name}\}}")
                for text in (code.title, code.explanation, code.mitigation):
                    if pattern.search(text):
                        found.append(f"{name}/{code_name}: {fact.unit!r} before {{{fact.name}}}")
    return found


def test_no_template_writes_a_facts_unit_again_before_it() -> None:
    assert _unit_repeats() == []

