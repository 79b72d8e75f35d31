"""Replay in the store: the runs (``replay_runs``) and their result tables, the replayed
intents calibration needs beyond the results frame, the newest finished run of a purpose, the
series the all-data corpus covers and the columns the intent generators read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from buddy.store.bars import closed_by
from buddy.store.core import Store


def replay_intents(store: Store, run_ids: Sequence[str]) -> pd.DataFrame:
    """Return the replayed intents of ``run_ids`` (``replay_intents`` rows with their run id),
    by run and intent id."""
    return store.query("SELECT * FROM replay_intents WHERE list_contains(?, run_id) "
                       "ORDER BY run_id, intent_id", [list(map(str, run_ids))])


def latest_finished_run(store: Store, purpose: str) -> str | None:
    """Return the newest finished replay run made for ``purpose``, None when there is none."""
    found = store.query("SELECT run_id FROM replay_runs WHERE status = 'done' AND purpose = ? "
                        "ORDER BY finished_at DESC, created_at DESC, run_id LIMIT 1",
                        [purpose])
    return None if found.empty else str(found["run_id"].iloc[0])


def bar_series(store: Store, symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """Return every (symbol, timeframe) that has bars (``symbols``: only these), ordered by
    timeframe then symbol."""
    if symbols is None:
        return store.query("SELECT DISTINCT symbol, timeframe FROM bars "
                           "ORDER BY timeframe, symbol")
    return store.query("SELECT DISTINCT symbol, timeframe FROM bars WHERE "
                       "list_contains(?, symbol) ORDER BY timeframe, symbol",
                       [[str(s) for s in symbols]])


# ---------------------------------------------------------------------------- runs
def run_row(store: Store, run_id: str) -> dict[str, Any] | None:
    """Return the run's replay_runs row, or None when there is no such run."""
    frame = store.query("SELECT * FROM replay_runs WHERE run_id = ?", [run_id])
    return None if frame.empty else frame.iloc[0].to_dict()


def runs_with_progress(store: Store) -> pd.DataFrame:
    """Return every replay run with its count of evaluated intents (n_done), newest first."""
    return store.query(
        "SELECT r.run_id, r.name, r.config_name, r.config_version, r.config_hash, r.status, "
        "r.n_intents, coalesce(d.n_done, 0) AS n_done, r.data_start, r.data_end, "
        "r.intent_source, r.created_at, r.finished_at, r.purpose FROM replay_runs r LEFT JOIN ("
        "SELECT run_id, count(*) AS n_done FROM replay_results GROUP BY run_id) d "
        "USING (run_id) ORDER BY r.created_at DESC, r.run_id")


def set_run_status(store: Store, run_id: str, status: str) -> None:
    """Set the run's status."""
    with store.transaction() as con:
        con.execute("UPDATE replay_runs SET status = ? WHERE run_id = ?", [status, run_id])


def finish_run(store: Store, run_id: str) -> None:
    """Mark the run done, finished now."""
    with store.transaction() as con:
        con.execute("UPDATE replay_runs SET status = 'done', finished_at = now() "
                    "WHERE run_id = ?", [run_id])


def run_intents(store: Store, run_id: str) -> pd.DataFrame:
    """Return the run's replay_intents rows without the run id."""
    return store.query("SELECT * EXCLUDE (run_id) FROM replay_intents WHERE run_id = ?",
                       [run_id])


def done_intent_ids(store: Store, run_id: str) -> set[str]:
    """Return the ids of the run's intents that already have a result (a resume skips them)."""
    return set(store.query("SELECT intent_id FROM replay_results WHERE run_id = ?",
                           [run_id])["intent_id"])


# ---------------------------------------------------------------------------- results
def run_results(store: Store, run_id: str) -> pd.DataFrame:
    """Return the run's replay_results rows by symbol, timeframe, as_of and intent id."""
    return store.query("SELECT * FROM replay_results WHERE run_id = ? "
                       "ORDER BY symbol, timeframe, as_of, intent_id", [run_id])


def run_module_scores(store: Store, run_id: str) -> pd.DataFrame:
    """Return (intent_id, module, score) of every module result of the run."""
    return store.query("SELECT intent_id, module, score FROM replay_module_results "
                       "WHERE run_id = ?", [run_id])


def run_outcomes(store: Store, run_id: str) -> pd.DataFrame:
    """Return the run's replay_outcomes rows without the run id."""
    return store.query("SELECT * EXCLUDE (run_id) FROM replay_outcomes WHERE run_id = ?",
                       [run_id])


def run_module_results(store: Store, run_id: str) -> pd.DataFrame:
    """Return every module result of a run (one row per intent and module)."""
    return store.query("SELECT * FROM replay_module_results WHERE run_id = ? "
                       "ORDER BY intent_id, module", [run_id])


def run_issues(store: Store, run_id: str) -> pd.DataFrame:
    """Return every issue of a run (run_id, intent_id, module, code, severity, issue_no,
    evidence_json) by intent, module and issue number."""
    return store.query("SELECT run_id, intent_id, module, code, severity, issue_no, "
                       "evidence_json FROM replay_issues WHERE run_id = ? "
                       "ORDER BY intent_id, module, issue_no", [run_id])


def run_table(store: Store, table: str, key: Sequence[str], run_id: str) -> pd.DataFrame:
    """Return the run's rows of result table ``table`` without the run id, ordered by
    ``key`` (the table's key columns; both names come from the caller's constants)."""
    return store.query(f"SELECT * EXCLUDE (run_id) FROM {table} WHERE run_id = ? "
                       f"ORDER BY {', '.join(key)}", [run_id])


# ---------------------------------------------------------------------------- generators' inputs
_BARS_SQL = """
SELECT epoch_ns(ts) AS ts, epoch_ns(ts_close) AS ts_close,
       (session - DATE '1970-01-01')::BIGINT AS session, open, high, low, close, volume
FROM bars WHERE timeframe = ? {filters} ORDER BY symbol, ts
"""
_BAR_COUNTS_SQL = """
SELECT symbol, count(*) AS n FROM bars WHERE timeframe = ? {filters}
GROUP BY symbol ORDER BY symbol
"""
_FEATURES_SQL = """
SELECT epoch_ns(ts) AS ts, {features} FROM ta_features WHERE timeframe = ? {filters}
ORDER BY symbol, ts
"""
_FEATURE_COUNTS_SQL = """
SELECT symbol, count(*) AS n FROM ta_features WHERE timeframe = ? {filters}
GROUP BY symbol ORDER BY symbol
"""


@dataclass(frozen=True, slots=True)
class GeneratorInputs:
    """What the intent generators read, as numpy columns (no per-row Python objects)."""

    instruments: pd.DataFrame  # tickers, by symbol
    splits: pd.DataFrame  # corporate actions that are splits, by symbol and ex_date
    bar_counts: list[tuple[str, int]]  # bars per symbol, by symbol
    bars: dict[str, np.ndarray]  # ts, ts_close (epoch ns), session (epoch days), OHLCV
    feature_counts: dict[str, int]  # ta_features rows per symbol
    features: dict[str, np.ndarray]  # ts (epoch ns) and the requested feature columns


def generator_inputs(store: Store, timeframe: str, symbols: Sequence[str] | None,
                     end: datetime | None, feature_columns: Sequence[str]) -> GeneratorInputs:
    """Read the ``timeframe`` bars closed by ``end`` (all when None) and every feature row of
    ``symbols`` (all when None), by symbol and ts, with the tickers and splits; in one
    connection."""
    filters = ""
    params: list[Any] = [timeframe]
    if symbols is not None:
        filters += " AND list_contains(?, symbol)"
        params.append([str(s) for s in symbols])
    bar_filters, bar_params = filters, list(params)
    if end is not None:
        bar_filters += f" AND {closed_by()}"
        bar_params.append(end)
    with store.connect(read_only=True) as con:
        instruments = con.execute("SELECT * FROM tickers ORDER BY symbol").df()
        splits = con.execute("SELECT * FROM corporate_actions WHERE action = 'split' "
                             "ORDER BY symbol, ex_date").df()
        bar_counts = con.execute(_BAR_COUNTS_SQL.format(filters=bar_filters), bar_params
                                 ).fetchall()
        bars = con.execute(_BARS_SQL.format(filters=bar_filters), bar_params).fetchnumpy()
        feature_counts = dict(con.execute(_FEATURE_COUNTS_SQL.format(filters=filters), params
                                          ).fetchall())
        features = con.execute(_FEATURES_SQL.format(
            features=", ".join(feature_columns), filters=filters), params).fetchnumpy()
    return GeneratorInputs(instruments=instruments, splits=splits,
                           bar_counts=[(str(s), int(n)) for s, n in bar_counts], bars=bars,
                           feature_counts=feature_counts, features=features)
