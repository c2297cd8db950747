-- Practices (Betriebsstätten) and their master data.
CREATE TABLE practices (
    id TEXT PRIMARY KEY NOT NULL,
    bsnr TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    street TEXT NOT NULL,
    postal_code TEXT NOT NULL,
    city TEXT NOT NULL,
    phone TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE doctors (
    id TEXT PRIMARY KEY NOT NULL,
    practice_id TEXT NOT NULL REFERENCES practices(id),
    lanr TEXT NOT NULL,
    name TEXT NOT NULL,
    specialty TEXT NOT NULL,
    UNIQUE (practice_id, lanr)
);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    practice_id TEXT NOT NULL REFERENCES practices(id),
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'staff',
    created_at TIMESTAMP NOT NULL
);

-- Only the SHA-256 of a session token is stored.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    practice_id TEXT NOT NULL REFERENCES practices(id),
    label TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- One row per captured certificate. `document` is the validated certificate as JSON; the other
-- columns are copies for searching and listing.
CREATE TABLE certificates (
    id TEXT PRIMARY KEY NOT NULL,
    practice_id TEXT NOT NULL REFERENCES practices(id),
    submission_key TEXT,
    kind TEXT NOT NULL,
    kvnr TEXT NOT NULL,
    search_name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    insurer_ik TEXT NOT NULL,
    determined_on DATE NOT NULL,
    incapable_until DATE NOT NULL,
    document TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (practice_id, submission_key)
);
CREATE INDEX certificates_by_practice_and_time ON certificates (practice_id, created_at DESC);
CREATE INDEX certificates_by_practice_and_kvnr ON certificates (practice_id, kvnr);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    at TIMESTAMP NOT NULL,
    practice_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    certificate_id TEXT REFERENCES certificates(id),
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_by_certificate ON audit_log (certificate_id);
