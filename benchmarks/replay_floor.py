"""The floor a batch replay is measured against: the irreducible work of the same run, done
the plainest fast way, in the bench's own process, on the same database file.

The floor has three parts, each timed on its own (wall seconds):

1. **Reads.** One read-only DuckDB connection reads, as Arrow, whole tables the run needs:
   ``bars``, ``ta_features``, ``key_levels``, ``regime_snapshots``, ``regime_models``,
   ``events``, ``corporate_actions``, ``tickers``, ``user_accounts``, ``user_rules``,
   ``trades``, every column, in stored order. Nothing is filtered by time: every series is
   read once, whole, as the engine's reads may at best.
2. **Numpy.** Over the intents' columns: one point-in-time join per series table by
   ``searchsorted`` of a (series, time) key (the last bar with ``ts_close <= as_of``; the
   last features, key-levels and regime rows with ``ts <=`` that bar's ``ts``), running sums
   over each bars series for the windowed inputs (20-bar mean range, 20-bar mean volume and
   traded value, gaps over the 300-bar lookback), the account's equity by user, holidays and
   early closes in the next sessions by ``searchsorted`` into ``events``, then the rule
   comparisons of the default modules with the packaged default thresholds: data_quality
   (history < 200 bars, last session > 3 calendar days old, gaps > 2 % in the lookback),
   risk_reward (stop < 1 / > 6 ATR, stop < the 20-bar mean range, size < 1 lot, risk amount
   against 1 % of equity, slippage share > 25 %, participation > 1 % of mean volume, entry >
   3 ATR from the close, reward/risk < 1), exit_plan (horizon < 1 or > 250 bars, target
   farther than 1.5 ATR x sqrt(horizon)), missing_scanner (mean traded value < 1,000,000
   over 20 sessions, a holiday or early close within 3 sessions), regime_fit (vol z > 1.5
   and > 2, trading against an up/down trend with ADX > 20, relative volume < 0.25),
   entry_quality (nearest of prior-day high/low/close, rolling-range high/low and the
   classic pivots within 0.5 ATR of the entry, EMA-20 extension > 2.5 ATR, session VWAP
   extension > 2 ATR, last bar's range > 2 ATR, relative volume < 0.5); then each intent's
   module scores, worst severity, issue count and overall score. Not in the floor: MTFA (the
   bench's stack timeframes have no bars, so the engine short-circuits it too),
   strategy_consistency (the bench's user has no trades: not checked on both sides) and
   outcome labelling (the engine does it; the floor does not, which only makes the floor
   lower). Numpy runs in one process; the floor counts it as split evenly over ``WORKERS``
   processes, as the replay's is.
3. **Write.** The run's own result rows (every table of ``replay.engine.STORED_TABLES``, read
   back as Arrow beforehand, untimed) inserted into a fresh copy of an empty migrated file:
   connect, one transaction, ``INSERT INTO t SELECT * FROM`` each Arrow table, commit, close
   (the checkpoint).

Floor seconds = reads + numpy / WORKERS + write.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from replay.engine import STORED_TABLES

#: Worker processes the replay runs with; the floor's numpy part is counted as split over them.
WORKERS = 2
#: Tables read whole and joined point-in-time by (series, time).
SERIES_TABLES = ("bars", "ta_features", "key_levels", "regime_snapshots")
#: Tables read whole.
OTHER_TABLES = ("regime_models", "events", "corporate_actions", "tickers", "user_accounts",
                "user_rules", "trades")
LOOKBACK_BARS = 300
WINDOW_BARS = 20
US_PER_DAY = 86_400_000_000


@dataclass(frozen=True, slots=True)
class Floor:
    """The floor's parts in wall seconds, with what they covered."""

    read_s: float
    numpy_s: float
    write_s: float
    rows_read: int
    result_rows: int
    flagged: int  # rule firings the numpy part found (a check it did real work)

    @property
    def total_s(self) -> float:
        """Return the floor in seconds: reads + numpy split over WORKERS + write."""
        return self.read_s + self.numpy_s / WORKERS + self.write_s


def measure_floor(db_path: Path, intents: pd.DataFrame, run_id: str, empty_db: Path,
                  scratch: Path) -> Floor:
    """Time the floor of replaying ``intents`` (INTENT_COLUMNS) whose results run ``run_id``
    wrote into ``db_path``; ``empty_db`` is an empty migrated file copied to ``scratch``."""
    started = time.perf_counter()
    tables = read_tables(db_path)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    flagged = int(evaluate(tables, intents)["n_issues"].sum())
    numpy_s = time.perf_counter() - started
    rows = run_result_tables(db_path, run_id)
    target = scratch / "floor_write.duckdb"
    shutil.copy(empty_db, target)
    started = time.perf_counter()
    insert_tables(target, rows)
    write_s = time.perf_counter() - started
    return Floor(read_s=read_s, numpy_s=numpy_s, write_s=write_s,
                 rows_read=sum(t.num_rows for t in tables.values()),
                 result_rows=sum(t.num_rows for t in rows.values()), flagged=flagged)


def read_tables(db_path: Path) -> dict[str, pa.Table]:
    """Read every table of SERIES_TABLES and OTHER_TABLES whole, as Arrow, in one
    read-only connection."""
    with duckdb.connect(str(db_path), read_only=True) as con:
        return {name: _arrow(con.sql(f"SELECT * FROM {name}"))
                for name in (*SERIES_TABLES, *OTHER_TABLES)}


def _arrow(relation: duckdb.DuckDBPyRelation | None) -> pa.Table:
    if relation is None:
        raise ValueError("a SELECT returned no relation")
    return relation.to_arrow_table()


def run_result_tables(db_path: Path, run_id: str) -> dict[str, pa.Table]:
    """Read the run's rows of every STORED_TABLES table as Arrow, all columns (the run's id
    or key included), whatever the run column is called."""
    out = {}
    with duckdb.connect(str(db_path), read_only=True) as con:
        for name in STORED_TABLES:
            columns = {row[0] for row in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                [name]).fetchall()}
            if "run_id" in columns:
                where = "run_id = ?"
            else:  # the compact schema keys results by the run's integer key
                where = "run_key = (SELECT run_key FROM replay_runs WHERE run_id = ?)"
            out[name] = _arrow(con.sql(f"SELECT * FROM {name} WHERE {where}",
                                       params=[run_id]))
    return out


def run_row(db_path: Path, run_id: str) -> pa.Table:
    """Read the run's replay_runs row as Arrow (every column)."""
    with duckdb.connect(str(db_path), read_only=True) as con:
        return _arrow(con.sql("SELECT * FROM replay_runs WHERE run_id = ?", params=[run_id]))


def insert_tables(db_path: Path, tables: dict[str, pa.Table]) -> None:
    """Insert each Arrow table into the file's table of that name in one transaction
    (connect to close: the checkpoint is part of a durable write)."""
    with duckdb.connect(str(db_path)) as con:
        con.execute("BEGIN")
        for name, table in tables.items():
            con.register("incoming", table)
            con.execute(f"INSERT INTO {name} SELECT * FROM incoming")
            con.unregister("incoming")
        con.execute("COMMIT")


# ---------------------------------------------------------------------------- numpy part
def _micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(column, pa.timestamp("us", tz="UTC")).cast(pa.int64())
                      .to_numpy(zero_copy_only=False), dtype=np.int64)


def _floats(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)


def _series_names(symbol: pa.ChunkedArray | pa.Array,
                  timeframe: pa.ChunkedArray | pa.Array) -> pa.DictionaryArray:
    joined = pc.binary_join_element_wise(symbol, timeframe, "|")
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    return joined.dictionary_encode()  # codes in order of first appearance


class _Keys:
    """(series, time) keys over one time axis: series numbered in the bars' order."""

    def __init__(self, bars: pa.Table, span_us: int, t0_us: int) -> None:
        names = _series_names(bars.column("symbol"), bars.column("timeframe"))
        self.series = {str(v): n for n, v in enumerate(names.dictionary.to_pylist())}
        self.span, self.t0 = span_us, t0_us

    def codes(self, symbol: pa.ChunkedArray | pa.Array,
              timeframe: pa.ChunkedArray | pa.Array) -> np.ndarray:
        names = _series_names(symbol, timeframe)
        lookup = np.array([self.series.get(str(v), -1) for v in names.dictionary.to_pylist()],
                          dtype=np.int64)
        return lookup[names.indices.to_numpy(zero_copy_only=False)]

    def key(self, codes: np.ndarray, micros: np.ndarray) -> np.ndarray:
        return codes * self.span + (micros - self.t0)


def last_at_or_before(table_key: np.ndarray, table_codes: np.ndarray, codes: np.ndarray,
                       probe: np.ndarray) -> np.ndarray:
    """Return the table row of each probe's last row at or before it in its own series, -1
    when the series has none. Sorts the keys only when the stored order is not by them."""
    order = None
    if len(table_key) > 1 and not bool(np.all(table_key[1:] >= table_key[:-1])):
        order = np.argsort(table_key, kind="stable")
        table_key, table_codes = table_key[order], table_codes[order]
    found = np.searchsorted(table_key, probe, side="right") - 1
    ok = (found >= 0) & (codes >= 0)
    ok[ok] = table_codes[found[ok]] == codes[ok]
    found = np.where(ok, found, -1)
    return found if order is None else np.where(ok, order[np.maximum(found, 0)], -1)


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    out = values[np.maximum(index, 0)]
    return np.where(index >= 0, out, np.nan)


def window_mean(cumulative: np.ndarray, end: np.ndarray, start_of_series: np.ndarray,
                 width: int) -> np.ndarray:
    """Mean of the ``width`` rows ending at ``end`` (inclusive) within their series, from a
    running sum (cumulative[i] = sum of rows 0..i)."""
    start = np.maximum(end - width + 1, start_of_series)
    before = np.where(start > 0, cumulative[np.maximum(start - 1, 0)], 0.0)
    return (cumulative[end] - before) / (end - start + 1)


def evaluate(tables: dict[str, pa.Table], intents: pd.DataFrame) -> pd.DataFrame:
    """Return each intent's module scores, worst severity, issue count and overall score by
    the default modules' rules over columns (what the floor's numpy part times)."""
    bars, features = tables["bars"], tables["ta_features"]
    levels, regime = tables["key_levels"], tables["regime_snapshots"]
    as_of = intents["as_of"].to_numpy(dtype="datetime64[us]").astype(np.int64)
    bar_ts, bar_close_ts = _micros(bars.column("ts")), _micros(bars.column("ts_close"))
    t0 = int(min(bar_ts.min(initial=0), as_of.min(initial=0))) - 1
    span = int(max(bar_close_ts.max(initial=0), as_of.max(initial=0))) - t0 + 2
    keys = _Keys(bars, span, t0)
    bar_codes = keys.codes(bars.column("symbol"), bars.column("timeframe"))
    codes = keys.codes(pa.array(intents["symbol"].to_numpy(dtype=object)),
                       pa.array(intents["timeframe"].to_numpy(dtype=object)))
    bar_key = keys.key(bar_codes, bar_close_ts)
    # the windows below run along each series: bars in (series, time) order
    order = np.arange(len(bar_key))
    if len(bar_key) > 1 and not bool(np.all(bar_key[1:] >= bar_key[:-1])):
        order = np.argsort(bar_key, kind="stable")
    bar_codes, bar_ts, bar_key = bar_codes[order], bar_ts[order], bar_key[order]

    def bar_column(name: str) -> np.ndarray:
        return _floats(bars, name)[order]

    # point-in-time joins: the last closed bar, then the rows at or before its open
    bar_i = last_at_or_before(bar_key, bar_codes, codes, keys.key(codes, as_of))
    has_bar = bar_i >= 0
    probe = keys.key(codes, np.where(has_bar, bar_ts[np.maximum(bar_i, 0)], as_of))
    joined = {}
    for name, table in (("features", features), ("levels", levels), ("regime", regime)):
        table_codes = keys.codes(table.column("symbol"), table.column("timeframe"))
        table_key = keys.key(table_codes, _micros(table.column("ts")))
        joined[name] = last_at_or_before(table_key, table_codes, codes, probe)
    feat_i, level_i, regime_i = joined["features"], joined["levels"], joined["regime"]

    # windowed inputs from running sums over each bars series
    high, low, close = bar_column("high"), bar_column("low"), bar_column("close")
    open_, volume = bar_column("open"), bar_column("volume")
    series_start = np.searchsorted(bar_codes, np.arange(len(keys.series)), side="left")
    end = np.maximum(bar_i, 0)
    start = series_start[np.maximum(codes, 0)]
    prev_close = np.concatenate([[np.nan], close[:-1]])
    prev_close[series_start] = np.nan
    gap = np.abs(open_ / prev_close - 1.0) * 100.0 > 2.0
    mean_range = window_mean(np.cumsum(high - low), end, start, WINDOW_BARS)
    mean_volume = window_mean(np.cumsum(volume), end, start, WINDOW_BARS)
    mean_value = window_mean(np.cumsum(close * volume), end, start, WINDOW_BARS)
    gaps = window_mean(np.cumsum(gap.astype(np.float64)), end, start, LOOKBACK_BARS)
    history = end - start + 1

    entry = intents["proposed_entry"].to_numpy(np.float64)
    stop = intents["proposed_stop"].to_numpy(np.float64)
    target = intents["proposed_target"].to_numpy(np.float64)
    size = intents["proposed_size"].to_numpy(np.float64)
    horizon = intents["holding_horizon"].to_numpy(np.int64)
    long = intents["side"].to_numpy(dtype=object) == "long"
    atr = _take(_floats(features, "atr_14"), feat_i)
    last_close, last_range = _take(close, bar_i), _take(high - low, bar_i)
    risk = np.abs(entry - stop)
    reward = np.abs(target - entry)

    accounts = tables["user_accounts"]
    equity_by_user = dict(zip(accounts.column("user_id").to_pylist(),
                              accounts.column("equity_snapshot").to_pylist(), strict=True))
    users = pd.Categorical(intents["user_id"])
    equity = np.array([equity_by_user.get(u, np.nan) or np.nan for u in users.categories],
                      dtype=np.float64)[users.codes]

    events = tables["events"]
    kinds = events.column("kind").to_numpy(zero_copy_only=False)
    closures = np.sort(_micros(events.column("ts"))[(kinds == "holiday")
                                                    | (kinds == "early_close")])
    soon = (np.searchsorted(closures, as_of + 3 * US_PER_DAY, side="right")
            - np.searchsorted(closures, as_of, side="right"))

    trend_names = regime.column("trend_state").dictionary_encode()
    if isinstance(trend_names, pa.ChunkedArray):
        trend_names = trend_names.combine_chunks()
    trend_values = trend_names.dictionary.to_pylist()
    trend = np.asarray(trend_names.indices.fill_null(-1).to_numpy(zero_copy_only=False))
    up = trend_values.index("up") if "up" in trend_values else -2
    down = trend_values.index("down") if "down" in trend_values else -2
    intent_trend = np.where(regime_i >= 0, trend[np.maximum(regime_i, 0)], -1)
    vol_z = _take(_floats(regime, "vol_z"), regime_i)
    adx = _take(_floats(regime, "trend_strength"), regime_i)
    relvol = _take(_floats(regime, "relvol"), regime_i)

    level_columns = [_take(_floats(levels, c), level_i) for c in
                     ("prior_day_high", "prior_day_low", "prior_day_close",
                      "rolling_range_high", "rolling_range_low")]
    pivots = levels.column("pivots_json")
    if pa.types.is_struct(pivots.type):  # typed levels (migration 0011)
        classic = pc.struct_field(pivots, "classic")
        level_columns += [_take(np.asarray(pc.struct_field(classic, k).to_numpy(
            zero_copy_only=False), dtype=np.float64), level_i) for k in ("P", "R1", "S1")]
    nearest = np.full(len(intents), np.inf)
    for level in level_columns:
        nearest = np.fmin(nearest, np.abs(entry - level))
    ema, vwap = _take(_floats(features, "ema_20"), feat_i), _take(_floats(features,
                                                                          "vwap_session"),
                                                                  feat_i)
    relvol_20 = _take(_floats(features, "relvol_20"), feat_i)
    session_days = np.asarray(pc.cast(bars.column("session"), pa.int32()).to_numpy(
        zero_copy_only=False), dtype=np.float64)[order]
    stale_days = as_of / US_PER_DAY - _take(session_days, bar_i)

    with np.errstate(divide="ignore", invalid="ignore"):
        stop_atr = risk / atr
        rules = {  # module -> [(fires, severity rank)]
            "data_quality": [(history < 200, 2), (stale_days > 3.0, 2),
                             (gaps > 0, 1)],
            "risk_reward": [(stop_atr < 1.0, 3), (stop_atr > 6.0, 2),
                            (risk < mean_range * 1.0, 2), (size < 1.0, 2),
                            (risk * size > equity * 0.01 * 1.05, 3),
                            (0.05 * atr / risk > 0.25, 1), (size / mean_volume > 0.01, 2),
                            (np.abs(entry - last_close) / atr > 3.0, 2),
                            (reward / risk < 1.0, 2)],
            "exit_plan": [(horizon < 1, 3), (horizon > 250, 2),
                          (reward > 1.5 * atr * np.sqrt(np.maximum(horizon, 1)), 2)],
            "missing_scanner": [(mean_value < 1_000_000.0, 2), (soon > 0, 1)],
            "regime_fit": [(vol_z > 2.0, 3), ((vol_z > 1.5) & (vol_z <= 2.0), 2),
                           (((long & (intent_trend == down)) | (~long & (intent_trend == up)))
                            & (adx > 20.0), 2), (relvol < 0.25, 2)],
            "entry_quality": [(nearest / atr < 0.5, 1), (np.abs(entry - ema) / atr > 2.5, 2),
                              (np.abs(entry - vwap) / atr > 2.0, 2),
                              (last_range / atr > 2.0, 1), (relvol_20 < 0.5, 1)],
        }
    n = len(intents)
    scores = np.empty((n, len(rules)))
    worst = np.zeros(n, dtype=np.uint8)
    n_issues = np.zeros(n, dtype=np.int16)
    for m, checks in enumerate(rules.values()):
        penalty = np.zeros(n)
        for fires, severity in checks:
            fires = fires & has_bar
            penalty += fires * (10.0 * severity)
            n_issues += fires
            worst = np.maximum(worst, np.where(fires, severity, 0).astype(np.uint8))
        scores[:, m] = np.clip(100.0 - penalty, 0.0, 100.0)
    return pd.DataFrame({"overall_score": scores.mean(axis=1), "verdict": worst,
                         "n_issues": n_issues})
