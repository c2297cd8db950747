ALTER TABLE destinations DROP COLUMN rate_per_minute;
