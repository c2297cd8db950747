ALTER TABLE practices DROP COLUMN outage_since;
