-- Roles: 'staff' and 'admin' belong to one practice, an 'operator' to none (practice_id NULL).
-- Existing users: the oldest account of each practice becomes its practice admin (so every
-- practice can manage its users after the upgrade), all others are staff. Users can be
-- deactivated (never deleted: the audit trail names them).
ALTER TABLE users ALTER COLUMN practice_id DROP NOT NULL;
ALTER TABLE users ADD COLUMN deactivated_at TIMESTAMP;
UPDATE users u SET role = CASE
    WHEN u.created_at = (SELECT MIN(o.created_at) FROM users o WHERE o.practice_id = u.practice_id)
    THEN 'admin' ELSE 'staff' END;
ALTER TABLE users ADD CONSTRAINT users_role CHECK (role IN ('staff', 'admin', 'operator'));
ALTER TABLE users ADD CONSTRAINT users_operator_without_practice
    CHECK ((role = 'operator') = (practice_id IS NULL));
CREATE INDEX users_by_practice ON users (practice_id);

-- The audit trail is append-only: the application has no update or delete path, and the
-- database refuses them too.
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
CREATE INDEX audit_log_by_practice_and_time ON audit_log (practice_id, at);
