"""The strategy layer's tables (issue 14): trade_entry_facts, strategy_profiles, playbooks and
playbook_members. All their SQL lives here.

- ``trade_entry_facts`` (migration 0014): one row per trade, what was known at its entry and
  how it ended. ``read_entry_facts(closed_by=t)`` is the point-in-time read: only trades
  closed by t, so a profile or a playbook fit as of t sees no later outcome.
- ``strategy_profiles``: one row per user; ``write_profile`` bumps ``version``.
- ``playbooks`` / ``playbook_members``: a user's playbooks are replaced whole, in one
  transaction (``replace_playbooks``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from buddy.store.core import Store, insert_frame

#: trade_entry_facts columns, in table order.
ENTRY_FACTS_COLUMNS: tuple[str, ...] = (
    "user_id", "trade_id", "intent_id", "facts_version", "trade_built_at", "computed_at",
    "side_sign", "stop_atr", "reward_risk", "close_ema20_atr", "bb_z", "high20_atr",
    "trend_atr", "rsi_14",
    "symbol", "timeframe", "side", "hour_local", "weekday", "regime", "alignment",
    "level_ahead_atr",
    "open_ts", "close_ts", "pnl", "pnl_r", "win", "holding_hours", "size_pct_equity",
    "risk_pct_equity",
)
_FLOAT_COLUMNS = ("side_sign", "stop_atr", "reward_risk", "close_ema20_atr", "bb_z",
                  "high20_atr", "trend_atr", "rsi_14", "alignment", "level_ahead_atr", "pnl",
                  "pnl_r", "holding_hours", "size_pct_equity", "risk_pct_equity")
_TIME_COLUMNS = ("trade_built_at", "computed_at", "open_ts", "close_ts")

#: Seed columns of playbooks and playbook_members.
PLAYBOOK_COLUMNS: tuple[str, ...] = (
    "playbook_id", "user_id", "name", "centroid_vector", "dispersion_metrics_json",
    "stats_json", "created_at", "updated_at")
MEMBER_COLUMNS: tuple[str, ...] = (
    "user_id", "playbook_id", "trade_id", "distance_to_centroid", "created_at")


# ---------------------------------------------------------------------------- entry facts
def trades_for_facts(store: Store, user_id: str | None, facts_version: str) -> pd.DataFrame:
    """Return the trades (of one user, or all) whose entry facts are missing, of another
    ``facts_version``, or older than the trade's rebuild, with their linked intent's
    ``intent_timeframe`` and ``intent_target`` (NULL without a linked intent)."""
    sql = ("SELECT t.*, i.timeframe AS intent_timeframe, i.proposed_target AS intent_target "
           "FROM trades t LEFT JOIN trade_intents i ON i.intent_id = t.linked_intent_id "
           "LEFT JOIN trade_entry_facts f ON f.trade_id = t.trade_id "
           "WHERE (f.trade_id IS NULL OR f.facts_version <> ? "
           "OR f.trade_built_at IS DISTINCT FROM t.built_at)")
    params: list[Any] = [facts_version]
    if user_id is not None:
        sql += " AND t.user_id = ?"
        params.append(user_id)
    return store.query(sql + " ORDER BY t.user_id, t.open_ts, t.trade_id", params)


def entry_facts_users(store: Store) -> list[str]:
    """Return the users that have trades, sorted."""
    return [str(u) for u in store.query(
        "SELECT DISTINCT user_id FROM trades ORDER BY 1")["user_id"]]


def count_entry_facts(store: Store, user_id: str | None = None) -> int:
    """Return the number of stored entry-facts rows (of one user, or all)."""
    if user_id is None:
        return int(store.query("SELECT count(*) FROM trade_entry_facts").iloc[0, 0])
    return int(store.query("SELECT count(*) FROM trade_entry_facts WHERE user_id = ?",
                           [user_id]).iloc[0, 0])


def _check_facts(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ENTRY_FACTS_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"entry facts: missing columns {missing}")
    extra = sorted(set(frame.columns) - set(ENTRY_FACTS_COLUMNS))
    if extra:
        raise ValueError(f"entry facts: unknown columns {extra}")
    out = frame[list(ENTRY_FACTS_COLUMNS)].reset_index(drop=True).copy()
    for column in ("user_id", "trade_id", "facts_version", "symbol", "side"):
        bad = out[column].isna()
        if bad.any():
            raise ValueError(f"entry facts.{column}: must not be missing (row "
                             f"{int(np.flatnonzero(bad.to_numpy())[0])})")
    duplicated = out["trade_id"][out["trade_id"].duplicated()]
    if len(duplicated):
        raise ValueError(f"entry facts.trade_id: must be unique (got {duplicated.iloc[0]!r} "
                         "twice)")
    sides = ~out["side"].isin(["long", "short"])
    if sides.any():
        raise ValueError("entry facts.side: must be 'long' or 'short' (got "
                         f"{out['side'][sides].iloc[0]!r})")
    for column in _FLOAT_COLUMNS:
        out[column] = _converted(out[column], column, "a number",
                                 lambda v: pd.to_numeric(v).astype("float64"))
    for column in ("hour_local", "weekday"):
        out[column] = _converted(out[column], column, "a whole number",
                                 lambda v: pd.to_numeric(v).astype("Int32"))
    out["win"] = _converted(out["win"], "win", "True, False or missing",
                            lambda v: v.astype("boolean"))
    for column in _TIME_COLUMNS:
        out[column] = _converted(out[column], column, "a timezone-aware time",
                                 lambda v: pd.to_datetime(v, utc=True))
    if out["open_ts"].isna().any():
        raise ValueError("entry facts.open_ts: must not be missing")
    for column in ("intent_id", "timeframe", "regime"):
        out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


def _converted(values: pd.Series, column: str, rule: str,
               convert: Callable[[pd.Series], pd.Series]) -> pd.Series:
    try:
        return convert(values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"entry facts.{column}: must be {rule} ({exc})") from exc


def write_entry_facts(store: Store, facts: pd.DataFrame, *,
                      remove_missing_trades: bool = True) -> int:
    """Replace the entry-facts rows of ``facts``' trades (ENTRY_FACTS_COLUMNS) in ONE
    transaction; with ``remove_missing_trades``, also delete rows of those users whose trade
    no longer exists. Return the rows written. Bad input raises ValueError naming the column
    and nothing is written."""
    frame = _check_facts(facts)
    with store.transaction() as con:
        if len(frame):
            con.execute("DELETE FROM trade_entry_facts WHERE list_contains(?, trade_id)",
                        [frame["trade_id"].astype(str).tolist()])
            insert_frame(con, "trade_entry_facts", frame)
        if remove_missing_trades:
            users = sorted(set(frame["user_id"].astype(str)))
            if users:
                con.execute("DELETE FROM trade_entry_facts f WHERE list_contains(?, f.user_id)"
                            " AND NOT EXISTS (SELECT 1 FROM trades t WHERE t.trade_id = "
                            "f.trade_id)", [users])
    store.touch_context_stamp()  # the strategy piece of every cached pack reads these rows
    return len(frame)


def remove_orphan_entry_facts(store: Store, user_id: str | None = None) -> int:
    """Delete entry-facts rows whose trade no longer exists; return how many."""
    where = "NOT EXISTS (SELECT 1 FROM trades t WHERE t.trade_id = f.trade_id)"
    params: list[Any] = []
    if user_id is not None:
        where += " AND f.user_id = ?"
        params.append(user_id)
    with store.transaction() as con:
        row = con.execute(f"SELECT count(*) FROM trade_entry_facts f WHERE {where}",
                          params).fetchone()
        con.execute(f"DELETE FROM trade_entry_facts f WHERE {where}", params)
    store.touch_context_stamp()
    return int(row[0]) if row else 0


def _utc(value: datetime | pd.Timestamp | str, field: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{field}: must be a time (got {value!r})") from exc
    if stamp is pd.NaT or pd.isna(stamp):
        raise ValueError(f"{field}: must be a time (got {value!r})")
    if stamp.tzinfo is None:
        raise ValueError(f"{field}: must be timezone-aware (got {value!r})")
    return stamp.tz_convert("UTC")


def read_entry_facts(store: Store, user_id: str, *, closed_by: datetime | None = None
                     ) -> pd.DataFrame:
    """Return ``user_id``'s entry facts (ENTRY_FACTS_COLUMNS), by open_ts then trade_id.

    ``closed_by`` (timezone-aware) given: only trades with close_ts <= closed_by (the
    point-in-time read: open trades and trades closed later are left out).
    """
    sql = (f"SELECT {', '.join(ENTRY_FACTS_COLUMNS)} FROM trade_entry_facts "
           "WHERE user_id = ?")
    params: list[Any] = [user_id]
    if closed_by is not None:
        sql += " AND close_ts <= ?"
        params.append(_utc(closed_by, "closed_by").to_pydatetime())
    frame = store.query(sql + " ORDER BY open_ts, trade_id", params)
    for column in _TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    for column in _FLOAT_COLUMNS:
        frame[column] = frame[column].astype("float64")
    for column in ("hour_local", "weekday"):
        frame[column] = frame[column].astype("Int32")
    frame["win"] = frame["win"].astype("boolean")
    for column in ("intent_id", "timeframe", "regime"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def entry_facts_key(store: Store, user_id: str, closed_by: datetime | None) -> tuple[int, str]:
    """Return a cheap cache key of ``read_entry_facts(store, user_id, closed_by=closed_by)``:
    the row count and a string of the newest close_ts and the newest computed_at (ISO, UTC;
    '' when there is none), so a refresh that rewrites facts changes the key too."""
    sql = ("SELECT count(*) AS n, max(close_ts) AS newest, max(computed_at) AS computed "
           "FROM trade_entry_facts WHERE user_id = ?")
    params: list[Any] = [user_id]
    if closed_by is not None:
        sql += " AND close_ts <= ?"
        params.append(_utc(closed_by, "closed_by").to_pydatetime())
    row = store.query(sql, params).iloc[0]

    def iso(value: Any) -> str:
        return "" if value is None or pd.isna(value) else pd.Timestamp(value).tz_convert(
            "UTC").isoformat()

    return int(row["n"]), f"{iso(row['newest'])}|{iso(row['computed'])}"


# ---------------------------------------------------------------------------- profiles
def _json_text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError as exc:
            raise ValueError(f"{field}: must be JSON text (got {value[:40]!r})") from exc
        return value
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{field}: must be JSON-serialisable without NaN ({exc})") from exc


def write_profile(store: Store, user_id: str, profile_json: Mapping[str, Any] | str,
                  baseline_stats_json: Mapping[str, Any] | str | None,
                  computed_at: datetime) -> int:
    """Store ``user_id``'s strategy profile (a mapping or JSON text, NaN refused: write None)
    computed at ``computed_at`` (timezone-aware) and return its version (previous + 1)."""
    if not user_id:
        raise ValueError(f"user_id: must not be empty (got {user_id!r})")
    profile = _json_text(profile_json, "profile_json")
    if profile is None:
        raise ValueError("profile_json: must not be None")
    baseline = _json_text(baseline_stats_json, "baseline_stats_json")
    when = _utc(computed_at, "computed_at").to_pydatetime()
    with store.transaction() as con:
        row = con.execute("SELECT version FROM strategy_profiles WHERE user_id = ?",
                          [user_id]).fetchone()
        version = (int(row[0]) if row else 0) + 1
        con.execute("DELETE FROM strategy_profiles WHERE user_id = ?", [user_id])
        con.execute("INSERT INTO strategy_profiles (user_id, computed_at, profile_json, "
                    "baseline_stats_json, version) VALUES (?, ?, ?, ?, ?)",
                    [user_id, when, profile, baseline, version])
    return version


def read_profile(store: Store, user_id: str) -> dict[str, Any] | None:
    """Return ``user_id``'s stored profile as {user_id, computed_at (UTC Timestamp), profile
    (dict), baseline_stats (dict or None), version}, or None when none is stored."""
    frame = store.query("SELECT * FROM strategy_profiles WHERE user_id = ?", [user_id])
    if frame.empty:
        return None
    row = frame.iloc[0]
    baseline = row["baseline_stats_json"]
    return {"user_id": str(row["user_id"]),
            "computed_at": pd.Timestamp(row["computed_at"]).tz_convert("UTC"),
            "profile": json.loads(row["profile_json"]),
            "baseline_stats": None if baseline is None or pd.isna(baseline)
            else json.loads(baseline),
            "version": int(row["version"])}


# ---------------------------------------------------------------------------- playbooks
def _seed_frame(frame: pd.DataFrame, columns: Sequence[str], name: str, user_id: str
                ) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing columns {missing}")
    extra = sorted(set(frame.columns) - set(columns))
    if extra:
        raise ValueError(f"{name}: unknown columns {extra}")
    out = frame[list(columns)].reset_index(drop=True).copy()
    wrong = sorted(set(out["user_id"].astype(str)) - {user_id}) if len(out) else []
    if wrong:
        raise ValueError(f"{name}.user_id: must all be {user_id!r} (got {wrong[:3]})")
    return out


def replace_playbooks(store: Store, user_id: str, playbooks: pd.DataFrame,
                      members: pd.DataFrame) -> int:
    """Replace ``user_id``'s playbooks and members (seed columns PLAYBOOK_COLUMNS and
    MEMBER_COLUMNS; the *_json columns as mappings or JSON text) in ONE transaction; return
    the playbooks written. Every member's playbook_id must be among ``playbooks``; bad input
    raises ValueError naming the column and nothing is written."""
    books = _seed_frame(playbooks, PLAYBOOK_COLUMNS, "playbooks", user_id)
    rows = _seed_frame(members, MEMBER_COLUMNS, "playbook_members", user_id)
    for column in ("playbook_id", "name", "created_at", "updated_at"):
        if books[column].isna().any():
            raise ValueError(f"playbooks.{column}: must not be missing")
    if books["playbook_id"].duplicated().any():
        raise ValueError("playbooks.playbook_id: must be unique (got "
                         f"{books['playbook_id'][books['playbook_id'].duplicated()].iloc[0]!r}"
                         " twice)")
    unknown = sorted(set(rows["playbook_id"]) - set(books["playbook_id"]))
    if unknown:
        raise ValueError(f"playbook_members.playbook_id: must be one of the playbooks "
                         f"(got {unknown[:3]})")
    if rows.duplicated(["playbook_id", "trade_id"]).any():
        raise ValueError("playbook_members: (playbook_id, trade_id) must be unique")
    for column in ("dispersion_metrics_json", "stats_json"):
        books[column] = [_json_text(v, f"playbooks.{column}") for v in books[column]]
    books["centroid_vector"] = [None if v is None else [float(x) for x in v]
                                for v in books["centroid_vector"]]
    for column in ("created_at", "updated_at"):
        books[column] = pd.to_datetime(books[column], utc=True)
    rows["created_at"] = pd.to_datetime(rows["created_at"], utc=True)
    rows["distance_to_centroid"] = pd.to_numeric(rows["distance_to_centroid"]).astype(
        "float64")
    with store.transaction() as con:
        con.execute("DELETE FROM playbook_members WHERE user_id = ?", [user_id])
        con.execute("DELETE FROM playbooks WHERE user_id = ?", [user_id])
        if len(books):
            # list columns go in through Arrow; an object column of lists would too, but
            # an all-None one would be typed as INTEGER
            con.executemany(
                "INSERT INTO playbooks (playbook_id, user_id, name, centroid_vector, "
                "dispersion_metrics_json, stats_json, created_at, updated_at) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?)",
                [[r.playbook_id, r.user_id, r.name, r.centroid_vector,
                  r.dispersion_metrics_json, r.stats_json, r.created_at.to_pydatetime(),
                  r.updated_at.to_pydatetime()] for r in books.itertuples()])
        if len(rows):
            insert_frame(con, "playbook_members", rows)
    return len(books)


def read_playbooks(store: Store, user_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``user_id``'s (playbooks, members) in seed columns: playbooks by playbook_id
    (centroid_vector a list of floats, the *_json columns parsed into dicts), members by
    playbook_id then trade_id."""
    books = store.query(f"SELECT {', '.join(PLAYBOOK_COLUMNS)} FROM playbooks "
                        "WHERE user_id = ? ORDER BY playbook_id", [user_id])
    for column in ("dispersion_metrics_json", "stats_json"):
        books[column] = [None if v is None or (isinstance(v, float) and np.isnan(v))
                         else json.loads(v) for v in books[column]]
    books["centroid_vector"] = [None if v is None or (isinstance(v, float) and np.isnan(v))
                                else [float(x) for x in v] for v in books["centroid_vector"]]
    members = store.query(f"SELECT {', '.join(MEMBER_COLUMNS)} FROM playbook_members "
                          "WHERE user_id = ? ORDER BY playbook_id, trade_id", [user_id])
    return books, members
