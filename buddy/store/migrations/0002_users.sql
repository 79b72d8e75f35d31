-- 0002: users. user_accounts and user_rules keep the seed's columns; user_rules holds the
-- CURRENT rules version, and user_rules_history every version ever written (the current one
-- included), so an evaluation's rules_version can always be read back.

CREATE TABLE user_rules_history (
    user_id VARCHAR NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    rules_json JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, version)
);

-- Saved exit plans ("2R target, time stop after 5 bars, break-even at 1R"), by name per user.
CREATE TABLE exit_templates (
    user_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    template_json JSON NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, name)
);

-- Opt-outs and controls: modules and disclosures switched off, strictness, nudge sensitivity.
CREATE TABLE user_preferences (
    user_id VARCHAR PRIMARY KEY,
    disabled_modules_json JSON NOT NULL,
    disclosures_off_json JSON NOT NULL,
    strictness VARCHAR NOT NULL,
    nudge_sensitivity VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- The rules version each evaluation used (NULL when the user had no account then).
ALTER TABLE trade_evaluations ADD COLUMN rules_version INTEGER;
