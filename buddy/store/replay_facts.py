"""Replay issue evidence as typed columns: the SQL that turns an issue's evidence (the JSON
list of facts a module emits) into typed fact columns, and reads them back.

Since migration 0022 an issue row (``replay_issues``) points by ``facts_no`` at a fact set of
its run (``replay_facts``): a chunk's issues with equal facts share one set (most of a run's
issues repeat a set of their chunk), so the typed lists are written once per distinct set.
A fact set keeps, in the order the issue's code declares its facts:

- ``fact_values DOUBLE[]``: each fact's value as a number (NULL where it is not one: a label,
  a list, a flag, a missing value);
- ``fact_json VARCHAR[]``: NULL when every value is a float; otherwise the JSON text of each
  value that is not a float (integers keep their exact text, labels their quotes), NULL at
  the floats;
- ``fact_thresholds DOUBLE[]``: NULL when no fact has a threshold, else each threshold as a
  number; ``threshold_json VARCHAR[]`` as ``fact_json`` for thresholds that are not floats;
- ``fact_names VARCHAR[]`` and ``fact_units VARCHAR[]``: NULL when they are the names and
  units the run's ``replay_codes`` row declares for the issue's code (the usual case), else
  the issue's own (a unit resolved per row, such as an account currency).

Nothing is lost: ``replay.evidence.render_evidence`` rebuilds each issue's evidence JSON
byte for byte from these columns, deterministically, when a person asks for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd
import pyarrow as pa

from buddy.store.core import Store, registered

#: The typed fact columns of replay_facts, in table order, with their DuckDB types.
FACT_COLUMNS: dict[str, str] = {
    "fact_values": "DOUBLE[]",
    "fact_json": "VARCHAR[]",
    "fact_thresholds": "DOUBLE[]",
    "threshold_json": "VARCHAR[]",
    "fact_names": "VARCHAR[]",
    "fact_units": "VARCHAR[]",
}

_NUMBER = "('DOUBLE', 'BIGINT', 'UBIGINT')"
# the JSON type of a fact part, SQL NULL (an absent value) read as JSON null
_KIND = "coalesce(json_type({part}), 'NULL')"


def _value_kind(part: str) -> str:
    return _KIND.format(part=part)


def typed_fact_expressions(facts: str, declared_names: str, declared_units: str
                           ) -> dict[str, str]:
    """Return the SQL expression of each FACT_COLUMNS column, by name.

    ``facts``: a LIST of STRUCT(name VARCHAR, threshold JSON, unit VARCHAR, value JSON) (the
    evidence JSON through ``json_transform(..., EVIDENCE_STRUCTURE)``); ``declared_names``
    and ``declared_units``: the code's declared lists (``replay_codes``)."""
    value, threshold = _value_kind("f.value"), _value_kind("f.threshold")
    return {
        "fact_values": f"list_transform({facts}, lambda f: CASE WHEN {value} IN {_NUMBER} "
                       "THEN CAST(f.value AS DOUBLE) END)",
        "fact_json": f"CASE WHEN list_bool_or(list_transform({facts}, lambda f: {value} <> "
                     f"'DOUBLE')) THEN list_transform({facts}, lambda f: CASE WHEN {value} <> "
                     "'DOUBLE' THEN coalesce(CAST(f.value AS VARCHAR), 'null') END) END",
        "fact_thresholds": f"CASE WHEN list_bool_or(list_transform({facts}, lambda f: "
                           f"{threshold} <> 'NULL')) THEN list_transform({facts}, lambda f: "
                           f"CASE WHEN {threshold} IN {_NUMBER} THEN CAST(f.threshold AS "
                           "DOUBLE) END) END",
        "threshold_json": f"CASE WHEN list_bool_or(list_transform({facts}, lambda f: "
                          f"{threshold} NOT IN ('DOUBLE', 'NULL'))) THEN list_transform("
                          f"{facts}, lambda f: CASE WHEN {threshold} NOT IN ('DOUBLE', "
                          "'NULL') THEN CAST(f.threshold AS VARCHAR) END) END",
        "fact_names": f"CASE WHEN list_transform({facts}, lambda f: f.name) IS DISTINCT FROM "
                      f"{declared_names} THEN list_transform({facts}, lambda f: f.name) END",
        "fact_units": f"CASE WHEN list_transform({facts}, lambda f: f.unit) IS DISTINCT FROM "
                      f"{declared_units} THEN list_transform({facts}, lambda f: f.unit) END",
    }


#: How evidence JSON is read: a list of facts, each part typed for the expressions above.
EVIDENCE_STRUCTURE = ('[{"name": "VARCHAR", "threshold": "JSON", "unit": "VARCHAR", '
                      '"value": "JSON"}]')


def insert_typed_issues(con: duckdb.DuckDBPyConnection, issues: pa.Table | pd.DataFrame,
                        facts: pa.Table | None = None) -> int:
    """Insert ``issues`` into replay_issues and their facts into replay_facts (migration
    0022: each distinct fact set once, the issues pointing at it by facts_no); return the
    issue row count.

    ``issues`` holds run_key, intent_no, module_no, issue_no, code_no, severity and either
    facts_no with ``facts`` (run_key, facts_no and the FACT_COLUMNS as stored: the engine's
    path, inserted as they are, one bulk insert each) or evidence_json (the JSON list of the
    issue's facts, typed here, a fact set per issue; the code's declared names and units
    come from the run's replay_codes rows). Fact numbers given are per chunk, from 0: they
    are shifted past the run's stored ones here. Each code must exist in the run's
    replay_codes (a code the run did not declare is refused before anything is written)."""
    if not len(issues):
        return 0
    names = issues.column_names if isinstance(issues, pa.Table) else list(issues.columns)
    if "evidence_json" not in names and facts is None:
        raise ValueError("replay_issues: issues with facts_no need their facts")
    with registered(con, "_issues", issues):
        unknown = con.execute(
            "SELECT DISTINCT i.run_key, i.code_no FROM (SELECT DISTINCT run_key, code_no "
            "FROM _issues) i ANTI JOIN replay_codes c "
            "ON c.run_key = i.run_key AND c.code_no = i.code_no LIMIT 5").fetchall()
        if unknown:
            raise ValueError(f"replay_issues: code_no must be declared in replay_codes for "
                             f"its run; undeclared (run_key, code_no): {unknown}")
        # the run's next fact number (the one writer's transaction: nothing moves it meanwhile)
        base = ("(SELECT coalesce(max(f.facts_no) + 1, 0) FROM replay_facts f "
                "WHERE f.run_key = {alias}.run_key)")
        keys = "run_key, intent_no, module_no, issue_no, code_no, severity"
        if "evidence_json" not in names:
            assert facts is not None
            run_keys = con.execute("SELECT DISTINCT run_key FROM _issues").fetchall()
            if len(run_keys) != 1:
                raise ValueError("replay_issues: a chunk's issues and facts are one run's")
            ((start,),) = con.execute(
                "SELECT coalesce(max(facts_no) + 1, 0) FROM replay_facts WHERE run_key = ?",
                run_keys[0]).fetchall()
            with registered(con, "_facts", facts):
                con.execute(f"INSERT INTO replay_facts (run_key, facts_no, "
                            f"{', '.join(FACT_COLUMNS)}) SELECT run_key, facts_no + $start, "
                            f"{', '.join(FACT_COLUMNS)} FROM _facts", {"start": int(start)})
            con.execute(f"INSERT INTO replay_issues ({keys}, facts_no) SELECT {keys}, "
                        "facts_no + $start FROM _issues", {"start": int(start)})
            return len(issues)
        expressions = typed_fact_expressions("e.facts", "c.fact_names", "c.fact_units")
        typed = ", ".join(f"{expr} AS {name}" for name, expr in expressions.items())
        con.execute(
            "CREATE TEMP TABLE _numbered AS SELECT *, (row_number() OVER (PARTITION BY "
            f"run_key) - 1 + {base.format(alias='_issues')})::INTEGER AS facts_no "
            "FROM _issues")
        try:
            con.execute(
                f"INSERT INTO replay_facts (run_key, facts_no, {', '.join(FACT_COLUMNS)}) "
                f"SELECT e.run_key, e.facts_no, {typed} FROM (SELECT *, json_transform("
                f"evidence_json, '{EVIDENCE_STRUCTURE}') AS facts FROM _numbered) e "
                "JOIN replay_codes c ON c.run_key = e.run_key AND c.code_no = e.code_no")
            con.execute(f"INSERT INTO replay_issues ({keys}, facts_no) SELECT {keys}, "
                        "facts_no FROM _numbered")
        finally:
            con.execute("DROP TABLE IF EXISTS _numbered")
    return len(issues)


def issue_facts(store: Store, run_key: int, intent_nos: Sequence[int] | None = None
                ) -> pd.DataFrame:
    """Return the run's issues with their typed facts and the code's declared names and
    units (declared_names, declared_units), by intent_no, module_no and issue_no;
    ``intent_nos``: only these intents."""
    where = "i.run_key = ?"
    params: list[object] = [int(run_key)]
    if intent_nos is not None:
        where += " AND list_contains(?, i.intent_no)"
        params.append([int(n) for n in intent_nos])
    return store.query(
        "SELECT i.intent_no, i.module_no, i.issue_no, i.code_no, i.severity, c.module, c.code, "
        f"{', '.join('f.' + c for c in FACT_COLUMNS)}, c.fact_names AS declared_names, "
        "c.fact_units AS declared_units FROM replay_issues i JOIN replay_codes c "
        "ON c.run_key = i.run_key AND c.code_no = i.code_no JOIN replay_facts f "
        f"ON f.run_key = i.run_key AND f.facts_no = i.facts_no WHERE {where} "
        "ORDER BY i.intent_no, i.module_no, i.issue_no", params)
