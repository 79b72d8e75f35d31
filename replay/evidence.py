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
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from buddy.batch.result import FACTS_SCHEMA, FactRefs, by_reference, render_one
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
    each distinct (list, code) compared once."""
    code_nos = np.asarray(code_nos, dtype=np.int64)
    same = {column: _same_as_declared(facts.column(column), _list_keys(facts.column(column)),
                                      code_nos, [None if d is None else d[position]
                                                 for d in declared])
            for position, column in enumerate(_DECLARED_COLUMNS)}
    return _without_declared(facts, same)


#: The fact columns a code declares (its names, its units), in ``declared_facts``' order.
_DECLARED_COLUMNS: tuple[str, str] = ("fact_names", "fact_units")


def _same_as_declared(lists: pa.ChunkedArray | pa.Array, keys: np.ndarray, code_nos: np.ndarray,
                      declared: Sequence[list[str] | None]) -> np.ndarray:
    """Return, per row, whether its list (``keys``: ``_list_keys`` of ``lists``) equals the
    list its code declares; each distinct (list, code) pair is compared once."""
    n = len(keys)
    if not n:
        return np.zeros(0, dtype=bool)
    width = max(len(declared), int(code_nos.max()) + 1)
    pair, distinct = pd.factorize(keys * width + code_nos)
    first = np.zeros(len(distinct), dtype=np.int64)
    first[pair[::-1]] = np.arange(n)[::-1]
    rows = lists.take(pa.array(first, pa.int64())).to_pylist()
    same = np.array([listed is not None and code_no < len(declared)
                     and declared[code_no] is not None and listed == list(declared[code_no])
                     for listed, code_no in zip(rows, code_nos[first].tolist(), strict=True)],
                    dtype=bool)
    return same[pair]


def _without_declared(facts: pa.Table, same: dict[str, np.ndarray]) -> pa.Table:
    """Return ``facts`` with each column of ``same`` NULL on the rows it flags."""
    out = facts
    for column, flags in same.items():
        if flags.any():
            lists = facts.column(column).combine_chunks()
            kept = pc.if_else(pa.array(flags), pa.nulls(len(lists), lists.type), lists)
            out = out.set_column(out.schema.get_field_index(column), column, kept)
    return out


def chunk_fact_sets(facts: pa.Table | FactRefs, code_nos: np.ndarray,
                    declared: Sequence[tuple[list[str], list[str]] | None]
                    ) -> tuple[pa.Table, np.ndarray]:
    """Return the distinct fact sets of a chunk's issues as stored (``stored_facts`` of each
    issue's facts under its code, then ``fact_sets``) and each issue's set number (int32),
    sets numbered by first appearance among the issues. Issues sharing a set by reference
    and a code share their stored set, so each (set, code) pair is keyed once; when no set
    serves two codes (the usual case: a set comes from one code's block), the sets are keyed
    where they lie, and only the distinct ones are taken and stored."""
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
    table = table.combine_chunks()  # once: every column is read whole, then taken from
    keys = {column: _list_keys(table.column(column)) for column in FACTS_SCHEMA.names}
    same = {}
    for position, column in enumerate(_DECLARED_COLUMNS):
        same[column] = _same_as_declared(table.column(column), keys[column], codes, [
            None if d is None else d[position] for d in declared])
        keys[column] = np.where(same[column], -1, keys[column])  # stored NULL: no list
    first, group = _numbered(list(keys.values()), table.num_rows)
    # the sets the issues use, numbered by their first pair (the pairs come in issue order)
    used, first_pair = np.unique(group[row_of_pair], return_index=True)
    used = used[np.argsort(first_pair, kind="stable")]
    number = np.zeros(len(first), dtype=np.int64)
    number[used] = np.arange(len(used))
    kept = first[used]
    sets = _without_declared(table.take(pa.array(kept, pa.int64())),
                             {column: flags[kept] for column, flags in same.items()})
    return sets, number[group[row_of_pair]][pair].astype(np.int32)


def fact_sets(facts: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """Return the distinct rows of ``facts`` (typed facts as ``replay_facts`` stores them), in
    order of first appearance, and each row's position among them (int32): what a chunk
    writes once per set (most issues of a chunk repeat a set: a module whose piece is missing
    says the same on every intent). Rows share a set only when equal in every column,
    element by element (floats bit for bit, text by value, missing lists and elements
    apart): each list is keyed by its elements' bytes (``_list_keys``), exactly."""
    first, inverse = _numbered([_list_keys(facts.column(name)) for name in facts.column_names],
                               facts.num_rows)
    return facts.take(pa.array(first, pa.int64())), inverse.astype(np.int32)


def _numbered(keys: Sequence[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return, for ``n`` rows keyed per column (``keys``: each column's ``_list_keys``), the
    first row of each distinct combination and each row's combination, numbered by first
    appearance."""
    row = np.zeros(n, dtype=np.int64)
    for key in keys:  # (combination so far, this key) numbered densely: no overflow
        row, _ = pd.factorize(row * (int(key.max(initial=-1)) + 2) + (key + 1))
    row = np.asarray(row, dtype=np.int64)
    first = np.zeros(int(row.max(initial=-1)) + 1, dtype=np.int64)
    first[row[::-1]] = np.arange(n)[::-1]
    return first, row


def _list_keys(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Return per row of a list column a number that is equal for equal lists only (-1: a
    missing list): each list as the bytes of its elements (a float's bits with a missing
    element apart; texts by their characters and lengths), each distinct byte string
    numbered once by Arrow's hash of it (which compares the bytes: no collision merges)."""
    lists = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(lists)
    if not n:
        return np.zeros(0, dtype=np.int64)
    offsets = lists.offsets.to_numpy().astype(np.int64)  # into lists.values
    values = lists.values
    keys = _text_list_keys(values, offsets) if pa.types.is_string(values.type) else None
    if keys is None:
        elements, width = _element_words(values.slice(int(offsets[0]),
                                                      int(offsets[-1] - offsets[0])))
        keys = _binary_keys((offsets - offsets[0]) * width * 8, elements)
    keys[~lists.is_valid().to_numpy(zero_copy_only=False)] = -1
    return keys


def _element_words(values: pa.Array) -> tuple[np.ndarray, int]:
    """Return each element as 64-bit words (a float's bits and, where some are missing, its
    validity; a text's number among the distinct texts, -1 missing) and the words per
    element."""
    if pa.types.is_floating(values.type):
        bits = pc.fill_null(values, 0.0).to_numpy(zero_copy_only=False).astype(
            np.float64).view(np.uint64)
        if not values.null_count:
            return bits, 1
        valid = values.is_valid().to_numpy(zero_copy_only=False).astype(np.uint64)
        return np.stack([bits, valid], axis=1).ravel(), 2
    return pc.fill_null(pc.dictionary_encode(values).indices, -1).to_numpy(
        zero_copy_only=False).astype(np.int64).view(np.uint64), 1


def _text_list_keys(values: pa.StringArray, offsets: np.ndarray) -> np.ndarray | None:
    """Return ``_list_keys`` of lists of texts: two lists are equal when their texts'
    lengths are (-1: missing) and their characters, end to end, are; None when a missing
    text spans characters (they would count)."""
    text_ends = np.frombuffer(values.buffers()[1], dtype=np.int32)[
        values.offset:values.offset + len(values) + 1].astype(np.int64)
    lengths = np.diff(text_ends)[int(offsets[0]):int(offsets[-1])]
    if values.null_count:
        missing = ~values.is_valid().to_numpy(zero_copy_only=False)[
            int(offsets[0]):int(offsets[-1])]
        if lengths[missing].any():
            return None
        lengths[missing] = -1
    characters = values.buffers()[2] or pa.py_buffer(b"")
    row_ends = text_ends[offsets]
    by_characters = _binary_keys(row_ends - row_ends[0], characters.slice(int(row_ends[0])))
    by_lengths = _binary_keys((offsets - offsets[0]) * 8, lengths)
    keys, _ = pd.factorize(by_characters * (int(by_lengths.max()) + 1) + by_lengths)
    return np.asarray(keys, dtype=np.int64)


def _binary_keys(ends: np.ndarray, data: np.ndarray | pa.Buffer) -> np.ndarray:
    """Return per row (bytes ``ends[i]``..``ends[i + 1]`` of ``data``) its byte string's
    number among the distinct ones."""
    buffer = data if isinstance(data, pa.Buffer) else pa.py_buffer(np.ascontiguousarray(data))
    binary = pa.Array.from_buffers(pa.large_binary(), len(ends) - 1, [
        None, pa.py_buffer(np.ascontiguousarray(ends, dtype=np.int64)), buffer])
    return pc.dictionary_encode(binary).indices.to_numpy(zero_copy_only=False).astype(np.int64)
