DROP INDEX certificates_by_insurer_and_kvnr;
DROP TABLE scan_pages;
DROP TABLE scan_uploads;
DELETE FROM users WHERE role = 'insurer';
ALTER TABLE users DROP CONSTRAINT users_insurer_ik;
ALTER TABLE users DROP CONSTRAINT users_practice_roles;
ALTER TABLE users DROP CONSTRAINT users_role;
ALTER TABLE users ADD CONSTRAINT users_role CHECK (role IN ('staff', 'admin', 'operator'));
ALTER TABLE users ADD CONSTRAINT users_operator_without_practice
    CHECK ((role = 'operator') = (practice_id IS NULL));
ALTER TABLE users DROP COLUMN insurer_ik;
ALTER TABLE certificates DROP COLUMN paper_received_at;
