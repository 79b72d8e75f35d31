-- 0011: key_levels holds its nested levels as typed columns instead of JSON text.
-- The seed's table and column names stay (they are the user's); pivots_json becomes a STRUCT,
-- anchored_vwap_levels_json and support_resistance_json LISTs of STRUCT, in the same places
-- (the names keep their _json suffix although the values are typed now). A key-levels read fetches one row
-- per bar with no parsing and no regrouping (a long table would need both), and DuckDB
-- stores each struct field as its own compressed column. Existing rows are converted here:
-- the cast from JSON refuses any key the types do not name, so nothing is silently dropped.
CREATE TABLE key_levels_typed (
    symbol VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    prior_day_high DOUBLE,
    prior_day_low DOUBLE,
    prior_day_close DOUBLE,
    -- price levels per method; NULL without a prior day
    pivots_json STRUCT(
        classic STRUCT("P" DOUBLE, "R1" DOUBLE, "R2" DOUBLE, "R3" DOUBLE,
                       "S1" DOUBLE, "S2" DOUBLE, "S3" DOUBLE),
        fibonacci STRUCT("P" DOUBLE, "R1" DOUBLE, "R2" DOUBLE, "R3" DOUBLE,
                         "S1" DOUBLE, "S2" DOUBLE, "S3" DOUBLE),
        camarilla STRUCT("R1" DOUBLE, "R2" DOUBLE, "R3" DOUBLE, "R4" DOUBLE,
                         "S1" DOUBLE, "S2" DOUBLE, "S3" DOUBLE, "S4" DOUBLE)),
    -- prices on bar ts's as-traded basis; times UTC
    anchored_vwap_levels_json STRUCT(anchor VARCHAR, anchor_ts TIMESTAMPTZ, vwap DOUBLE,
                                     upper_1 DOUBLE, lower_1 DOUBLE, upper_2 DOUBLE,
                                     lower_2 DOUBLE)[],
    rolling_range_high DOUBLE,
    rolling_range_low DOUBLE,
    support_resistance_json STRUCT(price DOUBLE, kind VARCHAR, touches INTEGER,
                                   last_touch TIMESTAMPTZ)[],
    computed_at TIMESTAMPTZ NOT NULL,
    version VARCHAR NOT NULL,
    PRIMARY KEY (symbol, timeframe, ts)
);

INSERT INTO key_levels_typed
SELECT symbol, timeframe, ts, prior_day_high, prior_day_low, prior_day_close,
       CAST(pivots_json AS STRUCT(
           classic STRUCT("P" DOUBLE, "R1" DOUBLE, "R2" DOUBLE, "R3" DOUBLE,
                          "S1" DOUBLE, "S2" DOUBLE, "S3" DOUBLE),
           fibonacci STRUCT("P" DOUBLE, "R1" DOUBLE, "R2" DOUBLE, "R3" DOUBLE,
                            "S1" DOUBLE, "S2" DOUBLE, "S3" DOUBLE),
           camarilla STRUCT("R1" DOUBLE, "R2" DOUBLE, "R3" DOUBLE, "R4" DOUBLE,
                            "S1" DOUBLE, "S2" DOUBLE, "S3" DOUBLE, "S4" DOUBLE))),
       CAST(anchored_vwap_levels_json AS STRUCT(anchor VARCHAR, anchor_ts TIMESTAMPTZ,
                                                vwap DOUBLE, upper_1 DOUBLE, lower_1 DOUBLE,
                                                upper_2 DOUBLE, lower_2 DOUBLE)[]),
       rolling_range_high, rolling_range_low,
       CAST(support_resistance_json AS STRUCT(price DOUBLE, kind VARCHAR, touches INTEGER,
                                              last_touch TIMESTAMPTZ)[]),
       computed_at, version
FROM key_levels;

DROP TABLE key_levels;
ALTER TABLE key_levels_typed RENAME TO key_levels;
