-- Ground truth of the simulated demo trader (buddy/trades/demo_history.py), kept apart from
-- the seed's tables: what each simulated round trip was meant to be (its setup, its plan and
-- how it ended) and each behaviour injected on a known date. Later work (behaviour detectors,
-- playbooks) measures what it finds against these rows; nothing in the product reads them.
CREATE TABLE demo_trade_truth (
    user_id VARCHAR NOT NULL,
    trade_key VARCHAR NOT NULL,          -- the generator's id of the round trip
    trade_id VARCHAR,                    -- the trades row it became (set after rebuild)
    symbol VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL,
    side VARCHAR NOT NULL CHECK (side IN ('long', 'short')),
    setup VARCHAR NOT NULL,              -- pullback_long | breakout_long | mean_reversion_short
                                         -- | reversal | impulse
    entry_ts TIMESTAMPTZ NOT NULL,
    entry_price DOUBLE NOT NULL,
    planned_stop DOUBLE NOT NULL,
    planned_target DOUBLE NOT NULL,
    planned_qty DOUBLE NOT NULL,         -- the risk budget's size, units
    qty DOUBLE NOT NULL,                 -- the size traded, units
    exit_ts TIMESTAMPTZ,                 -- NULL while open at the data's end
    avg_exit DOUBLE,
    exit_reason VARCHAR NOT NULL,        -- stop | breakeven | target | time | moved_stop
                                         -- | reversed | before_split | open
    partial_exit BOOLEAN NOT NULL,
    pnl DOUBLE,                          -- gross of fees, quote currency
    pnl_r DOUBLE,                        -- pnl over the planned risk of the traded size
    intent_id VARCHAR,                   -- the intent logged before it, if any
    reversal_of VARCHAR,                 -- trade_key of the trade this one reversed
    behaviours_json JSON NOT NULL,       -- kinds injected into this trade
    seed BIGINT NOT NULL,
    generator_version INTEGER NOT NULL,
    PRIMARY KEY (user_id, trade_key)
);

CREATE TABLE demo_behavior_truth (
    user_id VARCHAR NOT NULL,
    behavior_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,               -- size_up_after_loss | overtrading_day | stop_moved
                                         -- | late_session
    ts TIMESTAMPTZ NOT NULL,             -- when it happened (UTC)
    session_date DATE NOT NULL,          -- the trading session it belongs to
    symbol VARCHAR,
    trade_key VARCHAR,                   -- the trade it shows in (NULL for a whole day)
    detail_json JSON NOT NULL,           -- numbers: size ratio, trades that day, stop moved by
    seed BIGINT NOT NULL,
    generator_version INTEGER NOT NULL,
    PRIMARY KEY (user_id, behavior_id)
);
