-- 0001: market data the seed assumes exists, and every table the seed's roadmap lists.
-- Column names are the seed's. Timestamps are TIMESTAMPTZ (UTC); JSON payloads are JSON.

-- ---------------------------------------------------------------- market data (pre-existing in the seed)
CREATE TABLE tickers (
    symbol VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    asset_class VARCHAR NOT NULL,
    exchange VARCHAR NOT NULL,
    currency VARCHAR NOT NULL,
    sector VARCHAR,
    tick_size DOUBLE NOT NULL CHECK (tick_size > 0),
    lot_size DOUBLE NOT NULL CHECK (lot_size > 0),
    contract_multiplier DOUBLE NOT NULL DEFAULT 1 CHECK (contract_multiplier > 0),
    trading_calendar VARCHAR NOT NULL,
    benchmark VARCHAR,
    timezone VARCHAR NOT NULL,
    source VARCHAR,
    licence VARCHAR
);

-- Keyed by (symbol, timeframe, ts); the write path replaces whole ranges in one transaction.
CREATE TABLE bars (
    symbol VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,        -- bar open
    ts_close TIMESTAMPTZ NOT NULL,  -- bar complete: point-in-time reads filter on this
    session DATE NOT NULL,
    open DOUBLE NOT NULL,
    high DOUBLE NOT NULL,
    low DOUBLE NOT NULL,
    close DOUBLE NOT NULL,
    volume DOUBLE NOT NULL,
    adj_close DOUBLE                -- the source's own adjusted close, reference only
);

CREATE TABLE corporate_actions (
    symbol VARCHAR NOT NULL,
    ex_date DATE NOT NULL,
    action VARCHAR NOT NULL,
    ratio DOUBLE NOT NULL CHECK (ratio > 0),
    source VARCHAR,
    PRIMARY KEY (symbol, ex_date, action)
);

-- Wide TA feature time series; columns follow buddy.features.ta.FEATURE_COLUMNS.
CREATE TABLE ta_features (
    symbol VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    feature_set_version VARCHAR NOT NULL,
    atr_14 DOUBLE, natr_14 DOUBLE, rsi_14 DOUBLE,
    sma_20 DOUBLE, sma_50 DOUBLE, sma_200 DOUBLE,
    ema_20 DOUBLE, ema_50 DOUBLE, ema_200 DOUBLE,
    adx_14 DOUBLE, plus_di_14 DOUBLE, minus_di_14 DOUBLE,
    bb_upper_20_2 DOUBLE, bb_middle_20_2 DOUBLE, bb_lower_20_2 DOUBLE,
    bb_width_20_2 DOUBLE, bb_pctb_20_2 DOUBLE,
    macd_12_26_9 DOUBLE, macd_signal_12_26_9 DOUBLE, macd_hist_12_26_9 DOUBLE,
    vwap_session DOUBLE, relvol_20 DOUBLE, rv_20 DOUBLE,
    ret_1 DOUBLE, ret_5 DOUBLE, ret_20 DOUBLE, range_atr DOUBLE
);

-- Known regimes of the synthetic universe (ground truth for detection tests).
CREATE TABLE synthetic_regimes (
    symbol VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    trend_regime VARCHAR NOT NULL,
    vol_regime VARCHAR NOT NULL
);

-- Counters that let caches know when market data changed.
CREATE TABLE store_meta (
    key VARCHAR PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO store_meta VALUES ('market_data_version', 0);

-- ---------------------------------------------------------------- users, accounts and rules
CREATE TABLE user_accounts (
    user_id VARCHAR PRIMARY KEY,
    base_currency VARCHAR NOT NULL,
    equity_snapshot DOUBLE,
    buying_power_snapshot DOUBLE,
    risk_defaults_json JSON,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE user_rules (
    user_id VARCHAR PRIMARY KEY,
    rules_json JSON NOT NULL,
    version INTEGER NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- ---------------------------------------------------------------- trade intent + evaluation logging
CREATE TABLE trade_intents (
    intent_id VARCHAR PRIMARY KEY,
    user_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    side VARCHAR NOT NULL CHECK (side IN ('long', 'short')),
    timeframe VARCHAR NOT NULL,
    proposed_entry DOUBLE NOT NULL,
    proposed_stop DOUBLE,
    proposed_target DOUBLE,
    proposed_size DOUBLE NOT NULL,
    proposed_risk_amount DOUBLE,
    holding_horizon INTEGER,
    order_type VARCHAR NOT NULL,
    exit_template VARCHAR,           -- a saved exit template the trader chose, if any
    as_of TIMESTAMPTZ NOT NULL,     -- the decision time the intent is evaluated at
    created_at TIMESTAMPTZ NOT NULL,
    status VARCHAR NOT NULL
);

CREATE TABLE trade_evaluations (
    eval_id VARCHAR PRIMARY KEY,
    intent_id VARCHAR NOT NULL REFERENCES trade_intents (intent_id),
    user_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL,
    eval_ts TIMESTAMPTZ NOT NULL,
    overall_score DOUBLE,
    overall_severity VARCHAR NOT NULL,
    modules_run_json JSON NOT NULL,
    summary_json JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE trade_evaluation_items (
    eval_item_id VARCHAR PRIMARY KEY,
    eval_id VARCHAR NOT NULL REFERENCES trade_evaluations (eval_id),
    module_name VARCHAR NOT NULL,
    issue_code VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    evidence_json JSON NOT NULL,
    recommendation_json JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- ---------------------------------------------------------------- trades & executions
CREATE TABLE trades (
    trade_id VARCHAR PRIMARY KEY,
    user_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    side VARCHAR NOT NULL CHECK (side IN ('long', 'short')),
    open_ts TIMESTAMPTZ NOT NULL,
    close_ts TIMESTAMPTZ,
    avg_entry DOUBLE NOT NULL,
    avg_exit DOUBLE,
    qty DOUBLE NOT NULL,
    pnl DOUBLE,
    pnl_r DOUBLE,
    fees DOUBLE,
    slippage_est DOUBLE,
    outcome_label VARCHAR,
    tags_json JSON,
    linked_intent_id VARCHAR REFERENCES trade_intents (intent_id)
);

CREATE TABLE trade_fills (
    fill_id VARCHAR PRIMARY KEY,
    trade_id VARCHAR NOT NULL REFERENCES trades (trade_id),
    ts TIMESTAMPTZ NOT NULL,
    price DOUBLE NOT NULL,
    qty DOUBLE NOT NULL,
    fill_type VARCHAR NOT NULL,
    venue_optional VARCHAR
);

-- ---------------------------------------------------------------- strategy profiles + playbooks
CREATE TABLE strategy_profiles (
    user_id VARCHAR PRIMARY KEY,
    computed_at TIMESTAMPTZ NOT NULL,
    profile_json JSON NOT NULL,
    baseline_stats_json JSON,
    version INTEGER NOT NULL
);

CREATE TABLE playbooks (
    playbook_id VARCHAR PRIMARY KEY,
    user_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    centroid_vector DOUBLE[],
    dispersion_metrics_json JSON,
    stats_json JSON,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE playbook_members (
    user_id VARCHAR NOT NULL,
    playbook_id VARCHAR NOT NULL REFERENCES playbooks (playbook_id),
    trade_id VARCHAR NOT NULL REFERENCES trades (trade_id),
    distance_to_centroid DOUBLE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (playbook_id, trade_id)
);

-- ---------------------------------------------------------------- regime + levels snapshots
CREATE TABLE regime_snapshots (
    symbol VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    trend_state VARCHAR,
    trend_strength DOUBLE,
    vol_state VARCHAR,
    vol_z DOUBLE,
    vol_expansion_flag BOOLEAN,
    liquidity_state VARCHAR,
    spread_proxy DOUBLE,
    relvol DOUBLE,
    hmm_state_id_optional INTEGER,
    hmm_probs_json JSON,
    computed_at TIMESTAMPTZ NOT NULL,
    version VARCHAR NOT NULL,
    PRIMARY KEY (symbol, timeframe, ts)
);

CREATE TABLE key_levels (
    symbol VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    prior_day_high DOUBLE,
    prior_day_low DOUBLE,
    prior_day_close DOUBLE,
    pivots_json JSON,
    anchored_vwap_levels_json JSON,
    rolling_range_high DOUBLE,
    rolling_range_low DOUBLE,
    support_resistance_json JSON,
    computed_at TIMESTAMPTZ NOT NULL,
    version VARCHAR NOT NULL,
    PRIMARY KEY (symbol, timeframe, ts)
);

-- ---------------------------------------------------------------- portfolio + exposure
CREATE TABLE positions (
    user_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    qty DOUBLE NOT NULL,
    avg_price DOUBLE NOT NULL,
    open_ts TIMESTAMPTZ NOT NULL,
    unrealized_pnl DOUBLE,
    risk_est_optional DOUBLE,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, symbol)
);

CREATE TABLE portfolio_exposure_snapshots (
    user_id VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    gross_exposure DOUBLE,
    net_exposure DOUBLE,
    sector_exposure_json JSON,
    benchmark_beta_json JSON,
    correlation_clusters_json JSON,
    portfolio_heat_score DOUBLE,
    computed_at TIMESTAMPTZ NOT NULL,
    version VARCHAR NOT NULL,
    PRIMARY KEY (user_id, ts)
);

-- ---------------------------------------------------------------- behaviour nudges + journaling
CREATE TABLE behavior_events (
    event_id VARCHAR PRIMARY KEY,
    user_id VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    event_type VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    evidence_json JSON,
    action_suggested_json JSON,
    linked_intent_id_optional VARCHAR,
    linked_trade_id_optional VARCHAR
);

CREATE TABLE trade_journal (
    journal_id VARCHAR PRIMARY KEY,
    user_id VARCHAR NOT NULL,
    trade_id_optional VARCHAR,
    intent_id_optional VARCHAR,
    note_text VARCHAR NOT NULL,
    tags_json JSON,
    created_at TIMESTAMPTZ NOT NULL
);

-- ---------------------------------------------------------------- post-trade reviews + learning
CREATE TABLE post_trade_reviews (
    review_id VARCHAR PRIMARY KEY,
    trade_id VARCHAR NOT NULL REFERENCES trades (trade_id),
    user_id VARCHAR NOT NULL,
    generated_at TIMESTAMPTZ NOT NULL,
    process_grade VARCHAR,
    key_lessons_json JSON,
    what_went_well_json JSON,
    what_to_improve_json JSON,
    linked_eval_id_optional VARCHAR,
    version VARCHAR NOT NULL
);

-- ---------------------------------------------------------------- conversational brainstorm sessions
CREATE TABLE assistant_sessions (
    session_id VARCHAR PRIMARY KEY,
    user_id VARCHAR NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    last_active_at TIMESTAMPTZ NOT NULL,
    mode VARCHAR NOT NULL,
    session_state_json JSON
);

CREATE TABLE assistant_messages (
    msg_id VARCHAR PRIMARY KEY,
    session_id VARCHAR NOT NULL REFERENCES assistant_sessions (session_id),
    ts TIMESTAMPTZ NOT NULL,
    role VARCHAR NOT NULL,
    content_or_ref VARCHAR NOT NULL,
    tool_calls_json_optional JSON
);
