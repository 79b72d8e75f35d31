-- 0004: user anchors for anchored VWAPs (an earnings release, a product launch, a gap).
-- key_levels keeps the seed's columns: its rows are shared by every user, so a user's anchors
-- live here and the key-levels provider adds their VWAPs at read time. anchor_ts is the
-- moment anchored at (the VWAP starts at the first bar closing after it); created_at is an
-- audit stamp only.
CREATE TABLE level_anchors (
    user_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    anchor_ts TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, symbol, name)
);
