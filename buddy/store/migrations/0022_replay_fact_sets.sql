-- 0022: replay results that write at bulk-insert speed (issue 15, section 2).
--
-- Measured on the bench's own rows (100,000 intents: 100,000 result rows, 757,947 issue
-- rows), a DuckDB insert of the 0016 layout spends about 70 % of its time on the issues'
-- typed fact lists, and 0.6 of 0.76 million issues repeat a fact set already in their chunk
-- (a module whose piece is missing says the same words on every intent). (Measured too, and
-- kept: the results' PRIMARY KEY, which costs under 2 % of a million intents' writes.)
--
-- - replay_facts: each distinct set of typed facts (0016's columns: fact_values, fact_json,
--   fact_thresholds, threshold_json, fact_names, fact_units), numbered per run (facts_no).
--   The engine writes each chunk's distinct sets once; the issues point at them.
-- - replay_issues: the typed fact columns give way to facts_no (replay_facts of the run).
--   Existing issues get one fact set each, numbered by intent_no, module_no, issue_no.
-- What a reader sees does not change: issue_facts joins replay_facts back, and the result
-- hash reads replay_issues with its facts joined in (the 0016 table, column for column).

-- ---------------------------------------------------------------- replay_facts
CREATE TABLE replay_facts (
    run_key INTEGER NOT NULL,
    facts_no INTEGER NOT NULL,       -- per run; replay_issues.facts_no
    fact_values DOUBLE[],            -- each fact's value as a number, NULL where not one
    fact_json VARCHAR[],             -- NULL when every value is a float; else the JSON text
                                     -- of each value that is not a float
    fact_thresholds DOUBLE[],        -- NULL when no fact has a threshold
    threshold_json VARCHAR[],        -- as fact_json, for thresholds
    fact_names VARCHAR[],            -- NULL: the issue's code's declared names (replay_codes)
    fact_units VARCHAR[]             -- NULL: the issue's code's declared units (replay_codes)
);

CREATE TABLE replay_issues_0022 (
    run_key INTEGER NOT NULL,
    intent_no INTEGER NOT NULL,
    module_no UTINYINT NOT NULL,
    issue_no USMALLINT NOT NULL,     -- position in the module's issues (codes may repeat)
    code_no USMALLINT NOT NULL,      -- replay_codes
    severity UTINYINT NOT NULL,      -- severity rank
    facts_no INTEGER NOT NULL        -- replay_facts of the run
);

CREATE TABLE replay_issues_numbered AS
SELECT *, (row_number() OVER (PARTITION BY run_key ORDER BY intent_no, module_no, issue_no)
           - 1)::INTEGER AS facts_no
FROM replay_issues;

INSERT INTO replay_facts
SELECT run_key, facts_no, fact_values, fact_json, fact_thresholds, threshold_json,
       fact_names, fact_units
FROM replay_issues_numbered ORDER BY run_key, facts_no;

INSERT INTO replay_issues_0022
SELECT run_key, intent_no, module_no, issue_no, code_no, severity, facts_no
FROM replay_issues_numbered ORDER BY run_key, intent_no, module_no, issue_no;

DROP TABLE replay_issues_numbered;
DROP TABLE replay_issues;
ALTER TABLE replay_issues_0022 RENAME TO replay_issues;
