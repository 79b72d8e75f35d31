-- 0014: the strategy layer (issue 14).
--
-- trade_entry_facts: one row per trade, what was known at its entry (the embedding's inputs
-- and the context facts, buddy/strategy/facts.py) next to how it ended (from trades). Rebuilt
-- by the job buddy/jobs/strategy.py for trades new or rebuilt since (trade_built_at) or
-- computed under another facts_version. Entry facts read nothing after open_ts; the outcome
-- columns are read point-in-time by close_ts (read_entry_facts(closed_by=...)).
CREATE TABLE trade_entry_facts (
    user_id VARCHAR NOT NULL,
    trade_id VARCHAR PRIMARY KEY,
    intent_id VARCHAR,                   -- the linked intent the plan came from (NULL: none)
    facts_version VARCHAR NOT NULL,      -- buddy.strategy.facts.FACTS_VERSION
    trade_built_at TIMESTAMPTZ,          -- trades.built_at of the row the facts were made from
    computed_at TIMESTAMPTZ NOT NULL,
    -- the embedding's inputs (NULL: not checked, the input was missing)
    side_sign DOUBLE NOT NULL,           -- +1 long, -1 short
    stop_atr DOUBLE,                     -- |entry - stop| / ATR(14)
    reward_risk DOUBLE,                  -- |target - entry| / |entry - stop|
    close_ema20_atr DOUBLE,              -- (last close - EMA20) / ATR(14)
    bb_z DOUBLE,                         -- (last close - SMA20) / stdev20
    high20_atr DOUBLE,                   -- (last close - highest high of the 20 bars before) / ATR(14)
    trend_atr DOUBLE,                    -- (EMA20 - EMA50) / ATR(14)
    rsi_14 DOUBLE,                       -- 0-100
    -- context facts
    symbol VARCHAR NOT NULL,
    timeframe VARCHAR,                   -- the linked intent's, else the symbol's finest bars
    side VARCHAR NOT NULL CHECK (side IN ('long', 'short')),
    hour_local INTEGER,                  -- hour of the entry in the exchange's zone, 0-23
    weekday INTEGER,                     -- weekday of the entry there, 0 Monday .. 6 Sunday
    regime VARCHAR,                      -- trend label at entry: up | down | range
    alignment DOUBLE,                    -- MTFA alignment score signed by the side, -1..+1
    level_ahead_atr DOUBLE,              -- nearest strong level in the trade's way, ATR(14)
    -- outcome (from trades; NULL while open)
    open_ts TIMESTAMPTZ NOT NULL,
    close_ts TIMESTAMPTZ,
    pnl DOUBLE,                          -- account currency, after fees
    pnl_r DOUBLE,                        -- R
    win BOOLEAN,                         -- pnl > 0
    holding_hours DOUBLE,                -- close_ts - open_ts, hours
    size_pct_equity DOUBLE,              -- entry notional / equity as of the entry, percent
    risk_pct_equity DOUBLE               -- initial risk / equity as of the entry, percent
);
CREATE INDEX trade_entry_facts_user_close ON trade_entry_facts (user_id, close_ts);

-- playbook_members loses its key to playbooks: replacing a user's playbooks deletes and
-- re-inserts both tables in ONE transaction, and DuckDB checks a foreign key against rows
-- deleted earlier in the same transaction as if they were still there (see 0009).
-- buddy/store/strategy.py replace_playbooks checks every member's playbook_id instead.
CREATE TABLE playbook_members_0014 AS SELECT * FROM playbook_members;
DROP TABLE playbook_members;
CREATE TABLE playbook_members (
    user_id VARCHAR NOT NULL,
    playbook_id VARCHAR NOT NULL,
    trade_id VARCHAR NOT NULL,
    distance_to_centroid DOUBLE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (playbook_id, trade_id)
);
INSERT INTO playbook_members SELECT * FROM playbook_members_0014;
DROP TABLE playbook_members_0014;
