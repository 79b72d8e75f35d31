-- 0020: A/B experiments on nudges and warnings, and the trader's feedback on report items
-- (issue 19 section 3; buddy/behavior/experiments.py, buddy/behavior/feedback.py).
--
-- The arm each experiment assigned is stored ON the evaluation (trade_evaluations gains a
-- column beside the seed's), written in the same transaction as the evaluation itself:
-- a JSON list of {experiment_id, arm, action, codes, exempt} (NULL: no experiment ran).
ALTER TABLE trade_evaluations ADD COLUMN experiment_arms_json JSON;

-- An experiment: which report items it may change (issue codes of warnings or nudges), its
-- arms (name, action show | reword | hold_back, weight, reword style) and its audience.
-- Assignment is a pure function of (experiment, user, intent): nothing per unit is stored
-- here. Items more severe than max_severity are always shown unchanged.
CREATE TABLE nudge_experiments (
    experiment_id VARCHAR PRIMARY KEY,
    description VARCHAR NOT NULL,
    codes_json JSON NOT NULL,            -- list of issue codes the arms apply to
    arms_json JSON NOT NULL,             -- list of {name, action, weight, style}; first = control
    users_json JSON NOT NULL,            -- list of user ids; empty: every user
    max_severity VARCHAR NOT NULL CHECK (max_severity IN ('info', 'low', 'medium', 'high',
                                                          'critical')),
    status VARCHAR NOT NULL CHECK (status IN ('active', 'ended')),
    created_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ
);

-- The trader's feedback on one item of one report: dismissed, and a rating (helpful TRUE,
-- not helpful FALSE, NULL not rated). One row per (evaluation, issue code): a later rating
-- replaces an earlier one; a dismissal stays.
CREATE TABLE report_item_feedback (
    eval_id VARCHAR NOT NULL,
    issue_code VARCHAR NOT NULL,
    user_id VARCHAR NOT NULL,
    module_name VARCHAR NOT NULL,
    dismissed BOOLEAN NOT NULL,
    helpful BOOLEAN,
    source VARCHAR NOT NULL CHECK (source IN ('cli', 'widget', 'api')),
    first_at TIMESTAMPTZ NOT NULL,       -- the first feedback on this item
    updated_at TIMESTAMPTZ NOT NULL,     -- the latest
    PRIMARY KEY (eval_id, issue_code)
);
CREATE INDEX report_item_feedback_user ON report_item_feedback (user_id);
