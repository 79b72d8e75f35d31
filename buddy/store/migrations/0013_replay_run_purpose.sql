-- 0013: every replay run says what it was made for. 'research' runs (replays, calibration,
-- weight search) are the ones "the latest run" means; 'gate' runs are the promotion gate's
-- holdout replays, which must never feed a fit: weights fitted on the holdout that then
-- judges them would pass any gate. DuckDB cannot add a CHECK to an existing table, so the
-- table is rebuilt (no other table references it). Existing runs the gate made are
-- recognised by the name it has always given them ('holdout-<window key>').
CREATE TABLE replay_runs_0013 AS SELECT * FROM replay_runs;
DROP TABLE replay_runs;
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
    finished_at TIMESTAMPTZ,
    -- 'research': may be fitted on and is what "latest run" means; 'gate': a holdout replay
    purpose VARCHAR NOT NULL DEFAULT 'research' CHECK (purpose IN ('research', 'gate'))
);
INSERT INTO replay_runs
SELECT run_id, name, config_name, config_version, config_hash, config_json, intent_source,
       intents_hash, context_json, market_data_version, data_start, data_end, n_intents,
       status, created_at, finished_at,
       CASE WHEN name LIKE 'holdout-%' THEN 'gate' ELSE 'research' END
FROM replay_runs_0013;
DROP TABLE replay_runs_0013;
