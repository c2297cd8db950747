-- The Land of a practice decides its working days (public holidays); a declared Störung is
-- re-confirmed every 7 days.
ALTER TABLE practices ADD COLUMN land TEXT NOT NULL DEFAULT 'NI';
ALTER TABLE destinations ADD COLUMN outage_confirmed_at TIMESTAMP;
