-- 0006: historical replay. One replay_runs row per run; every other table is keyed by
-- (run_id, intent_id, ...) with a PRIMARY KEY, so a resumed run can never write a row twice.
-- Column contracts: replay.model (INTENT_COLUMNS, OUTCOME_COLUMNS, RESULT_COLUMNS,
-- ISSUE_COLUMNS). The engine writes each chunk's results, module results, issues and outcomes
-- in ONE transaction: an intent has either all of its rows or none.

CREATE TABLE replay_runs (
    run_id VARCHAR PRIMARY KEY,      -- derived from config hash, intents hash, name, context
    name VARCHAR NOT NULL,
    config_name VARCHAR NOT NULL,
    config_version VARCHAR NOT NULL,
    config_hash VARCHAR NOT NULL,
    config_json JSON NOT NULL,       -- the full ScoringConfig, to rerun or resume it exactly
    intent_source VARCHAR NOT NULL,  -- the intents' distinct sources, comma-separated
    intents_hash VARCHAR NOT NULL,   -- SHA-256 of the canonical intents frame
    context_json JSON NOT NULL,      -- how packs were built: lookback bars, piece providers
    market_data_version BIGINT NOT NULL,  -- store_meta's counter when the run started
    data_start TIMESTAMPTZ,          -- the earliest intent as_of
    data_end TIMESTAMPTZ,            -- the latest intent as_of
    n_intents INTEGER NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    created_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ
);

CREATE TABLE replay_intents (
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
    PRIMARY KEY (run_id, intent_id)
);

-- One row per evaluated intent (the per-module scores live in replay_module_results).
CREATE TABLE replay_results (
    run_id VARCHAR NOT NULL,
    intent_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL,
    side VARCHAR NOT NULL,
    as_of TIMESTAMPTZ NOT NULL,
    overall_score DOUBLE,            -- NULL when no module scored
    overall_severity VARCHAR NOT NULL,
    n_issues INTEGER NOT NULL,       -- the report's issues after dedupe (all, not the top)
    PRIMARY KEY (run_id, intent_id)
);

CREATE TABLE replay_module_results (
    run_id VARCHAR NOT NULL,
    intent_id VARCHAR NOT NULL,
    module VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    status VARCHAR NOT NULL,         -- ModuleStatus: ok | skipped | error
    score DOUBLE,                    -- NULL when skipped or errored
    severity VARCHAR NOT NULL,
    n_issues INTEGER NOT NULL,
    PRIMARY KEY (run_id, intent_id, module)
);

-- Every issue every module raised (before the report's dedupe), in the module's order.
CREATE TABLE replay_issues (
    run_id VARCHAR NOT NULL,
    intent_id VARCHAR NOT NULL,
    module VARCHAR NOT NULL,
    issue_no INTEGER NOT NULL,       -- position in the module's issues (codes may repeat)
    code VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    evidence_json JSON NOT NULL,
    PRIMARY KEY (run_id, intent_id, module, issue_no)
);

CREATE TABLE replay_outcomes (
    run_id VARCHAR NOT NULL,
    intent_id VARCHAR NOT NULL,
    exit_reason VARCHAR NOT NULL,
    entry_ts TIMESTAMPTZ,
    exit_ts TIMESTAMPTZ,
    exit_price DOUBLE,
    realized_r DOUBLE,
    mae_r DOUBLE,
    mfe_r DOUBLE,
    mae_price DOUBLE,
    mfe_price DOUBLE,
    bars_held INTEGER,
    win BOOLEAN,
    outcome_source VARCHAR NOT NULL,
    PRIMARY KEY (run_id, intent_id)
);
