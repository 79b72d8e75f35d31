-- 0021: per-user API keys of the HTTP service (issue 20 section 1; buddy/service/auth.py,
-- SQL in buddy/store/api_keys.py).
--
-- Only the SHA-256 of a key is stored (hex); the key itself is shown once, when created.
-- ``prefix`` is the key's first characters, kept so a user can tell their keys apart in
-- `buddy service keys list`; it is too short to guess the rest from. A revoked key keeps its
-- row (revoked_at set) so the list says when it stopped working.
CREATE TABLE api_keys (
    key_id VARCHAR PRIMARY KEY,
    user_id VARCHAR NOT NULL,
    key_sha256 VARCHAR NOT NULL UNIQUE,
    prefix VARCHAR NOT NULL,
    label VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX api_keys_user ON api_keys (user_id);
