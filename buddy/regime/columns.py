"""The ``regime`` piece as columns: what the regime checks read of many snapshots, as arrays.

``regime_columns(ctx)`` gives, per row of a BatchContext, the number of its distinct regime
snapshot and those snapshots' columns (``RegimeColumns``). Two sources give the same columns:

- RegimeSnapshot objects (a pack, a batch of one, packs built elsewhere): read attribute by
  attribute (``snapshot_columns``);
- the batch provider's column form (``StoredRegimes``): the regime_snapshots rows of the
  distinct bars a batch sits on, read from the whole table's columns (converted once per
  process, ``stored_columns``), plus the few snapshots computed on demand. Its objects are
  built only when asked (``make``: ``snapshots_from_table`` on the row), so a replay builds
  none.

Derived values (the HMM state mix's expected stay and its base rate, the stationary
distribution of each transition matrix) are computed once, from either source, by
``_derive``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from buddy.context.piece_columns import PieceColumn
from buddy.context.pieces import RegimeSnapshot
from buddy.regime.markov import expected_stay, stationary_distribution
from buddy.regime.snapshots import (
    incomplete_reason,
    snapshots_from_table,
)
from buddy.store.regime import RegimeTable
from buddy.store.tables import utc_ns_column

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext

#: The state columns a complete row defines (``incomplete_reason``).
STATE_COLUMNS: tuple[str, ...] = ("trend_state", "vol_state", "liquidity_state",
                                  "vol_expansion_flag")

RegimeColumns = dict[str, np.ndarray]
"""Per distinct snapshot: ``probs``, ``stays`` and ``stationary`` ((snapshots, states),
zero-padded), ``has_hmm``, ``expected_stay``, ``typical_stay``, ``label``, ``trend_state``,
``vol_state``, ``liquidity_state``, ``trend_strength``, ``vol_z``, ``relvol``,
``spread_proxy``, ``vol_expansion_flag``, ``ts`` (UTC ns), ``state`` (-1: none),
``n_states`` and ``n_probs``."""


def regime_columns(ctx: BatchContext) -> tuple[np.ndarray, RegimeColumns]:
    """Return (per row, the number of its distinct regime snapshot; their columns).

    Every row must hold a snapshot. Raises ValueError for a snapshot whose HMM state has no
    row in its transition matrix (the checks cannot read it).
    """
    pieces = ctx.piece("regime")
    if isinstance(pieces, PieceColumn) and isinstance(pieces.columns, StoredRegimes):
        code = pieces.code
        per = pieces.columns.columns()
    else:
        code, snapshots = ctx.distinct_pieces("regime")
        per = snapshot_columns(snapshots)
    if (code < 0).any():
        raise ValueError("regime_columns: a row has no regime snapshot")
    _check_states(per, np.unique(code))
    return code, per


def snapshot_columns(snapshots: Sequence[RegimeSnapshot]) -> RegimeColumns:
    """Return the columns of ``snapshots`` (objects), indexed like them."""
    matrix_code, matrices = _identities([s.transition_matrix for s in snapshots])
    return _derive(
        probs=[s.hmm_probs for s in snapshots], matrix_code=matrix_code, matrices=matrices,
        state=np.array([-1 if s.hmm_state_id is None else s.hmm_state_id for s in snapshots],
                       dtype=np.int64),
        label=_objects([s.hmm_state_label for s in snapshots]),
        trend_state=_objects([s.trend_state for s in snapshots]),
        vol_state=_objects([s.vol_state for s in snapshots]),
        liquidity_state=_objects([s.liquidity_state for s in snapshots]),
        trend_strength=np.array([s.trend_strength for s in snapshots], dtype=np.float64),
        vol_z=np.array([s.vol_z for s in snapshots], dtype=np.float64),
        relvol=np.array([s.relvol for s in snapshots], dtype=np.float64),
        spread_proxy=np.array([s.spread_proxy for s in snapshots], dtype=np.float64),
        vol_expansion_flag=np.array([bool(s.vol_expansion_flag) for s in snapshots],
                                    dtype=bool),
        ts=np.array([_ns(s.ts) for s in snapshots], dtype=np.int64))


def _ns(value: Any) -> int:
    import pandas as pd

    return int(pd.Timestamp(value).as_unit("ns").value)


def _identities(values: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
    """Return (per value, the number of its distinct object by identity; those objects)."""
    seen: dict[int, int] = {}
    distinct: list[Any] = []
    code = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        j = seen.get(id(value))
        if j is None:
            j = seen[id(value)] = len(distinct)
            distinct.append(value)
        code[i] = j
    return code, distinct


def _objects(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _derive(*, probs: Sequence[Sequence[float]] | tuple[np.ndarray, np.ndarray],
            matrix_code: np.ndarray, matrices: Sequence[Sequence[Sequence[float]]],
            state: np.ndarray, **columns: np.ndarray) -> RegimeColumns:
    """Return the columns: the given ones plus the HMM's derived arrays (``probs``: each
    snapshot's filtered probabilities, or those zero-padded with each one's length;
    ``matrices[matrix_code]``: its transition matrix)."""
    weights, n_probs = probs if isinstance(probs, tuple) else _padded(probs)
    n, k = weights.shape
    n_of_matrix = np.array([len(m) for m in matrices], dtype=np.int64)
    n_states = n_of_matrix[matrix_code] if n else np.zeros(0, np.int64)
    has_hmm = (n_probs > 0) & (n_states > 0)
    # per distinct matrix: its diagonal and stationary mix, zero-padded to k states
    diagonal = np.zeros((len(matrices), k))
    steady = np.zeros((len(matrices), k))
    for m, matrix in enumerate(matrices):
        if not len(matrix):
            continue
        top = min(k, len(matrix))
        diagonal[m, :top] = [matrix[i][i] for i in range(top)]
        steady[m, :top] = stationary_distribution(matrix)[:top]
    live = np.arange(k)[None, :] < n_probs[:, None]  # the states a snapshot has probs for
    stays = np.where(has_hmm[:, None] & live, diagonal[matrix_code], 0.0)
    stationary = np.where(has_hmm[:, None], steady[matrix_code], 0.0)
    weights = np.where(has_hmm[:, None], weights, 0.0)
    return {
        **columns, "probs": weights, "stays": stays, "stationary": stationary,
        "has_hmm": has_hmm, "state": state, "n_states": n_states, "n_probs": n_probs,
        "expected_stay": np.where(has_hmm, expected_stay(weights, stays), np.nan),
        "typical_stay": np.where(has_hmm, expected_stay(stationary, stays), np.nan)}


def _padded(probs: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Return ``probs`` as a zero-padded (rows, states) matrix and each row's length."""
    n = len(probs)
    n_probs = np.fromiter(map(len, probs), dtype=np.int64, count=n)
    k = int(n_probs.max()) if n else 0
    weights = np.zeros((n, k))
    if k:
        uniform = np.flatnonzero(n_probs == k)
        if len(uniform):
            weights[uniform] = np.array([probs[j] for j in uniform.tolist()],
                                        dtype=np.float64).reshape(len(uniform), k)
        for j in np.flatnonzero((n_probs > 0) & (n_probs < k)).tolist():
            weights[j, :n_probs[j]] = probs[j]
    return weights, n_probs


def _check_states(per: RegimeColumns, used: np.ndarray) -> None:
    """Raise ValueError when a used snapshot's HMM state (0 when unknown) or probabilities
    reach past its transition matrix."""
    state = np.maximum(per["state"][used], 0)
    bad = per["has_hmm"][used] & ((state >= per["n_states"][used])
                                  | (per["n_probs"][used] > per["n_states"][used]))
    if bad.any():
        j = int(used[np.flatnonzero(bad)[0]])
        raise ValueError(f"regime snapshot {j}: HMM state {int(per['state'][j])} (of "
                         f"{int(per['n_probs'][j])} probabilities) has no row in its "
                         f"{int(per['n_states'][j])}-state transition matrix")


# ---------------------------------------------------------------------------- stored rows
@dataclass(frozen=True, slots=True, eq=False)
class StoredColumns:
    """The whole regime_snapshots table's columns the checks read, converted once per
    process: text columns as codes into their distinct values, JSON texts parsed once per
    distinct value (labels, transition matrices)."""

    table: pa.Table
    text: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (codes, values: object)
    numbers: dict[str, np.ndarray]
    flag: np.ndarray  # vol_expansion_flag (False where null)
    absent: np.ndarray  # (rows, STATE_COLUMNS): the state is null
    state: np.ndarray  # hmm_state_id_optional, -1 where null
    has_probs: np.ndarray
    ts: np.ndarray  # UTC ns
    labels: tuple[np.ndarray, list[tuple[str, ...]]]  # codes (-1: null), parsed
    matrices: tuple[np.ndarray, list[tuple[tuple[float, ...], ...]] | None]
    matrix_text: list[Any]
    memo: dict[Any, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, table: pa.Table) -> StoredColumns:
        """Convert ``table`` (``RegimeTable.snapshots``)."""
        def codes(name: str) -> tuple[np.ndarray, list[Any]]:
            encoded = table.column(name).combine_chunks().dictionary_encode()
            return (encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
                    .astype(np.int64), encoded.dictionary.to_pylist())

        def floats(name: str) -> np.ndarray:
            return table.column(name).to_numpy().astype(np.float64)

        text = {}
        for name in ("trend_state", "vol_state", "liquidity_state"):
            code, values = codes(name)
            text[name] = (code, _objects([*values, None]))  # code -1 reads the None
        label_code, label_text = codes("hmm_state_labels_json")
        matrix_code, matrix_text = codes("transition_json")
        flag = table.column("vol_expansion_flag")
        state = table.column("hmm_state_id_optional")
        probs = table.column("hmm_probs_json")
        absent = np.column_stack([_absent(table.column(name)) for name in STATE_COLUMNS]
                                 ) if table.num_rows else np.zeros((0, len(STATE_COLUMNS)),
                                                                   bool)
        return cls(
            table=table, text=text,
            numbers={name: floats(name) for name in ("trend_strength", "vol_z", "relvol",
                                                      "spread_proxy")},
            flag=flag.fill_null(False).to_numpy(zero_copy_only=False).astype(bool),
            absent=absent,
            state=state.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64),
            has_probs=~_absent(probs) & ~_absent(state),
            ts=utc_ns_column(table.column("ts")),
            labels=(label_code, [tuple(json.loads(t)) for t in label_text]),
            matrices=(matrix_code, None), matrix_text=matrix_text)

    def parsed_matrices(self) -> list[tuple[tuple[float, ...], ...]]:
        """Return the distinct transition matrices, parsed on first use."""
        parsed = self.memo.get("matrices")
        if parsed is None:
            parsed = self.memo["matrices"] = [
                tuple(tuple(float(x) for x in r) for r in json.loads(t))
                for t in self.matrix_text]
        return parsed


def _absent(column: pa.ChunkedArray) -> np.ndarray:
    """Return per value: null (or NaN in a float column), as ``snapshots_from_table``."""
    null = column.is_null().to_numpy(zero_copy_only=False).astype(bool)
    if pa.types.is_floating(column.type):
        null |= np.isnan(column.to_numpy(zero_copy_only=False).astype(np.float64))
    return null


def stored_columns(regimes: RegimeTable, cache: dict[int, StoredColumns]) -> StoredColumns:
    """Return the columns of ``regimes.snapshots`` (kept in ``cache`` by the table)."""
    held = cache.get(id(regimes))
    if held is None or held.table is not regimes.snapshots:
        cache.clear()
        held = cache[id(regimes)] = StoredColumns.of(regimes.snapshots)
    return held


@dataclass(eq=False)
class StoredRegimes:
    """The regime provider's column form of a batch: distinct snapshot j < len(rows) is the
    stored row ``rows[j]`` of the whole table, the others are ``computed[j - len(rows)]``
    (made on demand)."""

    stored: StoredColumns
    rows: np.ndarray  # int64 rows of stored.table
    computed: list[RegimeSnapshot]
    _columns: RegimeColumns | None = None
    _memo: dict[Any, Any] = field(default_factory=dict)

    def incomplete(self) -> list[str | None]:
        """Return per stored row why it makes no snapshot (None: it does)."""
        absent = self.stored.absent[self.rows]
        if not len(absent):
            return []
        # each set of absent states as bits: one wording per set
        key = absent.astype(np.int64) @ (1 << np.arange(len(STATE_COLUMNS)))
        words = [incomplete_reason({name: None if k >> b & 1 else "" for b, name in
                                    enumerate(STATE_COLUMNS)})
                 for k in range(1 << len(STATE_COLUMNS))]
        return [words[k] for k in key.tolist()]

    def make(self, j: int) -> RegimeSnapshot:
        """Return distinct snapshot ``j`` as the object the scalar provider gives."""
        if j >= len(self.rows):
            return self.computed[j - len(self.rows)]
        made = snapshots_from_table(self.stored.table.slice(int(self.rows[j]), 1),
                                    self._memo)[0][0]
        if made is None:
            raise ValueError(f"regime row {int(self.rows[j])} makes no snapshot")
        return made

    def columns(self) -> RegimeColumns:
        """Return the columns of every distinct snapshot (computed once)."""
        if self._columns is None:
            self._columns = self._stored_columns() if not self.computed else _concat(
                self._stored_columns(), snapshot_columns(self.computed))
        return self._columns

    def _stored_columns(self) -> RegimeColumns:
        s, rows = self.stored, self.rows
        complete = ~s.absent[rows].any(axis=1) if len(rows) else np.zeros(0, bool)
        hmm = s.has_probs[rows] & complete
        state = np.where(hmm, s.state[rows], -1)
        listed: list[Any] = [()] * len(rows)
        probs: list[Any] | tuple[np.ndarray, np.ndarray] = listed
        at = np.flatnonzero(hmm)
        if len(at):
            texts = s.table.column("hmm_probs_json").take(pa.array(rows[at])).combine_chunks()
            parsed = _probabilities(texts)
            if parsed is None:
                for j, values in zip(at.tolist(), texts.to_pylist(), strict=True):
                    listed[j] = json.loads(values)
            else:
                weights = np.zeros((len(rows), parsed[0].shape[1]))
                weights[at] = parsed[0]
                n_probs = np.zeros(len(rows), dtype=np.int64)
                n_probs[at] = parsed[1]
                probs = (weights, n_probs)
        matrix_code = s.matrices[0][rows]
        if (hmm & (matrix_code < 0)).any() or (
                hmm & (s.labels[0][rows] < 0)).any():
            raise ValueError("a stored regime row with HMM probabilities has no model")
        matrices = [*s.parsed_matrices(), ()]  # code -1 (no model in force) reads ()
        matrix_code = np.where(hmm, matrix_code, len(matrices) - 1)
        label_code = s.labels[0][rows]
        labels = s.labels[1]
        label = np.empty(len(rows), dtype=object)
        for j in at.tolist():
            label[j] = labels[label_code[j]][state[j]] if labels[label_code[j]] else None
        return _derive(
            probs=probs, matrix_code=matrix_code, matrices=matrices, state=state,
            label=label,
            **{name: values[codes[rows]] for name, (codes, values) in s.text.items()},
            **{name: values[rows] for name, values in s.numbers.items()},
            vol_expansion_flag=s.flag[rows], ts=s.ts[rows])


def _probabilities(texts: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """Return the JSON lists of numbers ``texts`` as a zero-padded (rows, states) float
    matrix and each row's length, parsed by Arrow (each number to its nearest double, as
    ``json.loads`` parses it); None when a text is not a plain non-empty list."""
    try:
        inner = pc.utf8_slice_codeunits(texts, 1, -1)
        if not (pc.all(pc.starts_with(texts, "[")).as_py()
                and pc.all(pc.ends_with(texts, "]")).as_py()):
            return None
        parts = pc.split_pattern(inner, ",")
        values = pc.cast(pc.utf8_trim_whitespace(parts.flatten()), pa.float64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    counts = pc.list_value_length(parts).to_numpy().astype(np.int64)
    k = int(counts.max()) if len(counts) else 0
    matrix = np.zeros((len(counts), k))
    if len(counts) and (counts == k).all():
        matrix[:] = values.reshape(len(counts), k)
    else:
        row = np.repeat(np.arange(len(counts)), counts)
        matrix[row, np.arange(len(values)) - np.repeat(np.cumsum(counts) - counts, counts)
               ] = values
    return matrix, counts


def _concat(first: RegimeColumns, second: RegimeColumns) -> RegimeColumns:
    """Return the columns of ``first``'s snapshots then ``second``'s (matrices re-padded)."""
    k = max(first["probs"].shape[1], second["probs"].shape[1])

    def pad(values: np.ndarray) -> np.ndarray:
        return np.pad(values, ((0, 0), (0, k - values.shape[1])))

    out = {}
    for name, values in first.items():
        if values.ndim == 2:
            out[name] = np.concatenate([pad(values), pad(second[name])])
        else:
            out[name] = np.concatenate([values, second[name]])
    return out
