-- API tokens of insurers, each bound to one IK; only the SHA-256 is stored.
CREATE TABLE insurer_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    ik TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX insurer_tokens_by_ik ON insurer_tokens (ik);
