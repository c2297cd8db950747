-- Roles: 'staff' and 'admin' belong to one practice, an 'operator' to none (practice_id NULL).
-- Existing users: the oldest account of each practice becomes its practice admin (so every
-- practice can manage its users after the upgrade), all others are staff. Users can be
-- deactivated (never deleted: the audit trail names them).
-- SQLite cannot relax NOT NULL or add a CHECK in place: the table is rebuilt. Dropping the old
-- table ends all sessions (ON DELETE CASCADE): everybody logs in again after the upgrade.
CREATE TABLE users_new (
    id TEXT PRIMARY KEY NOT NULL,
    practice_id TEXT REFERENCES practices(id),
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'staff' CHECK (role IN ('staff', 'admin', 'operator')),
    created_at TIMESTAMP NOT NULL,
    deactivated_at TIMESTAMP,
    CHECK ((role = 'operator') = (practice_id IS NULL))
);
INSERT INTO users_new (id, practice_id, username, password_hash, role, created_at)
SELECT u.id, u.practice_id, u.username, u.password_hash,
       CASE WHEN u.created_at = (SELECT MIN(o.created_at) FROM users o WHERE o.practice_id = u.practice_id)
            THEN 'admin' ELSE 'staff' END,
       u.created_at
FROM users u;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
CREATE INDEX users_by_practice ON users (practice_id);

-- The audit trail is append-only: the application has no update or delete path, and the
-- database refuses them too.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE INDEX audit_log_by_practice_and_time ON audit_log (practice_id, at);
