-- 0009: round-trip trades from broker fills, their reviews, and stops a trader gives by hand.
--
-- trades, trade_fills and post_trade_reviews keep the seed's columns and gain the ones the
-- fills-to-trades grouping and the post-trade review need. They are recreated WITHOUT foreign
-- keys to trades: a rebuild replaces a user's trades and their fills in ONE transaction, and
-- DuckDB checks a foreign key against rows deleted earlier in the same transaction as if they
-- were still there ("key is still referenced"), so delete-then-insert of a referenced trade
-- could never commit. playbook_members loses its key to trades for the same reason (its key
-- to playbooks stays). trade_ids are derived from (user, symbol, first fill), so a rebuild
-- gives the same ids and reviews, journal notes and playbook members stay attached.
CREATE TABLE trades_0009 AS SELECT * FROM trades;
CREATE TABLE trade_fills_0009 AS SELECT * FROM trade_fills;
CREATE TABLE post_trade_reviews_0009 AS SELECT * FROM post_trade_reviews;
CREATE TABLE playbook_members_0009 AS SELECT * FROM playbook_members;
DROP TABLE playbook_members;
DROP TABLE post_trade_reviews;
DROP TABLE trade_fills;
DROP TABLE trades;

CREATE TABLE trades (
    trade_id VARCHAR PRIMARY KEY,
    user_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    side VARCHAR NOT NULL CHECK (side IN ('long', 'short')),
    open_ts TIMESTAMPTZ NOT NULL,
    close_ts TIMESTAMPTZ,            -- NULL while the trade is open
    avg_entry DOUBLE NOT NULL,       -- quantity-weighted price of the entry fills
    avg_exit DOUBLE,                 -- quantity-weighted price of the exit fills so far
    qty DOUBLE NOT NULL,             -- units entered over the trade (scale-ins included)
    pnl DOUBLE,                      -- realised, account currency, after commissions and fees
    pnl_r DOUBLE,                    -- pnl / initial_risk; NULL when no stop is known
    fees DOUBLE,                     -- commissions + fees, account currency
    slippage_est DOUBLE,             -- first fill against the linked intent's entry, price, + = worse
    outcome_label VARCHAR,           -- win | loss | scratch; NULL while open
    tags_json JSON,
    linked_intent_id VARCHAR REFERENCES trade_intents (intent_id),
    match_method VARCHAR NOT NULL DEFAULT 'fifo' CHECK (match_method IN ('fifo', 'lifo', 'average')),
    status VARCHAR NOT NULL DEFAULT 'closed' CHECK (status IN ('open', 'closed')),
    max_position DOUBLE,             -- largest absolute position during the trade, units
    open_position DOUBLE,            -- signed units still open (0 when closed)
    open_cost_basis DOUBLE,          -- average cost of the open units under match_method, price
    n_fills INTEGER,                 -- trade_fills rows (a split fill counts once per part)
    initial_stop DOUBLE,             -- the stop R is measured against, price
    initial_risk DOUBLE,             -- |avg_entry - initial_stop| x qty x multiplier, account currency
    r_source VARCHAR,                -- intent | user | NULL (no stop known: pnl_r not computed)
    link_status VARCHAR,             -- linked | ambiguous | none
    link_candidates_json JSON,       -- intent ids that matched when ambiguous
    multiplier DOUBLE NOT NULL DEFAULT 1,
    built_at TIMESTAMPTZ
);
INSERT INTO trades BY NAME SELECT * FROM trades_0009;
DROP TABLE trades_0009;
CREATE INDEX trades_user_symbol ON trades (user_id, symbol);

CREATE TABLE trade_fills (
    fill_id VARCHAR PRIMARY KEY,     -- user:exec_id, plus :close / :open for a fill split at zero
    trade_id VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    price DOUBLE NOT NULL,
    qty DOUBLE NOT NULL,             -- units of this part, > 0
    fill_type VARCHAR NOT NULL CHECK (fill_type IN ('open', 'add', 'reduce', 'close')),
    venue_optional VARCHAR,
    user_id VARCHAR,
    exec_id VARCHAR,                 -- the broker's execution id (broker_fills)
    side VARCHAR,                    -- buy | sell
    fees DOUBLE,                     -- this part's share of commission + fees
    realized_pnl DOUBLE,             -- gross, account currency, under the trade's match_method
    position_after DOUBLE            -- signed units after this part
);
INSERT INTO trade_fills BY NAME SELECT * FROM trade_fills_0009;
DROP TABLE trade_fills_0009;
CREATE INDEX trade_fills_trade ON trade_fills (trade_id);

CREATE TABLE post_trade_reviews (
    review_id VARCHAR PRIMARY KEY,
    trade_id VARCHAR NOT NULL,
    user_id VARCHAR NOT NULL,
    generated_at TIMESTAMPTZ NOT NULL,
    process_grade VARCHAR,
    key_lessons_json JSON,
    what_went_well_json JSON,
    what_to_improve_json JSON,
    linked_eval_id_optional VARCHAR,
    version VARCHAR NOT NULL,
    outcome VARCHAR,                 -- good | bad | open
    process_outcome VARCHAR,         -- the 2x2 cell, e.g. good_process_bad_outcome
    process_score DOUBLE,            -- checks passed / checks made
    mae_price DOUBLE, mfe_price DOUBLE,
    mae_r DOUBLE, mfe_r DOUBLE,
    mae_position DOUBLE, mfe_position DOUBLE,
    exit_efficiency DOUBLE,
    bars_held INTEGER,
    bars_timeframe VARCHAR,
    review_json JSON                 -- every check and number the review rests on
);
INSERT INTO post_trade_reviews BY NAME SELECT * FROM post_trade_reviews_0009;
DROP TABLE post_trade_reviews_0009;

CREATE TABLE playbook_members (
    user_id VARCHAR NOT NULL,
    playbook_id VARCHAR NOT NULL REFERENCES playbooks (playbook_id),
    trade_id VARCHAR NOT NULL,
    distance_to_centroid DOUBLE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (playbook_id, trade_id)
);
INSERT INTO playbook_members SELECT * FROM playbook_members_0009;
DROP TABLE playbook_members_0009;

-- A stop the trader states for a trade with no linked intent: R is measured against it.
CREATE TABLE trade_user_stops (
    user_id VARCHAR NOT NULL,
    trade_id VARCHAR NOT NULL,
    stop DOUBLE NOT NULL CHECK (stop > 0),
    given_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, trade_id)
);
