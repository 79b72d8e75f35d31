-- 0018: behaviour detectors' events (issue 19, buddy/behavior/detectors.py).
--
-- behavior_events keeps the seed's columns (event_type is the detector's name, evidence_json
-- every fact the event rests on) and gains typed columns for the headline figure, so a
-- reader can filter and aggregate without parsing JSON: what was measured (metric, unit),
-- its value, the user's own baseline, the difference with its 95% interval, the sample the
-- baseline came from (n), the trading day it belongs to, and which detector settings and
-- version produced it (a rescan under other settings replaces the user's events).
ALTER TABLE behavior_events ADD COLUMN session_date DATE;
ALTER TABLE behavior_events ADD COLUMN metric VARCHAR;
ALTER TABLE behavior_events ADD COLUMN unit VARCHAR;
ALTER TABLE behavior_events ADD COLUMN value DOUBLE;
ALTER TABLE behavior_events ADD COLUMN baseline DOUBLE;
ALTER TABLE behavior_events ADD COLUMN difference DOUBLE;
ALTER TABLE behavior_events ADD COLUMN difference_lo DOUBLE;  -- 95% interval of difference
ALTER TABLE behavior_events ADD COLUMN difference_hi DOUBLE;
ALTER TABLE behavior_events ADD COLUMN n INTEGER;              -- the baseline's sample
ALTER TABLE behavior_events ADD COLUMN symbol VARCHAR;
ALTER TABLE behavior_events ADD COLUMN params_hash VARCHAR;    -- BehaviorParams.hash
ALTER TABLE behavior_events ADD COLUMN detector_version VARCHAR;
ALTER TABLE behavior_events ADD COLUMN computed_at TIMESTAMPTZ;
CREATE INDEX behavior_events_user_ts ON behavior_events (user_id, ts);
