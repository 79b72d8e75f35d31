"""Users in the store: ``user_accounts``, ``user_rules`` (current) and ``user_rules_history``
(every version), ``user_preferences`` and ``exit_templates``.

Row reads and writes take an open connection, so ``buddy.users.store`` can check and write a
user in ONE transaction (it re-reads the user inside the write to refuse a concurrent change).
Rules, preferences and templates are stored as JSON text, parsed by ``buddy.users``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: importing the users CLI loads no duckdb
    from duckdb import DuckDBPyConnection

    from buddy.store.core import Store


def account_row(con: DuckDBPyConnection, user_id: str) -> tuple[Any, ...] | None:
    """Return (base_currency, equity_snapshot, buying_power_snapshot) of the user, or None."""
    return con.execute("SELECT base_currency, equity_snapshot, buying_power_snapshot FROM "
                       "user_accounts WHERE user_id = ?", [user_id]).fetchone()


def rules_row(con: DuckDBPyConnection, user_id: str) -> tuple[Any, ...] | None:
    """Return (rules_json, version) of the user's current rules, or None."""
    return con.execute("SELECT rules_json, version FROM user_rules WHERE user_id = ?",
                       [user_id]).fetchone()


def preferences_row(con: DuckDBPyConnection, user_id: str) -> tuple[Any, ...] | None:
    """Return (disabled_modules_json, disclosures_off_json, strictness, nudge_sensitivity),
    or None."""
    return con.execute("SELECT disabled_modules_json, disclosures_off_json, strictness, "
                       "nudge_sensitivity FROM user_preferences WHERE user_id = ?",
                       [user_id]).fetchone()


def template_rows(con: DuckDBPyConnection, user_id: str) -> list[tuple[Any, ...]]:
    """Return (name, template_json) of the user's exit templates, by name."""
    return con.execute("SELECT name, template_json FROM exit_templates WHERE user_id = ? "
                       "ORDER BY name", [user_id]).fetchall()


def rules_history_rows(store: Store, user_id: str) -> list[tuple[Any, ...]]:
    """Return (version, rules_json, created_at) of every stored rules version, oldest first."""
    with store.connect(read_only=True) as con:
        return con.execute("SELECT version, rules_json, created_at FROM user_rules_history "
                           "WHERE user_id = ? ORDER BY version", [user_id]).fetchall()


def rules_json_at(store: Store, user_id: str, version: int) -> str | None:
    """Return the rules JSON the user had at ``version``, or None."""
    frame = store.query("SELECT rules_json FROM user_rules_history WHERE user_id = ? AND "
                        "version = ?", [user_id, int(version)])
    return None if frame.empty else str(frame.iloc[0, 0])


def write_exit_template(store: Store, user_id: str, name: str, template_json: str) -> None:
    """Save (or replace) one exit template of the user."""
    with store.transaction() as con:
        con.execute("INSERT OR REPLACE INTO exit_templates (user_id, name, template_json, "
                    "updated_at) VALUES (?, ?, ?, now())", [user_id, name, template_json])


def write_account(con: DuckDBPyConnection, user_id: str, base_currency: str,
                  equity: float | None, buying_power: float | None, rules_json: str) -> None:
    """Write the user's account row (snapshots in the base currency) inside ``con``'s
    transaction."""
    # risk_defaults_json mirrors the current rules for readers of the seed table alone;
    # user_rules stays the authority.
    con.execute("INSERT OR REPLACE INTO user_accounts (user_id, base_currency, "
                "equity_snapshot, buying_power_snapshot, risk_defaults_json, "
                "updated_at) VALUES (?, ?, ?, ?, ?, now())",
                [user_id, base_currency, equity, buying_power, rules_json])


def write_rules_version(con: DuckDBPyConnection, user_id: str, rules_json: str, version: int
                        ) -> None:
    """Make ``rules_json`` the user's current rules at ``version`` and keep it in the history,
    inside ``con``'s transaction."""
    con.execute("INSERT OR REPLACE INTO user_rules (user_id, rules_json, version, "
                "updated_at) VALUES (?, ?, ?, now())", [user_id, rules_json, version])
    con.execute("INSERT INTO user_rules_history (user_id, version, rules_json, "
                "created_at) VALUES (?, ?, ?, now())", [user_id, version, rules_json])


def write_preferences(con: DuckDBPyConnection, user_id: str, disabled_modules_json: str,
                      disclosures_off_json: str, strictness: str, nudge_sensitivity: str
                      ) -> None:
    """Write the user's preferences row inside ``con``'s transaction."""
    con.execute("INSERT OR REPLACE INTO user_preferences (user_id, "
                "disabled_modules_json, disclosures_off_json, strictness, "
                "nudge_sensitivity, updated_at) VALUES (?, ?, ?, ?, ?, now())",
                [user_id, disabled_modules_json, disclosures_off_json, strictness,
                 nudge_sensitivity])


def account_user_ids(store: Store) -> list[str]:
    """Return the ids of the users with an account, the most recently updated first."""
    with store.connect(read_only=True) as con:
        rows = con.execute("SELECT user_id FROM user_accounts "
                           "ORDER BY updated_at DESC, user_id").fetchall()
    return [str(row[0]) for row in rows]
