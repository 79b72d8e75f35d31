"""BatchResult: one module's verdicts on many intents, column-wise.

A module's batch form returns, for N intents (rows 0..N-1 of a BatchContext), the same
verdicts its scalar form returns one at a time: a score, a severity and a status per row,
and its issues in long form (one row per issue, in the order the scalar form emits them).
Evidence is kept as typed columns (``fact_table``: numbers as numbers, the JSON text only of
values that are not floats; what replay stores), and its JSON, exactly as
``json.dumps([fact.as_dict() ...], sort_keys=True)`` writes it for one issue, is rendered
from them only when asked for (``render_facts``; ``evidence_json`` writes it from the fact
columns directly).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from json.encoder import encode_basestring_ascii
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from buddy.batch.columns import choose, distinct, numbered, repeated
from buddy.domain import EvaluationResult, Fact, Issue, Mitigation, ModuleStatus, Severity

#: Columns of BatchResult.issues (``action``: the mitigation's action code; ``action_json``:
#: the JSON of the facts it rests on).
ISSUE_FRAME_COLUMNS: tuple[str, ...] = ("row", "code", "severity", "evidence_json", "action",
                                        "action_json")
#: Severity name -> rank, and back.
SEVERITY_RANK: dict[str, int] = {s.value: s.rank for s in Severity}
SEVERITY_BY_RANK: np.ndarray = np.array([s.value for s in Severity], dtype=object)
#: Score points lost per issue severity, by rank (base.SEVERITY_PENALTY, column-wise).
_PENALTY_BY_RANK = np.array([0.0, 5.0, 15.0, 30.0, 60.0])


def _facts(text: str) -> tuple[Fact, ...]:
    return tuple(Fact(name=d["name"], value=d["value"], unit=d["unit"],
                      threshold=d["threshold"]) for d in json.loads(text))


def _value_at(value: Any, i: int) -> Any:
    if isinstance(value, np.ndarray | pd.Series | list | tuple):
        value = value[i] if not isinstance(value, pd.Series) else value.iat[i]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rows_of(value: Any, rows: np.ndarray) -> Any:
    """Return the values of ``rows`` of a per-row value (a scalar stays as it is)."""
    if isinstance(value, np.ndarray | pd.Series | list | tuple):
        return np.asarray(value)[rows]
    return value


def issue_evidence_json(evidence: Iterable[Any]) -> str:
    """Return the evidence JSON of one issue's facts (what the replay tables store)."""
    return json.dumps([f.as_dict() for f in evidence], sort_keys=True, default=str)


# ---------------------------------------------------------------------------- evidence
@dataclass(frozen=True, slots=True)
class FactColumn:
    """One fact of an issue, for many rows: ``value``, ``unit`` and ``threshold`` are scalars
    (the same on every row) or arrays (one per row); None is JSON null.

    A float array element is written as a float (non-finite -> null), an integer as an int, a
    bool as a bool, anything else through ``json.dumps(..., default=str)``: give counts an
    integer array and measures a float one.
    """

    name: str
    value: Any
    unit: Any = ""
    threshold: Any = None


def evidence_json(facts: Sequence[FactColumn], n: int) -> np.ndarray:
    """Return ``n`` evidence JSON strings, each the list of ``facts`` for that row.

    The text between per-row values is fixed, so each row is one ``%`` format of a template
    holding the fixed parts (what json.dumps writes around the values) and one ``%s`` per
    per-row value.
    """
    if not facts:
        return repeated("[]", n)
    if n > _DEDUPE_FROM:  # many rows share their facts (a snapshot, a bar, a config): encode
        first, inverse = _distinct_rows(facts, n)  # each distinct combination once
        if first is not None and len(first) < n // 2:
            return evidence_json([_rows_fact(f, first) for f in facts], len(first))[inverse]
    fixed: list[str] = ["["]  # fixed text before each per-row value, and after the last
    columns: list[list[str]] = []
    for k, fact in enumerate(facts):
        fixed[-1] += f'{", " if k else ""}{{"name": {json.dumps(fact.name)}, "threshold": '
        for part, text in ((fact.threshold, ', "unit": '), (fact.unit, ', "value": '),
                           (fact.value, "}")):
            values = _json_values(part, n)
            if isinstance(values, str):
                fixed[-1] += values + text
            else:
                columns.append(values)
                fixed.append(text)
    fixed[-1] += "]"
    if not columns:
        return repeated(fixed[0], n)
    template = "%s".join(part.replace("%", "%%") for part in fixed)
    return np.array([template % row for row in zip(*columns, strict=True)], dtype=object)


#: Rows from which evidence is encoded once per distinct combination of facts.
_DEDUPE_FROM = 512


def _distinct_rows(facts: Sequence[FactColumn], n: int
                   ) -> tuple[np.ndarray | None, np.ndarray]:
    """Return (the first row of each distinct combination of the facts' per-row values, each
    row's combination; every row its own once they all differ), or (None, ...) when a column
    mixes types that hash alike but are written differently (1, 1.0 and True)."""
    def every_row() -> tuple[np.ndarray, np.ndarray]:
        return np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64)

    key = np.zeros(n, dtype=np.int64)
    width = 1  # the combinations ``key`` can number so far (renumbered before it overflows)
    for fact in facts:
        for part in (fact.value, fact.threshold, fact.unit):
            if not isinstance(part, np.ndarray | pd.Series | list | tuple):
                continue
            array = np.asarray(part)
            if array.dtype.kind == "O" and pd.api.types.infer_dtype(
                    array, skipna=True) not in ("string", "empty"):
                key, combinations = pd.factorize(key)
                return every_row() if len(combinations) == n else (None, key)
            if array.dtype.kind == "f":  # bit for bit: factorize holds -0.0 and 0.0 equal
                array = _float_bits(array)
            codes, uniques = pd.factorize(array, use_na_sentinel=False)
            if len(uniques) == n:  # every row its own: the other facts change nothing
                return every_row()
            if width * len(uniques) >= _WIDEST_KEY:
                key, combinations = pd.factorize(key)
                width = len(combinations)
            key = key * len(uniques) + codes
            width *= len(uniques)
    key, combinations = pd.factorize(key)
    if len(combinations) == n:
        return every_row()
    count = len(combinations)
    first = np.zeros(count, dtype=np.int64)
    first[key[::-1]] = np.arange(n)[::-1]
    return first, key


#: ``_distinct_rows``' combined keys stay below this (int64 with room for one more step).
_WIDEST_KEY = 1 << 62


def _float_bits(values: np.ndarray) -> np.ndarray:
    """Return floats as their bits (int64), every NaN as one: equal where they are written
    alike (-0.0 and 0.0 are not; every NaN is JSON null)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isnan(values), np.nan, values).view(np.int64)


def _rows_fact(fact: FactColumn, rows: np.ndarray) -> FactColumn:
    return FactColumn(fact.name, _rows_of(fact.value, rows), _rows_of(fact.unit, rows),
                      _rows_of(fact.threshold, rows))


def _json_values(value: Any, n: int) -> list[str] | str:
    """Return the JSON of each row's value, or one string when it is the same on every row."""
    if isinstance(value, np.ndarray | pd.Series | list | tuple):
        array = np.asarray(value)
        if len(array) != n:
            raise ValueError(f"fact column has {len(array)} values for {n} rows")
        if array.dtype.kind == "f":
            out = list(map(float.__repr__, array.tolist()))
            for i in np.flatnonzero(~np.isfinite(array)):
                out[i] = "null"
            return out
        if array.dtype.kind in "iu":
            return list(map(str, array.tolist()))
        if array.dtype.kind == "b":
            return ["true" if x else "false" for x in array.tolist()]
        if pd.api.types.infer_dtype(array, skipna=True) != "string":
            # mixed types: 1, 1.0 and True hash alike but are written differently
            return [_json_scalar(x) for x in array.tolist()]
        # labels: few distinct strings in many rows, each encoded once
        codes, uniques = pd.factorize(array, use_na_sentinel=True)
        encoded = np.array([*(json.dumps(u) for u in uniques.tolist()), "null"], dtype=object)
        return encoded[codes].tolist()
    return _json_scalar(value)


def _json_scalar(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "null"
    if hasattr(value, "item"):
        value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return "null"
    return json.dumps(value, sort_keys=True, default=str)


# ---------------------------------------------------------------------------- typed facts
#: An issue's facts as typed columns, one list element per fact in emission order: each
#: value as a number where it is one (NULL elsewhere); ``fact_json`` NULL when every value is
#: a float, else the JSON text of each value that is not a float (NULL at the floats);
#: thresholds the same way (``fact_thresholds`` NULL when no fact has one, ``threshold_json``
#: the text of thresholds that are neither floats nor null); the names and units, listed.
#: What ``replay_issues`` stores, without replay's collapse of declared names and units.
FACTS_SCHEMA = pa.schema([
    ("fact_values", pa.list_(pa.float64())), ("fact_json", pa.list_(pa.string())),
    ("fact_thresholds", pa.list_(pa.float64())), ("threshold_json", pa.list_(pa.string())),
    ("fact_names", pa.list_(pa.string())), ("fact_units", pa.list_(pa.string()))])


@dataclass(frozen=True, slots=True)
class _Part:
    """One fact part (value or threshold) on n rows, as the typed columns hold it."""

    number: np.ndarray  # float64: the value where it is a number (int or float)
    numeric: np.ndarray  # bool: the JSON value is a number
    text: np.ndarray  # object: JSON text where the value is not a float, else None
    null: np.ndarray  # bool: the JSON value is null


def _parsed_part(values: Sequence[Any]) -> _Part:
    """Return the typed form of JSON-parsed values (what ``json.loads`` gives)."""
    n = len(values)
    number, numeric = np.full(n, np.nan), np.zeros(n, dtype=bool)
    text, null = np.full(n, None, dtype=object), np.zeros(n, dtype=bool)
    for i, value in enumerate(values):
        if isinstance(value, float):
            number[i], numeric[i] = value, True
        elif value is None:
            text[i], null[i] = "null", True
        elif isinstance(value, bool):
            text[i] = "true" if value else "false"
        elif isinstance(value, int):
            number[i], numeric[i], text[i] = float(value), True, str(value)
        elif type(value) is str:  # the default encoder (cached) writes a string faster
            text[i] = json.dumps(value)
        else:
            text[i] = json.dumps(value, sort_keys=True)
    return _Part(number, numeric, text, null)


def _part(value: Any, n: int) -> _Part:
    """Return the typed form of a fact part on ``n`` rows: exactly what parsing the JSON
    ``evidence_json`` writes for it gives (``_parsed_part``), without writing the JSON."""
    if not isinstance(value, np.ndarray | pd.Series | list | tuple):
        one = _parsed_part([json.loads(_json_scalar(value))])
        return _Part(*(np.repeat(a, n) for a in (one.number, one.numeric, one.text, one.null)))
    array = np.asarray(value)
    if len(array) != n:
        raise ValueError(f"fact column has {len(array)} values for {n} rows")
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        text = np.full(n, None, dtype=object)
        text[~finite] = "null"
        return _Part(np.where(finite, array, np.nan).astype(np.float64), finite, text,
                     ~finite)
    if array.dtype.kind in "iu":
        return _Part(array.astype(np.float64), np.ones(n, dtype=bool),
                     np.array(list(map(str, array.tolist())), dtype=object),
                     np.zeros(n, dtype=bool))
    if array.dtype.kind == "b":
        return _Part(np.full(n, np.nan), np.zeros(n, dtype=bool),
                     choose(array, "true", "false"), np.zeros(n, dtype=bool))
    if pd.api.types.infer_dtype(array, skipna=True) in ("string", "empty"):
        codes, uniques = pd.factorize(array, use_na_sentinel=True)
        encoded = np.array([*map(encode_basestring_ascii, uniques.tolist()), "null"],
                           dtype=object)
        return _Part(np.full(n, np.nan), np.zeros(n, dtype=bool), encoded[codes],
                     codes < 0)
    return _parsed_part([_plain(x) for x in array.tolist()])


def _plain(value: Any) -> Any:
    """Return what ``json.loads(_json_scalar(value))`` gives, without the JSON for the
    usual scalars (a float, an int, a bool, a string, None)."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if value is None or kind is str or kind is bool or kind is int:
        return value
    return json.loads(_json_scalar(value))


def _list_array(values: np.ndarray | pa.Array, valid: np.ndarray | None,
                rows_valid: np.ndarray | None,
                n: int, k: int, type_: pa.DataType) -> pa.ListArray:
    """Return n lists of k elements from the row-major ``values`` (element NULL where
    ``valid`` is False; a whole list NULL where ``rows_valid`` is False)."""
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * k, pa.int32())
    if isinstance(values, pa.Array):
        flat = values
    elif type_ == pa.string():
        flat = pa.array(values, pa.string(), from_pandas=True)
    else:
        flat = pa.array(values, type_, mask=None if valid is None else ~valid)
    mask = None if rows_valid is None else pa.array(~rows_valid)
    return pa.ListArray.from_arrays(offsets, flat, mask=mask)


@dataclass(frozen=True, slots=True, eq=False)
class FactRefs:
    """The typed facts of many issues by reference: ``sets``, a FACTS_SCHEMA table of fact
    sets, and per issue the position of its set there (``index``, int64; a set may serve many
    issues, and some none). Takes and concatenations of issues move the integers, never the
    lists of text; replay stores the same shape (a chunk's distinct sets, a number per
    issue)."""

    sets: pa.Table
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def __eq__(self, other: object) -> bool:
        """Equal when every issue's facts are (as equal tables are), however referenced."""
        if not isinstance(other, FactRefs):
            return NotImplemented
        return len(self) == len(other) and self.table().equals(other.table())

    __hash__ = None  # type: ignore[assignment]

    def take(self, at: np.ndarray) -> FactRefs:
        """Return the facts of the issues ``at`` (positions; an issue may repeat)."""
        return FactRefs(self.sets, self.index[np.asarray(at, dtype=np.int64)])

    def table(self) -> pa.Table:
        """Return the facts as a FACTS_SCHEMA table, one row per issue."""
        if len(self.index) == self.sets.num_rows and np.array_equal(
                self.index, np.arange(len(self.index))):
            return self.sets
        return self.sets.take(pa.array(self.index, pa.int64()))


def by_reference(facts: pa.Table | FactRefs) -> FactRefs:
    """Return typed facts (a table with a row per issue, or already by reference) by
    reference."""
    if isinstance(facts, FactRefs):
        return facts
    return FactRefs(facts, np.arange(facts.num_rows, dtype=np.int64))


def concat_facts(parts: Sequence[pa.Table | FactRefs]) -> FactRefs:
    """Return the typed facts of ``parts``' issues one after another, by reference (each
    part's sets kept as they are: no list is copied)."""
    refs = [by_reference(p) for p in parts]
    if not refs:
        return FactRefs(FACTS_SCHEMA.empty_table(), np.zeros(0, dtype=np.int64))
    if len(refs) == 1:
        return refs[0]
    offsets = np.cumsum([0, *(r.sets.num_rows for r in refs)])
    return FactRefs(pa.concat_tables([r.sets for r in refs]),
                    np.concatenate([r.index + offset for r, offset in zip(
                        refs, offsets.tolist(), strict=False)]))


def fact_table(facts: Sequence[FactColumn], n: int) -> pa.Table:
    """Return the typed facts (FACTS_SCHEMA) of ``n`` issues, each the list of ``facts``
    at its row: what ``evidence_json(facts, n)`` says, as columns (``render_facts`` writes
    that JSON back byte for byte); ``fact_refs`` gives the same by reference."""
    return fact_refs(facts, n).table()


def fact_refs(facts: Sequence[FactColumn], n: int) -> FactRefs:
    """Return ``fact_table(facts, n)`` by reference: when many rows share their facts (a
    snapshot, a bar, a config), each distinct set is encoded once and the rows point at it."""
    if not facts:  # one set, the empty one, for every row
        return FactRefs(_encoded_facts(facts, 1), np.zeros(n, dtype=np.int64))
    if n > _DEDUPE_FROM:
        first, inverse = _distinct_rows(facts, n)
        if first is not None and len(first) < n:
            return FactRefs(_encoded_facts([_rows_fact(f, first) for f in facts], len(first)),
                            inverse.astype(np.int64))
    return FactRefs(_encoded_facts(facts, n), np.arange(n, dtype=np.int64))


def grouped_fact_refs(facts: Sequence[FactColumn], group: np.ndarray) -> FactRefs:
    """Return ``fact_refs(facts, len(group))`` for rows the caller has grouped: rows of one
    ``group`` (an integer per row) have equal facts, so each group's first row is encoded
    once and its rows point at it (rows of two groups may still be equal: the same facts,
    twice). For facts whose combinations the caller holds as numbers already, where finding
    them again value by value would cost more than the rest."""
    first, inverse = distinct(np.asarray(group, dtype=np.int64))
    return FactRefs(_encoded_facts([_rows_fact(f, first) for f in facts], len(first)),
                    inverse.astype(np.int64))


def _encoded_facts(facts: Sequence[FactColumn], n: int) -> pa.Table:
    """Return the typed facts of ``n`` rows, each row encoded (``fact_table`` without its
    dedupe)."""
    k = len(facts)
    values = [_part(f.value, n) for f in facts]
    thresholds = [_part(f.threshold, n) for f in facts]

    def stacked(parts: list[_Part], name: str, dtype: Any) -> np.ndarray:
        if not k:
            return np.zeros((n, 0), dtype=dtype)
        return np.stack([getattr(p, name) for p in parts], axis=1)

    value_text = stacked(values, "text", object)
    has_text = value_text != None  # noqa: E711 (elementwise over an object array)
    t_null = stacked(thresholds, "null", bool)
    t_text = stacked(thresholds, "text", object).copy()
    t_text[t_null] = None  # a null threshold is no text: threshold_json holds none
    t_has_text = t_text != None  # noqa: E711
    # the same k names on every row: n * k strings taken from k, not made from objects
    names = pa.array([f.name for f in facts], pa.string()).take(
        pa.array(np.tile(np.arange(k, dtype=np.int64), n)))
    units = np.stack([_units(f.unit, n) for f in facts], axis=1) if k else np.zeros(
        (n, 0), dtype=object)
    return pa.table([
        _list_array(stacked(values, "number", np.float64).ravel(),
                    stacked(values, "numeric", bool).ravel(), None, n, k, pa.float64()),
        _list_array(value_text.ravel(), None, _any(has_text), n, k, pa.string()),
        _list_array(stacked(thresholds, "number", np.float64).ravel(),
                    stacked(thresholds, "numeric", bool).ravel(), _any(~t_null),
                    n, k, pa.float64()),
        _list_array(t_text.ravel(), None, _any(t_has_text), n, k, pa.string()),
        _list_array(names, None, None, n, k, pa.string()),
        _list_array(units.ravel(), None, None, n, k, pa.string())], schema=FACTS_SCHEMA)


def _any(flags: np.ndarray) -> np.ndarray:
    """Return per row whether any of its facts is flagged ((rows, facts) -> rows)."""
    return np.asarray(flags.any(axis=1), dtype=bool)


def _units(unit: Any, n: int) -> np.ndarray:
    if isinstance(unit, np.ndarray | pd.Series | list | tuple):
        array = np.asarray(unit, dtype=object)
        if len(array) != n:
            raise ValueError(f"fact unit column has {len(array)} values for {n} rows")
        codes, uniques = pd.factorize(array, use_na_sentinel=True)  # a few distinct units
        return np.array([*map(_unit_text, uniques.tolist()), None], dtype=object)[codes]
    return np.full(n, _unit_text(unit), dtype=object)


def _unit_text(unit: Any) -> str | None:
    """Return a unit as the evidence JSON's unit reads back (None: JSON null)."""
    if isinstance(unit, str) or unit is None:
        return unit
    parsed = json.loads(_json_scalar(unit))
    return parsed if isinstance(parsed, str) or parsed is None else json.dumps(parsed)


def facts_from_json(texts: Sequence[str] | np.ndarray) -> pa.Table:
    """Return the typed facts (FACTS_SCHEMA) of evidence JSON strings, one issue each (the
    path of issues that come as JSON: per-intent reports, the row-by-row fallback)."""
    columns: dict[str, list[Any]] = {name: [] for name in FACTS_SCHEMA.names}
    for text in texts:
        facts = json.loads(text)
        value = _parsed_part([f["value"] for f in facts])
        threshold = _parsed_part([f["threshold"] for f in facts])
        t_text = [None if null else t for t, null in zip(threshold.text.tolist(),
                                                          threshold.null.tolist(), strict=True)]
        columns["fact_values"].append([x if ok else None for x, ok in zip(
            value.number.tolist(), value.numeric.tolist(), strict=True)])
        texts_ = value.text.tolist()
        columns["fact_json"].append(texts_ if any(t is not None for t in texts_) else None)
        columns["fact_thresholds"].append([x if ok else None for x, ok in zip(
            threshold.number.tolist(), threshold.numeric.tolist(), strict=True)]
            if not threshold.null.all() else None)
        columns["threshold_json"].append(t_text if any(t is not None for t in t_text) else None)
        columns["fact_names"].append([f["name"] for f in facts])
        columns["fact_units"].append([_unit_text(f["unit"]) for f in facts])
    return pa.table({name: pa.array(values, FACTS_SCHEMA.field(name).type)
                     for name, values in columns.items()}, schema=FACTS_SCHEMA)


def _missing(value: Any) -> bool:
    """Return True for a NULL as a list column gives it (None, NaN, pd.NA or masked)."""
    return value is None or value is pd.NA or value is np.ma.masked or (
        isinstance(value, float) and math.isnan(value))


def _part_text(numbers: Sequence[Any] | None, texts: Sequence[Any] | None, k: int) -> str:
    """Return fact ``k``'s value (or threshold) as JSON text: its stored text when it is not
    a float (re-encoded as Python writes it), else the float, else null."""
    if texts is not None and not _missing(texts[k]):
        return json.dumps(json.loads(texts[k]), sort_keys=True)
    if numbers is None or _missing(numbers[k]):
        return "null"
    return float.__repr__(float(numbers[k]))


def render_one(names: Sequence[str], units: Sequence[Any], values: Sequence[Any] | None,
               value_json: Sequence[Any] | None, thresholds: Sequence[Any] | None,
               threshold_json: Sequence[Any] | None) -> str:
    """Return one issue's evidence JSON from its typed facts (as ``evidence_json`` wrote
    it)."""
    parts = []
    for k, name in enumerate(names):
        parts.append(f'{{"name": {json.dumps(name)}, "threshold": '
                     f'{_part_text(thresholds, threshold_json, k)}, "unit": '
                     f'{json.dumps(units[k])}, "value": {_part_text(values, value_json, k)}}}')
    return "[" + ", ".join(parts) + "]"


def render_facts(facts: pa.Table | FactRefs) -> np.ndarray:
    """Return the evidence JSON of each issue of typed ``facts`` (FACTS_SCHEMA, names and
    units listed; by reference, each set used is rendered once)."""
    if isinstance(facts, FactRefs):
        used, inverse = np.unique(facts.index, return_inverse=True)
        return _rendered(facts.sets.take(pa.array(used, pa.int64())))[inverse.reshape(-1)]
    return _rendered(facts)


def _rendered(facts: pa.Table) -> np.ndarray:
    columns = [facts.column(name).to_pylist() for name in FACTS_SCHEMA.names]
    return np.array([render_one(names or [], units or [], values, texts, thresholds,
                                threshold_texts)
                     for values, texts, thresholds, threshold_texts, names, units
                     in zip(*columns, strict=True)], dtype=object)


# ---------------------------------------------------------------------------- issues
@dataclass(frozen=True, slots=True)
class IssueBlock:
    """The issues of one code on the rows where it fired (``rows``: sorted row numbers).

    ``severity`` is one severity for all of them or one per fired row; ``evidence`` the
    facts per fired row: typed (``fact_refs(...)`` or ``fact_table(...)`` over the fired
    rows: what ``Evaluator.fire`` gives, no JSON is written) or JSON text
    (``evidence_json(...)``);
    ``action_json`` the mitigation's facts the same way.
    """

    code: str
    rows: np.ndarray
    severity: Severity | str | np.ndarray
    evidence: np.ndarray | pa.Table | FactRefs
    action: str | np.ndarray = ""
    action_json: str | np.ndarray | pa.Table | FactRefs = "[]"


def issues_frame(blocks: Sequence[IssueBlock]) -> pd.DataFrame:
    """Return the long issue frame of ``blocks``: by row, and within a row in block order
    (give the blocks in the order the codes are emitted)."""
    return issue_frame(issue_columns(blocks))


#: The typed counterparts of the JSON columns of an issue frame.
TYPED_COLUMNS: dict[str, str] = {"evidence_json": "facts", "action_json": "action_facts"}


def _typed(values: np.ndarray | pa.Table | FactRefs | str, n: int) -> pa.Table | FactRefs:
    """Return typed facts of ``n`` issues from typed facts or their JSON (one or per row)."""
    if isinstance(values, pa.Table | FactRefs):
        return values
    return facts_from_json(_per_row(values, n) if isinstance(values, str) else values)


def issue_columns(blocks: Sequence[IssueBlock]) -> dict[str, Any]:
    """Return ``issues_frame``'s columns as arrays (no frame is built); when a block's
    evidence is typed, the facts stay typed (``facts``, ``action_facts``: FactRefs, a set
    per issue) instead of ``evidence_json`` and ``action_json``."""
    typed = any(isinstance(block.evidence, pa.Table | FactRefs) for block in blocks)
    rows, orders, ranks, actions = [], [], [], []
    evidence: list[Any] = []  # typed facts or JSON, per block
    action_json: list[Any] = []
    codes = np.array([block.code for block in blocks] or [""], dtype=object)
    for order, block in enumerate(blocks):
        block_rows = np.asarray(block.rows, dtype=np.int64)
        if not len(block_rows):
            continue
        severity = block.severity
        if isinstance(severity, Severity | str):
            rank = np.full(len(block_rows), Severity(severity).rank, dtype=np.int64)
        else:
            rank = severity_ranks(severity)
        facts = block.evidence
        if len(rank) != len(block_rows) or len(facts) != len(block_rows):
            raise ValueError(f"{block.code}: {len(block_rows)} rows, {len(rank)} "
                             f"severities, {len(facts)} evidence rows")
        rows.append(block_rows)
        orders.append(np.full(len(block_rows), order, dtype=np.int64))
        ranks.append(rank)
        actions.append(_per_row(block.action, len(block_rows)))
        if typed:
            evidence.append(_typed(facts, len(block_rows)))
            action_json.append(_typed(block.action_json, len(block_rows)))
        else:
            evidence.append(np.asarray(facts, dtype=object))
            action_json.append(_json_of(block.action_json, len(block_rows)))
    if not rows:
        return {name: np.array([], dtype=np.int64 if name == "row" else object)
                for name in ISSUE_FRAME_COLUMNS}
    row, block_order = np.concatenate(rows), np.concatenate(orders)
    sort = np.lexsort((block_order, row))
    columns: dict[str, Any] = {"row": row[sort], "code": codes[block_order[sort]],
                               "severity": SEVERITY_BY_RANK[np.concatenate(ranks)[sort]],
                               "action": np.concatenate(actions)[sort]}
    if typed:
        columns["facts"] = concat_facts(evidence).take(sort)
        columns["action_facts"] = concat_facts(action_json).take(sort)
    else:
        columns["evidence_json"] = np.concatenate(evidence)[sort]
        columns["action_json"] = np.concatenate(action_json)[sort]
    return columns


def issue_frame(columns: Mapping[str, Any]) -> pd.DataFrame:
    """Return the issue frame (ISSUE_FRAME_COLUMNS) of issue columns, rendering typed facts
    as their evidence JSON (``render_facts``)."""
    plain = {name: values for name, values in columns.items() if name not in (
        "facts", "action_facts")}
    for name, typed in TYPED_COLUMNS.items():
        if typed in columns and name not in plain:
            plain[name] = render_facts(columns[typed])
    order = [*(n for n in ISSUE_FRAME_COLUMNS if n in plain),
             *(n for n in plain if n not in ISSUE_FRAME_COLUMNS)]
    return object_frame({name: plain[name] for name in order})


def take_columns(columns: Mapping[str, Any], at: np.ndarray) -> dict[str, Any]:
    """Return the issues ``at`` (positions) of issue columns, typed facts included."""
    at = np.asarray(at, dtype=np.int64)
    return {name: values.take(at) if isinstance(values, pa.Table | FactRefs) else
            np.asarray(values)[at] for name, values in columns.items()}


def concat_columns(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Return issue columns that are ``parts`` one after another (typed facts stay typed;
    a part with JSON joins typed ones through ``facts_from_json``)."""
    parts = [p for p in parts if len(p["row"])]
    if not parts:
        return {name: np.array([], dtype=np.int64 if name == "row" else object)
                for name in ISSUE_FRAME_COLUMNS}
    typed = any("facts" in p for p in parts)
    skip = (*TYPED_COLUMNS, *TYPED_COLUMNS.values())
    names = list(dict.fromkeys(n for p in parts for n in p if n not in skip))
    out: dict[str, Any] = {name: np.concatenate([
        np.asarray(p[name]) if name in p else np.full(len(p["row"]), _DEFAULTS[name],
                                                      dtype=object)
        for p in parts]) for name in names}
    for name, typed_name in TYPED_COLUMNS.items():
        found = [_facts_of(p, name, typed_name) for p in parts]
        if typed:
            out[typed_name] = concat_facts([_typed(f, len(p["row"]))
                                            for f, p in zip(found, parts, strict=True)])
        else:
            out[name] = np.concatenate([_json_of(f, len(p["row"]))
                                        for f, p in zip(found, parts, strict=True)])
    return out


def _json_of(values: np.ndarray | pa.Table | FactRefs | str, n: int) -> np.ndarray:
    """Return the evidence JSON of ``n`` issues from their facts, typed or JSON."""
    if isinstance(values, pa.Table | FactRefs):
        return render_facts(values)
    return _per_row(values, n)


#: What an issue column holds when a part of a concatenation lacks it.
_DEFAULTS: dict[str, str] = {"action": "", "action_json": "[]", "evidence_json": "[]"}


def _facts_of(part: Mapping[str, Any], name: str, typed_name: str
              ) -> np.ndarray | pa.Table | FactRefs:
    """Return a part's facts of one kind: typed, as JSON, or the empty default."""
    if typed_name in part:
        return part[typed_name]
    if name in part:
        return np.asarray(part[name], dtype=object)
    return np.full(len(part["row"]), _DEFAULTS[name], dtype=object)


def _per_row(value: str | np.ndarray, n: int) -> np.ndarray:
    if isinstance(value, str):
        return np.full(n, value, dtype=object)
    array = np.asarray(value, dtype=object)
    if len(array) != n:
        raise ValueError(f"{len(array)} values for {n} issues")
    return array


def severity_ranks(values: Any) -> np.ndarray:
    """Return the rank (0 info .. 4 critical) of each severity value (raises on others)."""
    values = np.asarray(values, dtype=object)
    if len(values) <= 32:  # a few issues (a batch of one): a lookup each beats 5 array passes
        try:
            return np.array([SEVERITY_RANK[v] for v in values.tolist()], dtype=np.int64)
        except (KeyError, TypeError):
            bad = next(v for v in values.tolist() if v not in SEVERITY_RANK)
            raise ValueError(f"{bad!r} is not a severity ({', '.join(SEVERITY_RANK)})") from None
    ranks = numbered(values, SEVERITY_RANK)  # each distinct value looked up once
    if (ranks < 0).any():
        bad = values[ranks < 0][0]
        if isinstance(bad, Severity):  # an enum member compares equal to its value
            return np.array([Severity(v).rank for v in values], dtype=np.int64)
        raise ValueError(f"{bad!r} is not a severity ({', '.join(SEVERITY_RANK)})")
    return ranks


def object_frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Return a frame of ``columns`` keeping text as Python objects (no string inference)."""
    return pd.DataFrame({name: pd.Series(values, dtype=values.dtype if values.dtype != object
                                         else object, copy=False)
                         for name, values in columns.items()})


def empty_issues() -> pd.DataFrame:
    """Return an issue frame with no rows."""
    return pd.DataFrame({"row": np.array([], dtype=np.int64),
                         "code": np.array([], dtype=object),
                         "severity": np.array([], dtype=object),
                         "evidence_json": np.array([], dtype=object),
                         "action": np.array([], dtype=object),
                         "action_json": np.array([], dtype=object)})


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True, kw_only=True)
class BatchResult:
    """One module's result on rows 0..n-1: score (NaN: none), severity, status, issues."""

    module: str
    version: str
    score: np.ndarray  # float64
    severity: np.ndarray  # object: Severity values
    status: np.ndarray  # object: ModuleStatus values
    #: ISSUE_FRAME_COLUMNS, by row then emission order: a frame, or its columns as arrays
    #: with the facts typed or as JSON (``issue_columns``; the frame is made when ``issues``
    #: is first read; replay and a batch of one never need one)
    issue_data: pd.DataFrame | Mapping[str, Any]
    #: the module's explain facts, each a scalar or one value per row
    explain: tuple[FactColumn, ...] = ()
    #: the issue frame once rendered (``issues``)
    rendered: list[pd.DataFrame] = field(default_factory=list, init=False, repr=False,
                                         compare=False)

    def __post_init__(self) -> None:
        n = len(self.score)
        if len(self.severity) != n or len(self.status) != n:
            raise ValueError(f"{self.module}: score, severity and status lengths differ")
        rows = self._rows
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise ValueError(f"{self.module}: an issue row lies outside 0..{n - 1}")

    def __len__(self) -> int:
        return len(self.score)

    @property
    def issues(self) -> pd.DataFrame:
        """The issues, one row each (ISSUE_FRAME_COLUMNS, evidence as JSON)."""
        data = self.issue_data
        if isinstance(data, pd.DataFrame):
            return data
        if not self.rendered:
            self.rendered.append(issue_frame(data))
        return self.rendered[0]

    @property
    def issue_arrays(self) -> dict[str, Any]:
        """The issues as columns (``issue_columns``'s form: typed facts stay typed)."""
        data = self.issue_data
        if isinstance(data, pd.DataFrame):
            return {name: data[name].to_numpy(dtype=np.int64 if name == "row" else object)
                    for name in data.columns}
        return dict(data)

    @property
    def _rows(self) -> np.ndarray:
        return np.asarray(self.issue_data["row"], dtype=np.int64)

    def _column(self, name: str, at: np.ndarray) -> np.ndarray:
        """Return column ``name`` of the issues ``at`` (JSON rendered from typed facts)."""
        data = self.issue_data
        if name in data:
            return np.asarray(data[name], dtype=object)[at]
        typed = TYPED_COLUMNS.get(name)
        if typed is not None and typed in data:
            return render_facts(data[typed].take(at))
        return np.full(len(at), "" if name == "action" else "[]", dtype=object)

    @property
    def n_issues(self) -> np.ndarray:
        """Issues per row (int64)."""
        return np.bincount(self._rows, minlength=len(self))

    @classmethod
    def of_blocks(cls, module: str, version: str, n: int, blocks: Sequence[IssueBlock], *,
                  score: np.ndarray | None = None, explain: tuple[FactColumn, ...] = (),
                  unscored: frozenset[str] = frozenset()) -> BatchResult:
        """Return OK results on ``n`` rows holding the issues of ``blocks``; see
        ``from_issues``."""
        result = cls.from_issues(module, version, n, issue_columns(blocks), score,
                                 unscored=unscored)
        return replace(result, explain=explain) if explain else result

    def row(self, i: int) -> EvaluationResult:
        """Return row ``i`` as the EvaluationResult of one intent (facts from the evidence
        JSON, mitigations with their action facts, explain facts at row ``i``)."""
        at = np.flatnonzero(self._rows == i)
        codes, severities = self._column("code", at), self._column("severity", at)
        evidence, actions = self._column("evidence_json", at), self._column("action", at)
        action_facts = self._column("action_json", at)
        issues = [Issue(module=self.module, code=str(codes[k]),
                        severity=Severity(severities[k]), evidence=_facts(evidence[k]),
                        mitigation=Mitigation(action=str(actions[k]),
                                              facts=_facts(action_facts[k])))
                  for k in range(len(at))]
        score = float(self.score[i])
        explain = tuple(Fact(name=c.name, value=_value_at(c.value, i),
                             unit=str(_value_at(c.unit, i))) for c in self.explain)
        return EvaluationResult(
            module=self.module, version=self.version,
            score=None if math.isnan(score) else score, severity=Severity(self.severity[i]),
            issues=tuple(issues), recommendations=tuple(x.mitigation for x in issues),
            explain_facts=explain, status=ModuleStatus(self.status[i]))

    @classmethod
    def from_issues(cls, module: str, version: str, n: int,
                    issues: pd.DataFrame | Mapping[str, np.ndarray],
                    score: np.ndarray | None = None, *,
                    unscored: frozenset[str] = frozenset()) -> BatchResult:
        """Return OK results whose severity is each row's highest and whose score defaults to
        100 minus the severity penalties, floored at 0 (``Evaluator.result``, column-wise).

        ``unscored``: codes that cost no points (a module's not_checked codes: what could not
        be checked never lowers a score, and never raises one either)."""
        rows = np.asarray(issues["row"], dtype=np.int64)
        ranks = severity_ranks(np.asarray(issues["severity"], dtype=object))
        highest = np.zeros(n, dtype=np.int64)
        np.maximum.at(highest, rows, ranks)
        if score is None:
            penalty = np.zeros(n, dtype=np.float64)
            # sequential per row, as the scalar sum() adds them (exact: penalties are integers)
            points = _PENALTY_BY_RANK[ranks]
            if unscored:
                points = np.where(np.isin(np.asarray(issues["code"], dtype=object),
                                          list(unscored)), 0.0, points)
            np.add.at(penalty, rows, points)
            score = np.maximum(0.0, 100.0 - penalty)
        return cls(module=module, version=version, score=np.asarray(score, dtype=np.float64),
                   severity=SEVERITY_BY_RANK[highest].copy(),
                   status=repeated(ModuleStatus.OK.value, n), issue_data=issues)

    @classmethod
    def from_results(cls, module: str, version: str,
                     results: Sequence[EvaluationResult]) -> BatchResult:
        """Return the batch form of per-row scalar results (the fallback path)."""
        blocks = []
        for row, result in enumerate(results):
            for issue in result.issues:
                blocks.append({"row": row, "code": issue.code,
                               "severity": issue.severity.value,
                               "evidence_json": issue_evidence_json(issue.evidence),
                               "action": issue.mitigation.action,
                               "action_json": issue_evidence_json(issue.mitigation.facts)})
        issues = pd.DataFrame(blocks, columns=list(ISSUE_FRAME_COLUMNS)) if blocks else (
            empty_issues())
        issues["row"] = issues["row"].astype(np.int64)
        versions = {r.version for r in results}
        return cls(module=module, version=versions.pop() if len(versions) == 1 else version,
                   score=np.array([math.nan if r.score is None else float(r.score)
                                   for r in results], dtype=np.float64),
                   severity=np.array([r.severity.value for r in results], dtype=object),
                   status=np.array([r.status.value for r in results], dtype=object),
                   issue_data=issues)

    def take(self, rows: np.ndarray) -> BatchResult:
        """Return the results of ``rows`` (renumbered 0..len(rows)-1; a row may repeat)."""
        rows = np.asarray(rows, dtype=np.int64)
        columns = self.issue_arrays
        old = np.asarray(columns["row"], dtype=np.int64)
        # the issues come by row: each row's issues are one run, starting at first[row]
        order = np.argsort(old, kind="stable")
        counts = np.bincount(old, minlength=len(self))
        first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        per_new = counts[rows]
        starts = np.repeat(first[rows] - np.concatenate([[0], np.cumsum(per_new)[:-1]]),
                           per_new) if len(rows) else np.zeros(0, dtype=np.int64)
        at = order[starts + np.arange(int(per_new.sum()))]
        issues = take_columns(columns, at)
        issues["row"] = np.repeat(np.arange(len(rows), dtype=np.int64), per_new)
        explain = tuple(replace(c, value=_rows_of(c.value, rows), unit=_rows_of(c.unit, rows))
                        for c in self.explain)
        return BatchResult(module=self.module, version=self.version, score=self.score[rows],
                           severity=self.severity[rows], status=self.status[rows],
                           issue_data=issues, explain=explain)
