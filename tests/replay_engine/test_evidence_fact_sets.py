"""A chunk's fact sets, checked against plain Python: rows share a set exactly when equal
element by element, each set is stored as its code declares it, and a chunk's issues by
reference get the sets and numbers their flat facts get."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from buddy.batch.result import FACTS_SCHEMA, FactRefs
from replay.evidence import chunk_fact_sets, fact_sets, stored_facts

from .conftest import same_values

#: Declared (names, units) by code_no; code 2's module is not registered here.
DECLARED: list[tuple[list[str], list[str]] | None] = [
    (["a", "b"], ["R", ""]), (["c"], ["price"]), None, (["a", "b"], ["R", "%"])]


def _element(value: Any) -> Any:
    """An element as it must compare: a float by its bits, a missing one apart."""
    if value is None:
        return ("missing",)
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    return ("text", value)


def _oracle(table: pa.Table) -> list[int]:
    """Each row's set by first appearance, rows equal when every list is equal element by
    element (a missing list is not an empty one)."""
    numbers: dict[tuple[Any, ...], int] = {}
    out = []
    for row in table.to_pylist():
        key = tuple(None if row[c] is None else tuple(map(_element, row[c]))
                    for c in table.column_names)
        out.append(numbers.setdefault(key, len(numbers)))
    return out



def _tricky_facts(n: int, seed: int) -> pa.Table:
    """n rows drawn from few values, so that equal rows and near-equal ones abound."""
    rng = np.random.default_rng(seed)
    floats = [0.0, -0.0, 1.0, math.nan, 1e-300, None]
    texts = ["1", '"1"', "null", "", None]
    names = [["a", "b"], ["c"], ["a", "b", "x"], [], None]
    units = [["R", ""], ["price"], ["R", "%"], ["R", None], None]

    def lists(pool: list[Any], width: int, missing: float) -> list[Any]:
        out: list[Any] = []
        for _ in range(n):
            if rng.random() < missing:
                out.append(None)
            else:
                out.append([pool[k] for k in rng.integers(0, len(pool),
                                                          int(rng.integers(0, width + 1)))])
        return out

    return pa.table({
        "fact_values": pa.array(lists(floats, 2, 0.1), pa.list_(pa.float64())),
        "fact_json": pa.array(lists(texts, 2, 0.5), pa.list_(pa.string())),
        "fact_thresholds": pa.array(lists(floats, 1, 0.5), pa.list_(pa.float64())),
        "threshold_json": pa.array(lists(texts, 1, 0.7), pa.list_(pa.string())),
        "fact_names": pa.array([names[k] for k in rng.integers(0, len(names), n)],
                               pa.list_(pa.string())),
        "fact_units": pa.array([units[k] for k in rng.integers(0, len(units), n)],
                               pa.list_(pa.string()))}, schema=FACTS_SCHEMA)


def _awkward(table: pa.Table) -> pa.Table:
    """The same rows as a slice of a chunked table whose missing lists span elements (what
    a NULL written over a list leaves)."""
    padded = pa.concat_tables([table.slice(0, 3), table, table.slice(0, 2)])
    masked = {name: pc.if_else(pa.array(np.zeros(padded.num_rows, dtype=bool)),
                               pa.nulls(padded.num_rows, padded.column(name).type),
                               padded.column(name).combine_chunks())
              for name in padded.column_names}
    out = pa.table(masked, schema=FACTS_SCHEMA).slice(3, table.num_rows)
    return pa.Table.from_batches(out.to_batches(max_chunksize=97))


def test_rows_share_a_set_exactly_when_equal_element_by_element() -> None:
    for seed in range(3):
        table = _tricky_facts(3000, seed)
        want = _oracle(table)
        for given in (table, _awkward(table)):
            distinct, numbers = fact_sets(given)
            assert numbers.tolist() == want
            assert distinct.num_rows == max(want) + 1
            assert same_values(distinct.take(pa.array(numbers)).to_pylist(), table.to_pylist())
    # a missing list next to one whose elements a NULL hides is still only missing
    spanning = pc.if_else(pa.array([True, False, True]), pa.nulls(3, pa.list_(pa.float64())),
                          pa.array([[1.0], [2.0], [3.0, 4.0]], pa.list_(pa.float64())))
    assert fact_sets(pa.table({"fact_values": spanning}))[1].tolist() == [0, 1, 0]
    # a missing text whose slot spans characters: the characters it hides do not count
    texts = pa.Array.from_buffers(pa.string(), 4, [
        pa.py_buffer(bytes([0b1101])), pa.py_buffer(np.array([0, 1, 3, 4, 5], np.int32)),
        pa.py_buffer(b"abcde")])  # "a", missing (over "bc"), "d", "e"
    hidden = pa.ListArray.from_arrays(pa.array([0, 2, 3, 4], pa.int32()), texts)
    plain = pa.array([["a", None], ["d"], ["e"], ["a", None]], pa.list_(pa.string()))
    both = pa.table({"fact_json": pa.concat_arrays([hidden, plain])})
    assert fact_sets(both)[1].tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_stored_facts_drop_exactly_the_declared_names_and_units() -> None:
    table = _tricky_facts(2000, 5)
    code_nos = np.random.default_rng(6).integers(0, len(DECLARED), table.num_rows)
    stored = stored_facts(table, code_nos, DECLARED).to_pylist()
    for row, kept, code_no in zip(table.to_pylist(), stored, code_nos.tolist(), strict=True):
        declared = DECLARED[code_no]
        for position, column in enumerate(("fact_names", "fact_units")):
            same = declared is not None and row[column] == declared[position]
            assert same_values(kept[column], None if same else row[column])
        assert all(same_values(kept[c], row[c]) for c in FACTS_SCHEMA.names[:4])


def test_a_chunks_sets_by_reference_are_its_flat_facts_sets() -> None:
    """What the chunk stores, and each issue's set number, whether the facts come flat or by
    reference: sets serving one code or several, sets no issue uses, chunked sets."""
    rng = np.random.default_rng(9)
    sets = _tricky_facts(1500, 7)
    cases = {
        "one code per set": (np.repeat(np.arange(1200), 3)[rng.permutation(3600)],
                             lambda index: index % len(DECLARED)),
        "sets under two codes": (rng.integers(0, 1500, 5000),
                                 lambda index: rng.integers(0, len(DECLARED), len(index)))}
    for name, (index, code_of) in cases.items():
        code_nos = np.asarray(code_of(index), dtype=np.int64)
        flat = sets.take(pa.array(index))
        want_sets, want_numbers = fact_sets(stored_facts(flat, code_nos, DECLARED))
        for given in (FactRefs(sets, index), FactRefs(_awkward(sets), index), flat):
            got_sets, got_numbers = chunk_fact_sets(given, code_nos, DECLARED)
            assert got_numbers.dtype == np.int32, name
            assert got_numbers.tolist() == want_numbers.tolist(), name
            assert same_values(got_sets.to_pylist(), want_sets.to_pylist()), name
    empty_sets, empty_numbers = chunk_fact_sets(FactRefs(sets, np.zeros(0, dtype=np.int64)),
                                                np.zeros(0, dtype=np.int64), DECLARED)
    assert empty_sets.num_rows == 0 and len(empty_numbers) == 0
