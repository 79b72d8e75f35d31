"""level_table over many (snapshot, ATR) pairs says, pair by pair, what consolidate says of
one snapshot: ties in price and name keep their order, sums add in price order, pairs of one
snapshot at several ATRs merge at their own widths."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from buddy.context.pieces import KeyLevelsSnapshot, PriceLevel
from buddy.levels.consolidate import consolidate, level_table

AS_OF = pd.Timestamp("2012-06-01T13:30Z").to_pydatetime()


def level(price: float, kind: str, touches: int, last: object) -> PriceLevel:
    return PriceLevel(price=price, kind=kind, touches=touches, last_touch=last)  # type: ignore[arg-type]


def snapshot(shift: float, **overrides: object) -> KeyLevelsSnapshot:
    touch = [AS_OF - pd.Timedelta(days=d).to_pytimedelta() for d in (3, 40, 400)]
    values: dict[str, object] = dict(
        symbol="T", timeframe="1d", ts=AS_OF, prior_day_high=110.0 + shift,
        prior_day_low=90.0 + shift, prior_day_close=100.0,
        pivots={"classic": {"P": 100.0, "R1": 110.1 + shift, "S1": 89.9 + shift,
                            "R2": math.nan}},
        rolling_range_high=None, rolling_range_low=90.0 + shift,
        # equal prices and names with other touch times: their order sets the float sums
        support_resistance=(level(90.05 + shift, "support", 2, touch[1]),
                            level(90.05 + shift, "support", 2, touch[0]),
                            level(109.95 + shift, "resistance", 3, touch[2]),
                            level(109.97 + shift, "resistance", 1, touch[0])))
    values.update(overrides)
    return KeyLevelsSnapshot(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("min_strength", [0.0, 2.0, 3.0])
def test_each_pair_is_what_consolidate_says_of_it(min_strength: float) -> None:
    snaps = [snapshot(0.0), None, snapshot(0.37), snapshot(0.0, support_resistance=())]
    code = np.array([0, 0, 1, 2, 2, 3, 0, 2])
    atr = np.array([1.0, 0.05, 1.0, np.nan, 2.0, 0.4, 1.0, 0.0])
    table = level_table(snaps, code, atr, pivot_method="classic", merge_atr=0.25,
                        min_strength=min_strength)
    for row in range(len(code)):
        snap = snaps[code[row]]
        expected = [] if snap is None else [
            lv for lv in consolidate(snap, float(atr[row]), merge_atr=0.25)
            if lv.strength >= min_strength - 1e-9]
        pair = table.code[row]
        width = int((~np.isnan(table.price[pair])).sum())
        assert width == len(expected)
        assert table.price[pair, :width].tolist() == [lv.price for lv in expected]
        assert table.strength[pair, :width].tolist() == [lv.strength for lv in expected]
        assert table.touches[pair, :width].tolist() == [lv.touches for lv in expected]
        assert table.name_of(table.rank[pair, :width]).tolist() == [lv.name for lv in expected]
    assert table.code[0] == table.code[6] and table.code[0] != table.code[1]


def test_consolidate_adds_equal_price_members_in_their_order() -> None:
    levels = consolidate(snapshot(0.0), atr=1.0)  # merge width 0.25
    low = next(lv for lv in levels if "prior-day low" in lv.names)
    # by price, then name; the two equal clusters in their snapshot order
    assert low.names == ("classic pivot S1", "prior-day low", "range low",
                         "support cluster (2 touches)", "support cluster (2 touches)")
    # 4 sources + 0.5 x 2 touches x (0.5 ** (40 / 60) + 0.5 ** (3 / 60)), rounded to 1e-6
    assert low.strength == round(4 + 0.5 * (2 * 0.5 ** (40 / 60) + 2 * 0.5 ** (3 / 60)), 6)
    assert low.sources == ("pivot", "prior_day", "range", "swing")
    assert low.touches == 4 and low.last_touch == AS_OF - pd.Timedelta(days=3)
    assert low.low == 89.9 and low.high == 90.05 and low.price == 90.0


def _oracle(snap: KeyLevelsSnapshot, atr: float, pivot_method: str, merge_atr: float,
            min_strength: float) -> list[tuple[float, float, int, str]]:
    """The merge as the module docstring states it, one candidate at a time."""
    found: list[tuple[float, str, int, int, float]] = []  # price, name, bits, touches, weight
    for field, name, bits in (("prior_day_high", "prior-day high", 1),
                              ("prior_day_low", "prior-day low", 1),
                              ("rolling_range_high", "range high", 2),
                              ("rolling_range_low", "range low", 2)):
        value = getattr(snap, field)
        if value is not None and math.isfinite(value):
            found.append((value, name, bits, 0, 0.0))
    for key, value in snap.pivots.get(pivot_method, {}).items():
        if key != "P" and value is not None and math.isfinite(value):
            found.append((value, f"{pivot_method} pivot {key}", 4, 0, 0.0))
    for lv in snap.support_resistance:
        if math.isfinite(lv.price):
            age = max(0.0, (snap.ts - lv.last_touch).total_seconds() / 86_400.0)
            found.append((lv.price, f"{lv.kind} cluster ({lv.touches} touches)", 8,
                          lv.touches, lv.touches * 0.5 ** (age / 60.0)))
    found.sort(key=lambda c: (c[0], c[1]))  # stable: ties keep their order
    width = merge_atr * atr if math.isfinite(atr) and atr > 0 else 0.0
    groups: list[list[tuple[float, str, int, int, float]]] = []
    for candidate in found:
        if groups and candidate[0] - groups[-1][0][0] <= width:
            groups[-1].append(candidate)
        else:
            groups.append([candidate])
    out = []
    for members in groups:
        total, weight, bits = 0.0, 0.0, 0
        for price, _, member_bits, _, member_weight in members:
            total += price
            weight += member_weight
            bits |= member_bits
        strength = round(bin(bits).count("1") + 0.5 * weight, 6)
        if strength >= min_strength - 1e-9:
            out.append((total / len(members), strength, sum(m[3] for m in members),
                        " / ".join(m[1] for m in members)))
    return out


def _random_snapshot(rng: np.random.Generator) -> KeyLevelsSnapshot:
    grid = 100.0 + 0.05 * rng.integers(-60, 60, size=40)  # coarse: equal prices are common

    def price(i: int) -> float | None:
        return None if rng.random() < 0.1 else float(grid[i])

    clusters = tuple(level(float(grid[20 + j]), str(rng.choice(["support", "resistance"])),
                           int(rng.integers(1, 5)),
                           AS_OF - pd.Timedelta(days=int(rng.integers(0, 500))).to_pytimedelta())
                     for j in range(int(rng.integers(0, 12))))
    return KeyLevelsSnapshot(
        symbol="T", timeframe="1d", ts=AS_OF, prior_day_high=price(0), prior_day_low=price(1),
        prior_day_close=price(2), rolling_range_high=price(3), rolling_range_low=price(4),
        pivots={"classic": {key: float(grid[5 + j]) for j, key in enumerate(
            ("P", "R1", "S1", "R2", "S2", "R3", "S3"))}} if rng.random() < 0.9 else {},
        support_resistance=clusters)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_merge_is_the_plain_loop_over_many_pairs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    snaps = [_random_snapshot(rng) for _ in range(60)]
    code = rng.integers(0, len(snaps), size=400)
    atr = rng.choice([np.nan, 0.0, 0.1, 0.4, 1.0, 3.0], size=400)
    for min_strength in (0.0, 2.0, 3.0):
        table = level_table(snaps, code, atr, pivot_method="classic", merge_atr=0.25,
                            min_strength=min_strength)
        for row in range(len(code)):
            expected = _oracle(snaps[code[row]], float(atr[row]), "classic", 0.25,
                               min_strength)
            pair = table.code[row]
            width = int((~np.isnan(table.price[pair])).sum())
            got = list(zip(table.price[pair, :width].tolist(),
                           table.strength[pair, :width].tolist(),
                           table.touches[pair, :width].tolist(),
                           table.name_of(table.rank[pair, :width]).tolist(), strict=True))
            assert repr(got) == repr(expected)  # bit for bit


def test_no_candidates_make_an_empty_table() -> None:
    table = level_table([None, snapshot(0.0, prior_day_high=None, prior_day_low=None,
                                       rolling_range_low=None, pivots={},
                                       support_resistance=())],
                        np.array([0, 1]), np.array([1.0, 1.0]), pivot_method="classic",
                        merge_atr=0.25, min_strength=0.0)
    assert table.price.shape == (2, 0) and table.names.tolist() == []
    assert consolidate(snapshot(0.0, prior_day_high=None, prior_day_low=None,
                                rolling_range_low=None, pivots={}, support_resistance=()),
                       1.0) == ()


def test_strengths_round_as_python_rounds_them() -> None:
    from buddy.levels.consolidate import _round6

    rng = np.random.default_rng(7)
    values = np.concatenate([
        rng.uniform(0.0, 50.0, 20_000),
        # halves of the sixth decimal and their neighbours: where arithmetic could err
        np.round(rng.uniform(0.0, 50.0, 2_000), 6) + 5e-7,
        np.nextafter(np.round(rng.uniform(0.0, 50.0, 2_000), 6) + 5e-7, 0.0),
        np.array([0.0, -0.0, 2.5e-7, 1e3, 1e3 + 0.0000005, 1e12 + 0.1, np.inf, np.nan]),
        4 + 0.5 * np.array([2 * 0.5 ** (40 / 60) + 2 * 0.5 ** (3 / 60)])])
    got = _round6(values)
    expected = np.array([round(x, 6) if np.isfinite(x) else x for x in values.tolist()])
    assert repr(got.tolist()) == repr(expected.tolist())  # bit for bit, -0.0 and NaN too


def test_a_table_held_at_a_lower_strength_gives_a_higher_ones_levels_of_some_rows() -> None:
    from buddy.levels import consolidate as cons

    rng = np.random.default_rng(3)
    snaps = [_random_snapshot(rng) for _ in range(40)]
    code = rng.integers(0, len(snaps), size=300)
    atr = rng.choice([np.nan, 0.1, 0.4, 1.0], size=300)
    sub = np.flatnonzero(rng.random(300) < 0.6)[::-1]  # some rows, in another order
    for low, high in ((0.0, 2.0), (2.0, 3.0), (3.0, 3.0), (2.0, 99.0)):
        cons._LAST_MATRICES.clear()
        cons.level_table(snaps, code, atr, pivot_method="classic", merge_atr=0.25,
                         min_strength=low)
        held = cons.level_table(snaps, code[sub], atr[sub], pivot_method="classic",
                                merge_atr=0.25, min_strength=high)
        assert cons._LAST_MATRICES[0][3][0.25][0] == low  # it read the held table
        cons._LAST_MATRICES.clear()
        fresh = cons.level_table(snaps, code[sub], atr[sub], pivot_method="classic",
                                 merge_atr=0.25, min_strength=high)
        assert [repr(a.tolist()) for a in (held.code, held.price, held.strength, held.touches,
                                           held.rank, held.names)] == [
            repr(a.tolist()) for a in (fresh.code, fresh.price, fresh.strength,
                                       fresh.touches, fresh.rank, fresh.names)]
    # a lower strength than the held table's, or rows it does not hold: merged afresh
    cons.level_table(snaps, code, atr, pivot_method="classic", merge_atr=0.25,
                     min_strength=1.0)
    assert cons._LAST_MATRICES[0][3][0.25][0] == 1.0
    cons.level_table(snaps, code, atr * 2, pivot_method="classic", merge_atr=0.25,
                     min_strength=2.0)
    assert cons._LAST_MATRICES[0][3][0.25][0] == 2.0


def test_held_pairs_are_found_by_snapshot_or_by_snapshot_and_atr() -> None:
    from buddy.levels.consolidate import _held_pairs

    code, atr = np.array([4, 0, 2]), np.array([1.0, -1.0, 0.5])
    assert _held_pairs(code, atr, np.array([2, 4, 2]), np.array([0.5, 1.0, 0.5])).tolist() == [
        2, 0, 2]
    assert _held_pairs(code, atr, np.array([2]), np.array([0.25])) is None  # another ATR
    assert _held_pairs(code, atr, np.array([3]), np.array([1.0])) is None  # not held
    assert _held_pairs(code, atr, np.array([9]), np.array([1.0])) is None
    assert _held_pairs(code, atr, np.zeros(0, np.int64), np.zeros(0)).tolist() == []
    # a snapshot at two ATRs: by both
    code, atr = np.array([4, 0, 4]), np.array([1.0, -1.0, 2.0])
    assert _held_pairs(code, atr, np.array([4, 4, 0]), np.array([2.0, 1.0, -1.0])).tolist() == [
        2, 0, 1]
    assert _held_pairs(code, atr, np.array([4]), np.array([3.0])) is None
