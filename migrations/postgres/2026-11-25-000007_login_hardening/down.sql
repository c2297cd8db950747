DROP TABLE login_failures;
ALTER TABLE sessions DROP COLUMN last_seen_at;
