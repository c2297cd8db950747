UPDATE deliveries SET state = 'in_flight' WHERE state = 'pending' AND lease_until IS NOT NULL;
ALTER TABLE deliveries RESET (fillfactor);
