-- 0015: the compact replay result schema (issue 15). Integer keys instead of VARCHAR ones, one
-- WIDE row per intent instead of a result row + one row per module + an outcome row, issue
-- codes and modules numbered per run. A million intents' results then write in a few CPU
-- seconds where the old four tables took about 24 before any of our code ran.
--
-- - replay_runs gains run_key (unique; the engine assigns max + 1 at creation, existing runs
--   are numbered by created_at, run_id). DuckDB cannot add UNIQUE to an existing table, so
--   it is rebuilt, as in 0013 (no other table references it).
-- - replay_intents gains intent_no: the intent's 0-based position in the run's canonical
--   order (replay.engine.INTENT_ORDER: symbol, timeframe, as_of, intent_id).
-- - replay_modules: the config's modules in order (module_no), with their versions.
-- - replay_codes: every code the run's modules may raise, numbered (code_no). New runs write
--   them at creation from the config (replay.engine.config_codes); existing runs get the
--   distinct (module, code) they raised, by module order then code.
-- - replay_results: one row per evaluated intent, PRIMARY KEY (run_key, intent_no): the
--   verdict as a severity rank (0 info .. 4 critical), per-module lists in module_no order
--   (a NULL element: the module did not run on that intent), and the outcome columns
--   (exit_reason and outcome_source coded as replay.model.EXIT_REASONS / OUTCOME_SOURCES;
--   all NULL when unlabelled). replay_module_results and replay_outcomes are merged into it.
-- - replay_issues: no key (bulk Arrow inserts; the result row written in the same
--   transaction refuses a second write of an intent). evidence_json is TRANSITIONAL: 0016
--   replaces it with typed fact columns.
-- Codes written here (severity ranks, status and outcome codes) are replay.model's: a value
-- outside them stops the migration (error()) rather than being stored as NULL.

-- ---------------------------------------------------------------- replay_runs + run_key
CREATE TABLE replay_runs_0015 AS SELECT * FROM replay_runs;
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
    purpose VARCHAR NOT NULL DEFAULT 'research' CHECK (purpose IN ('research', 'gate')),
    run_key INTEGER NOT NULL UNIQUE  -- the run's integer key in every result table
);
INSERT INTO replay_runs
SELECT *, row_number() OVER (ORDER BY created_at, run_id)::INTEGER FROM replay_runs_0015;
DROP TABLE replay_runs_0015;

-- ---------------------------------------------------------------- replay_intents + intent_no
CREATE TABLE replay_intents_0015 AS SELECT * FROM replay_intents;
DROP TABLE replay_intents;
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
    intent_no INTEGER NOT NULL,      -- 0-based position in the run's canonical order
    PRIMARY KEY (run_id, intent_id)
);
INSERT INTO replay_intents
SELECT *, (row_number() OVER (PARTITION BY run_id
                              ORDER BY symbol, timeframe, as_of, intent_id) - 1)::INTEGER
FROM replay_intents_0015;
DROP TABLE replay_intents_0015;

-- ---------------------------------------------------------------- replay_modules
CREATE TABLE replay_modules (
    run_key INTEGER NOT NULL,
    module_no UTINYINT NOT NULL,     -- position in the config's modules
    module VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    PRIMARY KEY (run_key, module_no)
);
INSERT INTO replay_modules
WITH configured AS (
    SELECT r.run_id, u.module, u.pos
    FROM replay_runs AS r,
         unnest(json_extract_string(r.config_json, '$.modules[*].name'))
             WITH ORDINALITY AS u(module, pos)
), ran AS (
    SELECT run_id, module, min(version) AS version
    FROM (SELECT run_id, module, version FROM replay_module_results
          UNION ALL SELECT run_id, module, NULL FROM replay_issues)
    GROUP BY run_id, module
), extra AS (  -- modules that ran but are not in the stored config: after it, by name
    SELECT ran.run_id, ran.module,
           1000000 + row_number() OVER (PARTITION BY ran.run_id ORDER BY ran.module) AS pos
    FROM ran
    WHERE NOT EXISTS (SELECT 1 FROM configured AS c
                      WHERE c.run_id = ran.run_id AND c.module = ran.module)
), every AS (
    SELECT * FROM configured UNION ALL SELECT * FROM extra
)
SELECT r.run_key,
       (row_number() OVER (PARTITION BY e.run_id ORDER BY e.pos) - 1)::UTINYINT,
       e.module,
       coalesce(ran.version,
                json_extract_string(r.config_json,
                                    '$.resolved.modules."' || e.module || '".version'), '')
FROM every AS e
JOIN replay_runs AS r ON r.run_id = e.run_id
LEFT JOIN ran ON ran.run_id = e.run_id AND ran.module = e.module;

-- ---------------------------------------------------------------- replay_codes
CREATE TABLE replay_codes (
    run_key INTEGER NOT NULL,
    code_no USMALLINT NOT NULL,
    module VARCHAR NOT NULL,
    code VARCHAR NOT NULL,
    PRIMARY KEY (run_key, code_no)
);
INSERT INTO replay_codes
SELECT m.run_key,
       (row_number() OVER (PARTITION BY m.run_key ORDER BY m.module_no, c.code) - 1)::USMALLINT,
       c.module, c.code
FROM (SELECT DISTINCT run_id, module, code FROM replay_issues) AS c
JOIN replay_runs AS r ON r.run_id = c.run_id
JOIN replay_modules AS m ON m.run_key = r.run_key AND m.module = c.module;

-- ---------------------------------------------------------------- replay_results (wide)
CREATE TABLE replay_results_0015 (
    run_key INTEGER NOT NULL,
    intent_no INTEGER NOT NULL,
    overall_score DOUBLE,            -- 0-100, NULL when no module scored
    verdict UTINYINT NOT NULL,       -- severity rank of the overall severity (0 info .. 4)
    n_issues SMALLINT NOT NULL,      -- the report's issues after dedupe
    module_scores DOUBLE[] NOT NULL,     -- by module_no; NULL/NaN when skipped or errored
    module_status UTINYINT[] NOT NULL,   -- replay.model.MODULE_STATUSES; NULL: did not run
    module_severity UTINYINT[] NOT NULL, -- severity ranks
    module_n_issues SMALLINT[] NOT NULL,
    exit_reason UTINYINT,            -- replay.model.EXIT_REASONS; NULL when unlabelled
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
    outcome_source UTINYINT,         -- replay.model.OUTCOME_SOURCES
    filled BOOLEAN,
    fill_ts TIMESTAMPTZ,
    fill_price DOUBLE,
    PRIMARY KEY (run_key, intent_no)
);
INSERT INTO replay_results_0015
WITH keys AS (
    SELECT r.run_id, r.run_key, i.intent_id, i.intent_no
    FROM replay_runs AS r JOIN replay_intents AS i ON i.run_id = r.run_id
), grid AS (
    SELECT k.run_key, k.intent_no, m.module_no, mr.score,
           CASE WHEN mr.status IS NULL THEN NULL
                WHEN list_position(['ok', 'skipped', 'error'], mr.status) IS NULL
                THEN error('replay_module_results.status: ' || mr.status
                           || ' is not ok, skipped or error')
                ELSE list_position(['ok', 'skipped', 'error'], mr.status) - 1
           END::UTINYINT AS status,
           CASE WHEN mr.severity IS NULL THEN NULL
                WHEN list_position(['info', 'low', 'medium', 'high', 'critical'],
                                   mr.severity) IS NULL
                THEN error('replay_module_results.severity: ' || mr.severity
                           || ' is not a severity')
                ELSE list_position(['info', 'low', 'medium', 'high', 'critical'],
                                   mr.severity) - 1
           END::UTINYINT AS severity,
           mr.n_issues::SMALLINT AS n_issues
    FROM replay_results AS o
    JOIN keys AS k ON k.run_id = o.run_id AND k.intent_id = o.intent_id
    JOIN replay_modules AS m ON m.run_key = k.run_key
    LEFT JOIN replay_module_results AS mr
        ON mr.run_id = o.run_id AND mr.intent_id = o.intent_id AND mr.module = m.module
), lists AS (
    SELECT run_key, intent_no,
           list(score ORDER BY module_no) AS module_scores,
           list(status ORDER BY module_no) AS module_status,
           list(severity ORDER BY module_no) AS module_severity,
           list(n_issues ORDER BY module_no) AS module_n_issues
    FROM grid GROUP BY run_key, intent_no
)
SELECT k.run_key, k.intent_no, o.overall_score,
       CASE WHEN list_position(['info', 'low', 'medium', 'high', 'critical'],
                               o.overall_severity) IS NULL
            THEN error('replay_results.overall_severity: ' || o.overall_severity
                       || ' is not a severity')
            ELSE list_position(['info', 'low', 'medium', 'high', 'critical'],
                               o.overall_severity) - 1
       END::UTINYINT,
       o.n_issues::SMALLINT,
       coalesce(l.module_scores, []), coalesce(l.module_status, []),
       coalesce(l.module_severity, []), coalesce(l.module_n_issues, []),
       CASE WHEN oc.exit_reason IS NULL THEN NULL
            WHEN list_position(['stop', 'target', 'time', 'open', 'not_filled', 'trade'],
                               oc.exit_reason) IS NULL
            THEN error('replay_outcomes.exit_reason: ' || oc.exit_reason
                       || ' is not an exit reason')
            ELSE list_position(['stop', 'target', 'time', 'open', 'not_filled', 'trade'],
                               oc.exit_reason) - 1
       END::UTINYINT,
       oc.entry_ts, oc.exit_ts, oc.exit_price, oc.realized_r, oc.mae_r, oc.mfe_r,
       oc.mae_price, oc.mfe_price, oc.bars_held, oc.win,
       CASE WHEN oc.outcome_source IS NULL THEN NULL
            WHEN list_position(['simulated', 'trade'], oc.outcome_source) IS NULL
            THEN error('replay_outcomes.outcome_source: ' || oc.outcome_source
                       || ' is not simulated or trade')
            ELSE list_position(['simulated', 'trade'], oc.outcome_source) - 1
       END::UTINYINT,
       oc.filled, oc.fill_ts, oc.fill_price
FROM replay_results AS o
JOIN keys AS k ON k.run_id = o.run_id AND k.intent_id = o.intent_id
LEFT JOIN lists AS l ON l.run_key = k.run_key AND l.intent_no = k.intent_no
LEFT JOIN replay_outcomes AS oc ON oc.run_id = o.run_id AND oc.intent_id = o.intent_id;

-- ---------------------------------------------------------------- replay_issues (compact)
CREATE TABLE replay_issues_0015 (
    run_key INTEGER NOT NULL,
    intent_no INTEGER NOT NULL,
    module_no UTINYINT NOT NULL,
    issue_no USMALLINT NOT NULL,     -- position in the module's issues (codes may repeat)
    code_no USMALLINT NOT NULL,      -- replay_codes
    severity UTINYINT NOT NULL,      -- severity rank
    evidence_json VARCHAR NOT NULL   -- TRANSITIONAL: typed fact columns in 0016
);
INSERT INTO replay_issues_0015
SELECT k.run_key, k.intent_no, m.module_no, iss.issue_no::USMALLINT, c.code_no,
       CASE WHEN list_position(['info', 'low', 'medium', 'high', 'critical'],
                               iss.severity) IS NULL
            THEN error('replay_issues.severity: ' || iss.severity || ' is not a severity')
            ELSE list_position(['info', 'low', 'medium', 'high', 'critical'],
                               iss.severity) - 1
       END::UTINYINT,
       iss.evidence_json::VARCHAR
FROM replay_issues AS iss
JOIN (SELECT r.run_id, r.run_key, i.intent_id, i.intent_no
      FROM replay_runs AS r JOIN replay_intents AS i ON i.run_id = r.run_id) AS k
    ON k.run_id = iss.run_id AND k.intent_id = iss.intent_id
JOIN replay_modules AS m ON m.run_key = k.run_key AND m.module = iss.module
JOIN replay_codes AS c ON c.run_key = k.run_key AND c.module = iss.module AND c.code = iss.code;

DROP TABLE replay_results;
DROP TABLE replay_module_results;
DROP TABLE replay_issues;
DROP TABLE replay_outcomes;
ALTER TABLE replay_results_0015 RENAME TO replay_results;
ALTER TABLE replay_issues_0015 RENAME TO replay_issues;
