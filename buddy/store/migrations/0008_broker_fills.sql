-- Broker fills as imported: one row per execution, in the canonical columns of
-- buddy.trades.fills.FILL_COLUMNS.
--
-- Keyed by (user_id, exec_id): the broker's execution id, else a content key over
-- (source, account, symbol, ts, side, qty, price, source_row), so importing the same file twice
-- writes nothing the second time while two identical fills on different rows of one file stay
-- two fills. Fills whose symbol is not in `tickers` are stored too (the import reports them);
-- "unknown" is a join with `tickers`, never a stored flag that would go stale.
-- The seed's `trade_fills` are derived from these rows by the trades grouping (a fill that
-- crosses zero becomes two trade_fills rows), so the broker's record is never rewritten.
CREATE TABLE broker_fills (
    user_id VARCHAR NOT NULL,
    account VARCHAR,
    symbol VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,                 -- execution time, UTC
    side VARCHAR NOT NULL CHECK (side IN ('buy', 'sell')),
    qty DOUBLE NOT NULL CHECK (qty > 0),     -- units (shares, contracts, FX units)
    price DOUBLE NOT NULL CHECK (price > 0),
    commission DOUBLE NOT NULL CHECK (commission >= 0),  -- currency, positive = cost
    fees DOUBLE NOT NULL CHECK (fees >= 0),              -- exchange/regulatory fees, taxes
    currency VARCHAR NOT NULL,
    exec_id VARCHAR NOT NULL,
    source VARCHAR NOT NULL,                 -- importer format name
    source_file VARCHAR NOT NULL,
    source_row INTEGER NOT NULL,             -- 1-based data row in the file
    open_close VARCHAR,                      -- the broker's indicator as given: O, C, C;O, in, out, inout
    order_id VARCHAR,
    venue VARCHAR,
    imported_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, exec_id)
);
