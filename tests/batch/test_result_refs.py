"""Typed facts by reference (a table of fact sets, an index per issue) say what the flat typed
facts say, through every take and concatenation of a batch's issues."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from buddy.batch.result import (
    FACTS_SCHEMA,
    BatchResult,
    FactColumn,
    FactRefs,
    IssueBlock,
    by_reference,
    concat_facts,
    evidence_json,
    fact_refs,
    fact_table,
    facts_from_json,
    grouped_fact_refs,
    render_facts,
    take_columns,
)
from buddy.domain import Severity


def _shared(n: int) -> list[FactColumn]:
    """Facts of n rows sharing a few distinct sets (a label, a bar's measure, a config's)."""
    rng = np.random.default_rng(11)
    measure = np.round(rng.normal(size=7), 3)[rng.integers(0, 7, n)]
    measure[::97] = np.nan
    labels = np.array(["no bars", None, 'a "b"', "ünï"], dtype=object)[rng.integers(0, 4, n)]
    return [FactColumn("module_name", "mtfa"), FactColumn("reason", labels, "", measure),
            FactColumn("bars", rng.integers(0, 3, n), "bars", 5),
            FactColumn("zero", np.where(rng.random(n) < 0.5, 0.0, -0.0), "R")]


def _distinct(n: int) -> list[FactColumn]:
    rng = np.random.default_rng(12)
    return [FactColumn("stop", rng.normal(size=n), "price", rng.normal(size=n)),
            FactColumn("side", np.array(["long", "short"], dtype=object)[rng.integers(0, 2, n)])]


def test_facts_by_reference_are_the_flat_typed_facts() -> None:
    for facts, n in ((_shared(2000), 2000), (_distinct(900), 900), (_shared(40), 40),
                     ([], 700), ([], 0)):
        refs = fact_refs(facts, n)
        flat = facts_from_json(evidence_json(facts, n))
        assert len(refs) == n and refs.table().equals(flat)
        assert fact_table(facts, n).equals(flat)
        assert render_facts(refs).tolist() == evidence_json(facts, n).tolist()
    shared = fact_refs(_shared(2000), 2000)
    assert shared.sets.num_rows < 200  # each distinct set encoded once, not one per row
    assert fact_refs([], 700).sets.num_rows == 1  # the empty set, once


def test_facts_grouped_by_the_caller_are_the_facts_found_by_value() -> None:
    rng = np.random.default_rng(13)
    n = 3000
    piece = rng.integers(0, 3, n)
    reason_no = rng.integers(0, 4, n)
    reasons = np.array(["no bars", "no calendar", "ünï", "no bars"], dtype=object)[reason_no]
    facts = [FactColumn("module_name", "needy"),
             FactColumn("piece", np.array(["market", "regime", "schedule"], dtype=object)[piece]),
             FactColumn("reason", reasons)]
    grouped = grouped_fact_refs(facts, piece * 4 + reason_no)  # codes 0 and 3: equal facts
    assert grouped.table().equals(fact_refs(facts, n).table())
    assert grouped.sets.num_rows == 12  # one set per group, two groups' sets equal
    assert render_facts(grouped).tolist() == evidence_json(facts, n).tolist()
    assert len(grouped_fact_refs(facts[:1], np.zeros(0, dtype=np.int64))) == 0


def test_takes_and_concatenations_move_the_index_and_keep_the_facts() -> None:
    a, b = fact_refs(_shared(1500), 1500), fact_refs(_distinct(600), 600)
    flat_a, flat_b = a.table(), b.table()
    at = np.array([1499, 0, 7, 7, 600, 3])
    assert a.take(at).table().equals(flat_a.take(at))
    assert a.take(at).sets is a.sets  # no list was copied
    joined = concat_facts([a, flat_b, b.take(at[1:3])])
    assert isinstance(joined, FactRefs)
    assert joined.table().equals(pa.concat_tables([flat_a, flat_b, flat_b.take(at[1:3])]))
    assert render_facts(joined.take(at)).tolist() == render_facts(
        joined.table().take(at)).tolist()
    # equal when the facts are, however they are referenced
    assert joined == by_reference(joined.table()) and a != b and a.take(at) != a
    empty = concat_facts([])
    assert len(empty) == 0 and empty.table().schema == FACTS_SCHEMA
    columns = {"row": np.arange(1500), "facts": a, "code": np.full(1500, "X", dtype=object)}
    taken = take_columns(columns, at)
    assert taken["facts"].table().equals(flat_a.take(at))
    assert taken["code"].tolist() == ["X"] * len(at)


def test_a_batch_result_over_facts_by_reference_is_the_json_one() -> None:
    n = 1200
    shared, distinct = _shared(n), _distinct(n)
    rows = np.arange(n)
    few = rows[::5]
    by_reference = [IssueBlock("A", rows, Severity.HIGH, fact_refs(shared, n),
                               action_json=fact_refs([], n)),
                    IssueBlock("B", few, Severity.LOW, fact_refs(distinct, n).take(few))]
    plain = [IssueBlock("A", rows, Severity.HIGH, evidence_json(shared, n)),
             IssueBlock("B", few, Severity.LOW, evidence_json(distinct, n)[few])]
    one = BatchResult.of_blocks("m", "1", n, by_reference)
    other = BatchResult.of_blocks("m", "1", n, plain)
    assert isinstance(one.issue_arrays["facts"], FactRefs)
    assert one.issues.equals(other.issues)
    for i in (0, 5, n - 1):
        assert one.row(i) == other.row(i)
    pick = np.array([n - 1, 0, 5, 0])
    assert one.take(pick).issues.equals(other.take(pick).issues)
