-- 0019: the trader's controls over behaviour nudges (issue 19, buddy/behavior/settings.py).
--
-- user_preferences.nudge_sensitivity (0002) stays the user's default level ('off' switches
-- every nudge off); these tables add what the seed lacks: a level and an opt-out per
-- detector, the frequency cap and the quiet window after a dismissal, and the dismissals.
-- Which nudges were shown is not stored twice: it is the behavior_nudges items of the
-- user's logged evaluations (trade_evaluation_items).

-- One row per (user, detector) the user changed; absent: the user's default level, opted in.
CREATE TABLE nudge_settings (
    user_id VARCHAR NOT NULL,
    detector VARCHAR NOT NULL,
    sensitivity VARCHAR CHECK (sensitivity IN ('low', 'medium', 'high')),  -- NULL: default
    opted_out BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, detector)
);

-- The frequency cap and the quiet window (absent: the defaults of NudgeSettings).
CREATE TABLE nudge_limits (
    user_id VARCHAR PRIMARY KEY,
    max_per_day INTEGER NOT NULL CHECK (max_per_day >= 0),           -- nudges per 24 hours
    dismiss_quiet_hours DOUBLE NOT NULL CHECK (dismiss_quiet_hours >= 0),  -- hours
    updated_at TIMESTAMPTZ NOT NULL
);

-- A nudge the user dismissed: the same detector's nudge is not shown again within the quiet
-- window after dismissed_at (read point-in-time: dismissed_at <= the evaluation's as_of).
CREATE TABLE nudge_dismissals (
    user_id VARCHAR NOT NULL,
    detector VARCHAR NOT NULL,
    dismissed_at TIMESTAMPTZ NOT NULL,
    eval_id VARCHAR,                     -- the evaluation whose report showed it, if known
    intent_id VARCHAR,
    PRIMARY KEY (user_id, detector, dismissed_at)
);
