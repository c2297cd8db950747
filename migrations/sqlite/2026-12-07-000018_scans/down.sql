DROP INDEX certificates_by_insurer_and_kvnr;
DROP TABLE scan_pages;
DROP TABLE scan_uploads;
DELETE FROM users WHERE role = 'insurer';
CREATE TABLE users_old (
    id TEXT PRIMARY KEY NOT NULL,
    practice_id TEXT REFERENCES practices(id),
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'staff' CHECK (role IN ('staff', 'admin', 'operator')),
    created_at TIMESTAMP NOT NULL,
    deactivated_at TIMESTAMP,
    CHECK ((role = 'operator') = (practice_id IS NULL))
);
INSERT INTO users_old (id, practice_id, username, password_hash, role, created_at, deactivated_at)
SELECT id, practice_id, username, password_hash, role, created_at, deactivated_at FROM users;
DROP TABLE users;
ALTER TABLE users_old RENAME TO users;
CREATE INDEX users_by_practice ON users (practice_id);
ALTER TABLE certificates DROP COLUMN paper_received_at;
