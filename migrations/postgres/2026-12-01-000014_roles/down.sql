DROP INDEX audit_log_by_practice_and_time;
DROP TRIGGER audit_log_no_truncate ON audit_log;
DROP TRIGGER audit_log_no_change ON audit_log;
DROP FUNCTION audit_log_append_only();
DROP INDEX users_by_practice;
ALTER TABLE users DROP CONSTRAINT users_operator_without_practice;
ALTER TABLE users DROP CONSTRAINT users_role;
-- Operators have no practice and cannot exist before this migration.
DELETE FROM users WHERE practice_id IS NULL OR deactivated_at IS NOT NULL;
UPDATE users SET role = 'staff';
ALTER TABLE users DROP COLUMN deactivated_at;
ALTER TABLE users ALTER COLUMN practice_id SET NOT NULL;
