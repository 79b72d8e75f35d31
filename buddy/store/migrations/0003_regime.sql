-- 0003: regime detection. regime_snapshots keeps the seed's columns and gains what a
-- RegimeSnapshot carries beyond them; regime_models stores every walk-forward HMM fit.
--
-- Point-in-time: a regime_snapshots row at bar ts uses bars up to ts only: rule states from
-- features at ts, HMM probabilities FORWARD-filtered (never smoothed) under the model in force
-- at ts, which was fitted on bars up to its own refit bar (fitted_through <= ts).

ALTER TABLE regime_snapshots ADD COLUMN hmm_state_label VARCHAR;
ALTER TABLE regime_snapshots ADD COLUMN hmm_state_labels_json JSON;   -- label per state, ordered
ALTER TABLE regime_snapshots ADD COLUMN transition_json JSON;         -- [[P(j | i)]]
ALTER TABLE regime_snapshots ADD COLUMN model_version VARCHAR;
ALTER TABLE regime_snapshots ADD COLUMN fitted_through TIMESTAMPTZ;  -- the model's refit bar

-- One row per walk-forward fit. ts is the bar at which the fit becomes effective: its refit
-- bar, the last bar of its window (so fitted_through = ts). params_json holds everything the
-- forward filter needs (standardisation, start probabilities, transition matrix, means and
-- variances with states sorted by mean volatility) plus the refit and window positions.
CREATE TABLE regime_models (
    symbol VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    model_version VARCHAR NOT NULL,
    fitted_through TIMESTAMPTZ NOT NULL,
    n_obs INTEGER NOT NULL,
    params_json JSON NOT NULL,
    log_likelihood DOUBLE,
    computed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (symbol, timeframe, ts)
);
