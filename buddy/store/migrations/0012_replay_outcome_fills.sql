-- 0012: an outcome says whether and when its entry filled (replay.outcomes: a limit or stop
-- entry fills only when a later bar trades through it within the fill window, a market order
-- at the next bar's open; exit_reason 'not_filled' when it never did). Columns contract:
-- replay.model.OUTCOME_COLUMNS (filled, fill_ts, fill_price).
ALTER TABLE replay_outcomes ADD COLUMN filled BOOLEAN;
ALTER TABLE replay_outcomes ADD COLUMN fill_ts TIMESTAMPTZ;
ALTER TABLE replay_outcomes ADD COLUMN fill_price DOUBLE;
-- Outcomes labelled before 0012 assumed every entry filled at its proposed price at as_of:
-- they are upgraded to say exactly that (a linked real trade filled at its own entry, which
-- the old rows did not keep: its intent's price stands in).
UPDATE replay_outcomes AS o
SET filled = TRUE, fill_ts = o.entry_ts, fill_price = i.proposed_entry
FROM replay_intents AS i
WHERE i.run_id = o.run_id AND i.intent_id = o.intent_id;
UPDATE replay_outcomes SET filled = TRUE, fill_ts = entry_ts WHERE filled IS NULL;
