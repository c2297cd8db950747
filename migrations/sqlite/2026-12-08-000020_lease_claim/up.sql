-- A claim no longer writes the state: a delivery being sent stays 'pending' under its worker's
-- lease (readers see it in flight while lease_until is set); see the PostgreSQL migration.
UPDATE deliveries SET state = 'pending' WHERE state = 'in_flight';
