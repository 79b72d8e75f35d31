-- 0017: portfolio exposure (issue 18).
--
-- positions_statements: the positions a trader imported from a statement
-- (`buddy positions import FILE --user U`), one row per (user, statement time, symbol), as
-- given (prices on the basis traded at as_of). A trader without broker fills is read from
-- the latest statement with as_of <= t (buddy/portfolio/positions.py).
CREATE TABLE positions_statements (
    user_id VARCHAR NOT NULL,
    as_of TIMESTAMPTZ NOT NULL,          -- when the statement stood, UTC
    symbol VARCHAR NOT NULL,
    qty DOUBLE NOT NULL,                 -- signed units: + long, - short
    avg_price DOUBLE NOT NULL CHECK (avg_price > 0),
    stop DOUBLE CHECK (stop > 0),        -- NULL: no stop given (the open risk is unknown)
    source_file VARCHAR NOT NULL,
    imported_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, as_of, symbol)
);

-- account_equity_history: equity known at a moment (a statement's net liquidation value, a
-- simulated account's constant equity). user_accounts keeps only the latest snapshot, stamped
-- when written, so a past as_of reads its equity here first (latest row with as_of <= t).
CREATE TABLE account_equity_history (
    user_id VARCHAR NOT NULL,
    as_of TIMESTAMPTZ NOT NULL,
    equity DOUBLE NOT NULL CHECK (equity > 0),   -- account currency
    base_currency VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, as_of)
);

-- portfolio_exposure_snapshots keeps the seed's columns (gross_exposure and net_exposure in
-- account currency, portfolio_heat_score = heat % of equity); what the seed lacks beside them.
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN equity DOUBLE;          -- account currency
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN base_currency VARCHAR;
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN positions_source VARCHAR; -- fills | statement
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN n_positions INTEGER;
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN gross_exposure_pct DOUBLE;  -- % of equity
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN net_exposure_pct DOUBLE;    -- % of equity
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN asset_class_exposure_json JSON;
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN heat_limit_pct DOUBLE;      -- rules version's
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN rules_version INTEGER;
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN heat_unknown_symbols_json JSON;  -- no stop
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN portfolio_vol_pct DOUBLE;   -- daily, % of equity
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN risk_contributions_json JSON;
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN var_level DOUBLE;           -- e.g. 0.95
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN var_horizon_days INTEGER;
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN var_parametric_pct DOUBLE;  -- % of equity
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN var_historical_pct DOUBLE;  -- % of equity
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN returns_window VARCHAR;     -- stated window
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN beta_window VARCHAR;
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN n_returns INTEGER;
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN positions_json JSON;        -- per position
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN not_checked_json JSON;      -- what and why
ALTER TABLE portfolio_exposure_snapshots ADD COLUMN snapshot_trigger VARCHAR;   -- close | position_change | on_demand
