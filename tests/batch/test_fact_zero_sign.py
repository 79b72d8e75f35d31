"""Facts shared by many rows are encoded once per distinct combination: rows may share an
encoding only when their values are written alike, so -0.0 and 0.0 (equal as numbers, not
as JSON text) stay apart, whatever rows a chunk happens to hold."""

from __future__ import annotations

import json

import numpy as np

from buddy.batch.result import FactColumn, evidence_json, fact_table, render_facts

N = 2_000  # past the row count from which facts are encoded once per distinct combination


def _facts(first_zero: float) -> tuple[list[FactColumn], np.ndarray]:
    values = np.zeros(N)
    values[0] = first_zero  # the first row of the shared combination decides nothing
    values[1::2] = -0.0
    values[2::7] = np.nan
    return [FactColumn("vol_z", values, "z", 2.0), FactColumn("label", "calm")], values


def _written(value: float) -> object:
    return None if np.isnan(value) else float.__repr__(value)


def test_each_row_keeps_its_own_zero_sign_in_json_and_typed_facts() -> None:
    for first_zero in (0.0, -0.0):
        facts, values = _facts(first_zero)
        expected = [_written(v) for v in values]
        texts = evidence_json(facts, N)
        assert [None if (v := json.loads(t)[0]["value"]) is None else repr(v)
                for t in texts] == expected
        typed = fact_table(facts, N)
        assert list(render_facts(typed)) == list(texts)
        stored = typed.column("fact_values").to_pylist()
        assert [None if row[0] is None else repr(row[0]) for row in stored] == expected


def test_a_row_reads_the_same_alone_as_among_many() -> None:
    facts, values = _facts(0.0)
    texts = evidence_json(facts, N)
    for row in (0, 1, 2, 3, N - 1):
        alone = evidence_json([FactColumn("vol_z", values[row:row + 1], "z", 2.0),
                               FactColumn("label", "calm")], 1)
        assert alone[0] == texts[row]


def test_many_facts_encode_as_each_row_alone_whatever_their_kinds() -> None:
    rng = np.random.default_rng(3)
    level = rng.choice([1.5, 2.5, np.nan], N)
    unit = np.array(["ATR", "pct"], dtype=object)[rng.integers(0, 2, N)]
    mixed = np.array([1, 1.0, True, "1"], dtype=object)[rng.integers(0, 4, N)]  # alike hashes
    distinct_late = np.arange(N, dtype=np.float64) / 7  # every row its own, after shared ones
    cases = [
        [FactColumn("level", level, unit), FactColumn("side", "long")],
        [FactColumn("level", level, unit), FactColumn("n", distinct_late)],
        [FactColumn("level", level, unit), FactColumn("mixed", mixed)],
        [FactColumn("n", distinct_late), FactColumn("mixed", mixed)],
        # rows told apart by two facts together, neither alone, before a mixed one
        [FactColumn("pair", np.arange(N) // 2 * 1.0), FactColumn("parity", np.arange(N) % 2 * 1.0),
         FactColumn("mixed", mixed)],
    ]
    for facts in cases:
        texts = evidence_json(facts, N)
        for row in (0, 1, 2, 5, 17, N - 1):
            alone = [FactColumn(f.name, *(v[row:row + 1] if isinstance(v, np.ndarray) else v
                                          for v in (f.value, f.unit, f.threshold)))
                     for f in facts]
            assert evidence_json(alone, 1)[0] == texts[row], (facts[-1].name, row)
        assert list(render_facts(fact_table(facts, N))) == list(texts)
