"""The schema: every seed table with the seed's columns, versioned migrations."""

from __future__ import annotations

import duckdb
import pytest

from buddy.errors import SchemaVersionError
from buddy.store import Store
from buddy.store.core import LATEST_SCHEMA_VERSION, migrations

# The seed roadmap's tables and columns, copied from trading-buddy-roadmap.txt.
SEED_TABLES = {
    "user_accounts": "user_id base_currency equity_snapshot buying_power_snapshot "
                     "risk_defaults_json updated_at",
    "user_rules": "user_id rules_json version updated_at",
    "trade_intents": "intent_id user_id symbol side timeframe proposed_entry proposed_stop "
                     "proposed_target proposed_size proposed_risk_amount holding_horizon "
                     "order_type created_at status",
    "trade_evaluations": "eval_id intent_id user_id symbol timeframe eval_ts overall_score "
                         "overall_severity modules_run_json summary_json created_at",
    "trade_evaluation_items": "eval_item_id eval_id module_name issue_code severity "
                              "evidence_json recommendation_json created_at",
    "trades": "trade_id user_id symbol side open_ts close_ts avg_entry avg_exit qty pnl pnl_r "
              "fees slippage_est outcome_label tags_json linked_intent_id",
    "trade_fills": "fill_id trade_id ts price qty fill_type venue_optional",
    "strategy_profiles": "user_id computed_at profile_json baseline_stats_json version",
    "playbooks": "playbook_id user_id name centroid_vector dispersion_metrics_json stats_json "
                 "created_at updated_at",
    "playbook_members": "user_id playbook_id trade_id distance_to_centroid created_at",
    "regime_snapshots": "symbol timeframe ts trend_state trend_strength vol_state vol_z "
                        "vol_expansion_flag liquidity_state spread_proxy relvol "
                        "hmm_state_id_optional hmm_probs_json computed_at version",
    # the seed's *_json level columns hold typed values since migration 0011 (STRUCT and
    # LIST of STRUCT); their names are the seed's
    "key_levels": "symbol timeframe ts prior_day_high prior_day_low prior_day_close pivots_json "
                  "anchored_vwap_levels_json rolling_range_high rolling_range_low "
                  "support_resistance_json computed_at version",
    "positions": "user_id symbol qty avg_price open_ts unrealized_pnl risk_est_optional "
                 "updated_at",
    "portfolio_exposure_snapshots": "user_id ts gross_exposure net_exposure "
                                    "sector_exposure_json benchmark_beta_json "
                                    "correlation_clusters_json portfolio_heat_score "
                                    "computed_at version",
    "behavior_events": "event_id user_id ts event_type severity evidence_json "
                       "action_suggested_json linked_intent_id_optional "
                       "linked_trade_id_optional",
    "trade_journal": "journal_id user_id trade_id_optional intent_id_optional note_text "
                     "tags_json created_at",
    "post_trade_reviews": "review_id trade_id user_id generated_at process_grade "
                          "key_lessons_json what_went_well_json what_to_improve_json "
                          "linked_eval_id_optional version",
    "assistant_sessions": "session_id user_id started_at last_active_at mode "
                          "session_state_json",
    "assistant_messages": "msg_id session_id ts role content_or_ref tool_calls_json_optional",
    # what the seed assumes already exists
    "tickers": "symbol name asset_class exchange currency sector tick_size lot_size "
               "trading_calendar benchmark",
    "bars": "symbol timeframe ts open high low close volume",
}


def test_every_seed_table_has_the_seed_columns(empty_store: Store) -> None:
    tables = empty_store.tables()
    for table, columns in SEED_TABLES.items():
        assert table in tables, table
        missing = set(columns.split()) - set(tables[table])
        assert not missing, f"{table} lacks {missing}"
    assert "ta_features" in tables and "atr_14" in tables["ta_features"]


def test_schema_version_is_recorded(empty_store: Store) -> None:
    assert empty_store.schema_version() == LATEST_SCHEMA_VERSION
    rows = empty_store.query("SELECT version, name FROM schema_migrations ORDER BY version")
    assert list(rows["version"]) == [v for v, _, _ in migrations()]


def test_an_empty_older_file_is_upgraded_on_open(tmp_path) -> None:
    path = tmp_path / "old.duckdb"
    duckdb.connect(str(path)).close()  # a file from before any migration: version 0
    store = Store(path)
    assert store.schema_version() == LATEST_SCHEMA_VERSION
    assert "trade_intents" in store.tables()


def test_a_missing_earlier_migration_is_applied_on_open(tmp_path) -> None:
    # a file can hold the latest version yet miss one that was added after it was created
    path = tmp_path / "gap.duckdb"
    Store(path)
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE demo_behavior_truth")
    con.execute("DROP TABLE demo_trade_truth")
    con.execute("DELETE FROM schema_migrations WHERE version = 10")
    con.close()
    store = Store(path)
    assert 10 in set(store.query("SELECT version FROM schema_migrations")["version"])
    assert {"demo_trade_truth", "demo_behavior_truth"} <= set(store.tables())


def test_a_newer_file_is_refused_with_a_clear_message(tmp_path) -> None:
    path = tmp_path / "new.duckdb"
    Store(path)
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_migrations VALUES (999, 'from_the_future', now())")
    con.close()
    with pytest.raises(SchemaVersionError, match=r"schema version 999.*newer"):
        Store(path)


def test_primary_keys_where_the_seed_marks_them(empty_store: Store) -> None:
    from buddy.domain import TradeIntent  # noqa: F401  (import check only)

    row = {"intent_id": "i1", "user_id": "u", "symbol": "AAPL", "side": "long",
           "timeframe": "1d", "proposed_entry": 1.0, "proposed_size": 1.0,
           "order_type": "limit", "as_of": "2012-06-01T00:00Z", "created_at": "2012-06-01",
           "status": "draft"}
    with empty_store.connect() as con:
        cols = ", ".join(row)
        con.execute(f"INSERT INTO trade_intents ({cols}) VALUES "
                    f"({', '.join('?' * len(row))})", list(row.values()))
        with pytest.raises(duckdb.ConstraintException):
            con.execute(f"INSERT INTO trade_intents ({cols}) VALUES "
                        f"({', '.join('?' * len(row))})", list(row.values()))
