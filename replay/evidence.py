"""Evidence rendered on demand from a replay's typed fact columns.

A replay stores each issue's facts as typed columns (``buddy.store.replay_facts``), not as a
JSON string per row. When a person asks for an issue's evidence, ``render_evidence`` writes
it back exactly as the module emitted it (``buddy.batch.result.issue_evidence_json``: the
same bytes), and ``evidence_facts`` gives the Facts themselves, for the report's phrasing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from buddy.batch.result import FactRefs, by_reference, render_one
from buddy.domain import Fact
from buddy.store import Store


def _missing(value: Any) -> bool:
    """Return True for a SQL NULL as a frame gives it (None, NaN, pd.NA or masked)."""
    return value is None or value is pd.NA or value is np.ma.masked or (
        isinstance(value, float) and math.isnan(value))


def _listed(value: Any) -> Sequence[Any] | None:
    if _missing(value):
        return None
    if isinstance(value, np.ma.MaskedArray):  # a list column with NULL elements
        return value.tolist()
    return list(value)


def _first_listed(own: Any, declared: Any) -> Sequence[Any]:
    """Return the issue's own list when it has one, else the code's declared one."""
    listed = _listed(own)
    return listed if listed is not None else (_listed(declared) or [])


def render_evidence(facts: pd.DataFrame) -> np.ndarray:
    """Return the evidence JSON of each row of ``facts`` (``buddy.store.replay_facts
    .issue_facts`` rows), as the module emitted it."""
    out = []
    for row in facts.itertuples(index=False):
        names = _first_listed(row.fact_names, row.declared_names)
        units = _first_listed(row.fact_units, row.declared_units)
        out.append(render_one(names, units, _listed(row.fact_values), _listed(row.fact_json),
                              _listed(row.fact_thresholds), _listed(row.threshold_json)))
    return np.asarray(out, dtype=object)


def evidence_facts(evidence_json: str) -> tuple[Fact, ...]:
    """Return the Facts of one issue's evidence JSON."""
    return tuple(Fact(name=d["name"], value=d["value"], unit=d["unit"],
                      threshold=d["threshold"]) for d in json.loads(evidence_json))


#: The facts of the orchestrator's own items, by code (``buddy.orchestrator``).
ORCHESTRATOR_FACTS: dict[str, tuple[str, ...]] = {
    "CONTEXT_MISSING": ("module_name", "piece", "reason"),
    "MODULE_ERROR": ("module_name", "error_type", "error_message"),
}


def declared_facts(module: str, code: str) -> tuple[list[str], list[str]] | None:
    """Return the names and units ``code`` of ``module`` declares for its evidence, in order
    (an orchestrator item's facts are labels); None when the module is not registered here
    (its issues then keep their own names and units)."""
    from buddy.evaluators import registry

    if code in ORCHESTRATOR_FACTS:
        names = list(ORCHESTRATOR_FACTS[code])
        return names, [""] * len(names)
    try:
        spec = registry.get(module).codes.get(code)
    except KeyError:
        return None
    if spec is None:
        return None
    return [e.name for e in spec.evidence], [e.unit for e in spec.evidence]


def explain_intent(store: Store, run_id: str, intent_id: str) -> dict[str, Any]:
    """Return one replayed intent as a person reads it: the intent, its verdict, score and
    outcome, and every issue its modules raised with the evidence rendered from the stored
    facts (each fact's words, value, unit and threshold, and the code's safe phrasing when
    its template can be filled from the evidence). Raises ReplayError for an unknown run or
    intent."""
    from buddy.domain import Issue, Mitigation, Severity
    from buddy.evaluators import registry
    from buddy.explain import fact_text, render_issue
    from buddy.orchestrator import ORCHESTRATOR_TEMPLATES
    from replay.engine import ReplayError, issues_frame, results_frame

    results = results_frame(store, run_id)
    match = results[results["intent_id"] == intent_id]
    if match.empty:
        raise ReplayError(f"run {run_id} has no evaluated intent {intent_id!r}")
    result = match.iloc[0]
    issues = issues_frame(store, run_id, evidence=True)
    issues = issues[issues["intent_id"] == intent_id]
    shown = []
    for row in issues.itertuples(index=False):
        issue = Issue(module=row.module, code=row.code, severity=Severity(row.severity),
                      evidence=evidence_facts(row.evidence_json), mitigation=Mitigation(
                          action=""))
        try:
            templates = registry.get(row.module).templates
        except KeyError:
            templates = {}
        template = {**ORCHESTRATOR_TEMPLATES, **templates}.get(row.code)
        rendered = render_issue(issue, template)
        shown.append({"module": row.module, "code": row.code, "severity": row.severity,
                      "title": rendered.title, "explanation": rendered.explanation,
                      "evidence": [fact_text(f) for f in issue.evidence],
                      "facts": json.loads(row.evidence_json)})
    scores = {c.removeprefix("score__"): _plain(result[c]) for c in results.columns
              if str(c).startswith("score__")}
    return {"run_id": run_id, "intent_id": intent_id,
            "intent": {k: _plain(result[k]) for k in ("symbol", "timeframe", "side", "as_of")},
            "verdict": str(result["overall_severity"]),
            "overall_score": _plain(result["overall_score"]), "module_scores": scores,
            "outcome": {k: _plain(result[k]) for k in ("exit_reason", "realized_r", "win")},
            "issues": shown}


def _plain(value: Any) -> Any:
    """Return a JSON-ready scalar (None for a missing value, ISO text for a time)."""
    if _missing(value) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def stored_facts(facts: pa.Table, code_nos: np.ndarray,
                 declared: Sequence[tuple[list[str], list[str]] | None]) -> pa.Table:
    """Return typed ``facts`` (``buddy.batch.result.FACTS_SCHEMA``, names and units listed)
    as ``replay_issues`` stores them: fact_names and fact_units NULL where they equal what
    the issue's code declares (``declared[code_no]``: names and units, None when unknown),
    column by column (a million issues are a few numpy passes)."""
    code_nos = np.asarray(code_nos, dtype=np.int64)
    out = facts
    for position, column in ((0, "fact_names"), (1, "fact_units")):
        lists = facts.column(column).combine_chunks()
        same = _equals_declared(lists, code_nos, [None if d is None else d[position]
                                                  for d in declared])
        if same.any():
            kept = pc.if_else(pa.array(same), pa.nulls(len(lists), lists.type), lists)
            out = out.set_column(out.schema.get_field_index(column), column, kept)
    return out


def _equals_declared(lists: pa.ListArray, code_nos: np.ndarray,
                     declared: Sequence[list[str] | None]) -> np.ndarray:
    """Return, per issue, whether its list equals its code's declared list."""
    n = len(lists)
    if not n:
        return np.zeros(0, dtype=bool)
    widths = np.array([-1 if d is None else len(d) for d in declared], dtype=np.int64)
    lengths = pc.fill_null(pc.list_value_length(lists), -2).to_numpy(zero_copy_only=False)
    same = lengths == widths[code_nos]
    width = max(int(widths.max(initial=0)), 1)
    # strings as their position in the declared vocabulary: integer comparisons, not
    # object ones (-1: a string no code declares; -2: past the end of a declared list)
    vocabulary = pa.array(sorted({name for d in declared if d for name in d}), pa.string())
    lookup = {name: k for k, name in enumerate(vocabulary.to_pylist())}
    table = np.full((len(declared), width), -2, dtype=np.int64)
    for code_no, names in enumerate(declared):
        if names:
            table[code_no, :len(names)] = [lookup[name] for name in names]
    offsets = lists.offsets.to_numpy().astype(np.int64)
    values = lists.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    flat = pc.fill_null(pc.index_in(values, value_set=vocabulary), -1).to_numpy(
        zero_copy_only=False).astype(np.int64)
    if len(flat):
        counts = np.diff(offsets)
        issue = np.repeat(np.arange(n), counts)
        position = np.arange(len(flat)) - np.repeat(offsets[:-1] - offsets[0], counts)
        wanted = np.full(len(flat), -2, dtype=np.int64)
        inside = position < width
        wanted[inside] = table[code_nos[issue[inside]], position[inside]]
        differs = np.bincount(issue, weights=(flat != wanted), minlength=n) > 0
        same &= ~differs
    return same


def chunk_fact_sets(facts: pa.Table | FactRefs, code_nos: np.ndarray,
                    declared: Sequence[tuple[list[str], list[str]] | None]
                    ) -> tuple[pa.Table, np.ndarray]:
    """Return the distinct fact sets of a chunk's issues as stored (``stored_facts`` of each
    issue's facts under its code, then ``fact_sets``) and each issue's set number (int32),
    sets numbered by first appearance among the issues. Issues sharing a set by reference
    and a code share their stored set, so each (set, code) pair is stored and compared once;
    when no set serves two codes (the usual case: a set comes from one code's block), the
    sets are compared where they lie and only the distinct ones are taken."""
    refs = by_reference(facts)
    code_nos = np.asarray(code_nos, dtype=np.int64)
    if len(code_nos) != len(refs):
        raise ValueError(f"{len(code_nos)} codes for {len(refs)} issues")
    width = max(len(declared), int(code_nos.max(initial=-1)) + 1, 1)
    pair, distinct = pd.factorize(refs.index * width + code_nos)  # by first appearance
    distinct = np.asarray(distinct, dtype=np.int64)
    set_of_pair, code_of_pair = distinct // width, distinct % width
    n_sets = refs.sets.num_rows
    if len(distinct) and np.bincount(set_of_pair, minlength=n_sets).max() == 1:
        codes = np.zeros(n_sets, dtype=np.int64)  # a set no issue uses: any code will do
        codes[set_of_pair] = code_of_pair
        table, row_of_pair = refs.sets, set_of_pair
    else:
        table = refs.sets.take(pa.array(set_of_pair, pa.int64()))
        codes, row_of_pair = code_of_pair, np.arange(len(distinct), dtype=np.int64)
    stored = stored_facts(table, codes, declared)
    first, group = _set_numbers(stored)
    # the sets the issues use, numbered by their first pair (the pairs come in issue order)
    used, first_pair = np.unique(group[row_of_pair], return_index=True)
    used = used[np.argsort(first_pair, kind="stable")]
    number = np.zeros(len(first), dtype=np.int64)
    number[used] = np.arange(len(used))
    return (stored.take(pa.array(first[used], pa.int64())),
            number[group[row_of_pair]][pair].astype(np.int32))


def fact_sets(facts: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """Return the distinct rows of ``facts`` (typed facts as ``replay_facts`` stores them), in
    order of first appearance, and each row's position among them (int32): what a chunk
    writes once per set (most issues of a chunk repeat a set: a module whose piece is missing
    says the same on every intent). Rows share a set only when equal in every column,
    element by element (floats bit for bit, text by value, missing lists and elements
    apart): a hash finds candidates, then each row is compared with its set's first row;
    should any differ (a hash collision), every row keeps a set of its own."""
    first, inverse = _set_numbers(facts)
    return facts.take(pa.array(first)), inverse.astype(np.int32)


def _set_numbers(facts: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Return ``fact_sets``' numbering: the first row of each set (by first appearance) and
    each row's set (int64)."""
    n = facts.num_rows
    if n < 2:
        return np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64)
    columns = [_ListCodes.of(facts.column(name)) for name in facts.column_names]
    digest = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in columns:
            digest = digest * np.uint64(0x9E3779B97F4A7C15) + column.row_digest()
    _, first, inverse = np.unique(digest, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # sets numbered by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    inverse, first = rank[np.ravel(inverse)], first[order]
    differs = np.zeros(n, dtype=bool)
    for column in columns:
        differs |= column.rows_differ(first[inverse])
    if differs.any():  # a digest shared by unequal rows: each of those rows its own set
        extra = np.flatnonzero(differs)
        inverse[extra] = len(first) + np.arange(len(extra))
        first = np.concatenate([first, extra])
    return first.astype(np.int64), inverse.astype(np.int64)


def _mix(values: np.ndarray) -> np.ndarray:
    """Return each uint64 scrambled (splitmix64's finalizer: nearby values far apart)."""
    with np.errstate(over="ignore"):
        values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


@dataclass(frozen=True, slots=True)
class _ListCodes:
    """A list column as integers: each list's length (-1: a missing list) and each element
    as a code (float bits, or text's position among the column's distinct texts) with its
    validity."""

    lengths: np.ndarray  # int64 per row
    starts: np.ndarray  # int64 per row: where its elements start in ``codes``
    codes: np.ndarray  # uint64 per element (0 where missing)
    valid: np.ndarray  # bool per element

    @classmethod
    def of(cls, column: pa.ChunkedArray | pa.Array) -> _ListCodes:
        lists = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        offsets = lists.offsets.to_numpy().astype(np.int64)
        values = lists.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
        valid = values.is_valid().to_numpy(zero_copy_only=False)
        if pa.types.is_floating(values.type):
            codes = pc.fill_null(values, 0.0).to_numpy(zero_copy_only=False).astype(
                np.float64).view(np.uint64)
        else:
            encoded = pc.dictionary_encode(values)
            codes = pc.fill_null(encoded.indices, 0).to_numpy(zero_copy_only=False).astype(
                np.uint64)
        codes = np.where(valid, codes, np.uint64(0))
        lengths = np.diff(offsets)
        lengths[~lists.is_valid().to_numpy(zero_copy_only=False)] = -1
        return cls(lengths=lengths, starts=offsets[:-1] - offsets[0], codes=codes,
                   valid=valid)

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Return each element's row and its position in its row's list."""
        counts = np.maximum(self.lengths, 0)
        rows = np.repeat(np.arange(len(self.lengths)), counts)
        return rows, np.arange(len(self.codes), dtype=np.int64) - self.starts[rows]

    def row_digest(self) -> np.ndarray:
        """Return a 64-bit digest of each row's list (equal lists, equal digests)."""
        n = len(self.lengths)
        _, position = self.positions()
        with np.errstate(over="ignore"):
            mixed = _mix(_mix(self.codes) + self.valid.astype(np.uint64)
                         + position.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
            digest = np.zeros(n, dtype=np.uint64)
            filled = self.lengths > 0
            if filled.any():
                digest[filled] = np.add.reduceat(mixed, self.starts[filled])
            return digest + _mix((self.lengths + 2).astype(np.uint64))

    def rows_differ(self, other: np.ndarray) -> np.ndarray:
        """Return per row whether its list differs from that of row ``other[row]``."""
        differs = self.lengths != self.lengths[other]
        rows, position = self.positions()
        theirs = np.minimum(self.starts[other[rows]] + position, max(len(self.codes) - 1, 0))
        unequal = (self.codes != self.codes[theirs]) | (self.valid != self.valid[theirs])
        if unequal.any():
            differs[rows[unequal]] = True
        return differs
