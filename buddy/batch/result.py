"""BatchResult: one module's verdicts on many intents, column-wise.

A module's batch form returns, for N intents (rows 0..N-1 of a BatchContext), the same
verdicts its scalar form returns one at a time: a score, a severity and a status per row,
and its issues in long form (one row per issue, in the order the scalar form emits them).
Evidence is kept as the JSON the replay tables store (``evidence_json``), built by
``evidence_json`` exactly as ``json.dumps([fact.as_dict() ...], sort_keys=True)`` builds it
for one issue.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

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
        return np.full(n, "[]", dtype=object)
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
        return np.full(n, fixed[0], dtype=object)
    template = "%s".join(part.replace("%", "%%") for part in fixed)
    return np.array([template % row for row in zip(*columns, strict=True)], dtype=object)


#: Rows from which evidence is encoded once per distinct combination of facts.
_DEDUPE_FROM = 512


def _distinct_rows(facts: Sequence[FactColumn], n: int
                   ) -> tuple[np.ndarray | None, np.ndarray]:
    """Return (the first row of each distinct combination of the facts' per-row values, each
    row's combination), or (None, ...) when a column mixes types that hash alike but are
    written differently (1, 1.0 and True)."""
    key = np.zeros(n, dtype=np.int64)
    for fact in facts:
        for part in (fact.value, fact.threshold, fact.unit):
            if not isinstance(part, np.ndarray | pd.Series | list | tuple):
                continue
            array = np.asarray(part)
            if array.dtype.kind == "O" and pd.api.types.infer_dtype(
                    array, skipna=True) not in ("string", "empty"):
                return None, key
            codes, uniques = pd.factorize(array, use_na_sentinel=False)
            key, _ = pd.factorize(key * (len(uniques) + 1) + codes)
    count = int(key.max()) + 1 if n else 0
    first = np.zeros(count, dtype=np.int64)
    first[key[::-1]] = np.arange(n)[::-1]
    return first, key


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
        encoded = np.array([*(_json_scalar(u) for u in uniques), "null"], dtype=object)
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


# ---------------------------------------------------------------------------- issues
@dataclass(frozen=True, slots=True)
class IssueBlock:
    """The issues of one code on the rows where it fired (``rows``: sorted row numbers).

    ``severity`` is one severity for all of them or one per fired row; ``evidence`` the JSON
    per fired row (``evidence_json(...)`` over the fired rows).
    """

    code: str
    rows: np.ndarray
    severity: Severity | str | np.ndarray
    evidence: np.ndarray
    action: str | np.ndarray = ""
    action_json: str | np.ndarray = "[]"


def issues_frame(blocks: Sequence[IssueBlock]) -> pd.DataFrame:
    """Return the long issue frame of ``blocks``: by row, and within a row in block order
    (give the blocks in the order the codes are emitted)."""
    return object_frame(issue_columns(blocks))


def issue_columns(blocks: Sequence[IssueBlock]) -> dict[str, np.ndarray]:
    """Return ``issues_frame``'s columns as arrays (no frame is built)."""
    rows, orders, ranks, evidence, actions, action_json = [], [], [], [], [], []
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
        strings = np.asarray(block.evidence, dtype=object)
        if len(rank) != len(block_rows) or len(strings) != len(block_rows):
            raise ValueError(f"{block.code}: {len(block_rows)} rows, {len(rank)} "
                             f"severities, {len(strings)} evidence strings")
        rows.append(block_rows)
        orders.append(np.full(len(block_rows), order, dtype=np.int64))
        ranks.append(rank)
        evidence.append(strings)
        actions.append(_per_row(block.action, len(block_rows)))
        action_json.append(_per_row(block.action_json, len(block_rows)))
    if not rows:
        return {name: np.array([], dtype=np.int64 if name == "row" else object)
                for name in ISSUE_FRAME_COLUMNS}
    row, block_order = np.concatenate(rows), np.concatenate(orders)
    sort = np.lexsort((block_order, row))
    return {"row": row[sort], "code": codes[block_order[sort]],
                         "severity": SEVERITY_BY_RANK[np.concatenate(ranks)[sort]],
                         "evidence_json": np.concatenate(evidence)[sort],
            "action": np.concatenate(actions)[sort],
            "action_json": np.concatenate(action_json)[sort]}


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
    ranks = np.full(len(values), -1, dtype=np.int64)
    for name, rank in SEVERITY_RANK.items():
        ranks[values == name] = rank
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
    #: (made a frame when ``issues`` is first read; a batch of one never needs one)
    issue_data: pd.DataFrame | Mapping[str, np.ndarray]
    #: the module's explain facts, each a scalar or one value per row
    explain: tuple[FactColumn, ...] = ()

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
        """The issues, one row each (ISSUE_FRAME_COLUMNS)."""
        data = self.issue_data
        if not isinstance(data, pd.DataFrame):
            data = object_frame(dict(data))
            object.__setattr__(self, "issue_data", data)
        return data

    @property
    def _rows(self) -> np.ndarray:
        return np.asarray(self.issue_data["row"], dtype=np.int64)

    def _column(self, name: str) -> np.ndarray:
        data = self.issue_data
        if name not in data:
            return np.full(len(self._rows), "" if name == "action" else "[]", dtype=object)
        return np.asarray(data[name], dtype=object)

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
        codes, severities = self._column("code"), self._column("severity")
        evidence, actions = self._column("evidence_json"), self._column("action")
        action_facts = self._column("action_json")
        issues = [Issue(module=self.module, code=str(codes[k]),
                        severity=Severity(severities[k]), evidence=_facts(evidence[k]),
                        mitigation=Mitigation(action=str(actions[k]),
                                              facts=_facts(action_facts[k])))
                  for k in at.tolist()]
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
                   status=np.full(n, ModuleStatus.OK.value, dtype=object), issue_data=issues)

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
        positions = pd.DataFrame({"row": rows, "_new": np.arange(len(rows), dtype=np.int64)})
        issues = self.issues.reset_index(drop=True).rename_axis("_seq").reset_index()
        issues = issues.merge(positions, on="row", how="inner")
        issues = issues.sort_values(["_new", "_seq"], kind="stable", ignore_index=True)
        issues["row"] = issues["_new"]
        explain = tuple(replace(c, value=_rows_of(c.value, rows), unit=_rows_of(c.unit, rows))
                        for c in self.explain)
        return BatchResult(module=self.module, version=self.version, score=self.score[rows],
                           severity=self.severity[rows], status=self.status[rows],
                           issue_data=issues.loc[:, list(ISSUE_FRAME_COLUMNS)], explain=explain)


def concat_results(module: str, version: str, parts: Sequence[tuple[np.ndarray, BatchResult]],
                   n: int) -> BatchResult:
    """Return one BatchResult of ``n`` rows from results computed on row subsets
    (``parts``: (rows of the whole, result on those rows)); every row must be covered once."""
    score = np.full(n, math.nan)
    severity = np.empty(n, dtype=object)
    status = np.empty(n, dtype=object)
    covered = np.zeros(n, dtype=np.int64)
    frames = []
    for rows, part in parts:
        rows = np.asarray(rows, dtype=np.int64)
        score[rows], severity[rows], status[rows] = part.score, part.severity, part.status
        covered[rows] += 1
        if len(part.issues):
            frame = part.issues.copy()
            frame["row"] = rows[frame["row"].to_numpy(np.int64)]
            frames.append(frame)
    if (covered != 1).any():
        raise ValueError(f"{module}: rows covered {sorted(set(covered.tolist()))} times")
    issues = (pd.concat(frames, ignore_index=True).sort_values("row", kind="stable",
                                                               ignore_index=True)
              if frames else empty_issues())
    return BatchResult(module=module, version=version, score=score, severity=severity,
                       status=status, issue_data=issues)
