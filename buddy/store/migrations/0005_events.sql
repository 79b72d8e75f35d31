-- 0005: scheduled events (earnings, macro releases, extra closures) that users import.
-- Events are market data, not per user: one row serves every user. symbol NULL means
-- market-wide (a central-bank decision, a CPI release).
--
-- Point-in-time: an event is visible at as_of only when announced_at <= as_of. announced_at
-- is the CSV's column when given, else the time of the (first) import, so a file imported
-- today never leaks into a replay of the past unless it says when each date was known.
--
-- Exchange holidays and early closes are NOT stored: they are computed at read time from
-- exchange-calendars (buddy.events.calendar), which knows every regular one years ahead and
-- treats unscheduled closures as known only from their announcement. Rows of kind 'holiday'
-- or 'early_close' here are user additions (venues or closures the calendar lacks).

CREATE TABLE events (
    event_id VARCHAR PRIMARY KEY,
    symbol VARCHAR,                  -- NULL: market-wide
    kind VARCHAR NOT NULL CHECK (kind IN ('earnings', 'macro', 'holiday', 'early_close',
                                          'other')),
    ts TIMESTAMPTZ NOT NULL,         -- when the event happens (UTC)
    title VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    announced_at TIMESTAMPTZ NOT NULL,  -- when the date became known (see above)
    imported_at TIMESTAMPTZ NOT NULL
);
