DROP INDEX audit_log_by_practice_and_time;
DROP TRIGGER audit_log_no_delete;
DROP TRIGGER audit_log_no_update;
-- Operators have no practice and cannot exist before this migration.
CREATE TABLE users_old (
    id TEXT PRIMARY KEY NOT NULL,
    practice_id TEXT NOT NULL REFERENCES practices(id),
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'staff',
    created_at TIMESTAMP NOT NULL
);
INSERT INTO users_old (id, practice_id, username, password_hash, role, created_at)
SELECT id, practice_id, username, password_hash, 'staff', created_at
FROM users WHERE practice_id IS NOT NULL AND deactivated_at IS NULL;
DROP TABLE users;
ALTER TABLE users_old RENAME TO users;
