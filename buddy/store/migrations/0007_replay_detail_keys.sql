-- Replay detail tables without their own primary keys.
--
-- A replay chunk writes replay_results, replay_module_results, replay_issues and
-- replay_outcomes in ONE transaction, and replay_results keeps its PRIMARY KEY (run_id,
-- intent_id): writing an intent a second time violates it and rolls the whole chunk back, so
-- the detail rows of an intent can only be written together with its result row, once.
-- Their own primary-key indexes made every chunk write about three times slower (DuckDB
-- maintains an ART index per key) and guarded nothing the result key does not.
CREATE TABLE replay_module_results_0007 AS SELECT * FROM replay_module_results;
DROP TABLE replay_module_results;
CREATE TABLE replay_module_results (
    run_id VARCHAR NOT NULL,
    intent_id VARCHAR NOT NULL,
    module VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    status VARCHAR NOT NULL,         -- ModuleStatus: ok | skipped | error
    score DOUBLE,                    -- NULL when skipped or errored
    severity VARCHAR NOT NULL,
    n_issues INTEGER NOT NULL
);
INSERT INTO replay_module_results SELECT * FROM replay_module_results_0007;
DROP TABLE replay_module_results_0007;

CREATE TABLE replay_issues_0007 AS SELECT * FROM replay_issues;
DROP TABLE replay_issues;
-- Every issue every module raised (before the report's dedupe), in the module's order.
CREATE TABLE replay_issues (
    run_id VARCHAR NOT NULL,
    intent_id VARCHAR NOT NULL,
    module VARCHAR NOT NULL,
    issue_no INTEGER NOT NULL,       -- position in the module's issues (codes may repeat)
    code VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    evidence_json JSON NOT NULL
);
INSERT INTO replay_issues SELECT * FROM replay_issues_0007;
DROP TABLE replay_issues_0007;
