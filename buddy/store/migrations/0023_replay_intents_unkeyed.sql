-- 0023: replay_intents without its PRIMARY KEY (issue 15: the replay's parent process).
--
-- The key (run_id, intent_id) was an index nobody reads through: every reader joins the
-- run's intents on (run_id, intent_no) or scans one run, and a run's intents are written
-- once, in one transaction, by the run's creation after replay.engine.normalize_intents
-- refused repeated intent ids. At a million intents the index cost 1.6 CPU s of the run's
-- creation (of 2.7) and 73 MB of the file (of 112). DuckDB cannot drop a constraint in
-- place: the table is rebuilt with the same columns, in the same order.

CREATE TABLE replay_intents_0023 (
    run_id VARCHAR NOT NULL,
    intent_id VARCHAR NOT NULL,
    user_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    side VARCHAR NOT NULL CHECK (side IN ('long', 'short')),
    timeframe VARCHAR NOT NULL,
    as_of TIMESTAMPTZ NOT NULL,
    proposed_entry DOUBLE NOT NULL,
    proposed_stop DOUBLE NOT NULL,
    proposed_target DOUBLE,
    proposed_size DOUBLE NOT NULL,
    holding_horizon INTEGER NOT NULL,
    order_type VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    linked_trade_id VARCHAR,
    intent_no INTEGER NOT NULL       -- 0-based position in the run's canonical order
);
INSERT INTO replay_intents_0023 SELECT * FROM replay_intents ORDER BY run_id, intent_no;
DROP TABLE replay_intents;
ALTER TABLE replay_intents_0023 RENAME TO replay_intents;
