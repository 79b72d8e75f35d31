"""Replay in the store: the runs (``replay_runs``) and their compact result tables (migrations
0015 and 0022: ``replay_modules``, ``replay_codes``, the wide ``replay_results``,
``replay_issues`` and their fact sets ``replay_facts``; issue rows go in only through
``insert_issue_rows`` and evidence comes out only through ``issue_evidence``), the replayed
intents calibration needs beyond the results frame, the newest finished run of a purpose, the
series the all-data corpus covers and the columns the intent generators read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from buddy.store.bars import closed_by
from buddy.store.core import Frame, Store, insert_frame
from buddy.store.replay_facts import insert_typed_issues, issue_facts


def replay_intents(store: Store, run_ids: Sequence[str]) -> pd.DataFrame:
    """Return the replayed intents of ``run_ids`` (``replay_intents`` rows with their run id),
    by run and intent id."""
    return store.query("SELECT * EXCLUDE (intent_no) FROM replay_intents "
                       "WHERE list_contains(?, run_id) "
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
    """Return the run's replay_runs row (run_key included), or None when there is no such
    run."""
    frame = store.query("SELECT * FROM replay_runs WHERE run_id = ?", [run_id])
    return None if frame.empty else frame.iloc[0].to_dict()


def runs_with_progress(store: Store) -> pd.DataFrame:
    """Return every replay run with its count of evaluated intents (n_done), newest first."""
    return store.query(
        "SELECT r.run_id, r.name, r.config_name, r.config_version, r.config_hash, r.status, "
        "r.n_intents, coalesce(d.n_done, 0) AS n_done, r.data_start, r.data_end, "
        "r.intent_source, r.created_at, r.finished_at, r.purpose FROM replay_runs r LEFT JOIN ("
        "SELECT run_key, count(*) AS n_done FROM replay_results GROUP BY run_key) d "
        "USING (run_key) ORDER BY r.created_at DESC, r.run_id")


def set_run_status(store: Store, run_id: str, status: str) -> None:
    """Set the run's status."""
    with store.transaction() as con:
        con.execute("UPDATE replay_runs SET status = ? WHERE run_id = ?", [status, run_id])


def finish_run(store: Store, run_id: str) -> None:
    """Mark the run done, finished now."""
    with store.transaction() as con:
        con.execute("UPDATE replay_runs SET status = 'done', finished_at = now() "
                    "WHERE run_id = ?", [run_id])


def create_run(store: Store, run: pd.DataFrame, intents: Frame, modules: pd.DataFrame,
               codes: pa.Table) -> int:
    """Write a new run in ONE transaction and return its run_key (the largest so far + 1).

    ``run``: its replay_runs row without run_key; ``intents``: its replay_intents rows
    (run_id and intent_no included; Arrow reads fastest); ``modules``: (module_no, module,
    version); ``codes``: (code_no, module, code, fact_names, fact_units)."""
    with store.transaction() as con:
        (run_key,) = con.execute("SELECT coalesce(max(run_key), 0) + 1 FROM replay_runs"
                                 ).fetchone() or (1,)
        run_key = int(run_key)
        insert_frame(con, "replay_runs", run.assign(run_key=np.int32(run_key)))
        if len(intents):
            insert_frame(con, "replay_intents", intents)
        if len(modules):
            insert_frame(con, "replay_modules", modules.assign(run_key=np.int32(run_key)))
        if codes.num_rows:
            keys = pa.array(np.full(codes.num_rows, run_key, dtype=np.int32))
            insert_frame(con, "replay_codes", codes.append_column("run_key", keys))
    return run_key


def run_intents(store: Store, run_id: str) -> pd.DataFrame:
    """Return the run's replay_intents rows without the run id and intent_no."""
    return store.query("SELECT * EXCLUDE (run_id, intent_no) FROM replay_intents "
                       "WHERE run_id = ?", [run_id])


def done_intent_nos(store: Store, run_key: int) -> set[int]:
    """Return the intent_no of the run's intents that already have a result (a resume skips
    them)."""
    found = store.query("SELECT intent_no FROM replay_results WHERE run_key = ?", [run_key])
    return set(found["intent_no"].astype(int).tolist())


def run_modules(store: Store, run_key: int) -> pd.DataFrame:
    """Return the run's replay_modules rows (module_no, module, version) by module_no."""
    return store.query("SELECT module_no, module, version FROM replay_modules "
                       "WHERE run_key = ? ORDER BY module_no", [run_key])


# ---------------------------------------------------------------------------- result writes
def write_results(store: Store, results: pa.Table, issues: pa.Table,
                  facts: pa.Table | None = None) -> None:
    """Write one chunk's wide result rows, its issue rows and their fact sets (all with
    run_key; ``insert_issue_rows``) in ONE transaction, one bulk insert each: a killed run
    never leaves half a chunk, and the results' PRIMARY KEY (run_key, intent_no) refuses a
    second write of an intent whole. (A batch run writes its chunks in ``vacuum_deferred``:
    ``replay.engine.run_replay``.)"""
    with store.transaction() as con:
        if results.num_rows:
            insert_frame(con, "replay_results", results)
        if issues.num_rows:
            insert_issue_rows(con, issues, facts)


def insert_issue_rows(con: duckdb.DuckDBPyConnection, table: pa.Table,
                      facts: pa.Table | None = None) -> int:
    """Insert ``table`` (run_key, intent_no, module_no, issue_no, code_no, severity and
    either facts_no with the chunk's distinct fact sets ``facts``, or the issue's
    evidence_json) into replay_issues and replay_facts on the caller's transaction ``con``,
    the evidence as typed fact columns (``buddy.store.replay_facts``); return the issue row
    count. The one path of every issue insert."""
    return insert_typed_issues(con, table, facts)


# ---------------------------------------------------------------------------- result reads
def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def run_results(store: Store, run_id: str, run_key: int, *,
                score_columns: Sequence[tuple[str, int | None]],
                severities: Sequence[str], exit_reasons: Sequence[str],
                outcome_sources: Sequence[str]) -> pd.DataFrame:
    """Return the run's wide results decoded, one row per evaluated intent in intent_no
    order: run_id, intent_id, symbol, timeframe, side, as_of, overall_score,
    overall_severity (``severities[verdict]``), n_issues, then one column per
    ``score_columns`` entry (name, module_no; None: NULL), then the outcome columns with
    exit_reason and outcome_source decoded by ``exit_reasons`` / ``outcome_sources``."""
    scores = "".join(
        f", r.module_scores[{int(no) + 1}] AS {_quoted(name)}" if no is not None
        else f", NULL::DOUBLE AS {_quoted(name)}" for name, no in score_columns)
    return store.query(
        "SELECT i.run_id, i.intent_id, i.symbol, i.timeframe, i.side, i.as_of, "
        "r.overall_score, $severities[r.verdict + 1] AS overall_severity, "
        f"r.n_issues::INTEGER AS n_issues{scores}, "
        "$exit_reasons[r.exit_reason + 1] AS exit_reason, r.entry_ts, r.exit_ts, "
        "r.exit_price, r.realized_r, r.mae_r, r.mfe_r, r.mae_price, r.mfe_price, r.bars_held, "
        "r.win, $outcome_sources[r.outcome_source + 1] AS outcome_source, r.filled, "
        "r.fill_ts, r.fill_price FROM replay_results r JOIN replay_intents i "
        "ON i.run_id = $run_id AND i.intent_no = r.intent_no WHERE r.run_key = $run_key "
        "ORDER BY r.intent_no",
        {"run_id": run_id, "run_key": int(run_key), "severities": list(severities),
         "exit_reasons": list(exit_reasons), "outcome_sources": list(outcome_sources)})


def run_module_results(store: Store, run_id: str, run_key: int, *,
                       statuses: Sequence[str], severities: Sequence[str]) -> pd.DataFrame:
    """Return every module result of a run in long form (run_id, intent_id, module, version,
    status, score, severity, n_issues; one row per intent and module that ran on it), by
    intent id and module, statuses and severities decoded."""
    return store.query(
        "SELECT $run_id AS run_id, i.intent_id, m.module, m.version, "
        "$statuses[s.status + 1] AS status, s.score, $severities[s.severity + 1] AS severity, "
        "s.n_issues::INTEGER AS n_issues FROM (SELECT intent_no, "
        "unnest(range(len(module_status))) AS module_no, unnest(module_status) AS status, "
        "unnest(module_scores) AS score, unnest(module_severity) AS severity, "
        "unnest(module_n_issues) AS n_issues FROM replay_results WHERE run_key = $run_key) s "
        "JOIN replay_modules m ON m.run_key = $run_key AND m.module_no = s.module_no "
        "JOIN replay_intents i ON i.run_id = $run_id AND i.intent_no = s.intent_no "
        "WHERE s.status IS NOT NULL ORDER BY i.intent_id, m.module",
        {"run_id": run_id, "run_key": int(run_key), "statuses": list(statuses),
         "severities": list(severities)})


def run_issues(store: Store, run_id: str, run_key: int, *, severities: Sequence[str]
               ) -> pd.DataFrame:
    """Return every issue of a run: run_id, intent_id, module, code, severity, issue_no and
    the integer keys intent_no, module_no (to join evidence on), by intent id, module and
    issue number."""
    return store.query(
        "SELECT $run_id AS run_id, i.intent_id, m.module, c.code, "
        "$severities[s.severity + 1] AS severity, s.issue_no::INTEGER AS issue_no, "
        "s.intent_no, s.module_no::INTEGER AS module_no FROM replay_issues s "
        "JOIN replay_modules m ON m.run_key = $run_key AND m.module_no = s.module_no "
        "JOIN replay_codes c ON c.run_key = $run_key AND c.code_no = s.code_no "
        "JOIN replay_intents i ON i.run_id = $run_id AND i.intent_no = s.intent_no "
        "WHERE s.run_key = $run_key ORDER BY i.intent_id, m.module, s.issue_no",
        {"run_id": run_id, "run_key": int(run_key), "severities": list(severities)})


def issue_evidence(store: Store, run_key: int, intent_nos: Sequence[int] | None = None
                   ) -> pd.DataFrame:
    """Return the typed facts of the run's issues (``intent_nos``: only these intents), by
    intent_no, module_no, issue_no, with the code's declared names and units
    (``buddy.store.replay_facts.issue_facts``; ``replay.evidence.render_evidence`` writes
    the evidence JSON from them). The one path of every evidence read."""
    facts = issue_facts(store, run_key, intent_nos)
    facts["module_no"] = facts["module_no"].astype("int64")
    facts["issue_no"] = facts["issue_no"].astype("int64")
    return facts


#: The run's result tables as a reader sees them, each with its canonical row order (the
#: keys, run_key excluded): replay_issues with each issue's facts joined in (its columns
#: as migration 0016 stored them), not the fact set numbers a write happened to give.
RESULT_TABLE_ORDER: dict[str, tuple[str, ...]] = {
    "replay_modules": ("module_no",),
    "replay_codes": ("code_no",),
    "replay_results": ("intent_no",),
    "replay_issues": ("intent_no", "module_no", "issue_no"),
}
#: The tables a run's results are stored in (what a chunk or run creation writes).
STORED_RESULT_TABLES: tuple[str, ...] = ("replay_modules", "replay_codes", "replay_results",
                                         "replay_issues", "replay_facts")
_ISSUES_WITH_FACTS = (
    "SELECT i.* EXCLUDE (run_key, facts_no), f.* EXCLUDE (run_key, facts_no) "
    "FROM replay_issues i JOIN replay_facts f ON f.run_key = i.run_key "
    "AND f.facts_no = i.facts_no WHERE i.run_key = ?")


def run_result_tables(store: Store, run_key: int) -> dict[str, pa.Table]:
    """Return the run's RESULT_TABLE_ORDER tables as Arrow, without run_key, each in its
    canonical row order (what a result hash reads)."""
    tables = {}
    with store.connect(read_only=True) as con:
        for table, key in RESULT_TABLE_ORDER.items():
            source = (_ISSUES_WITH_FACTS if table == "replay_issues" else
                      f"SELECT * EXCLUDE (run_key) FROM {table} WHERE run_key = ?")
            order = ", ".join(f"{name}" for name in key)
            tables[table] = con.sql(f"SELECT * FROM ({source}) ORDER BY {order}",
                                    params=[int(run_key)]).to_arrow_table()
    return tables


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
