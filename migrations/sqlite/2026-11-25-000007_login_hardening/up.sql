-- Idle timeout of sessions, and failed logins for throttling (per account and per address).
ALTER TABLE sessions ADD COLUMN last_seen_at TIMESTAMP;
CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    subject TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_by_subject ON login_failures (subject, at);
