-- Optional per-insurer rate limit (pushes per minute).
ALTER TABLE destinations ADD COLUMN rate_per_minute INTEGER;
