"""The column helpers the builder and the batch forms number rows with, against plain loops."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from buddy.batch.columns import choose, distinct, factorize_objects, integer_groups, repeated
from buddy.batch.pieces import groups, last_closed, row_groups


def _oracle(rows: list[tuple[object, ...]]) -> tuple[list[int], list[int]]:
    """Return (first position of each distinct row, in order of appearance; each row's
    number), NaN equal to NaN."""
    def canonical(value: object) -> object:
        return "<nan>" if isinstance(value, float) and math.isnan(value) else value

    seen: dict[tuple[object, ...], int] = {}
    first: list[int] = []
    code: list[int] = []
    for i, row in enumerate(rows):
        key = tuple(canonical(v) for v in row)
        if key not in seen:
            seen[key] = len(first)
            first.append(i)
        code.append(seen[key])
    return first, code


@pytest.mark.parametrize("seed", range(5))
def test_distinct_numbers_rows_by_first_appearance(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    text = np.array(["a", "b", None, "c"], dtype=object)[rng.integers(0, 4, n)]
    number = np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 3, n).astype(float))
    small = rng.integers(0, 2, n)
    first, code = distinct(text, number, small)
    want_first, want_code = _oracle(list(zip(text.tolist(), number.tolist(), small.tolist(),
                                             strict=True)))
    assert first.tolist() == want_first
    assert code.tolist() == want_code


def test_distinct_renumbers_before_its_key_overflows() -> None:
    rng = np.random.default_rng(7)
    n = 2000
    columns = [rng.integers(0, 1500, n) for _ in range(8)]  # 1501**8 is past int64
    columns[3] = columns[0]  # some rows repeat through the wide key
    columns = [np.concatenate([c, c[:50]]) for c in columns]
    first, code = distinct(*columns)
    want_first, want_code = _oracle(list(zip(*(c.tolist() for c in columns), strict=True)))
    assert first.tolist() == want_first
    assert code.tolist() == want_code
    assert len(first) == n


@pytest.mark.parametrize("shape", ["narrow", "wide", "many"])
def test_integer_groups_match_distinct(shape: str) -> None:
    rng = np.random.default_rng(3)
    n = 500
    keys = np.column_stack([rng.integers(-3, 4, n), rng.integers(0, 5, n),
                            rng.integers(10, 12, n)]).astype(np.int64)
    if shape == "wide":  # spans past int64, wider than the rows: those columns by codes
        keys[:, 0] *= 1 << 40
        keys[:, 1] *= 1 << 40
    if shape == "many":  # codes that still do not fit: ``distinct``
        keys = rng.integers(0, 300, (n, 8)).astype(np.int64)
        keys[250:] = keys[:250]
    first, code = integer_groups(keys)
    want_first, want_code = _oracle([tuple(r) for r in keys.tolist()])
    assert first.tolist() == want_first
    assert code.tolist() == want_code
    codes, firsts = groups(keys)
    assert codes.tolist() == want_code and firsts.tolist() == want_first


def test_groups_of_no_rows_and_of_floats() -> None:
    codes, first = groups(np.zeros((0, 2), dtype=np.int64))
    assert len(codes) == 0 and len(first) == 0
    keys = np.array([[0.5, 1.0], [np.nan, 1.0], [0.5, 1.0], [np.nan, 1.0]])
    codes, first = groups(keys)
    assert codes.tolist() == [0, 1, 0, 1] and first.tolist() == [0, 1]


def test_repeated_shares_one_value_per_element() -> None:
    for value in ("CONTEXT_MISSING", (), (1, 2), None):
        out = repeated(value, 4)
        assert out.dtype == object and out.shape == (4,)
        assert all(v is value for v in out.tolist())


def test_row_groups_are_groupby_indices_without_a_frame() -> None:
    rng = np.random.default_rng(11)
    n = 400
    symbol = np.array(["B", "A", None, "C"], dtype=object)[rng.integers(0, 4, n)]
    timeframe = np.array(["1d", "1h", "1w"], dtype=object)[rng.integers(0, 3, n)]
    want = pd.DataFrame({"s": symbol, "t": timeframe}).groupby(
        ["s", "t"], sort=False).indices
    got = row_groups(symbol, timeframe)
    assert list(got) == list(want)  # order of first appearance, None left out
    for key, rows in want.items():
        assert got[key].tolist() == list(rows)
    assert row_groups(symbol[:0], timeframe[:0]) == {}


@pytest.mark.parametrize("ascending", [True, False])
def test_last_closed_is_the_latest_bar_closed_by_each_as_of(ascending: bool) -> None:
    rng = np.random.default_rng(5 if ascending else 6)
    for _ in range(50):
        n = int(rng.integers(0, 25))
        ts = np.cumsum(rng.integers(1, 5, n)).astype(np.int64)
        # closes ascend with ts, or a bar may close after a later one
        ts_close = ts + (1 if ascending else rng.integers(0, 12, n))
        as_of = rng.integers(-2, int(ts_close.max()) + 3 if n else 5, 30).astype(np.int64)
        position, closed = last_closed(ts, ts_close, as_of)
        for i, t in enumerate(as_of.tolist()):
            done = [p for p in range(n) if ts_close[p] <= t]
            assert closed[i] == len(done)
            assert position[i] == (max(done, key=lambda p: ts[p]) if done else -1)


@pytest.mark.parametrize("n", [5, 300, 5000])
def test_factorize_objects_is_pandas_factorize(n: int) -> None:
    rng = np.random.default_rng(n)
    same = "".join(["ri", "sk"])  # the text "risk" in an object of its own
    pool = np.array(["risk", same, None, float("nan"), "x", 1, 1.0, f"t{n}"], dtype=object)
    values = pool[rng.integers(0, len(pool), n)]
    codes, uniques = factorize_objects(values)
    want_codes, want_uniques = pd.factorize(values)
    assert codes.tolist() == want_codes.tolist()
    assert uniques.tolist() == want_uniques.tolist()
    # equal texts held by different objects share a code; a missing value is -1
    risk = [i for i, v in enumerate(values.tolist()) if isinstance(v, str) and v == "risk"]
    assert len({int(codes[i]) for i in risk}) == 1
    assert all(codes[i] == -1 for i, v in enumerate(values.tolist()) if v is None)
    # texts each an object of their own (more objects than half the rows): by value
    many = np.array([f"id{i % (n // 3 + 1)}" for i in range(n)], dtype=object)
    assert factorize_objects(many)[0].tolist() == pd.factorize(many)[0].tolist()


def test_choose_and_repeated_hold_the_given_objects() -> None:
    where = np.array([True, False, True, True])
    chosen = choose(where, "beyond", "inside")
    assert chosen.tolist() == ["beyond", "inside", "beyond", "beyond"]
    # references to the two values, not a new text per row (what np.where(...).astype makes)
    assert len({id(v) for v in chosen.tolist()}) == 2
    assert len({id(v) for v in np.where(where, "beyond", "inside").astype(object).tolist()}) == 4
    assert choose(np.zeros(0, dtype=bool), "a", "b").shape == (0,)
    assert len({id(v) for v in repeated("ok", 1000).tolist()}) == 1
