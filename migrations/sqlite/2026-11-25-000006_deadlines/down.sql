ALTER TABLE destinations DROP COLUMN outage_confirmed_at;
ALTER TABLE practices DROP COLUMN land;
