-- 0016: replay issue evidence as typed fact columns (issue 15). 0015 kept each issue's
-- evidence as a JSON string per row; it becomes typed columns in the code's declared fact
-- order (buddy.store.replay_facts: numbers as DOUBLE lists, the JSON text only of values
-- that are not floats, names and units only where they differ from the code's declared
-- ones), and replay.evidence renders the evidence back, byte for byte, when a person asks.
--
-- replay_codes gains the declared fact names and units of each code. Codes of runs made
-- before this migration take those of the code's first issue (by intent, module and issue
-- number); new runs write the evaluators' declarations (replay.engine.config_codes).
ALTER TABLE replay_codes ADD COLUMN fact_names VARCHAR[];
ALTER TABLE replay_codes ADD COLUMN fact_units VARCHAR[];
UPDATE replay_codes AS c SET fact_names = f.names, fact_units = f.units
FROM (
    SELECT run_key, code_no,
           arg_min(list_transform(json_transform(evidence_json, '[{"name": "VARCHAR"}]'),
                                  lambda x: x.name), [intent_no, module_no, issue_no]) AS names,
           arg_min(list_transform(json_transform(evidence_json, '[{"unit": "VARCHAR"}]'),
                                  lambda x: x.unit), [intent_no, module_no, issue_no]) AS units
    FROM replay_issues GROUP BY run_key, code_no
) AS f
WHERE c.run_key = f.run_key AND c.code_no = f.code_no;

CREATE TABLE replay_issues_0016 (
    run_key INTEGER NOT NULL,
    intent_no INTEGER NOT NULL,
    module_no UTINYINT NOT NULL,
    issue_no USMALLINT NOT NULL,     -- position in the module's issues (codes may repeat)
    code_no USMALLINT NOT NULL,      -- replay_codes
    severity UTINYINT NOT NULL,      -- severity rank
    fact_values DOUBLE[],            -- each fact's value as a number, NULL where not one
    fact_json VARCHAR[],             -- NULL when every value is a float; else the JSON text
                                     -- of each value that is not a float
    fact_thresholds DOUBLE[],        -- NULL when no fact has a threshold
    threshold_json VARCHAR[],        -- as fact_json, for thresholds
    fact_names VARCHAR[],            -- NULL: the code's declared names (replay_codes)
    fact_units VARCHAR[]             -- NULL: the code's declared units (replay_codes)
);
INSERT INTO replay_issues_0016
SELECT e.run_key, e.intent_no, e.module_no, e.issue_no, e.code_no, e.severity,
       list_transform(e.facts, lambda f: CASE WHEN coalesce(json_type(f.value), 'NULL') IN ('DOUBLE', 'BIGINT', 'UBIGINT') THEN CAST(f.value AS DOUBLE) END) AS fact_values,
       CASE WHEN list_bool_or(list_transform(e.facts, lambda f: coalesce(json_type(f.value), 'NULL') <> 'DOUBLE')) THEN list_transform(e.facts, lambda f: CASE WHEN coalesce(json_type(f.value), 'NULL') <> 'DOUBLE' THEN coalesce(CAST(f.value AS VARCHAR), 'null') END) END AS fact_json,
       CASE WHEN list_bool_or(list_transform(e.facts, lambda f: coalesce(json_type(f.threshold), 'NULL') <> 'NULL')) THEN list_transform(e.facts, lambda f: CASE WHEN coalesce(json_type(f.threshold), 'NULL') IN ('DOUBLE', 'BIGINT', 'UBIGINT') THEN CAST(f.threshold AS DOUBLE) END) END AS fact_thresholds,
       CASE WHEN list_bool_or(list_transform(e.facts, lambda f: coalesce(json_type(f.threshold), 'NULL') NOT IN ('DOUBLE', 'NULL'))) THEN list_transform(e.facts, lambda f: CASE WHEN coalesce(json_type(f.threshold), 'NULL') NOT IN ('DOUBLE', 'NULL') THEN CAST(f.threshold AS VARCHAR) END) END AS threshold_json,
       CASE WHEN list_transform(e.facts, lambda f: f.name) IS DISTINCT FROM c.fact_names THEN list_transform(e.facts, lambda f: f.name) END AS fact_names,
       CASE WHEN list_transform(e.facts, lambda f: f.unit) IS DISTINCT FROM c.fact_units THEN list_transform(e.facts, lambda f: f.unit) END AS fact_units
FROM (SELECT *, json_transform(evidence_json, '[{"name": "VARCHAR", "threshold": "JSON", "unit": "VARCHAR", "value": "JSON"}]') AS facts
      FROM replay_issues) AS e
JOIN replay_codes AS c ON c.run_key = e.run_key AND c.code_no = e.code_no;
DROP TABLE replay_issues;
ALTER TABLE replay_issues_0016 RENAME TO replay_issues;
